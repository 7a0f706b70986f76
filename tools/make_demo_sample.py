"""Rebuild the demo sample shipped in ``wbc_data/sample/`` from the real data in ``../shared/data``.

Run: ``uv run python tools/make_demo_sample.py [--shared ../shared/data]``

The choice is deterministic (a seeded draw among each PBC prefix, the first BCCD fields of each kind), so the
sample can be rebuilt and audited. What it holds and why is written in ``wbc_data/sample/README.md``.
"""

from __future__ import annotations

import argparse
import csv
import random
import shutil
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "wbc_data" / "sample"
PER_CLASS = {"SNE": 14, "BNE": 14, "LY": 14, "MO": 14, "EO": 14, "BA": 14, "MY": 14, "MMY": 14, "PMY": 7,
             "NEUTROPHIL": 3, "IG": 3, "ERB": 4, "PLATELET": 3}  # fmt: skip
"""PBC images per file-name prefix: PMY is the rare class the demo's generator fills."""
BCCD_FIELDS = {"EOSINOPHIL": 3, "LYMPHOCYTE": 3, "MONOCYTE": 3, "NEUTROPHIL": 2}
AUGMENTED = [  # (PBC file already in the sample, angle, fill, shift x/y fraction, zoom, flip, JPEG quality)
    ("eosinophil/EO_100213.jpg", 37.0, (0, 0, 0), (0.06, -0.04), 1.1, True, 80),
    ("ig/MMY_100949.jpg", -121.0, (255, 255, 255), (-0.05, 0.08), 0.9, False, 88),
]


def augmented_copy(path: Path, angle: float, fill: tuple, shift: tuple, zoom: float, flip: bool) -> Image.Image:
    """Rotate by any angle with filled corners, shift, zoom, flip: how popular re-uploads augment cells."""
    image = Image.open(path).convert("RGB")
    w, h = image.size
    if flip:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    image = image.resize((round(w * zoom), round(h * zoom)), Image.Resampling.BICUBIC)
    image = image.rotate(angle, resample=Image.Resampling.BICUBIC, expand=False, fillcolor=fill,
                         translate=(shift[0] * w, shift[1] * h))  # fmt: skip
    left, top = (image.width - w) // 2, (image.height - h) // 2
    canvas = Image.new("RGB", (w, h), fill)
    canvas.paste(image.crop((max(left, 0), max(top, 0), max(left, 0) + min(w, image.width),
                             max(top, 0) + min(h, image.height))), (max(-left, 0), max(-top, 0)))  # fmt: skip
    return canvas


def pbc(shared: Path) -> None:
    src = shared / "pbc" / "PBC_dataset_normal_DIB"
    dst = SAMPLE / "pbc" / "PBC_dataset_normal_DIB"
    rng = random.Random(2026)
    for prefix, wanted in PER_CLASS.items():
        have = sorted(dst.rglob(f"{prefix}_*.jpg"))
        pool = sorted(p for p in src.rglob(f"{prefix}_*.jpg") if p.name not in {h.name for h in have})
        for path in rng.sample(pool, max(0, wanted - len(have))):
            target = dst / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


def bccd(shared: Path) -> None:
    src, dst = shared / "bccd", SAMPLE / "bccd"
    labels = {}
    with open(src / "labels.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            labels[int(row["Image"])] = row["Category"].strip()
    chosen: list[int] = []
    for category, count in BCCD_FIELDS.items():
        for number in sorted(labels):
            xml = src / "BCCD" / "Annotations" / f"BloodImage_{number:05d}.xml"
            if labels[number] == category and xml.is_file() and xml.read_text().count("<name>WBC</name>") == 1:
                chosen.append(number)
                if sum(labels[n] == category for n in chosen) == count:
                    break
    if (dst / "BCCD").exists():
        shutil.rmtree(dst / "BCCD")
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (dst / "BCCD" / sub).mkdir(parents=True, exist_ok=True)
    names = {f"BloodImage_{n:05d}" for n in chosen}
    for n in chosen:
        name = f"BloodImage_{n:05d}"
        shutil.copy2(src / "BCCD" / "JPEGImages" / f"{name}.jpg", dst / "BCCD" / "JPEGImages")
        shutil.copy2(src / "BCCD" / "Annotations" / f"{name}.xml", dst / "BCCD" / "Annotations")
    for split in ("train", "val", "test", "trainval"):
        lines = (src / "BCCD" / "ImageSets" / "Main" / f"{split}.txt").read_text().split()
        kept = [line for line in lines if line in names]
        (dst / "BCCD" / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{k}\n" for k in kept))
    with open(dst / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["", "Image", "Category"])
        for n in sorted(chosen):
            writer.writerow(["", n, labels[n]])


def reupload() -> None:
    root = SAMPLE / "augmented_reupload"
    if root.exists():
        shutil.rmtree(root)
    folders = {"eosinophil": "Eosinophil", "ig": "Metamyelocyte"}
    for source_path, angle, fill, shift, zoom, flip, quality in AUGMENTED:
        src = SAMPLE / "pbc" / "PBC_dataset_normal_DIB" / source_path
        folder = root / "train" / folders[source_path.split("/")[0]]
        folder.mkdir(parents=True, exist_ok=True)
        copy = augmented_copy(src, angle, fill, shift, zoom, flip)
        copy.save(folder / f"aug_{abs(int(angle))}_{src.stem}.jpg", quality=quality)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    args = parser.parse_args()
    pbc(args.shared)
    bccd(args.shared)
    reupload()
    print(f"sample rebuilt in {SAMPLE}")


if __name__ == "__main__":
    main()
