"""Region-of-field copies (issue 21): a re-upload that zooms into a BCCD field around a cell, rotates it a little
(black corners), shifts, sometimes shears it, and saves it at half size, as the popular augmented BCCD re-upload
does (320x240 images from about 400 BCCD fields). Ground truth is the field each region came from.

``region_copies`` draws, per field, regions over these ranges (``RANGES``):
- zoom 1.5-3x relative to the whole field (the region shows 1/1.5 to 1/3 of the field's width and height);
- centred on a box of the field's VOC annotation (a WBC where there is one, else any cell), shifted by up to 10%
  of the region's size per axis;
- rotated by up to 20 degrees either way, corners filled black;
- sheared (x by y) by up to 0.15 in one region out of three;
- then resized to half the field's size (320x240 for BCCD's 640x480), JPEG quality 85-95;
- mirrored (left-right) in a share of the regions chosen by ``--mirror-share`` (0 by default, as the figures before
  mirrored regions were measured; nothing else is drawn differently when it is 0).

``main`` ingests ``--fields`` real BCCD fields (as the ``bccd`` source: fields with windows) and their regions (an
``imagefolder`` source), runs ``dedup`` and reports: regions linked to their own field (``dup_derived_from``),
regions linked to another field (false), and pairs of regions of one field sharing a cluster.

Run: ``uv run python benchmarks/region.py --fields 40 --per-field 3``.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

if str(Path(__file__).resolve().parents[1]) not in sys.path:
    sys.path.append(str(Path(__file__).resolve().parents[1]))

BCCD = Path(__file__).resolve().parents[2] / "shared" / "data" / "bccd"
RANGES = {"zoom": (1.5, 3.0), "angle": (-20.0, 20.0), "shift": 0.10, "shear": 0.15, "shear_share": 1 / 3,
          "out_scale": 0.5, "quality": (85, 95)}  # fmt: skip


@dataclass(frozen=True)
class Region:
    centre: tuple[float, float]  # field pixels
    zoom: float
    angle: float  # degrees, counter-clockwise
    shear: float
    quality: int
    mirror: bool = False

    @classmethod
    def draw(cls, rng: np.random.Generator, boxes: list[tuple[float, float, float, float]], width: int,
             height: int, mirror_share: float = 0.0) -> Region:  # fmt: skip
        zoom = float(rng.uniform(*RANGES["zoom"]))
        x0, y0, x1, y1 = boxes[int(rng.integers(len(boxes)))] if boxes else (0, 0, width, height)
        shift = RANGES["shift"]
        cx = (x0 + x1) / 2 + rng.uniform(-shift, shift) * width / zoom
        cy = (y0 + y1) / 2 + rng.uniform(-shift, shift) * height / zoom
        shear = float(rng.uniform(-RANGES["shear"], RANGES["shear"])) if rng.random() < RANGES["shear_share"] else 0.0
        angle = float(rng.uniform(*RANGES["angle"]))
        quality = int(rng.integers(RANGES["quality"][0], RANGES["quality"][1] + 1))
        mirror = bool(mirror_share > 0 and rng.random() < mirror_share)  # no draw at 0: the regions stay as they were
        return cls((float(cx), float(cy)), zoom, angle, shear, quality, mirror)


def render(rgb: np.ndarray, region: Region) -> bytes:
    """JPEG bytes of ``region`` of the field ``rgb``, at half the field's size."""
    h, w = rgb.shape[:2]
    out_w, out_h = round(w * RANGES["out_scale"]), round(h * RANGES["out_scale"])
    k = region.zoom * RANGES["out_scale"]  # field pixels -> output pixels
    t = np.deg2rad(region.angle)
    rotation = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])
    shear = np.array([[1.0, region.shear], [0.0, 1.0]])
    a = k * rotation @ shear
    centre = np.array(region.centre)
    matrix = np.hstack([a, (np.array([out_w / 2, out_h / 2]) - a @ centre)[:, None]])
    out = cv2.warpAffine(rgb, matrix, (out_w, out_h), flags=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))  # fmt: skip
    if region.mirror:
        out = np.ascontiguousarray(out[:, ::-1])
    buffer = io.BytesIO()
    Image.fromarray(out).save(buffer, "JPEG", quality=region.quality)
    return buffer.getvalue()


