"""Near-duplicate search speed: this tool's index vs imagededup (BK-tree, Cython brute force) and numpy brute force.

Run: uv run --group bench python benchmarks/dedup.py [--bktree-sample N] [--skip-bktree] [--million N]
Issue 9's whole-dedup cases (peak RSS, time, accuracy against the single-link pHash path):
``--case dense [--cells 500 --copies 30]`` and ``--case million [--rows 1000000]`` (see benchmarks/dedup_scale.py).
Hashes: the PBC folder's real pHashes (computed from the images, as imagededup would), then real + random up to 1M.
This tool searches all 8 dihedral transforms; imagededup searches identity only (its baseline, as shipped).
Each 1M search runs in a fresh process so its peak RSS is its own. Contenders that would take hours at 1M are run on
a sample of queries and scaled linearly (marked "est."); the BK-tree sample is scaled by (n/m)^2.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import platform
import resource
import subprocess
import time
from pathlib import Path

import numpy as np
from PIL import Image

from wbc_data.dedup.dihedral import dihedral_phashes
from wbc_data.dedup.index import BruteForceIndex, NumbaMultiIndexHash, build_index
from wbc_data.imaging.signatures import grey_thumbnail

PBC = Path(__file__).resolve().parents[2] / "shared" / "data" / "pbc" / "PBC_dataset_normal_DIB"


def real_hashes() -> np.ndarray:
    files = sorted(p for p in PBC.rglob("*.jpg") if not p.name.startswith("."))
    thumbs = np.stack([grey_thumbnail(Image.open(p).convert("RGB")) for p in files])
    return dihedral_phashes(thumbs)


def with_random(h8: np.ndarray, total: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    extra = rng.integers(0, 2**64, (max(0, total - len(h8)), 8), dtype=np.uint64, endpoint=False)
    return np.concatenate([h8, extra])


def peak_mb() -> float:
    """This process's peak RSS: VmHWM, which starts afresh at exec (ru_maxrss keeps the forking parent's peak)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def warm_up() -> float:
    """First call of every kernel (loads numba's on-disk cache, or compiles on a fresh checkout)."""
    start = time.perf_counter()
    small = with_random(np.zeros((0, 8), np.uint64), 5000)
    for kind in ("brute", "mih"):
        build_index(small[:, 0], 8, small.size, kind=kind).search(small.reshape(-1), 8)
    return time.perf_counter() - start


