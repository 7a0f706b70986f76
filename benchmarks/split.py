"""Stratified group folds: wbc-data's apportionment (``wbc_data.split.apportion``) against scikit-learn's
``StratifiedGroupKFold`` on the same units, same classes, same K, in the same run; then the whole ``wbc-data split``
stage on a generated 1M-row manifest (time and peak RSS).

Run: ``uv run python benchmarks/split.py [--sizes 10000,100000] [--folds 5] [--million [--sources 8]
[--single-share 1]]`` (``--sizes 0`` skips the comparison).

Units are drawn like a real mix (a unit is a single image with probability 2/3, else a patient of 5-60 images) and,
second, like PBC (every image its own unit); classes follow the
WBCBench 2026 training distribution (rare PLY and PC included). "Worst deviation" is the largest difference, over
classes and folds, between a fold's images of a class and the ideal 1/K of that class: lower is better balanced.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from wbc_data.core.taxonomy import CLASSES  # noqa: E402
from wbc_data.split.apportion import apportion_units  # noqa: E402

WBCBENCH = np.array([15048, 451, 9230, 382, 13, 3195, 979, 494, 2271, 58, 513, 433, 118], dtype=float)


def make_units(n_rows: int, seed: int = 0, single_share: float = 2 / 3) -> tuple[np.ndarray, np.ndarray]:
    """(unit per row, class per row): units of one image with probability ``single_share``, else patients."""
    rng = np.random.default_rng(seed)
    classes = rng.choice(len(CLASSES), n_rows, p=WBCBENCH / WBCBENCH.sum())
    units = np.empty(n_rows, dtype=np.int64)
    i, unit = 0, 0
    while i < n_rows:
        size = 1 if rng.random() < single_share else int(rng.integers(5, 61))
        units[i : i + size] = unit
        i += size
        unit += 1
    return units, classes


def worst_deviation(classes: np.ndarray, fold: np.ndarray, k: int) -> float:
    table = pd.crosstab(classes, fold).reindex(columns=range(k), fill_value=0).to_numpy()
    return float(np.abs(table - table.sum(axis=1, keepdims=True) / k).max())


def ours(units: np.ndarray, classes: np.ndarray, k: int) -> np.ndarray:
    from scipy import sparse

    counts = sparse.csr_array((np.ones(len(units), np.int64), (units, classes)), shape=(units.max() + 1, len(CLASSES)))
    keys = np.random.default_rng(0).integers(0, 2**63, counts.shape[0], dtype=np.uint64)  # as the stage's hashed keys
    return apportion_units(counts, np.full(k, 1.0 / k), seed=0, keys=keys)[units]


def sklearn_folds(units: np.ndarray, classes: np.ndarray, k: int) -> np.ndarray:
    from sklearn.model_selection import StratifiedGroupKFold

    fold = np.empty(len(units), dtype=np.int64)
    for number, (_, held) in enumerate(StratifiedGroupKFold(k, shuffle=True, random_state=0).split(units, classes,
                                                                                                 units)):  # fmt: skip
        fold[held] = number
    return fold


def stage_at_million(sources: int = 1, single_share: float = 2 / 3) -> None:
    from wbc_data.core import manifest
    from wbc_data.core.workspace import Workspace
    from wbc_data.split import SplitOptions, run_split

    units, classes = make_units(1_000_000, seed=1, single_share=single_share)
    with tempfile.TemporaryDirectory(prefix="wbc-bench-split-") as tmp:
        ws = Workspace(Path(tmp))
        n = len(units)
        frame = pd.DataFrame({c: [None] * n for c in manifest.COLUMNS})
        frame["sample_id"] = [f"s:{i:07d}" for i in range(n)]
        frame["source"] = np.array([f"s{i}" for i in range(sources)], dtype=object)[units % sources]
        frame["source_root"] = frame["source"]  # each unit in one source: strata are (source, class)
        frame["source_path"] = frame["sample_id"]
        frame["status"], frame["label_status"] = "ok", "exact"
        frame["label"] = np.array(CLASSES, dtype=object)[classes]
        frame["group_id"] = [f"s:unit:{u}" for u in units]
        frame["pixel_hash"] = frame["sample_id"]
        manifest.write(frame, ws.unified_manifest)
        del frame
        start = time.perf_counter()
        run_split(ws, SplitOptions(without_dedup=True, folds=5))
        seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nwbc-data split on a generated 1,000,000-row manifest ({units.max() + 1:,} units in {sources} "
          f"source(s), 5 folds): "
          f"{seconds:.1f} s (read, units, assign, folds, stage file, report), peak RSS {peak:,.0f} MB")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--million", action="store_true", help="also run the whole stage on 1M generated rows")
    parser.add_argument("--sources", type=int, default=1, help="sources the 1M rows' units are spread over")
    parser.add_argument("--single-share", type=float, default=2 / 3, help="share of the 1M rows' units of one image")
    args = parser.parse_args()
    import sklearn.model_selection  # noqa: F401  (imported before the clock starts)

    print("| rows | units | method | seconds | worst deviation (images) |")
    print("|---:|---:|---|---:|---:|")
    sizes = [int(s) for s in args.sizes.split(",") if int(s) > 0]
    for n, single in [(n, 2 / 3) for n in sizes] + [(n, 1.0) for n in sizes]:
        units, classes = make_units(n, single_share=single)
        timings = {}
        for name, method in (("wbc-data apportion_units", ours), ("sklearn StratifiedGroupKFold", sklearn_folds)):
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # sklearn warns that PLY has fewer images than folds
                fold = method(units, classes, args.folds)
            timings[name] = time.perf_counter() - start
            assert (pd.Series(fold).groupby(units).nunique() == 1).all(), "a unit straddles folds"
            deviation = worst_deviation(classes, fold, args.folds)
            print(f"| {n:,} | {units.max() + 1:,} | {name} | {timings[name]:.2f} | {deviation:.1f} |")
        ratio = timings["sklearn StratifiedGroupKFold"] / timings["wbc-data apportion_units"]
        print(f"| | | speed-up | {ratio:,.0f}x | |")
    if args.million:
        stage_at_million(args.sources, args.single_share)


if __name__ == "__main__":
    main()