def voc_boxes(xml: Path) -> list[tuple[float, float, float, float]]:
    """WBC boxes of a VOC file, else every box."""
    root = ET.parse(xml).getroot()
    boxes: dict[str, list] = {}
    for obj in root.iter("object"):
        bb = obj.find("bndbox")
        if bb is None:
            continue
        box = tuple(float(bb.findtext(k) or 0) for k in ("xmin", "ymin", "xmax", "ymax"))
        boxes.setdefault(obj.findtext("name") or "", []).append(box)
    return boxes.get("WBC") or [b for group in boxes.values() for b in group]


def pick_fields(bccd: Path, count: int, seed: int) -> list[str]:
    stems = sorted(p.stem for p in (bccd / "BCCD" / "JPEGImages").glob("*.jpg"))
    rng = np.random.default_rng(seed)
    return [stems[k] for k in sorted(rng.choice(len(stems), min(count, len(stems)), replace=False))]


def bccd_subset(bccd: Path, out: Path, stems: list[str]) -> Path:
    """A BCCD folder (same layout) holding only ``stems``."""
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (out / "BCCD" / sub).mkdir(parents=True, exist_ok=True)
    for stem in stems:
        shutil.copy(bccd / "BCCD" / "JPEGImages" / f"{stem}.jpg", out / "BCCD" / "JPEGImages")
        shutil.copy(bccd / "BCCD" / "Annotations" / f"{stem}.xml", out / "BCCD" / "Annotations")
    keep = set(stems)
    for listing in (bccd / "BCCD" / "ImageSets" / "Main").glob("*.txt"):
        lines = [line for line in listing.read_text().splitlines() if line.strip() in keep]
        (out / "BCCD" / "ImageSets" / "Main" / listing.name).write_text("\n".join(lines) + "\n")
    shutil.copy(bccd / "labels.csv", out / "labels.csv")
    return out


def region_copies(bccd: Path, out: Path, stems: list[str], per_field: int, seed: int,
                  mirror_share: float = 0.0) -> dict[str, str]:  # fmt: skip
    """Write ``per_field`` regions of each field under ``out/regions/`` (an imagefolder; mirrored ones are named
    ``..._m<k>.jpg``); {relative path: field file name}."""
    rng = np.random.default_rng(seed)
    truth = {}
    folder = out / "regions"
    folder.mkdir(parents=True, exist_ok=True)
    for stem in stems:
        with Image.open(bccd / "BCCD" / "JPEGImages" / f"{stem}.jpg") as image:
            rgb = np.asarray(image.convert("RGB"))
        boxes = voc_boxes(bccd / "BCCD" / "Annotations" / f"{stem}.xml")
        for k in range(per_field):
            region = Region.draw(rng, boxes, rgb.shape[1], rgb.shape[0], mirror_share)
            name = f"regions/{stem}_{'m' if region.mirror else 'r'}{k}.jpg"
            (out / name).write_bytes(render(rgb, region))
            truth[name] = f"{stem}.jpg"
    return truth


