"""Augmented copies with ground truth, for the dedup accuracy tests and benchmarks (never committed: written to a
temporary folder).

``augment`` draws what issue 9 asks dedup to survive: any angle in [-180, 180] with the corners filled black or
white, a shift of up to 10% per axis, a zoom of 0.85-1.2, a mirror, a 0.5-1x downscale and JPEG quality 70-95.

``bccd_reupload`` rebuilds the shape of the popular Kaggle re-upload of BCCD ("dataset2-master": about 12.5k
320x240 JPEG fields, each an original field rotated by an arbitrary angle with black corners, shifted and flipped,
about 30 copies per field, in ``images/{TRAIN,TEST}/<CLASS>/_<k>_<n>.jpeg``) from the real BCCD fields, with the
BCCD image each copy came from recorded as ground truth.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Augmentation:
    angle: float  # degrees, counter-clockwise
    zoom: float
    shift: tuple[float, float]  # fraction of width, height
    fill: tuple[int, int, int]
    mirror: bool
    downscale: float
    quality: int

    @classmethod
    def draw(cls, rng: np.random.Generator, *, zoom: tuple[float, float] = (0.85, 1.2), shift: float = 0.10,
             downscale: tuple[float, float] = (0.5, 1.0), quality: tuple[int, int] = (70, 95),
             fills: tuple[tuple[int, int, int], ...] = ((0, 0, 0), (255, 255, 255))) -> Augmentation:  # fmt: skip
        return cls(
            angle=float(rng.uniform(-180, 180)),
            zoom=float(rng.uniform(*zoom)),
            shift=(float(rng.uniform(-shift, shift)), float(rng.uniform(-shift, shift))),
            fill=fills[int(rng.integers(len(fills)))],
            mirror=bool(rng.random() < 0.5),
            downscale=float(rng.uniform(*downscale)),
            quality=int(rng.integers(quality[0], quality[1] + 1)),
        )


def augment(rgb: np.ndarray, aug: Augmentation, size: tuple[int, int] | None = None) -> bytes:
    """JPEG bytes of ``rgb`` (h, w, 3) rotated/zoomed about its centre, shifted, corners filled, maybe mirrored,
    then resized to ``size`` (w, h) when given, else downscaled by ``aug.downscale``."""
    h, w = rgb.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), aug.angle, aug.zoom)
    matrix[:, 2] += (aug.shift[0] * w, aug.shift[1] * h)
    out = cv2.warpAffine(rgb, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=aug.fill)  # fmt: skip
    if aug.mirror:
        out = np.ascontiguousarray(out[:, ::-1])
    target = size or (max(8, round(w * aug.downscale)), max(8, round(h * aug.downscale)))
    if target != (w, h):
        out = cv2.resize(out, target, interpolation=cv2.INTER_AREA)
    buffer = io.BytesIO()
    Image.fromarray(out).save(buffer, "JPEG", quality=aug.quality)
    return buffer.getvalue()


def load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


# --------------------------------------------------------------------------- the BCCD re-upload

REUPLOAD_CLASSES = {"NEUTROPHIL": "NEUTROPHIL", "EOSINOPHIL": "EOSINOPHIL", "LYMPHOCYTE": "LYMPHOCYTE",
                    "MONOCYTE": "MONOCYTE"}  # fmt: skip
REUPLOAD_LABEL_MAP = "NEUTROPHIL: [SNE, BNE]\nEOSINOPHIL: EO\nLYMPHOCYTE: LY\nMONOCYTE: MO\n"
"""The imagefolder label map for the re-upload's class folders (a neutrophil may be band or segmented)."""


def bccd_single_labels(labels_csv: Path) -> dict[int, str]:
    """BCCD image number -> its one WBC category, for rows of ``labels.csv`` with exactly one of the four."""
    out = {}
    with labels_csv.open(newline="") as handle:
        for row in csv.DictReader(handle):
            category = (row.get("Category") or "").strip()
            if category in REUPLOAD_CLASSES and row.get("Image", "").strip().isdigit():
                out[int(row["Image"])] = category
    return out


