"""Copy sets without chaining: a row joins a set only when it is verified against the set's representative.

Single-link clustering (connected components of verified pairs) lets one weak or false link merge two sets, and a
chain of them merged 5,676 fields of four classes into one cluster in issue 9. Here rows are visited in keep-policy
order (the best row first, field images last); a row follows its verified copies to the representatives
(leaders) of the sets they joined (up to ``HOPS`` verified pairs away), and joins the first leader it is *itself*
verified against; otherwise it leads a new set. Pairs (row, leader) not yet registered are collected, registered
in parallel by the caller, and the pass repeats until it needs no new pair (each round only adds knowledge, so it
ends; two or three rounds in practice). Whether a registered pair counts as a copy is decided up front per pair
(:func:`copy_relation`), with the labels of both rows: a pair whose exact labels differ must be a strict copy,
else it is not accepted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numba as nb
import numpy as np

from wbc_data.dedup.confirm import RESULT_FIELDS

MIN_CORRELATION = 0.90
"""Registered canvases (96 px) must correlate at least this much. Measured on real PBC cells (benchmarks/README.md,
dedup): augmented copies (any angle, fill, shift 10%, zoom 0.85-1.2, mirror, JPEG 70-95, 0.5-1x) >= 0.937,
distinct look-alikes among every cell's 4 nearest candidates <= 0.856 once PBC's own rotated duplicates are
set apart."""

MIN_TEXTURE = 0.80
"""... and their band-pass images (fine texture) at least this much: smooth round cells (AML-LMU myeloblasts in
the Kaggle mix) of distinct patients reach 0.93 on intensity once freely rotated and scaled, but <= 0.67 on
texture, while augmented copies keep >= 0.92 (benchmarks/README.md, dedup)."""

STRICT_CORRELATION = 0.95
"""A copy whose rows carry different exact labels must correlate this much ..."""

LABEL_SHIFT = 0.10
"""... and be shifted by at most this fraction of the canvas: otherwise the two images are views of one scene
centred on different cells (PBC's MMY_4594 / MY_744972: the same two cells, 20% apart), linked but both kept."""

COPY_MAX_SHIFT = 0.25
"""A copy keeps its centre within this fraction of the canvas (two copies each shifted by up to 10% per axis);
further apart, two registered images are overlapping views (linked as ``overlap``, both kept)."""

COPY_SCALE = 1.5
"""A copy is at most this much larger or smaller than the other (zoom 0.85-1.2 each); beyond, one image contains
the other (linked, both kept)."""

MAX_LEADERS = 4
"""A row tries at most this many leaders (those of its best-verified copies first)."""

COPY, OVERLAP, NONE = 2, 1, 0


def copy_relation(results: np.ndarray, canvas: int, label_a: np.ndarray, label_b: np.ndarray,
                  min_correlation: float = MIN_CORRELATION) -> np.ndarray:  # fmt: skip
    """Per registered pair (rows of ``confirm`` results): COPY, OVERLAP or NONE. ``label_*`` are exact labels
    ("" when none)."""
    col = {name: k for k, name in enumerate(RESULT_FIELDS)}
    corr, overlap, scale = results[:, col["correlation"]], results[:, col["overlap"]], results[:, col["scale"]]
    shift = np.hypot(results[:, col["dx"]], results[:, col["dy"]]) / canvas
    from wbc_data.dedup.register import MIN_OVERLAP

    matched = (corr >= min_correlation) & (results[:, col["texture"]] >= MIN_TEXTURE) & (overlap >= MIN_OVERLAP)
    conflict = (label_a != "") & (label_b != "") & (label_a != label_b)
    same_frame = (scale <= COPY_SCALE) & (scale >= 1 / COPY_SCALE)
    plain = same_frame & (shift <= COPY_MAX_SHIFT) & ~conflict
    strict = same_frame & (shift <= LABEL_SHIFT) & (corr >= STRICT_CORRELATION)
    out = np.where(matched, OVERLAP, NONE)
    return np.where(matched & (plain | strict), COPY, out).astype(np.int8)


def row_pair_codes(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """One int64 code per unordered pair of rows: ``lo * n + hi``."""
    return np.minimum(a, b) * n + np.maximum(a, b)


@dataclass
class PairTable:
    """Registered pairs as sorted codes ``lo * n + hi`` with their relation and registration results (rows of
    ``confirm``), searchable from numba."""

    n: int
    codes: np.ndarray  # int64, sorted
    relation: np.ndarray  # int8
    results: np.ndarray  # (p, len(RESULT_FIELDS)) float32

    @classmethod
    def build(cls, n: int, pairs: np.ndarray, relation: np.ndarray, results: np.ndarray) -> PairTable:
        pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
        codes = row_pair_codes(n, pairs[:, 0], pairs[:, 1])
        order = np.argsort(codes, kind="stable")
        results = np.asarray(results, np.float32).reshape(len(pairs), len(RESULT_FIELDS))
        return cls(n, codes[order], np.asarray(relation, np.int8)[order], results[order])

    def add(self, pairs: np.ndarray, relation: np.ndarray, results: np.ndarray) -> PairTable:
        more = PairTable.build(self.n, pairs, relation, results)
        codes = np.concatenate([self.codes, more.codes])
        order = np.argsort(codes, kind="stable")
        return PairTable(self.n, codes[order], np.concatenate([self.relation, more.relation])[order],
                         np.concatenate([self.results, more.results])[order])  # fmt: skip

    def decode(self, codes: np.ndarray) -> np.ndarray:
        return np.stack([codes // self.n, codes % self.n], axis=1)

    def pairs(self) -> np.ndarray:
        return self.decode(self.codes)

    def find(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Position of each pair (a[k], b[k]) in the table, -1 where it was never registered."""
        a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
        codes = row_pair_codes(self.n, a, b)
        if not len(self.codes):
            return np.full(len(codes), -1, np.int64)
        k = np.clip(np.searchsorted(self.codes, codes), 0, len(self.codes) - 1)
        return np.where(self.codes[k] == codes, k, -1)


@nb.njit(cache=True)
def _lookup(codes: np.ndarray, code: np.int64) -> int:
    k = np.searchsorted(codes, code)
    return k if k < len(codes) and codes[k] == code else -1


HOPS = 12
"""How far (in verified copy pairs) a row looks for the leaders it may join. One hop is not enough when an image
has many copies: each copy's nearest candidates are then its sibling copies, and the original is reached only
through them (30 augmented copies per cell: pair recall 0.69 with one hop). Twelve, because the candidates
registered are sparse inside a set (:mod:`spanning`: a spanning forest, not every sibling pair): on issue 21's
dense case 3 hops left rows short of their leader and made 23,340 registrations against leaders, 12 made 5,808
with the same clusters. The row is still registered against the leader itself before it joins, so a longer search
never chains; ``VISIT_CAP`` bounds the work."""

VISIT_CAP = 256
"""Rows visited per search, at most (bounds the work on dense clusters)."""


@nb.njit(cache=True)
def _assign(order, indptr, neighbours, n, codes, relation, max_leaders, optimistic, hops, visit_cap):
    """One pass: leader per row, and the codes of (row, leader) pairs it would need registered (``optimistic``:
    assume such a pair holds for now; else skip that leader). A row looks for leaders breadth first over verified
    copy pairs, up to ``hops`` away, nearest (then best correlated) first."""
    leader = np.full(n, -1, np.int64)
    pending = np.empty(len(order) * max_leaders, np.int64)
    count = 0
    tried = np.empty(max_leaders, np.int64)
    stamp = np.full(n, -1, np.int64)
    queue = np.empty(visit_cap, np.int64)
    for r in order:
        joined = -1
        ntried = 0
        head = 0
        tail = 1
        queue[0] = r
        stamp[r] = r
        depth_end = 1
        depth = 0
        stop = False
        while head < tail and not stop:
            node = queue[head]
            head += 1
            for j in range(indptr[node], indptr[node + 1]):
                other = neighbours[j]
                if stamp[other] == r:
                    continue
                stamp[other] = r
                if depth + 1 < hops and tail < visit_cap:
                    queue[tail] = other
                    tail += 1
                lead = leader[other]
                if lead < 0:
                    continue
                seen = False
                for t in range(ntried):
                    if tried[t] == lead:
                        seen = True
                if seen:
                    continue
                if ntried == max_leaders:
                    stop = True
                    break
                tried[ntried] = lead
                ntried += 1
                code = min(r, lead) * n + max(r, lead)
                k = _lookup(codes, code)
                if k >= 0:
                    if relation[k] == 2:
                        joined = lead
                        stop = True
                        break
                    continue
                pending[count] = code  # not registered yet
                count += 1
                if optimistic:  # assume it holds: the caller registers it and re-runs
                    joined = lead
                    stop = True
                    break
            if head == depth_end:
                depth += 1
                depth_end = tail
        leader[r] = joined if joined >= 0 else r
    return leader, pending[:count]


def _copy_adjacency(n: int, table: PairTable, among: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """CSR adjacency over COPY pairs (those whose codes are in ``among``, sorted, when given), each row's neighbours
    best correlation first."""
    copy = table.relation == COPY
    if among is not None:
        copy &= np.isin(table.codes, among)
    pairs = table.decode(table.codes[copy])
    weight = table.results[copy, 0]
    a = np.concatenate([pairs[:, 0], pairs[:, 1]])
    b = np.concatenate([pairs[:, 1], pairs[:, 0]])
    w = np.concatenate([weight, weight])
    order = np.lexsort((-w, a))
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(a, minlength=n), out=indptr[1:])
    return indptr, b[order].astype(np.int64)


@dataclass
class CopySets:
    leader: np.ndarray  # per row: the row leading its copy set (itself for leaders)
    table: PairTable  # every registered pair and its relation
    rounds: int
    registered_on_demand: int  # (row, leader) pairs registered by the search
    deferred_registered: int = 0  # deferred candidate pairs registered: their rows ended in different copy sets
    unregistered: int = 0  # deferred candidate pairs never registered: both rows in one copy set


RegisterFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""Register (p, 2) row pairs; return their relation (COPY, OVERLAP, NONE) and registration results."""


def copy_sets(order: np.ndarray, table: PairTable, register: RegisterFn, max_rounds: int = 20,
              deferred: np.ndarray | None = None) -> CopySets:  # fmt: skip
    """Leaders for every row of ``order`` (rows not in ``order`` lead themselves), given the registered candidate
    pairs (``table``). ``deferred``: candidate pairs not registered yet (:mod:`spanning`); each is registered, and
    guides the search like any candidate, once its rows have different leaders."""
    n = table.n
    guide = table.codes  # the candidates registered: their copies guide the search (pairs asked on demand do not)
    indptr, neighbours = _copy_adjacency(n, table)
    deferred = np.zeros((0, 2), np.int64) if deferred is None else np.asarray(deferred, np.int64).reshape(-1, 2)
    waiting = np.unique(row_pair_codes(n, deferred[:, 0], deferred[:, 1]))
    on_demand = late = 0
    order = np.asarray(order, np.int64)
    rounds = 0
    while rounds < max_rounds:
        rounds += 1
        leader, pending = _assign(
            order, indptr, neighbours, n, table.codes, table.relation, MAX_LEADERS, True, HOPS, VISIT_CAP
        )
        pending = np.unique(np.concatenate([pending, waiting[_apart(waiting, leader, n)]]))
        if not len(pending):
            break
        pairs = table.decode(pending)
        relation, results = register(pairs)
        table = table.add(pairs, relation, results)
        joins = np.isin(pending, waiting, assume_unique=True)
        on_demand += int((~joins).sum())
        if joins.any():
            late += int(joins.sum())
            guide = np.union1d(guide, pending[joins])
            indptr, neighbours = _copy_adjacency(n, table, guide)
            waiting = waiting[~np.isin(waiting, pending[joins], assume_unique=True)]
    else:  # still asking after max_rounds: a last pass joins verified leaders only
        leader, _ = _assign(
            order, indptr, neighbours, n, table.codes, table.relation, MAX_LEADERS, False, HOPS, VISIT_CAP
        )
        apart = _apart(waiting, leader, n)
        if apart.any():  # registered for what they say (overlapping views), without another search
            pairs = table.decode(waiting[apart])
            table = table.add(pairs, *register(pairs))
            late += int(apart.sum())
            waiting = waiting[~apart]
    untouched = leader < 0
    leader[untouched] = np.flatnonzero(untouched)
    return CopySets(leader, table, rounds, on_demand, late, len(waiting))


def _apart(codes: np.ndarray, leader: np.ndarray, n: int) -> np.ndarray:
    """Which pairs (codes) have rows with different leaders (-1: a row leads itself)."""
    if not len(codes):
        return np.zeros(0, bool)
    lead = np.where(leader >= 0, leader, np.arange(n))
    return lead[codes // n] != lead[codes % n]
