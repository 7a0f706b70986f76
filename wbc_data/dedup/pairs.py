"""Candidate pairs: exact copies (same file bytes, same decoded pixels) and near copies under any dihedral transform.

A near pair {a, b} is found when some transform of a's thumbnail hashes within ``radius`` of b's pHash; it is
kept when the aligned thumbnails also correlate (``verify``). Each pair is reported once, with the smallest
distance, the transform that maps ``a`` onto ``b`` and the correlation.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from wbc_data.dedup.dihedral import TRANSFORMS
from wbc_data.dedup.index import build_index
from wbc_data.dedup.verify import aligned_correlation

PAIR_COLUMNS = ["a", "b", "kind", "distance", "transform", "correlation"]
"""a, b: row positions (a < b); kind: file (same sha256), pixels (same decoded pixels) or near."""


def exact_pairs(keys: pd.Series, kind: str) -> pd.DataFrame:
    """Star pairs (first row, other row) inside each group of equal non-null keys: enough to connect a cluster."""
    frame = pd.DataFrame({"key": keys.to_numpy(), "pos": np.arange(len(keys))}).dropna()
    frame = frame[frame.duplicated("key", keep=False)]
    if frame.empty:
        return pd.DataFrame(columns=PAIR_COLUMNS)
    first = frame.groupby("key")["pos"].transform("min")
    frame = frame[frame["pos"] != first]
    return pd.DataFrame(
        {
            "a": first[frame.index].to_numpy(np.int64),
            "b": frame["pos"].to_numpy(np.int64),
            "kind": kind,
            "distance": 0,
            "transform": "identity",
            "correlation": 1.0,
        }
    )


def near_pairs(
    hashes: np.ndarray,
    unit_thumbs: np.ndarray,
    radius: int,
    min_correlation: float,
    index_kind: str = "auto",
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Near pairs among rows with hashes ((n, 8) uint64 dihedral pHashes; rows of zeros are skipped by the caller)."""
    n = len(hashes)
    if n < 2:
        return pd.DataFrame(columns=PAIR_COLUMNS)
    if progress:
        progress("search")
    index = build_index(hashes[:, 0], radius, n_queries=n * len(TRANSFORMS), kind=index_kind)
    found = index.search(hashes.reshape(-1), radius)
    query_row = found.query // len(TRANSFORMS)
    transform = found.query % len(TRANSFORMS)
    keep = query_row != found.item
    a, b, t, d = query_row[keep], found.item[keep], transform[keep], found.distance[keep].astype(np.int32)
    if progress:
        progress("verify")
    corr = aligned_correlation(unit_thumbs, a, b, t)
    frame = pd.DataFrame({"a": a, "b": b, "t": t, "distance": d, "correlation": corr})
    frame = frame[frame["correlation"] >= min_correlation]
    # one row per unordered pair: the smallest distance, then the highest correlation
    swap = frame["a"] > frame["b"]
    frame["lo"], frame["hi"] = np.where(swap, frame["b"], frame["a"]), np.where(swap, frame["a"], frame["b"])
    frame = frame.sort_values(["lo", "hi", "distance", "correlation"], ascending=[True, True, True, False])
    frame = frame.drop_duplicates(["lo", "hi"])
    return pd.DataFrame(
        {
            "a": frame["a"].to_numpy(np.int64),
            "b": frame["b"].to_numpy(np.int64),
            "kind": "near",
            "distance": frame["distance"].to_numpy(np.int32),
            "transform": np.array(TRANSFORMS, dtype=object)[frame["t"].to_numpy(np.int64)],
            "correlation": frame["correlation"].to_numpy(np.float64),
        }
    )


def member_distance(hashes: np.ndarray, member: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Smallest Hamming distance from any transform of ``member`` to ``keep``'s pHash, and that transform's index."""
    dist = np.bitwise_count(hashes[member] ^ hashes[keep, :1]).astype(np.int32)
    best = dist.argmin(axis=1)
    return dist[np.arange(len(member)), best], best
