"""K folds over train + val for cross-validation: the same stratified apportionment of whole leak units as the
train/val/test split, with K equal shares (so a unit never straddles folds either). Units without eligible rows
(synthetic, coarse) get no fold: they are training material in every fold."""

from __future__ import annotations

import numpy as np
import pandas as pd

from wbc_data.core.errors import UserError
from wbc_data.split.apportion import apportion_units
from wbc_data.split.assign import unit_class_counts, unit_keys


class FoldError(UserError):
    pass


def assign_folds(
    frame: pd.DataFrame, units: np.ndarray, eligible: np.ndarray, in_pool: np.ndarray, k: int, seed: int
) -> np.ndarray:
    """Fold number per row (-1 = none); ``in_pool`` marks rows of train and val."""
    pool_units = np.unique(units[eligible & in_pool])
    if len(pool_units) < k:
        raise FoldError(f"--folds {k}: only {len(pool_units)} independent unit(s) with eligible images in train + val")
    pool = eligible & in_pool
    strata = unit_class_counts(frame, units, pool, seed)
    keys = unit_keys(frame, units, pool, seed, salt="folds")  # not the split's keys: val would fill one fold
    bins = apportion_units(strata.counts, np.full(k, 1.0 / k), seed, keys=keys, stratum_keys=strata.keys)
    fold = bins[units]
    fold[~in_pool] = -1
    return fold