def score(frame, truth: dict[str, str]) -> dict[str, float]:
    """Regions linked to their own field / to another field; region pairs of one field sharing a cluster, and
    region pairs of different fields sharing one."""
    import pandas as pd

    ids = frame.set_index("sample_id")
    field_of = {sid: path.rsplit("/", 1)[-1] for sid, path in zip(ids.index, ids["source_path"], strict=True)
                if sid.startswith("bccd:") and ids.loc[sid, "status"] == "auxiliary"}  # fmt: skip
    # fields dedup itself links (BCCD holds shifted copies of some fields: the same scene) count as one scene
    field_cluster = {field: ids.loc[sid, "dup_cluster"] for sid, field in field_of.items()}

    def one_scene(field_a: str, field_b: str) -> bool:
        fa, fb = field_cluster.get(field_a), field_cluster.get(field_b)
        return field_a == field_b or (fa is not None and fb is not None and not pd.isna(fa) and not pd.isna(fb)
                                      and bool(fa == fb))  # fmt: skip

    linked = wrong = 0
    for rel, field in truth.items():
        derived = ids.loc[f"imagefolder:{rel}", "dup_derived_from"]
        if isinstance(derived, str) and derived:
            if one_scene(field_of.get(derived, ""), field):
                linked += 1
            else:
                wrong += 1
    # pair counts by group sizes (never the list of all pairs: 12,000 regions make 76 million)
    regions = pd.DataFrame({"name": sorted(truth)})
    regions["field"] = regions["name"].map(truth)
    regions["cluster"] = [ids.loc[f"imagefolder:{n}", "dup_cluster"] for n in regions["name"]]
    scene_of = {f: (f"c{c}" if c is not None and not pd.isna(c) else f) for f, c in field_cluster.items()}
    regions["scene"] = regions["field"].map(lambda f: scene_of.get(f, f))

    def pairs_within(*keys: str, frame: pd.DataFrame = regions) -> int:
        sizes = frame.groupby(list(keys)).size().to_numpy(np.int64)
        return int((sizes * (sizes - 1) // 2).sum())

    in_clusters = regions.dropna(subset=["cluster"])
    same = pairs_within("field")
    clustered = pairs_within("field", "cluster", frame=in_clusters)
    wrong_pairs = pairs_within("cluster", frame=in_clusters) - pairs_within("cluster", "scene", frame=in_clusters)
    linked_fields = int(pd.Series(field_cluster).dropna().duplicated(keep=False).sum())
    return {"regions": len(truth), "linked to own field (or a copy of it)": linked,
            "recall": linked / max(1, len(truth)),
            "linked to another field": wrong, "precision": linked / max(1, linked + wrong),
            "same-field region pairs": same, "clustered together": clustered,
            "different-scene pairs clustered": wrong_pairs,
            "fields linked to another field": linked_fields}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fields", type=int, default=40)
    parser.add_argument("--per-field", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--engine", default="batched")
    parser.add_argument("--work", default=None)
    parser.add_argument("--no-regions", action="store_true", help="window registration only (the keypoint stage off)")
    parser.add_argument("--mirror-share", type=float, default=0.0, help="share of regions mirrored left-right")
    args = parser.parse_args()
    from wbc_data.core.workspace import Workspace
    from wbc_data.dedup.run import DedupOptions, dedup
    from wbc_data.ingest.engine import IngestOptions, ingest
    from wbc_data.manifest.merge import merge

    work = Path(args.work or tempfile.mkdtemp(prefix="dedup-region-"))
    stems = pick_fields(BCCD, args.fields, args.seed)
    bccd_subset(BCCD, work / "bccd", stems)
    truth = region_copies(BCCD, work / "up", stems, args.per_field, args.seed, args.mirror_share)
    ws = Workspace(work / "ws")
    ingest("bccd", work / "bccd", ws, IngestOptions(workers=args.workers))
    ingest("imagefolder", work / "up", ws, IngestOptions(workers=args.workers))
    merge(ws)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    result = dedup(
        ws, DedupOptions(reports=False, workers=args.workers, engine=args.engine, regions=not args.no_regions)
    )
    seconds = time.perf_counter() - start
    print(f"{args.fields} BCCD fields x {args.per_field} regions, ranges {RANGES}, mirrored {args.mirror_share}")
    import resource

    peak = [resource.getrusage(who).ru_maxrss / 1024 for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    print(
        f"dedup {seconds:.1f} s (load {load:.1f}-{os.getloadavg()[0]:.1f}); peak memory {peak[0]:,.0f} MB in the "
        f"main process (ingest included), {peak[1]:,.0f} MB in the largest worker"
    )
    print(score(result.frame, truth))
    mirrored = {name: field for name, field in truth.items() if "_m" in name.rsplit("/", 1)[-1]}
    if mirrored:
        print("mirrored regions only:", score(result.frame, mirrored))
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
