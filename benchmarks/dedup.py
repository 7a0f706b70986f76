"""Near-duplicate search speed: this tool's index vs imagededup (BK-tree, Cython brute force) and numpy brute force.

Run: uv run --group bench python benchmarks/dedup.py [--bktree-sample N] [--skip-bktree] [--million N]
Hashes: the PBC folder's real pHashes (computed from the images, as imagededup would), then real + random up to 1M.
This tool searches all 8 dihedral transforms; imagededup searches identity only (its baseline, as shipped).
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
from PIL import Image

from wbc_data.dedup.dihedral import dihedral_phashes
from wbc_data.dedup.index import BruteForceIndex, build_index
from wbc_data.imaging.signatures import grey_thumbnail

PBC = Path(__file__).resolve().parents[2] / "shared" / "data" / "pbc" / "PBC_dataset_normal_DIB"


def real_hashes() -> np.ndarray:
    files = sorted(p for p in PBC.rglob("*.jpg") if not p.name.startswith("."))
    thumbs = np.stack([grey_thumbnail(Image.open(p).convert("RGB")) for p in files])
    return dihedral_phashes(thumbs)


def ours(h8: np.ndarray, radius: int) -> tuple[float, int, str]:
    start = time.perf_counter()
    index = build_index(h8[:, 0], radius, n_queries=h8.size)
    found = index.search(h8.reshape(-1), radius)
    return time.perf_counter() - start, len(found.query), type(index).__name__


def numpy_brute(h8: np.ndarray, radius: int) -> tuple[float, int]:
    start = time.perf_counter()
    found = BruteForceIndex(h8[:, 0]).search(h8.reshape(-1), radius)
    return time.perf_counter() - start, len(found.query)


def imagededup(h1: np.ndarray, radius: int, method: str) -> float:
    from imagededup.handlers.search.retrieval import HashEval
    from imagededup.methods import PHash

    encodings = {str(i): f"{int(h):016x}" for i, h in enumerate(h1)}
    start = time.perf_counter()
    HashEval(encodings, encodings, PHash().hamming_distance, verbose=False, threshold=radius, search_method=method)
    return time.perf_counter() - start


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--radius", type=int, default=8)
    parser.add_argument("--bktree-sample", type=int, default=0, help="BK-tree on this many hashes (0 = all)")
    parser.add_argument("--skip-bktree", action="store_true")
    parser.add_argument("--million", type=int, default=1_000_000)
    args = parser.parse_args()
    r = args.radius
    h8 = real_hashes()
    n = len(h8)
    print(f"{n:,} real PBC hashes, radius {r}")
    rows = []
    t_ours, pairs, kind = ours(h8, r)
    rows.append((f"wbc-data {kind} (8 transforms)", n, t_ours, pairs))
    t_np, pairs_np = numpy_brute(h8, r)
    rows.append(("numpy brute force (8 transforms)", n, t_np, pairs_np))
    assert pairs_np == pairs, "index and brute force disagree"
    t_cy = imagededup(h8[:, 0], r, "brute_force_cython")
    rows.append(("imagededup brute_force_cython (identity)", n, t_cy, None))
    if not args.skip_bktree:
        m = args.bktree_sample or n
        t_bk = imagededup(h8[:m, 0], r, "bktree")
        rows.append((f"imagededup bktree (identity, {m:,} hashes)", m, t_bk, None))
    rng = np.random.default_rng(0)
    extra = args.million - n
    big = np.concatenate([h8, rng.integers(0, 2**64, (extra, 8), dtype=np.uint64, endpoint=False)])
    t_big, pairs_big, kind_big = ours(big, r)
    rows.append((f"wbc-data {kind_big} (8 transforms)", len(big), t_big, pairs_big))
    print(f"\n{'method':48} {'hashes':>10} {'seconds':>9} {'pairs':>10}")
    for name, size, seconds, found in rows:
        print(f"{name:48} {size:>10,} {seconds:>9.2f} {'' if found is None else f'{found:,}':>10}")
    print(f"\nratio imagededup Cython / wbc-data at {n:,}: {t_cy / t_ours:.1f}x")
    print(f"ratio numpy brute / wbc-data at {n:,}: {t_np / t_ours:.1f}x")
    if not args.skip_bktree:
        scale = n / m
        print(f"ratio imagededup BK-tree / wbc-data at {n:,}: {t_bk * scale**2 / t_ours:.1f}x"
              + (f" (BK-tree scaled from {m:,} by (n/m)^2)" if m != n else ""))  # fmt: skip
    print(f"peak memory (RSS) {peak_mb():,.0f} MB")


if __name__ == "__main__":
    main()
