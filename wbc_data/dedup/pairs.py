"""Candidate pairs: exact copies (same file bytes, same decoded pixels) and near copies under any dihedral transform.

A near pair {a, b} is found when some transform of a's thumbnail hashes within ``radius`` of b's pHash; it is
kept when the aligned thumbnails also correlate (``verify``). Cropped copies are found the same way against each
row's zoomed hashes (``zoom``: the pHash of a few crops of its thumbnail), then verified against the refined crop.
Each pair is reported once, with the smallest distance, the transform that maps ``a`` onto ``b`` and the correlation.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from wbc_data.dedup.dihedral import TRANSFORMS
from wbc_data.dedup.index import build_index
from wbc_data.dedup.verify import aligned, aligned_correlation, crop_correlation, refine_crop
from wbc_data.dedup.zoom import CROP_GRID, CropBox, as_array, zoomed_phashes

PAIR_COLUMNS = ["a", "b", "kind", "distance", "transform", "correlation"]
"""a, b: row positions; kind: file (same sha256), pixels (same decoded pixels) or near. transform: how ``a`` maps
onto ``b``, e.g. ``rot90``, or ``rot90 ~ crop l7 r1 t2 b2`` when ``a`` transformed is ``b`` cropped by those
per cents (left, right, top, bottom) of its sides."""

CROP_MIN_CORRELATION = 0.95
"""A crop match must correlate at least this much after refinement (plain matches need ``min_correlation``).
Refinement gives a crop match extra freedom, so distinct cells get closer: on the 9,487 PBC + Kaggle val rows two
distinct cells (an eosinophil vs a basophil, a promyelocyte vs an AML-LMU myeloblast) reached 0.903 and 0.906
through a refined crop, while true crops of up to 10% refine to >= 0.97 (see benchmarks/README.md, dedup)."""

REFINE_FLOOR = 0.75
"""Crop candidates whose grid-box correlation is below this are rejected without refinement. True crops of real
PBC cells start at >= 0.80 on the grid box (refinement then lifts them to >= 0.97); on the 8,487 PBC cells, 39,318
distinct-cell hits score >= 0.60 but only 2,058 score >= 0.75, so this floor makes refinement ~17x cheaper."""


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


def _plain_candidates(hashes: np.ndarray, unit: np.ndarray, radius: int, index_kind: str) -> pd.DataFrame:
    n = len(hashes)
    index = build_index(hashes[:, 0], radius, n_queries=n * len(TRANSFORMS), kind=index_kind)
    found = index.search(hashes.reshape(-1), radius)
    query_row = found.query // len(TRANSFORMS)
    transform = found.query % len(TRANSFORMS)
    keep = query_row != found.item
    a, b, t, d = query_row[keep], found.item[keep], transform[keep], found.distance[keep].astype(np.int32)
    corr = aligned_correlation(unit, a, b, t)
    return pd.DataFrame({"a": a, "b": b, "t": t, "distance": d, "correlation": corr, "box": None})


def _crop_candidates(
    hashes: np.ndarray, thumbs: np.ndarray, unit: np.ndarray, radius: int, min_correlation: float,
    grid: tuple[CropBox, ...], index_kind: str,
) -> pd.DataFrame:  # fmt: skip
    """Pairs where a transform of ``a`` hashes near a zoomed hash of ``b`` (``a`` is a crop of ``b``) and the refined
    crop correlates at least ``max(min_correlation, CROP_MIN_CORRELATION)``."""
    min_correlation = max(min_correlation, CROP_MIN_CORRELATION)
    n, k = len(hashes), len(grid)
    zoomed = zoomed_phashes(thumbs, grid).reshape(-1)
    index = build_index(zoomed, radius, n_queries=n * len(TRANSFORMS), kind=index_kind)
    found = index.search(hashes.reshape(-1), radius)
    a, t = found.query // len(TRANSFORMS), found.query % len(TRANSFORMS)
    b, z = found.item // k, found.item % k
    keep = a != b
    frame = pd.DataFrame({"a": a[keep], "b": b[keep], "t": t[keep], "z": z[keep],
                          "distance": found.distance[keep].astype(np.int32)})  # fmt: skip
    if frame.empty:
        return frame.assign(correlation=np.float32(0), box=None)
    boxes = as_array(grid)[frame["z"].to_numpy()]
    ai, bi, ti = (frame[c].to_numpy(np.int64) for c in ("a", "b", "t"))
    frame["correlation"] = crop_correlation(aligned(unit, ai, ti), thumbs[bi], boxes)
    # refine only the best grid hit per (a, b), and only where the grid box is promising but not yet enough
    frame["row"] = np.arange(len(frame))
    best = frame.sort_values("correlation", ascending=False).drop_duplicates(["a", "b"])
    todo = best[(best["correlation"] < min_correlation) & (best["correlation"] >= REFINE_FLOOR)]
    rows = todo["row"].to_numpy(np.int64)
    refined_boxes = boxes.copy()
    if len(rows):
        corr, refined = refine_crop(aligned(unit, ai[rows], ti[rows]), thumbs[bi[rows]], boxes[rows])
        frame.loc[rows, "correlation"] = corr
        refined_boxes[rows] = refined
    frame["box"] = [CropBox(*box).describe() for box in refined_boxes]
    return frame[frame["correlation"] >= min_correlation].drop(columns=["z", "row"])


def near_pairs(
    hashes: np.ndarray,
    unit_thumbs: np.ndarray,
    radius: int,
    min_correlation: float,
    index_kind: str = "auto",
    progress: Callable[[str], None] | None = None,
    thumbs: np.ndarray | None = None,
    crop_radius: int | None = None,
    grid: tuple[CropBox, ...] = CROP_GRID,
) -> pd.DataFrame:
    """Near pairs among rows with hashes ((n, 8) uint64 dihedral pHashes; rows of zeros are skipped by the caller).

    With ``thumbs`` (the raw (n, 32, 32) thumbnails) and ``crop_radius``, cropped copies are searched too."""
    n = len(hashes)
    if n < 2:
        return pd.DataFrame(columns=PAIR_COLUMNS)
    if progress:
        progress("search")
    parts = [_plain_candidates(hashes, unit_thumbs, radius, index_kind)]
    if thumbs is not None and crop_radius is not None and grid:
        if progress:
            progress("search crops")
        parts.append(_crop_candidates(hashes, thumbs, unit_thumbs, crop_radius, min_correlation, grid, index_kind))
    frame = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts) else parts[0]
    frame = frame[frame["correlation"] >= min_correlation]
    # one row per unordered pair: the smallest distance, then the highest correlation
    swap = frame["a"] > frame["b"]
    frame = frame.assign(lo=np.where(swap, frame["b"], frame["a"]), hi=np.where(swap, frame["a"], frame["b"]))
    frame = frame.sort_values(["lo", "hi", "distance", "correlation"], ascending=[True, True, True, False])
    frame = frame.drop_duplicates(["lo", "hi"])
    names = np.array(TRANSFORMS, dtype=object)[frame["t"].to_numpy(np.int64)]
    box = frame["box"].to_numpy(object)
    transform = np.where(pd.isna(box), names, names + " ~ " + box.astype(str))
    return pd.DataFrame(
        {
            "a": frame["a"].to_numpy(np.int64),
            "b": frame["b"].to_numpy(np.int64),
            "kind": "near",
            "distance": frame["distance"].to_numpy(np.int32),
            "transform": transform,
            "correlation": frame["correlation"].to_numpy(np.float64),
        }
    )


def member_distance(
    hashes: np.ndarray,
    member: np.ndarray,
    keep: np.ndarray,
    zoomed: np.ndarray | None = None,
    grid: tuple[CropBox, ...] = CROP_GRID,
) -> tuple[np.ndarray, np.ndarray]:
    """Smallest Hamming distance between ``member`` and its kept row ``keep``, and how they match (text).

    Without ``zoomed`` ((n, len(grid)) zoomed hashes): any transform of the member against the kept pHash, e.g.
    ``rot90``. With it, also the member as a crop of the kept row (``rot90 ~ crop l7 r1 t2 b2``: the member rotated
    is the kept row cropped) and the kept row as a crop of the member (``kept rot90 ~ crop ...``: the kept row
    rotated is the member cropped); a plain match wins ties."""
    names = np.array(TRANSFORMS, dtype=object)
    dist = np.bitwise_count(hashes[member] ^ hashes[keep, :1]).astype(np.int32)
    best = dist.argmin(axis=1)
    out_dist, out_text = dist[np.arange(len(member)), best], names[best]
    if zoomed is None or not len(member) or not grid:
        return out_dist, out_text
    tags = np.array([b.describe() for b in grid], dtype=object)
    k = len(grid)
    for first, second, prefix in ((member, keep, ""), (keep, member, "kept ")):
        dz = np.bitwise_count(hashes[first][:, :, None] ^ zoomed[second][:, None, :]).reshape(len(member), -1)
        pick = dz.argmin(axis=1)
        d = dz[np.arange(len(member)), pick].astype(np.int32)
        better = d < out_dist
        out_dist = np.where(better, d, out_dist)
        text = prefix + names[pick // k] + " ~ " + tags[pick % k]
        out_text = np.where(better, text, out_text)
    return out_dist, out_text
