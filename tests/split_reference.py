"""The dense apportionment ``wbc_data.split.apportion.apportion_units`` was before it kept its counts sparse (the
code of main 4b0db9e, unchanged but for its name): the reference ``tests/test_split.py`` holds the sparse one to,
unit for unit."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from wbc_data.split.apportion import fill_slots


def dense_apportion_units(
    counts: np.ndarray,
    shares: np.ndarray,
    seed: int = 0,
    fixed: Mapping[int, int] | None = None,
    allowed: np.ndarray | None = None,
    keys: np.ndarray | None = None,
    stratum_keys: np.ndarray | None = None,
) -> np.ndarray:
    """Bin per unit (``-1`` for units without eligible images and not fixed).

    ``counts``: (units, classes) eligible images; ``shares``: (bins,) summing to 1; ``fixed``: unit -> bin for
    units that must go to a bin (their images count towards it first); ``allowed``: (units, bins) booleans for
    units that may only go to some bins (e.g. a source's official training rows: train or val, never test).
    ``keys``: a random-looking number per unit that orders ties and decides which single images of a class take
    which bin (default: drawn from ``seed``). Keys that depend on the unit alone (a hash of its rows' ids and the
    seed) keep every unit's bin when units of other classes are added: each unit's fate depends only on the units
    that share its classes. ``stratum_keys``: a number per class (column) that orders the bins a single image of
    that class takes on a tie (default: the bins by share); with many small classes of one label (a class in each
    of many sources) a fixed order would round all of them towards the same bin."""
    counts = np.asarray(counts, dtype=np.int64)
    shares = np.asarray(shares, dtype=np.float64)
    n_units, n_classes = counts.shape
    n_bins = len(shares)
    if allowed is None:
        allowed = np.ones((n_units, n_bins), dtype=bool)
    totals = counts.sum(axis=0)
    target = shares[:, None] * totals[None, :]  # (bins, classes)
    placed = np.zeros((n_bins, n_classes), dtype=np.float64)
    out = np.full(n_units, -1, dtype=np.int64)
    for unit, b in (fixed or {}).items():
        out[unit] = b
        placed[b] += counts[unit]

    sizes = counts.sum(axis=1)
    free = (out < 0) & (sizes > 0)
    if keys is None:
        keys = np.random.default_rng(seed).permutation(n_units)
    tiebreak = np.argsort(np.argsort(np.asarray(keys), kind="stable"), kind="stable")  # ranks: ties broken by position
    bin_order = np.lexsort((np.arange(n_bins), -shares))  # preferred bin first on equal need
    weight = np.where(totals > 0, 1.0 / np.maximum(totals, 1), 0.0)

    multi = np.flatnonzero(free & (sizes > 1))
    if len(multi):
        big = np.iinfo(np.int64).max
        rarity = np.where(counts[multi] > 0, totals[None, :], big).min(axis=1)
        for unit in multi[np.lexsort((tiebreak[multi], -sizes[multi], rarity))]:
            present = counts[unit]
            nonzero = np.flatnonzero(present)
            need = ((target[:, nonzero] - placed[:, nonzero]) * (weight[nonzero] * present[nonzero])).sum(axis=1)
            need = np.where(allowed[unit], np.round(need, 12), -np.inf)
            best = bin_order[np.argmax(need[bin_order])]
            out[unit] = best
            placed[best] += present

    def tie_order(column: int) -> np.ndarray:
        if stratum_keys is None:
            return bin_order
        draw = np.random.default_rng([seed, int(stratum_keys[column])]).random(n_bins)
        return np.lexsort((draw, -shares))  # the larger share first; equal shares in the stratum's own order

    single = np.flatnonzero(free & (sizes == 1))
    if len(single):
        single_class = counts[single].argmax(axis=1)
        patterns, pattern_of = np.unique(allowed[single], axis=0, return_inverse=True)
        restriction = np.argsort(patterns.sum(axis=1), kind="stable")  # most restricted units placed first
        for c in np.unique(single_class):
            for p in restriction:
                members = single[(single_class == c) & (pattern_of.ravel() == p)]
                if not len(members):
                    continue
                members = members[np.argsort(tiebreak[members], kind="stable")]
                bins = np.flatnonzero(patterns[p])
                sub_order = np.array([b for b in tie_order(c) if patterns[p][b]])
                local = np.searchsorted(bins, sub_order)
                per_bin = fill_slots(target[bins, c] - placed[bins, c], len(members), local)
                # in key order, a block per bin: the keys are random, so is the draw; a new image moves at most
                # the images at the blocks' edges, not the whole class
                out[members] = np.repeat(bins, per_bin)
                placed[bins, c] += per_bin
    return out
