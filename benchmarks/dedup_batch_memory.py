"""Issue 21: the peak memory of one registration batch at its bounds: ``confirm.BATCH_ROWS`` distinct rows, every
one completed because each row has two copies among its pairs (the worst case a dense set of copies gives).
Measured as this process's peak RSS (VmHWM) around ``batched.register_many``. Canvases: 64 real cells of the
built-in sample, each with 63 augmented copies (``benchmarks/augment.py``), cached at ``--cache``.

    uv run python benchmarks/dedup_batch_memory.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

if str(Path(__file__).resolve().parents[1]) not in sys.path:
    sys.path.append(str(Path(__file__).resolve().parents[1]))

CELLS = 64


def peak_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def canvases(rows: int, cache: Path) -> np.ndarray:
    """``rows`` canvases: ``CELLS`` real cells, each followed by its augmented copies."""
    if cache.exists():
        found = np.load(cache)
        if len(found) == rows:
            return found
    from PIL import Image

    from benchmarks.augment import Augmentation, augment, load_rgb
    from wbc_data.dedup.signature import grey_and_valid, make_canvas
    from wbc_data.io.resources import sample_dir

    rng = np.random.default_rng(0)
    cells = [load_rgb(p) for p in sorted((sample_dir() / "pbc").rglob("*.jpg"))[:CELLS]]
    per_cell = rows // CELLS
    out = []
    for i in range(rows):
        rgb = cells[i // per_cell]
        if i % per_cell:
            data = np.frombuffer(augment(rgb, Augmentation.draw(rng)), np.uint8)
            rgb = cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        out.append(make_canvas(*grey_and_valid(Image.fromarray(rgb))))
    np.save(cache, np.stack(out))
    return np.stack(out)


def main() -> None:
    from wbc_data.dedup.confirm import BATCH_ROWS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default="/tmp/wbc-batch-memory-canvases.npy")
    args = parser.parse_args()
    stack = canvases(BATCH_ROWS, Path(args.cache))
    per_cell = len(stack) // CELLS
    row = np.arange(len(stack))
    first = (row // per_cell) * per_cell

    def sibling(step: int) -> np.ndarray:
        return first + (row % per_cell + step) % per_cell

    pairs = np.concatenate([np.stack([row, sibling(1)], 1), np.stack([row, sibling(7)], 1)])
    before = peak_mb()
    from wbc_data.dedup.batched import register_many

    start = time.perf_counter()
    result = register_many(stack, pairs)
    seconds = time.perf_counter() - start
    print(f"{len(stack):,} rows, {len(pairs):,} pairs ({(result[:, 0] >= 0.9).sum():,} copies), {seconds:.1f} s; "
          f"peak RSS {peak_mb():,.0f} MB (before the batch {before:,.0f} MB)")  # fmt: skip


if __name__ == "__main__":
    main()