def bccd_reupload(bccd: Path, out: Path, copies: int = 36, fields: int | None = None, seed: int = 0,
                  test_share: float = 0.2) -> dict[str, str]:  # fmt: skip
    """Write the re-upload under ``out`` (``images/{TRAIN,TEST}/<CLASS>/_<k>_<n>.jpeg``) from the single-labelled
    BCCD fields (the first ``fields`` of them when given); return {relative path: BCCD image file name}.
    Also writes ``truth.json`` (the same mapping and each copy's augmentation) and ``label-map.yaml``."""
    rng = np.random.default_rng(seed)
    labels = bccd_single_labels(bccd / "labels.csv" if (bccd / "labels.csv").is_file() else bccd.parent / "labels.csv")
    images = bccd / "JPEGImages" if (bccd / "JPEGImages").is_dir() else bccd / "BCCD" / "JPEGImages"
    chosen = [(n, c) for n, c in sorted(labels.items()) if (images / f"BloodImage_{n:05d}.jpg").is_file()]
    chosen = chosen[:fields] if fields else chosen
    truth: dict[str, str] = {}
    record = {}
    for n, category in chosen:
        name = f"BloodImage_{n:05d}.jpg"
        rgb = load_rgb(images / name)
        for k in range(copies):
            aug = Augmentation.draw(rng, zoom=(1.0, 1.0), downscale=(0.5, 0.5), quality=(85, 95), fills=((0, 0, 0),))
            split = "TEST" if rng.random() < test_share else "TRAIN"
            source_path = f"images/{split}/{category}/_{k}_{n:04d}.jpeg"
            path = out / source_path
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(augment(rgb, aug, size=(320, 240)))
            truth[source_path] = name
            record[source_path] = {"original": name, **asdict(aug)}
    (out / "truth.json").write_text(json.dumps(record, indent=0))
    (out / "label-map.yaml").write_text(REUPLOAD_LABEL_MAP)
    return truth


# --------------------------------------------------------------------------- the accuracy set of issue 9

PBC_CLASSES = ("neutrophil", "lymphocyte", "eosinophil", "monocyte", "basophil", "ig")


def augmented_set(out: Path, pbc: Path, bccd_images: Path | None, cells_per_class: int = 2, fields: int = 4,
                  copies: int = 4, distinct_per_class: int = 4, distinct_fields: int = 8,
                  seed: int = 0) -> dict[str, str | None]:  # fmt: skip
    """Real PBC cells and BCCD fields, each saved as itself plus ``copies`` augmented copies (:class:`Augmentation`
    drawn with the full ranges), mixed with distinct cells of the same classes and distinct fields; written as an
    imagefolder tree (``<class>/<name>.png|jpg``). Returns {relative path: the original it came from, or None
    for a distinct image}."""
    rng = np.random.default_rng(seed)
    truth: dict[str, str | None] = {}
    for cls in PBC_CLASSES:
        files = sorted(p for p in (pbc / cls).glob("*.jpg") if not p.name.startswith("."))
        pick = rng.choice(len(files), min(len(files), cells_per_class + distinct_per_class), replace=False)
        for k, index in enumerate(pick):
            path = files[index]
            rgb = load_rgb(path)
            (out / cls).mkdir(parents=True, exist_ok=True)
            Image.fromarray(rgb).save(out / cls / f"{path.stem}.png")
            original = path.name if k < cells_per_class else None
            truth[f"{cls}/{path.stem}.png"] = original
            for c in range(copies if original else 0):
                source_path = f"{cls}/{path.stem}_aug{c}.jpg"
                (out / source_path).write_bytes(augment(rgb, Augmentation.draw(rng)))
                truth[source_path] = original
    if bccd_images is not None and fields + distinct_fields:
        files = sorted(bccd_images.glob("*.jpg"))
        pick = rng.choice(len(files), min(len(files), fields + distinct_fields), replace=False)
        (out / "field").mkdir(parents=True, exist_ok=True)
        for k, index in enumerate(pick):
            path = files[index]
            rgb = load_rgb(path)
            Image.fromarray(rgb).save(out / "field" / f"{path.stem}.png")
            original = path.name if k < fields else None
            truth[f"field/{path.stem}.png"] = original
            for c in range(copies if original else 0):
                source_path = f"field/{path.stem}_aug{c}.jpg"
                (out / source_path).write_bytes(augment(rgb, Augmentation.draw(rng)))
                truth[source_path] = original
    return truth


ACCURACY_LABEL_MAP = {"neutrophil": ["SNE", "BNE"], "lymphocyte": "LY", "eosinophil": "EO", "monocyte": "MO",
                      "basophil": "BA", "ig": ["MY", "MMY", "PMY"], "field": None}  # fmt: skip
"""imagefolder label map for :func:`augmented_set` (fields carry no cell label)."""


def pair_scores(truth: dict[str, str | None], cluster: dict[str, object]) -> dict[str, float]:
    """Pair recall and precision of clusters against ground truth (keys: relative paths), and the number of
    clusters holding two distinct originals."""
    import itertools

    import pandas as pd

    names = sorted(truth)
    label = {name: None if pd.isna(cluster.get(name)) else int(cluster[name]) for name in names}  # type: ignore[arg-type]
    true_pairs = {(a, b) for a, b in itertools.combinations(names, 2) if truth[a] and truth[a] == truth[b]}
    found = {(a, b) for a, b in itertools.combinations(names, 2) if label[a] is not None and label[a] == label[b]}
    groups: dict[int, set] = {}
    for name in names:
        if label[name] is not None:
            groups.setdefault(label[name], set()).add(truth[name] or name)
    mixed = sum(1 for origins in groups.values() if len(origins) > 1)
    return {
        "true pairs": len(true_pairs),
        "found pairs": len(found),
        "recall": len(true_pairs & found) / max(1, len(true_pairs)),
        "precision": len(true_pairs & found) / max(1, len(found)),
        "mixed clusters": mixed,
    }
