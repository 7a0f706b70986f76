"""Assign whole leak units to train / val / test, stratified by class within each source as far as the units allow.

Only *eligible* rows count towards the strata: real (not synthetic), exact-label, usable rows that dedup kept.
Validation and test hold eligible rows only; everything else in a val/test unit is ``excluded`` (it cannot go
to train without leaking). Synthetic rows always go to train.

Units are placed by :func:`wbc_data.split.apportion.apportion_units` (rarest class first, each unit into the
split that most needs its classes); single-image classes end within one image of their ideal share.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import sparse

from wbc_data.core.rows import is_exact, is_kept, is_synthetic, is_usable
from wbc_data.core.taxonomy import CLASSES
from wbc_data.split.apportion import apportion_units

SPLITS = ("train", "val", "test")
EXCLUDED = "excluded"


def eligible_rows(frame: pd.DataFrame) -> np.ndarray:
    """Rows that may be validated or tested on: usable, exact label, real, kept by dedup (where it ran)."""
    ok = is_usable(frame) & is_exact(frame)
    ok &= ~is_synthetic(frame)
    ok &= is_kept(frame)
    return ok


@dataclass
class Assignment:
    split: np.ndarray  # per row: train / val / test / excluded
    note: np.ndarray  # per row: why a row is excluded, or None
    notes: list[str] = field(default_factory=list)


def assign_units(
    frame: pd.DataFrame,
    units: np.ndarray,
    fractions: Mapping[str, float],
    seed: int = 0,
    fixed: np.ndarray | None = None,
) -> Assignment:
    """``fractions`` maps val and test to their share (train takes the rest). ``fixed`` gives a row's official
    split (or None): a unit with an official test or val row takes that split; a unit of official training rows
    goes to train or val, never test; other units are free."""
    eligible = eligible_rows(frame)
    strata = unit_class_counts(frame, units, eligible, seed)
    counts = strata.counts
    shares = np.array([1.0 - sum(fractions.values()), fractions.get("val", 0.0), fractions.get("test", 0.0)])
    notes: list[str] = []
    fixed_bins: dict[int, int] = {}
    allowed = None
    if fixed is not None:
        official = _fixed_units(units, fixed, notes)
        fixed_bins = {u: SPLITS.index(s) for u, s in official.items() if s != "train"}
        allowed = np.ones((counts.shape[0], len(SPLITS)), dtype=bool)
        train_only = [u for u, s in official.items() if s == "train"]
        allowed[train_only, SPLITS.index("test")] = False  # official training rows may give validation, not test
    keys = unit_keys(frame, units, eligible, seed)
    bins = apportion_units(counts, shares, seed, fixed_bins, allowed, keys, strata.keys)
    unit_split = np.where(bins >= 0, np.array(SPLITS, dtype=object)[np.maximum(bins, 0)], "train")

    split = unit_split[units].astype(object)
    note = np.full(len(frame), None, dtype=object)
    in_eval = np.isin(split, ["val", "test"])
    synthetic = is_synthetic(frame)
    split[synthetic] = "train"
    for mask, reason in _exclusions(frame, in_eval & ~eligible & ~synthetic):
        split[mask] = EXCLUDED
        note[mask] = reason
    if "dup_keep" in frame.columns:
        dropped = ~is_kept(frame)
        split[dropped] = EXCLUDED
        note[dropped] = "duplicate not kept by dedup"
    return Assignment(split, note, notes)


def _hashes(values: pd.Series, salt: str) -> np.ndarray:
    """pandas' vectorised 64-bit hash of each string with ``salt`` appended: random-looking, reproducible."""
    return pd.util.hash_pandas_object(values.astype(str) + f"\x00{salt}", index=False).to_numpy()


