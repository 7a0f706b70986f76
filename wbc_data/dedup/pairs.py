"""Candidate pairs: exact copies (same file bytes, same decoded pixels) and near copies under any dihedral transform.

A near pair {a, b} is found when some transform of a's thumbnail hashes within ``radius`` of b's pHash; it is
kept when the aligned thumbnails also correlate (``verify``). Cropped copies are found the same way against each
row's zoomed hashes (``zoom``: the pHash of a few crops of its thumbnail), then verified against the refined crop.
Each pair is reported once, with the smallest distance, the transform that maps ``a`` onto ``b`` and the correlation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from wbc_data.core.progress import Progress, or_null
from wbc_data.dedup.dihedral import TRANSFORMS
from wbc_data.dedup.index import build_index
from wbc_data.dedup.verify import aligned, grid_crop_units, normalise
from wbc_data.dedup.zoom import CROP_GRID, CropBox, as_array, zoomed_phashes

PAIR_COLUMNS = ["a", "b", "kind", "distance", "transform", "correlation", "texture"]
"""a, b: row positions; kind: file (same sha256), pixels (same decoded pixels) or near. transform: how ``a`` maps
onto ``b``, e.g. ``rot90``, or ``rot90 ~ crop l7 r1 t2 b2`` when ``a`` transformed is ``b`` cropped by those
per cents (left, right, top, bottom) of its sides, or the registration (``mirror rot 37 scale 1.08 shift 3,-2``).
correlation and texture: of the registered canvases (1.0 for exact copies)."""

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


HASH_CAP = 64
"""Matches kept per hash query and index chunk (counted when exceeded): bounds memory on any content, e.g. many
distinct near-black images whose hashes all agree. Exact copies are collapsed before the search. Real data does
reach it: the PBC half, the APL/AML crops, BCCD and the Kaggle re-upload together (13,255 rows) left 529 matches
out, and without the cap the run registered 12 more pairs and found the same clusters."""

QUERY_ROWS = 1 << 15
"""Rows whose transformed hashes are searched at a time (their candidates are filtered before the next batch)."""

CORRELATION_BATCH = 1 << 13
"""Candidate pairs whose thumbnails are correlated at a time: two (batch, 32, 32) float32 arrays, 64 MB (at 1 << 16
they were 512 MB, most of the hash search's peak memory on a dense case)."""

PLAIN_FLOOR = 0.5
"""Hash candidates whose aligned thumbnails correlate less than this are dropped before registration (distinct
cells within radius 8 reach 0.84, copies start above 0.9: the floor only trims work)."""


def _unit(thumbs: np.ndarray, rows: np.ndarray, transform: np.ndarray | None = None) -> np.ndarray:
    """Normalised thumbnails of ``rows`` (transformed per row when given): only the rows a batch needs."""
    if transform is None:
        return normalise(thumbs[rows])
    return normalise(aligned(thumbs, rows, transform))


def _plain_candidates(
    hashes: np.ndarray, thumbs: np.ndarray, radius: int, index, rows: np.ndarray
) -> tuple[pd.DataFrame, int]:
    t_count = len(TRANSFORMS)
    found = index.search(hashes[rows].reshape(-1), radius, cap=HASH_CAP)
    a = rows[found.query // t_count]
    t, b = found.query % t_count, found.item
    keep = a != b
    a, b, t, d = a[keep], b[keep], t[keep], found.distance[keep].astype(np.int32)
    corr = np.zeros(len(a), np.float32)
    for start in range(0, len(a), CORRELATION_BATCH):
        part = slice(start, start + CORRELATION_BATCH)
        corr[part] = np.einsum("ijk,ijk->i", _unit(thumbs, a[part], t[part]), _unit(thumbs, b[part]))
    frame = pd.DataFrame({"a": a, "b": b, "t": t, "distance": d, "correlation": corr, "box": None})
    return frame[frame["correlation"] >= PLAIN_FLOOR], found.dropped


def _crop_candidates(
    hashes: np.ndarray, thumbs: np.ndarray, radius: int, index, rows: np.ndarray, grid: tuple[CropBox, ...]
) -> tuple[pd.DataFrame, int]:
    """Pairs where a transform of ``a`` hashes near a zoomed hash of ``b`` (``a`` is a crop of ``b``) and the grid
    box already correlates at least ``REFINE_FLOOR``; registration decides the rest."""
    t_count, k = len(TRANSFORMS), len(grid)
    found = index.search(hashes[rows].reshape(-1), radius, cap=HASH_CAP)
    a, t = rows[found.query // t_count], found.query % t_count
    b, z = found.item // k, found.item % k
    keep = a != b
    frame = pd.DataFrame({"a": a[keep], "b": b[keep], "t": t[keep], "z": z[keep],
                          "distance": found.distance[keep].astype(np.int32)})  # fmt: skip
    if frame.empty:
        return frame.assign(correlation=np.float32(0), box=None).drop(columns=["z"]), found.dropped
    boxes = as_array(grid)
    queries = frame["a"].to_numpy(np.int64) * t_count + frame["t"].to_numpy(np.int64)
    items = frame["b"].to_numpy(np.int64) * k + frame["z"].to_numpy(np.int64)
    corr = np.zeros(len(frame), np.float32)
    by_item = np.argsort(items, kind="stable")
    for start in range(0, len(frame), CORRELATION_BATCH):
        # in order of the zoomed box matched, so that a batch crops each box once (on issue 21's dense case a
        # million candidates matched 109,152 boxes), and each transformed row once
        part = by_item[start : start + CORRELATION_BATCH]
        query, query_of = np.unique(queries[part], return_inverse=True)
        item, item_of = np.unique(items[part], return_inverse=True)
        moved = _unit(thumbs, query // t_count, query % t_count).reshape(len(query), -1)
        target = grid_crop_units(thumbs[item // k], boxes, item % k).reshape(len(item), -1)
        corr[part] = np.einsum("ij,ij->i", moved[query_of], target[item_of])
    frame["correlation"] = corr
    frame = frame[frame["correlation"] >= REFINE_FLOOR]
    tags = np.array([box.describe() for box in grid], dtype=object)
    return frame.assign(box=tags[frame["z"].to_numpy(np.int64)]).drop(columns=["z"]), found.dropped


def hash_candidates(
    hashes: np.ndarray,
    thumbs: np.ndarray,
    radius: int,
    crop_radius: int | None = None,
    index_kind: str = "auto",
    grid: tuple[CropBox, ...] = CROP_GRID,
    progress: Progress | None = None,
) -> tuple[pd.DataFrame, int]:
    """Candidate copies by the hash search of issue 4 ((n, 8) dihedral pHashes, (n, 32, 32) uint8 thumbnails):
    plain matches within ``radius`` and, with ``crop_radius``, crops of up to ~10% against the zoomed hashes;
    thumbnail correlation trims hopeless ones. Queries run in batches of ``QUERY_ROWS`` with at most ``HASH_CAP``
    matches per query, so memory stays bounded; returns the pairs (one per unordered pair: the smallest distance)
    and how many matches the cap left out."""
    n = len(hashes)
    if n < 2:
        return pd.DataFrame(columns=PAIR_COLUMNS), 0
    or_null(progress).phase("hash search")
    plain_index = build_index(hashes[:, 0], radius, n_queries=n * len(TRANSFORMS), kind=index_kind)
    crop_index = None
    if crop_radius is not None and grid:
        zoomed = zoomed_phashes(thumbs, grid).reshape(-1)
        crop_index = build_index(zoomed, crop_radius, n_queries=n * len(TRANSFORMS), kind=index_kind)
        del zoomed
    parts, dropped = [], 0
    for start in range(0, n, QUERY_ROWS):
        rows = np.arange(start, min(n, start + QUERY_ROWS))
        frame, lost = _plain_candidates(hashes, thumbs, radius, plain_index, rows)
        parts.append(frame)
        dropped += lost
        if crop_index is not None:
            frame, lost = _crop_candidates(hashes, thumbs, crop_radius, crop_index, rows, grid)  # type: ignore[arg-type]
            parts.append(frame)
            dropped += lost
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(columns=PAIR_COLUMNS), dropped
    frame = pd.concat(parts, ignore_index=True)
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
    ), dropped


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
