"""K folds over train + val for cross-validation, by scikit-learn's ``StratifiedGroupKFold`` on the leak units
(so a unit never straddles folds either). Units without eligible rows (synthetic, coarse) get no fold: they are
training material in every fold."""

from __future__ import annotations

import warnings

import numpy as np

from wbc_data.errors import UserError


class FoldError(UserError):
    pass


def assign_folds(
    units: np.ndarray, labels: np.ndarray, eligible: np.ndarray, in_pool: np.ndarray, k: int, seed: int
) -> tuple[np.ndarray, list[str]]:
    """Fold number per row (-1 = none); ``in_pool`` marks rows of train and val."""
    from sklearn.model_selection import StratifiedGroupKFold

    fold = np.full(len(units), -1, dtype=np.int64)
    rows = np.flatnonzero(eligible & in_pool)
    groups = units[rows]
    if len(np.unique(groups)) < k:
        raise FoldError(f"--folds {k}: only {len(np.unique(groups))} independent unit(s) in train + val")
    notes: list[str] = []
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for number, (_, held) in enumerate(splitter.split(rows, labels[rows], groups)):
            fold[rows[held]] = number
    notes += [f"folds: {w.message}" for w in caught if issubclass(w.category, UserWarning)]
    unit_fold = dict(zip(units[rows], fold[rows], strict=True))
    pool_units = units[in_pool]
    fold[in_pool] = [unit_fold.get(u, -1) for u in pool_units]  # ineligible rows follow their unit's fold
    return fold, notes
