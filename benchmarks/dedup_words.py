"""Fit the ORB visual vocabulary that ships with wbc-data (``wbc_data/dedup/data/orb_words.npz``).

Run: uv run python benchmarks/dedup_words.py [--cells 2000] [--out wbc_data/dedup/data/orb_words.npz]
Data: a seeded random sample of the shared PBC cells and every shared BCCD field (real images, ../shared/data).
The words are cluster centres of ORB descriptors (binary 256-bit patterns), the idf and PCA basis are statistics
over those images: no image is stored. Re-running with the same data and seed gives the same file.
"""

from __future__ import annotations

import argparse
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image

from wbc_data.dedup.signature import grey_and_valid, orb_descriptors
from wbc_data.dedup.words import fit_embedder

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
PBC = SHARED / "pbc" / "PBC_dataset_normal_DIB"
BCCD = SHARED / "bccd" / "BCCD" / "JPEGImages"
OUT = Path(__file__).resolve().parents[1] / "wbc_data" / "dedup" / "data" / "orb_words.npz"


def descriptors(path: Path) -> np.ndarray:
    import cv2

    cv2.setNumThreads(1)
    grey, valid = grey_and_valid(Image.open(path).convert("RGB"))
    return orb_descriptors(grey, valid)[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cells", type=int, default=2000, help="random PBC cells (seeded)")
    parser.add_argument("--size", type=int, default=1024, help="visual words")
    parser.add_argument("--dim", type=int, default=128, help="embedding dimensions")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    cells = sorted(p for p in PBC.rglob("*.jpg") if not p.name.startswith("."))
    rng = np.random.default_rng(0)
    files = [cells[i] for i in sorted(rng.choice(len(cells), min(args.cells, len(cells)), replace=False))]
    files += sorted(BCCD.glob("*.jpg"))
    start = time.perf_counter()
    with Pool() as pool:
        sets = pool.map(descriptors, files, chunksize=32)
    print(
        f"{len(files):,} images, {sum(len(s) for s in sets):,} ORB descriptors in {time.perf_counter() - start:.0f} s"
    )
    start = time.perf_counter()
    embedder = fit_embedder(sets, size=args.size, dim=args.dim)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    embedder.save(args.out)
    print(f"fitted {args.size} words, {args.dim} dims in {time.perf_counter() - start:.0f} s -> {args.out}")


if __name__ == "__main__":
    main()
