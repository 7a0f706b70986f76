"""Issue 21: what a dedup signature costs per image, the shipped code against the straightforward code it shortcuts
(``benchmarks/signature_reference.py``), on the same decoded real images in the same process, round by round.

Images: real PBC cells (every folder of the shared PBC half), real BCCD fields, and augmented copies of both with
black or white fill corners (``benchmarks/augment.py``), decoded once beforehand, so decoding is not timed. The
shipped path gets the manifest's thumbnail as dedup hands it over (ingest's, from the same pixels). One core, OpenCV
single-threaded: the signature phase runs one image per core in dedup's pool. Each round times both contenders back
to back and reports their ratio within the round, since this VM's speed moves between minutes.

    uv run python benchmarks/dedup_signatures.py [--cells 300] [--fields 30] [--copies 0.3] [--rounds 5]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

if str(Path(__file__).resolve().parents[1]) not in sys.path:
    sys.path.append(str(Path(__file__).resolve().parents[1]))

from benchmarks import signature_reference
from benchmarks.augment import Augmentation, augment, load_rgb
from benchmarks.dedup_scale import PBC, SHARED, cpu_name
from wbc_data.dedup.signature import CANVAS, signature
from wbc_data.dedup.words import default_embedder
from wbc_data.ingest.worker import image_facts


def images(cells: int, fields: int, copies: float, seed: int = 0) -> list[tuple[Image.Image, np.ndarray]]:
    """(decoded image, its ingest thumbnail) for real cells, fields and a share of augmented copies with fill."""
    rng = np.random.default_rng(seed)
    pbc = sorted(p for p in PBC.glob("*/*.jpg") if not p.name.startswith("."))
    bccd = sorted((SHARED / "bccd").rglob("*.jpg"))
    chosen = [pbc[i] for i in rng.choice(len(pbc), min(cells, len(pbc)), replace=False)]
    chosen += [bccd[i] for i in rng.choice(len(bccd), min(fields, len(bccd)), replace=False)]
    out = []
    for path in chosen:
        rgb = load_rgb(path)
        arrays = [rgb]
        if rng.random() < copies:
            arrays.append(np.asarray(Image.open(io.BytesIO(augment(rgb, Augmentation.draw(rng)))).convert("RGB")))
        for array in arrays:
            image = Image.fromarray(array)
            out.append((image, np.frombuffer(image_facts(image)["thumb"], np.uint8).reshape(32, 32)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=300)
    parser.add_argument("--fields", type=int, default=30)
    parser.add_argument("--copies", type=float, default=0.3, help="share of images that also get an augmented copy")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not PBC.is_dir():
        sys.exit(f"needs the shared PBC half at {PBC}")
    cv2.setNumThreads(1)
    embedder = default_embedder()
    data = images(args.cells, args.fields, args.copies)
    filled = sum(signature(image, embedder).fill > 0 for image, _ in data)
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, {cpu_name()}, one core; {len(data)} real images ({filled} with fill)")

    def shipped() -> None:
        for image, thumb in data:
            signature(image, embedder, thumb)

    def reference() -> None:
        for image, _ in data:
            signature_reference.signature(image, embedder, CANVAS)

    reference(), shipped()  # compile the numba kernels, warm the caches
    times: dict[str, list[float]] = {"reference": [], "shipped": []}
    for _ in range(args.rounds):
        for name, fn in (("reference", reference), ("shipped", shipped)):
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) / len(data) * 1e3)
    ratios = [r / s for r, s in zip(times["reference"], times["shipped"], strict=True)]
    print(f"| code | ms per image (median of {args.rounds}) | x reference, same round: median | lowest | highest |")
    print("|---|---:|---:|---:|---:|")
    print(f"| straightforward (baseline) | {statistics.median(times['reference']):.2f} | 1.00 | | |")
    print(f"| shipped | {statistics.median(times['shipped']):.2f} | **{statistics.median(ratios):.2f}** | "
          f"{min(ratios):.2f} | {max(ratios):.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