def ours(h8: np.ndarray, radius: int, repeat: int = 3) -> tuple[float, int, str]:
    """Best of ``repeat``: index build (chosen by size) + search of all 8 transforms of every hash."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        index = build_index(h8[:, 0], radius, n_queries=h8.size)
        found = index.search(h8.reshape(-1), radius)
        best = min(best, time.perf_counter() - start)
    return best, len(found.query), type(index).__name__


def _ours_child(real: np.ndarray, total: int, radius: int, queue: mp.Queue) -> None:
    compile_s = warm_up()
    big = with_random(real, total)
    seconds, pairs, kind = ours(big, radius, repeat=1)
    index = NumbaMultiIndexHash(big[:, 0], swap=False)
    sample = big[:: max(1, len(big) // 20_000)].reshape(-1)  # candidates per query on a real + random sample
    per_query = index.candidates(sample, radius) / len(sample)
    queue.put((seconds, pairs, kind, peak_mb(), compile_s, per_query))


def ours_fresh_process(real: np.ndarray, total: int, radius: int) -> tuple[float, int, str, float, float, float]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_ours_child, args=(real, total, radius, queue))
    child.start()
    result = queue.get()
    child.join()
    return result


def numpy_brute(h8: np.ndarray, radius: int, max_queries: int | None = None) -> tuple[float, int]:
    """Seconds for all ``h8.size`` queries (scaled from the first ``max_queries`` when given) and pairs found."""
    queries = h8.reshape(-1)[:max_queries]
    start = time.perf_counter()
    found = BruteForceIndex(h8[:, 0]).search(queries, radius)
    return (time.perf_counter() - start) * h8.size / len(queries), len(found.query)


def imagededup(h1: np.ndarray, radius: int, method: str, n_queries: int | None = None) -> float:
    """Seconds for every hash as a query (scaled from the first ``n_queries`` when given)."""
    from imagededup.handlers.search.retrieval import HashEval
    from imagededup.methods import PHash

    encodings = {str(i): f"{int(h):016x}" for i, h in enumerate(h1)}
    queries = dict(list(encodings.items())[:n_queries]) if n_queries else encodings
    start = time.perf_counter()
    HashEval(encodings, queries, PHash().hamming_distance, verbose=False, threshold=radius, search_method=method)
    return (time.perf_counter() - start) * len(encodings) / len(queries)


def cpu_name() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    names = [line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")]
    return names[0] if names else platform.processor()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--case",
        choices=("hashes", "dense", "million", "pbc"),
        default="hashes",
        help="hashes: issue 4's hash search; dense / million / pbc: the whole dedup (dedup_scale.py)",
    )
    parser.add_argument("--radius", type=int, default=8)
    parser.add_argument("--bktree-sample", type=int, default=0, help="BK-tree on this many hashes (0 = all)")
    parser.add_argument("--skip-bktree", action="store_true")
    parser.add_argument("--million", type=int, default=1_000_000)
    parser.add_argument("--sample-queries", type=int, default=20_000, help="numpy brute force queries at 1M")
    parser.add_argument("--cython-sample", type=int, default=40, help="imagededup Cython queries at 1M (0 = skip)")
    args, rest = parser.parse_known_args()
    if args.case != "hashes":
        import sys

        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import dedup_scale

        dedup_scale.main([args.case, *rest])
        return
    r = args.radius
    compile_s = warm_up()
    h8 = real_hashes()
    n = len(h8)
    print(f"{n:,} real PBC hashes, radius {r}, {cpu_name()}, numba first call {compile_s:.2f} s (not timed below)")
    rows = []
    t_ours, pairs, kind = ours(h8, r)
    rows.append((f"wbc-data {kind} (8 transforms)", n, t_ours, pairs, ""))
    t_np, pairs_np = numpy_brute(h8, r)
    rows.append(("numpy brute force (8 transforms)", n, t_np, pairs_np, ""))
    assert pairs_np == pairs, "index and brute force disagree"
    t_cy = imagededup(h8[:, 0], r, "brute_force_cython")
    rows.append(("imagededup brute_force_cython (identity)", n, t_cy, None, ""))
    if not args.skip_bktree:
        m = args.bktree_sample or n
        t_bk = imagededup(h8[:m, 0], r, "bktree") * (n / m) ** 2
        rows.append(("imagededup bktree (identity)", n, t_bk, None, "" if m == n else f"est. from {m:,}"))
    big_n = max(args.million, n)
    t_big, pairs_big, kind_big, mb_big, _, per_query = ours_fresh_process(h8, big_n, r)
    rows.append((f"wbc-data {kind_big} (8 transforms)", big_n, t_big, pairs_big, f"peak RSS {mb_big:,.0f} MB"))
    big = with_random(h8, big_n)
    t_np_big, _ = numpy_brute(big, r, args.sample_queries)
    rows.append(("numpy brute force (8 transforms)", big_n, t_np_big, None, f"est. from {args.sample_queries:,} q"))
    t_cy_big = None
    if args.cython_sample:
        t_cy_big = imagededup(big[:, 0], r, "brute_force_cython", args.cython_sample)
        rows.append(("imagededup brute_force_cython (identity)", big_n, t_cy_big, None,
                     f"est. from {args.cython_sample:,} q"))  # fmt: skip
    print(f"\n{'method':44} {'hashes':>10} {'seconds':>10} {'pairs':>10}  note")
    for name, size, seconds, found, note in rows:
        print(f"{name:44} {size:>10,} {seconds:>10.3f} {'' if found is None else f'{found:,}':>10}  {note}")
    print(f"\nat {n:,}: imagededup Cython / wbc-data {t_cy / t_ours:.0f}x (target 10x); "
          f"numpy brute / wbc-data {t_np / t_ours:.0f}x")  # fmt: skip
    if not args.skip_bktree:
        print(f"at {n:,}: imagededup BK-tree / wbc-data {t_bk / t_ours:.0f}x (target 100x)")
    print(f"at {big_n:,}: wbc-data {t_big:.1f} s (target < 60 s), peak RSS {mb_big:,.0f} MB (target < 2 GB); "
          f"numpy brute / wbc-data {t_np_big / t_big:.0f}x"
          + (f"; imagededup Cython / wbc-data {t_cy_big / t_big:.0f}x" if t_cy_big else ""))  # fmt: skip
    print(f"MIH candidates checked per query at {big_n:,} (real + random sample, no swap): {per_query:.0f}")
    print(f"peak RSS of this process {peak_mb():,.0f} MB")


if __name__ == "__main__":
    main()
