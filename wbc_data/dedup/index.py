"""Exact Hamming-radius search over 64-bit hashes, behind one interface.

``BruteForceIndex`` compares every query with every hash (XOR + popcount, blocked numpy): the reference.
``MultiIndexHash`` (Norouzi et al., "Fast search in Hamming space with multi-index hashing", CVPR 2012) splits the
64 bits into ``m`` chunks; two hashes within distance ``r`` agree within ``r // m`` bits on at least one chunk
(pigeonhole), so only the buckets near each query chunk are probed, and candidates are checked on all 64 bits.
``NumbaBruteForceIndex`` and ``NumbaMultiIndexHash`` are the same searches compiled with numba (``kernels``), the
ones ``build_index`` returns; the numpy pair stays as the readable reference the tests compare them with.
All return exactly the same pairs (tests prove it); ``build_index`` picks MIH unless brute force is cheaper.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from wbc_data.dedup import kernels

BITS = 64


@dataclass
class Matches:
    """Pairs with ``distance <= radius``: ``query[k]`` (index into queries) matched ``item[k]`` (index into hashes)."""

    query: np.ndarray
    item: np.ndarray
    distance: np.ndarray
    dropped: int = 0  # matches left out by a per-query cap

    @classmethod
    def empty(cls) -> Matches:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int8))

    @classmethod
    def concat(cls, parts: list[Matches]) -> Matches:
        dropped = sum(p.dropped for p in parts)
        parts = [p for p in parts if len(p.query)] or [cls.empty()]
        fields = (np.concatenate([getattr(p, f) for p in parts]) for f in ("query", "item", "distance"))
        return cls(*fields, dropped=dropped)

    def sorted(self) -> Matches:
        order = np.lexsort((self.item, self.query))
        return Matches(self.query[order], self.item[order], self.distance[order], self.dropped)


class HammingIndex(Protocol):
    def search(self, queries: np.ndarray, radius: int, cap: int = 0) -> Matches: ...


def popcount(x: np.ndarray) -> np.ndarray:
    return np.bitwise_count(x).astype(np.int8)


class BruteForceIndex:
    """Every query against every hash, in blocks that keep memory near ``block_bytes``."""

    def __init__(self, hashes: np.ndarray, block_bytes: int = 64 << 20) -> None:
        self.hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
        self.block = max(1, block_bytes // max(1, 8 * len(self.hashes)))

    def search(self, queries: np.ndarray, radius: int, cap: int = 0) -> Matches:
        """``cap`` is accepted for the common interface; this reference keeps every match."""
        queries = np.asarray(queries, dtype=np.uint64)
        parts = []
        for start in range(0, len(queries), self.block):
            dist = np.bitwise_count(queries[start : start + self.block, None] ^ self.hashes[None, :])
            q, i = np.nonzero(dist <= radius)
            parts.append(Matches(q + start, i.astype(np.int64), dist[q, i].astype(np.int8)))
        return Matches.concat(parts)


def _chunk_bounds(m: int) -> list[tuple[int, int]]:
    """Split 64 bits into ``m`` near-equal chunks: (shift, width) per chunk."""
    widths = [BITS // m + (1 if k < BITS % m else 0) for k in range(m)]
    shifts = [BITS - sum(widths[: k + 1]) for k in range(m)]
    return list(zip(shifts, widths, strict=True))


def _masks(width: int, radius: int) -> np.ndarray:
    """Every ``width``-bit mask with at most ``radius`` bits set (the probes around a chunk value)."""
    masks = [0]
    for r in range(1, radius + 1):
        masks += [sum(1 << b for b in bits) for bits in itertools.combinations(range(width), r)]
    return np.array(masks, dtype=np.uint64)


def mih_cost(n_items: int, n_queries: int, m: int, radius: int) -> float:
    """Expected work for uniform hashes: bucket probes plus candidates checked (used to choose ``m``)."""
    total = 0.0
    for _, width in _chunk_bounds(m):
        s = radius // m
        probes = sum(math.comb(width, k) for k in range(s + 1))
        total += n_queries * probes * (1.0 + n_items / 2.0**width)
    return total


class MultiIndexHash:
    """Multi-index hashing with ``m`` chunks; buckets are a CSR table (chunk value -> sorted item ids)."""

    MAX_TABLE_BITS = 24

    def __init__(self, hashes: np.ndarray, m: int) -> None:
        self.hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
        self.m = m
        self.bounds = _chunk_bounds(m)
        if max(w for _, w in self.bounds) > self.MAX_TABLE_BITS:
            raise ValueError(f"MultiIndexHash: {m} chunks are wider than {self.MAX_TABLE_BITS} bits")
        self.tables = []
        for shift, width in self.bounds:
            keys = ((self.hashes >> np.uint64(shift)) & np.uint64((1 << width) - 1)).astype(np.int64)
            order = np.argsort(keys, kind="stable")
            starts = np.zeros((1 << width) + 1, dtype=np.int64)
            np.cumsum(np.bincount(keys, minlength=1 << width), out=starts[1:])
            self.tables.append((order, starts))

    def search(self, queries: np.ndarray, radius: int, cap: int = 0, batch_probes: int = 1 << 22) -> Matches:
        queries = np.asarray(queries, dtype=np.uint64)
        s = radius // self.m
        parts = []
        for c, ((shift, width), (order, starts)) in enumerate(zip(self.bounds, self.tables, strict=True)):
            masks = _masks(width, s)
            step = max(1, batch_probes // len(masks))
            for begin in range(0, len(queries), step):
                q = queries[begin : begin + step]
                keys = ((q >> np.uint64(shift)) & np.uint64((1 << width) - 1))[:, None] ^ masks[None, :]
                keys = keys.astype(np.int64).reshape(-1)
                lo, hi = starts[keys], starts[keys + 1]
                counts = hi - lo
                total = int(counts.sum())
                if total == 0:
                    continue
                qidx = np.repeat(np.arange(len(q)).repeat(len(masks)), counts)
                pos = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts) + np.repeat(lo, counts)
                item = order[pos]
                xor = q[qidx] ^ self.hashes[item]
                dist = np.bitwise_count(xor)
                keep = dist <= radius
                # report a pair only from the first chunk that finds it, so no pair appears twice
                for shift0, width0 in self.bounds[:c]:
                    part = np.bitwise_count((xor >> np.uint64(shift0)) & np.uint64((1 << width0) - 1))
                    keep &= part > s
                parts.append(Matches(qidx[keep] + begin, item[keep].astype(np.int64), dist[keep].astype(np.int8)))
        return Matches.concat(parts)


def chunk_radii(radius: int, m: int) -> list[int]:
    """Per-chunk probe radii ``s_c`` with ``sum(s_c + 1) = radius + 1``: if every chunk differed by more than its
    ``s_c``, the whole hash would differ by more than ``radius`` (generalised pigeonhole), so probing each chunk to
    ``s_c`` bits finds every pair. Cheaper than ``radius // m`` everywhere when ``m`` does not divide ``radius + 1``
    (e.g. 4 chunks at radius 8: 2,1,1,1 instead of 2,2,2,2); ``-1`` means the chunk is not probed at all."""
    base, extra = divmod(radius + 1 - m, m)
    return [base + (1 if k < extra else 0) for k in range(m)]


def _probe_count(width: int, s: int) -> int:
    return sum(math.comb(width, k) for k in range(s + 1))


# Relative costs of the compiled kernels, measured on the 2-core dev machine (benchmarks/dedup.py): one pair of the
# brute force (vectorised XOR + popcount), one bucket probe (a random read in a table of up to 2^22 entries), one
# candidate checked (sequential in the bucket).
BRUTE_PAIR_COST = 0.02
PROBE_COST = 1.0
CANDIDATE_COST = 0.3
MAX_TABLE_BITS = 22


def numba_mih_cost(n_items: int, n_queries: int, m: int, radius: int) -> float:
    """Expected work of the compiled MIH for uniform hashes: probes plus candidates checked."""
    total = 0.0
    for (_, width), s in zip(_chunk_bounds(m), chunk_radii(radius, m), strict=True):
        if s >= 0:
            total += n_queries * _probe_count(width, s) * (PROBE_COST + CANDIDATE_COST * n_items / 2.0**width)
    return total


def _best_m(n_items: int, n_queries: int, radius: int) -> tuple[int, float]:
    options = [m for m in range(2, 9) if math.ceil(BITS / m) <= MAX_TABLE_BITS]
    costs = {m: numba_mih_cost(n_items, n_queries, m, radius) for m in options}
    m = min(costs, key=costs.__getitem__)
    return m, costs[m]


class NumbaBruteForceIndex:
    """Every query against every hash in a compiled parallel loop: the fastest exact search for small sets."""

    def __init__(self, hashes: np.ndarray) -> None:
        self.hashes = np.ascontiguousarray(hashes, dtype=np.uint64)

    def search(self, queries: np.ndarray, radius: int, cap: int = 0) -> Matches:
        query, item, dist, dropped = kernels.brute_search(queries, self.hashes, radius, cap)
        return Matches(query, item, dist, dropped)


class NumbaMultiIndexHash:
    """Compiled multi-index hashing; pairs come back ordered by (query, item), like the brute force.

    With many more queries than hashes (8 dihedral queries per hash), bucket probes dominate, so ``search`` may index
    the queries instead and probe with the hashes (``swap``): the same pairs with 8x fewer probes.
    """

    SWAP_RATIO = 2

    def __init__(self, hashes: np.ndarray, m: int | None = None, radius: int = 8, swap: bool = True) -> None:
        self.hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
        self.m = m or _best_m(len(self.hashes), len(self.hashes), radius)[0]
        if math.ceil(BITS / self.m) > MAX_TABLE_BITS:
            raise ValueError(f"NumbaMultiIndexHash: {self.m} chunks are wider than {MAX_TABLE_BITS} bits")
        self.swap = swap
        self.tables = kernels.MIHTables(self.hashes, _chunk_bounds(self.m))

    @staticmethod
    def _run(tables: kernels.MIHTables, queries: np.ndarray, radius: int, count_only: bool = False, cap: int = 0):
        m = len(tables.bounds)
        radii = chunk_radii(radius, m)
        bounds = tables.bounds
        probes = [_masks(w, s) if s >= 0 else np.zeros(0, np.uint64) for (_, w), s in zip(bounds, radii, strict=True)]
        if count_only:
            return tables.count(queries, BITS, radii, probes)
        return tables.search(queries, radius, radii, probes, cap)

    def search(self, queries: np.ndarray, radius: int, cap: int = 0) -> Matches:
        """With ``cap`` > 0 each probing hash keeps at most ``cap`` matches per chunk (the swapped search probes
        with the indexed hashes, so the cap then applies per indexed hash): bounded output on any content."""
        queries = np.ascontiguousarray(queries, dtype=np.uint64)
        if self.swap and len(queries) > self.SWAP_RATIO * len(self.hashes) and len(self.hashes):
            m = _best_m(len(queries), len(self.hashes), radius)[0]
            tables = kernels.MIHTables(queries, _chunk_bounds(m))
            item, query, dist, dropped = self._run(tables, self.hashes, radius, cap=cap)
        else:
            query, item, dist, dropped = self._run(self.tables, queries, radius, cap=cap)
        return Matches(query, item, dist, dropped).sorted()

    def candidates(self, queries: np.ndarray, radius: int) -> int:
        """Distinct candidates checked on all 64 bits for ``radius`` without swapping (a diagnostic for the bench)."""
        return int(self._run(self.tables, queries, radius, count_only=True))


KINDS = ("auto", "mih", "brute", "numpy-mih", "numpy-brute")


def build_index(hashes: np.ndarray, radius: int, n_queries: int, kind: str = "auto") -> HammingIndex:
    """The cheaper exact index for this size and radius (``kind``: one of ``KINDS``; ``numpy-*`` are the references)."""
    hashes = np.asarray(hashes, dtype=np.uint64)
    if kind == "numpy-brute":
        return BruteForceIndex(hashes)
    if kind == "numpy-mih":
        options = [m for m in range(2, 9) if BITS / m <= MultiIndexHash.MAX_TABLE_BITS]
        return MultiIndexHash(hashes, min(options, key=lambda m: mih_cost(len(hashes), n_queries, m, radius)))
    big, small = max(len(hashes), n_queries), min(len(hashes), n_queries)
    _, cost = _best_m(big, small, radius)
    if kind == "brute" or (kind == "auto" and BRUTE_PAIR_COST * n_queries * len(hashes) <= cost):
        return NumbaBruteForceIndex(hashes)
    return NumbaMultiIndexHash(hashes, radius=radius)
