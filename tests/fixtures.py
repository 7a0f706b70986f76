"""Small generated datasets in the real layouts, for tests that need every row kind (crops, odd modes, non-UTF-8
names, Hub rows, WBCBench parquet rows) without the shared real data."""

from __future__ import annotations

import csv
import io
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from wbc_data.io.resources import sample_dir


def noise(size: tuple[int, int], seed: int, mode: str = "RGB") -> Image.Image:
    """A textured image (so different images hash differently and a crop is not a blank patch)."""
    rng = np.random.default_rng(seed)
    w, h = size
    base = rng.integers(0, 256, (h // 4 + 1, w // 4 + 1, 3), dtype=np.uint8)
    big = np.kron(base, np.ones((4, 4, 1), dtype=np.uint8))[:h, :w]
    return Image.fromarray(big, "RGB").convert(mode) if mode != "RGB" else Image.fromarray(big, "RGB")


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def odd_images(root: Path) -> Path:
    """An imagefolder tree with every decode path: RGBA/16-bit/CMYK/palette/grey and a non-UTF-8 file name."""
    (root / "lymphocyte").mkdir(parents=True)
    (root / "monocyte").mkdir()
    noise((40, 30), 1).save(root / "lymphocyte" / "plain.jpg", quality=92)
    rgba = noise((32, 32), 2).convert("RGBA")
    alpha = np.full((32, 32), 255, dtype=np.uint8)
    alpha[:8] = 0  # a transparent band: composited on white by decode_rgb
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(root / "lymphocyte" / "rgba.tiff")
    deep = (np.random.default_rng(3).integers(0, 65535, (20, 24))).astype(np.uint16)
    Image.fromarray(deep).save(root / "monocyte" / "deep16.png")
    noise((24, 24), 4).convert("CMYK").save(root / "monocyte" / "cmyk.jpg")
    noise((24, 24), 5).convert("P").save(root / "monocyte" / "palette.png")
    noise((24, 24), 6).convert("L").save(root / "monocyte" / "grey.png")
    (root / "monocyte" / os.fsdecode(b"caf\xe9.png")).write_bytes(png_bytes(noise((20, 20), 7)))
    return root


def _voc(boxes: list[tuple[int, int, int, int]], size: tuple[int, int]) -> str:
    objs = "".join(
        f"<object><name>WBC</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax>"
        f"<ymax>{b[3]}</ymax></bndbox></object>"
        for b in boxes
    )
    return (
        f"<annotation><filename>x.jpg</filename><size><width>{size[0]}</width><height>{size[1]}</height></size>"
        f"{objs}</annotation>"
    )


def mini_bccd(root: Path, fields: int = 4) -> Path:
    """BCCD layout: textured 96x72 fields with one or two WBC boxes each and labels.csv (crops of one field
    share a parent; two boxes with one class give two exact crops of the same field)."""
    (root / "BCCD/JPEGImages").mkdir(parents=True)
    (root / "BCCD/Annotations").mkdir()
    (root / "BCCD/ImageSets/Main").mkdir(parents=True)
    classes = ["EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "EOSINOPHIL"]
    rows = []
    for n in range(1, fields + 1):
        noise((96, 72), 100 + n).save(root / f"BCCD/JPEGImages/BloodImage_{n:05d}.jpg", quality=95)
        boxes = [(4, 6, 40, 44)] + ([(50, 20, 90, 66)] if n % 2 == 0 else [])
        (root / f"BCCD/Annotations/BloodImage_{n:05d}.xml").write_text(_voc(boxes, (96, 72)))
        rows.append(("", n, classes[(n - 1) % len(classes)]))
    names = [f"BloodImage_{n:05d}" for n in range(1, fields + 1)]
    (root / "BCCD/ImageSets/Main/train.txt").write_text("\n".join(names[:-1]) + "\n")
    (root / "BCCD/ImageSets/Main/test.txt").write_text(names[-1] + "\n")
    with open(root / "labels.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([("", "Image", "Category"), *rows])
    return root


def hub_folder(folder: Path, n_train: int = 5, n_test: int = 2) -> Path:
    """A Hub dataset saved with ``save_to_disk`` (image + ClassLabel label + patient)."""
    import datasets

    names = ["lymphocyte", "blast"]
    features = datasets.Features(
        image=datasets.Image(), label=datasets.ClassLabel(names=names), patient_hash=datasets.Value("string")
    )

    def part(n: int, offset: int) -> datasets.Dataset:
        return datasets.Dataset.from_dict(
            {
                "image": [{"bytes": png_bytes(noise((22, 20), 200 + offset + i)), "path": None} for i in range(n)],
                "label": [(i + offset) % 2 for i in range(n)],
                "patient_hash": [f"p{(i + offset) // 2}" for i in range(n)],
            },
            features=features,
        )

    datasets.DatasetDict(train=part(n_train, 0), test=part(n_test, n_train)).save_to_disk(folder)
    return folder


def wbcbench_parquet(root: Path, rows: int = 9, row_group_size: int = 4) -> Path:
    """The WBCBench Hub parquet form, written in several row groups (the loader reads one group at a time)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (root / "pristine").mkdir(parents=True)
    names = ["SNE", "BNE", "LY", "VLY", "PLY", "MO", "EO", "BA", "BL", "PC", "MY", "MMY", "PMY"]
    table = pa.table(
        {
            "image": [{"bytes": png_bytes(noise((21, 19), 300 + i)), "path": f"{i}.png"} for i in range(rows)],
            "image_id": [f"id{i:03d}" for i in range(rows)],
            "label": [names[i % len(names)] for i in range(rows)],
            "wbcbench_split": ["phase2_train" if i % 3 else "phase2_eval" for i in range(rows)],
            "patient_hash": [f"p{i // 3}" for i in range(rows)],
        }
    )
    pq.write_table(table, root / "pristine" / "train-00000-of-00001.parquet", row_group_size=row_group_size)
    return root


def sample_copy(dest: Path) -> Path:
    """A writable copy of the real PBC sample shipped with the tool (``<dest>/PBC_dataset_normal_DIB``)."""
    shutil.copytree(sample_dir() / "pbc", dest)
    return dest