def unit_keys(frame: pd.DataFrame, units: np.ndarray, eligible: np.ndarray, seed: int, salt: str = "") -> np.ndarray:
    """A random-looking 64-bit number per unit: the smallest hash (of ``sample_id``, the seed and ``salt``) of its
    eligible rows, or of all its rows when none is eligible. A unit keeps its key, and so its place, when another
    source is added and the workspace split again (a shuffle of all units moved every row); a copy from the new
    source that dedup does not keep is not eligible, so it does not change the key of the unit it joins."""
    n_units = int(units.max()) + 1 if len(units) else 0
    row_keys = _hashes(frame["sample_id"], f"{seed}\x00{salt}")
    top = np.iinfo(np.uint64).max
    keys, fallback = np.full(n_units, top, np.uint64), np.full(n_units, top, np.uint64)
    np.minimum.at(keys, units[eligible], row_keys[eligible])
    np.minimum.at(fallback, units, row_keys)
    return np.where(keys == top, fallback, keys)


@dataclass
class Strata:
    counts: sparse.csr_array  # (units, strata) eligible images; sparse: a stratum per source and class makes a
    # dense matrix of a million single images in 8 sources 830 MB, its nonzero entries 16 MB
    keys: np.ndarray  # (strata,) a hash of "source, class": orders a stratum's ties among splits


def unit_class_counts(frame: pd.DataFrame, units: np.ndarray, eligible: np.ndarray, seed: int = 0) -> Strata:
    """Eligible images per unit and stratum: a stratum is a class within a source, so that every source's classes
    are spread over the splits in the shares asked for. Stratified by class alone, a source of many single-image
    units (PBC) fills each class's val and test shares by itself, and a source whose images come in patients
    (APL/AML: 21 patients) lands whole in train: nothing of it is ever tested. With one source the strata are its
    classes. Each stratum breaks ties among splits in its own order (from its key), so that the strata of a class
    spread over many sources do not all round the same way."""
    n_units = int(units.max()) + 1 if len(units) else 0
    classes = pd.Categorical(frame["label"].astype(object), categories=list(CLASSES)).codes.astype(np.int64)
    source = pd.Categorical(frame["source"].astype(object).fillna(""))
    sources = source.codes.astype(np.int64)
    rows = np.flatnonzero(eligible & (classes >= 0))
    strata, codes = np.unique(sources[rows] * len(CLASSES) + classes[rows], return_inverse=True)
    one = np.ones(len(rows), np.int64)  # a unit's images of one stratum are summed into one entry
    counts = sparse.csr_array((one, (units[rows], codes.ravel())), shape=(n_units, len(strata)))
    n = len(CLASSES)
    names = pd.Series([f"{source.categories[s // n]}\x00{CLASSES[s % n]}" for s in strata], dtype=object)
    return Strata(counts, _hashes(names, str(seed)))  # keyed by names, not codes: codes change as sources come


def _fixed_units(units: np.ndarray, fixed: np.ndarray, notes: list[str]) -> dict[int, str]:
    """Each unit with a fixed row takes that split; a unit whose rows name different splits takes the most
    held-out one (test over val over train) so that nothing leaks, and is reported."""
    rank = {"train": 0, "val": 1, "test": 2}
    out: dict[int, str] = {}
    conflicts = 0
    for unit, split in zip(units, fixed, strict=True):
        if split is None or split not in rank:
            continue
        current = out.get(int(unit))
        if current is None:
            out[int(unit)] = split
        elif current != split:
            conflicts += 1
            out[int(unit)] = max(current, split, key=rank.__getitem__)
    if conflicts:
        notes.append(
            f"{conflicts:,} row(s) share a patient, field or duplicate cluster with rows of another official split;"
            " their whole unit went to the more held-out split"
        )
    return out


def _exclusions(frame: pd.DataFrame, mask: np.ndarray) -> list[tuple[np.ndarray, str]]:
    """Why ineligible rows of val/test units are excluded, by cause."""
    status = frame["label_status"].astype(object).to_numpy()
    out = []
    for value in sorted({s for s in status[mask] if s is not None}):
        out.append((mask & (status == value), f"{value} label in a val/test unit"))
    return out
