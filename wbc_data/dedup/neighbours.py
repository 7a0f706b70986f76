"""Candidate copies: the nearest neighbours of every row's bag-of-words embedding (and of its mirror image's).

Exact inner-product search (faiss ``IndexFlatIP``, BLAS, every core) up to ``EXACT_LIMIT`` indexed vectors; above
that an inverted-file index (``IndexIVFFlat``: vectors bucketed by k-means, each query scanning the ``nprobe``
closest buckets), whose recall against the exact search is measured in benchmarks/dedup.py. Queries go in batches
and each keeps only its ``k`` best, so memory is ``O(n k)`` whatever the data.
"""

from __future__ import annotations

import faiss
import numpy as np

EXACT_LIMIT = 200_000
IVF_PROBES = 24
QUERY_BATCH = 16_384


def _index(items: np.ndarray, exact: bool | None = None) -> faiss.Index:
    items = np.ascontiguousarray(items, dtype=np.float32)
    n, dim = items.shape
    if exact or (exact is None and n <= EXACT_LIMIT):
        index = faiss.IndexFlatIP(dim)
    else:
        lists = int(min(16_384, max(256, 4 * np.sqrt(n))))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, lists, faiss.METRIC_INNER_PRODUCT)
        sample = items[np.random.default_rng(0).choice(n, min(n, 64 * lists), replace=False)]
        index.train(sample)
        index.nprobe = IVF_PROBES
    index.add(items)
    return index


def nearest(items: np.ndarray, queries: np.ndarray, k: int, exact: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(q, k) neighbour positions in ``items`` (-1 where fewer exist) and their inner products, for each query."""
    k = min(k, len(items))
    out_i = np.full((len(queries), max(k, 0)), -1, dtype=np.int64)
    out_s = np.zeros((len(queries), max(k, 0)), dtype=np.float32)
    if k <= 0 or len(queries) == 0:
        return out_i, out_s
    index = _index(items, exact)
    for start in range(0, len(queries), QUERY_BATCH):
        part = np.ascontiguousarray(queries[start : start + QUERY_BATCH], dtype=np.float32)
        scores, found = index.search(part, k)
        out_i[start : start + len(part)] = found
        out_s[start : start + len(part)] = scores
    return out_i, out_s


def unique_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(p, 2) sorted unique unordered pairs (i < j) from two position arrays, self pairs dropped."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    keep = (a >= 0) & (b >= 0) & (a != b)
    lo, hi = np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep])
    if not len(lo):
        return np.zeros((0, 2), dtype=np.int64)
    width = np.int64(hi.max() + 1)
    code = np.unique(lo * width + hi)
    return np.stack([code // width, code % width], axis=1)


def candidate_pairs(embeddings: np.ndarray, k: int, usable: np.ndarray | None = None) -> np.ndarray:
    """(p, 2) unique unordered pairs (i < j) of rows where j is among the ``k`` nearest of i's image or mirror
    embedding ((n, 2, dim): index 0 the image, 1 its mirror), or the other way round. Rows not ``usable``
    (blank, no keypoints) take no part."""
    rows = np.arange(len(embeddings)) if usable is None else np.flatnonzero(usable)
    if len(rows) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    items = embeddings[rows, 0].astype(np.float32)
    a_parts, b_parts = [], []
    for side in (0, 1):
        found, _ = nearest(items, embeddings[rows, side].astype(np.float32), k + 1)
        a_parts.append(np.repeat(rows, found.shape[1]))
        b_parts.append(np.where(found >= 0, rows[np.clip(found, 0, None)], -1).reshape(-1))
    return unique_pairs(np.concatenate(a_parts), np.concatenate(b_parts))


def cross_pairs(queries: np.ndarray, items: np.ndarray, k: int) -> np.ndarray:
    """(p, 2) pairs (query position, item position): the ``k`` nearest items of each query's image or mirror
    embedding (``queries`` (q, 2, dim), ``items`` (m, dim)); unique."""
    if len(queries) == 0 or len(items) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    parts = []
    for side in (0, 1):
        found, _ = nearest(items, queries[:, side].astype(np.float32), k)
        q = np.repeat(np.arange(len(queries)), found.shape[1])
        parts.append(np.stack([q, found.reshape(-1)], axis=1))
    pairs = np.concatenate(parts)
    return np.unique(pairs[pairs[:, 1] >= 0], axis=0)
