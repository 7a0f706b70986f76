"""Stratified apportionment of whole units into bins (train/val/test, or K folds): the core of ``wbc-data split``.

Each unit has a count of eligible images per class; each bin a share. The aim: every class's images spread over
the bins as close to the shares as the units allow, no unit ever divided.

- Units of several images (a patient, a field, a duplicate cluster) are placed greedily, rarest class first and
  larger units first (ties in seeded random order), each into the bin that most needs its classes: the largest
  sum over its classes of (class weight x images x remaining target), class weight 1/total so rare classes count.
- Units of one image are then placed class by class in one vectorised step that is exactly what the same greedy
  would do item by item: each bin offers "slots" whose priority is its remaining target minus the slots before,
  and the class's images fill the highest-priority slots. Every class ends within one image of its ideal share
  in every bin, whatever the shares, and 1M units take about a second.
- The counts are kept sparse (scipy CSR): a stratum is a class within a source, so a dense (units x strata) matrix
  would grow with units times sources; the sparse one holds an entry per unit and stratum it has images of.

scikit-learn's ``StratifiedGroupKFold`` solves the fold case with a per-group Python loop (minutes at 1M groups)
and has no unequal shares; ``tests/test_split.py`` compares the two on real data.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import sparse


def apportion_units(
    counts: np.ndarray | sparse.sparray | sparse.spmatrix,
    shares: np.ndarray,
    seed: int = 0,
    fixed: Mapping[int, int] | None = None,
    allowed: np.ndarray | None = None,
    keys: np.ndarray | None = None,
    stratum_keys: np.ndarray | None = None,
) -> np.ndarray:
    """Bin per unit (``-1`` for units without eligible images and not fixed).

    ``counts``: (units, classes) eligible images (non-negative), dense or scipy sparse (kept sparse inside);
    ``shares``: (bins,) summing to 1; ``fixed``: unit (an index >= 0) -> bin for units that must go to a bin (their
    images count towards it first);
    ``allowed``: (units, bins) booleans for units that may only go to some bins (e.g. a source's official training
    rows: train or val, never test).
    ``keys``: a random-looking number per unit that orders ties and decides which single images of a class take
    which bin (default: drawn from ``seed``). Keys that depend on the unit alone (a hash of its rows' ids and the
    seed) keep every unit's bin when units of other classes are added: each unit's fate depends only on the units
    that share its classes. ``stratum_keys``: a number per class (column) that orders the bins a single image of
    that class takes on a tie (default: the bins by share); with many small classes of one label (a class in each
    of many sources) a fixed order would round all of them towards the same bin."""
    counts = _sparse(counts)
    indptr, indices, data = counts.indptr, counts.indices, counts.data
    shares = np.asarray(shares, dtype=np.float64)
    n_units, n_classes = counts.shape
    n_bins = len(shares)
    if allowed is None:
        allowed = np.ones((n_units, n_bins), dtype=bool)
    totals = np.bincount(indices, weights=data, minlength=n_classes).astype(np.int64)
    target = shares[:, None] * totals[None, :]  # (bins, classes)
    placed = np.zeros((n_bins, n_classes), dtype=np.float64)
    out = np.full(n_units, -1, dtype=np.int64)
    for unit, b in (fixed or {}).items():
        out[unit] = b
        placed[b, indices[indptr[unit] : indptr[unit + 1]]] += data[indptr[unit] : indptr[unit + 1]]

    sizes = np.asarray(counts.sum(axis=1), dtype=np.int64).ravel()
    free = (out < 0) & (sizes > 0)
    if keys is None:
        keys = np.random.default_rng(seed).permutation(n_units)
    tiebreak = np.argsort(np.argsort(np.asarray(keys), kind="stable"), kind="stable")  # ranks: ties broken by position
    bin_order = np.lexsort((np.arange(n_bins), -shares))  # preferred bin first on equal need
    weight = np.where(totals > 0, 1.0 / np.maximum(totals, 1), 0.0)

    multi = np.flatnonzero(free & (sizes > 1))
    if len(multi):
        rarity = _row_min(totals[indices], indptr)[multi]  # each unit's rarest class
        for unit in multi[np.lexsort((tiebreak[multi], -sizes[multi], rarity))]:
            nonzero, present = indices[indptr[unit] : indptr[unit + 1]], data[indptr[unit] : indptr[unit + 1]]
            need = ((target[:, nonzero] - placed[:, nonzero]) * (weight[nonzero] * present)).sum(axis=1)
            need = np.where(allowed[unit], np.round(need, 12), -np.inf)
            best = bin_order[np.argmax(need[bin_order])]
            out[unit] = best
            placed[best, nonzero] += present

    def tie_order(column: int) -> np.ndarray:
        if stratum_keys is None:
            return bin_order
        draw = np.random.default_rng([seed, int(stratum_keys[column])]).random(n_bins)
        return np.lexsort((draw, -shares))  # the larger share first; equal shares in the stratum's own order

    single = np.flatnonzero(free & (sizes == 1))
    if len(single):
        single_class = indices[indptr[single]].astype(np.int64)  # a unit of one image: one nonzero class
        patterns, pattern_of = np.unique(allowed[single], axis=0, return_inverse=True)
        pattern_of = pattern_of.ravel()
        restriction = np.empty(len(patterns), dtype=np.int64)  # most restricted units placed first
        restriction[np.argsort(patterns.sum(axis=1), kind="stable")] = np.arange(len(patterns))
        rank = restriction[pattern_of]
        # one sort into groups of (class, restriction), each in key order: the loop below visits each image once
        order = np.lexsort((tiebreak[single], rank, single_class))
        group = single_class[order] * len(patterns) + rank[order]
        starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
        for start, end in zip(starts, [*starts[1:], len(order)], strict=True):
            members = single[order[start:end]]
            c, p = int(single_class[order[start]]), int(pattern_of[order[start]])
            bins = np.flatnonzero(patterns[p])
            sub_order = np.array([b for b in tie_order(c) if patterns[p][b]])
            local = np.searchsorted(bins, sub_order)
            per_bin = fill_slots(target[bins, c] - placed[bins, c], len(members), local)
            # in key order, a block per bin: the keys are random, so is the draw; a new image moves at most
            # the images at the blocks' edges, not the whole class
            out[members] = np.repeat(bins, per_bin)
            placed[bins, c] += per_bin
    return out


def _sparse(counts: np.ndarray | sparse.sparray | sparse.spmatrix) -> sparse.csr_array:
    """``counts`` as a CSR array of int64 with sorted, summed, nonzero entries: memory in the nonzero counts, not in
    units x strata (a million single images in 104 strata: 16 MB instead of 830 MB)."""
    out = sparse.csr_array(counts, dtype=np.int64, copy=True)  # the caller's matrix is left as it was
    out.sum_duplicates()  # sorts each row's columns too
    out.eliminate_zeros()
    return out


def _row_min(values: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    """Per CSR row, the smallest of its entries' ``values`` (the int64 maximum for an empty row)."""
    out = np.full(len(indptr) - 1, np.iinfo(np.int64).max, dtype=np.int64)
    rows = np.flatnonzero(np.diff(indptr) > 0)
    if len(rows):  # consecutive non-empty rows' segments are contiguous: empty rows between hold no entries
        out[rows] = np.minimum.reduceat(values, indptr[rows])
    return out


def fill_slots(deficit: np.ndarray, m: int, bin_order: np.ndarray) -> np.ndarray:
    """How many of ``m`` single images each bin gets when each, in turn, goes to the bin with the largest remaining
    deficit (ties: earlier in ``bin_order``). Bin b's j-th slot has priority ``deficit[b] - j``; the images take the
    ``m`` highest."""
    n_bins = len(deficit)
    rank = np.empty(n_bins, dtype=np.int64)
    rank[bin_order] = np.arange(n_bins)
    # a bin never gets more than m images, so m slots per bin suffice: (bins x m) priorities, linear in the class
    j = np.arange(m, dtype=np.float64)
    priority = (deficit[:, None] - j[None, :]).ravel()
    owner = np.repeat(np.arange(n_bins), m)
    order = np.lexsort((np.tile(j, n_bins), rank[owner], -priority))[:m]
    return np.bincount(owner[order], minlength=n_bins)
