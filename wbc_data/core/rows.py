"""What a manifest row is, said once: usable (decoded fine), synthetic, kept by dedup, exactly labelled; and which
rows a consumer stage takes (one definition of "training rows" for synth, train and publish).

The predicates take a frame and return one boolean per row as a NumPy array, and hold where the column is
absent (no synthetic rows yet, dedup not run): every stage asks here instead of restating the rule."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from wbc_data.core.manifest import ManifestError
from wbc_data.core.taxonomy import CLASSES, LabelStatus


def is_usable(frame: pd.DataFrame) -> np.ndarray:
    """Rows ingest could use (``status == "ok"``); every row where there is no status column."""
    if "status" not in frame.columns:
        return np.ones(len(frame), dtype=bool)
    return (frame["status"] == "ok").to_numpy(dtype=bool)


def is_synthetic(frame: pd.DataFrame) -> np.ndarray:
    """Rows a generator made; none where the column is absent."""
    if "is_synthetic" not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    return frame["is_synthetic"].fillna(False).astype(bool).to_numpy()


def is_kept(frame: pd.DataFrame) -> np.ndarray:
    """Rows dedup kept (not dropped as a copy); every row where dedup has not run or left no decision."""
    if "dup_keep" not in frame.columns:
        return np.ones(len(frame), dtype=bool)
    return frame["dup_keep"].fillna(True).astype(bool).to_numpy()


def is_exact(frame: pd.DataFrame) -> np.ndarray:
    """Rows with exactly one of the 13 classes as their label."""
    return (frame["label_status"] == LabelStatus.EXACT.value).to_numpy(dtype=bool)


def select_rows(
    frame: pd.DataFrame,
    splits: Sequence[str] | None = None,
    exact_only: bool = True,
    kept_only: bool = True,
    synthetic: bool = True,
    sources: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Usable rows (status ok) of ``splits`` (None: any), with an exact label (or any), kept by dedup where it ran,
    with or without synthetic rows, of ``sources`` (None: all)."""
    keep = is_usable(frame).copy()
    if splits is not None:
        if "split" not in frame.columns:
            raise ManifestError("the manifest has no split yet: run `wbc-data split` first")
        keep &= frame["split"].isin(list(splits)).fillna(False).to_numpy(bool)
    if exact_only:
        keep &= is_exact(frame)
    if kept_only:
        keep &= is_kept(frame)
    if not synthetic:
        keep &= ~is_synthetic(frame)
    if sources is not None:
        keep &= frame["source"].isin(list(sources)).to_numpy()
    return frame[keep].reset_index(drop=True)


def label_indices(labels: pd.Series) -> np.ndarray:
    """Index of each label in the fixed 13-class order (``taxonomy.CLASSES``); -1 where there is none."""
    return pd.Categorical(labels.astype(object), categories=list(CLASSES)).codes.astype(np.int64)
