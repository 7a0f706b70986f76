"""Which manifest rows a consumer stage takes: one definition of "training rows" for synth, train and publish."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from wbc_data.taxonomy import CLASSES, LabelStatus


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
    keep = (frame["status"] == "ok").to_numpy().copy()
    if splits is not None:
        if "split" not in frame.columns:
            from wbc_data.split import SplitError

            raise SplitError("the manifest has no split yet: run `wbc-data split` first")
        keep &= frame["split"].isin(list(splits)).fillna(False).to_numpy(bool)
    if exact_only:
        keep &= (frame["label_status"] == LabelStatus.EXACT.value).to_numpy()
    if kept_only and "dup_keep" in frame.columns:
        keep &= frame["dup_keep"].fillna(True).astype(bool).to_numpy()
    if "is_synthetic" in frame.columns:
        is_synth = frame["is_synthetic"].fillna(False).astype(bool).to_numpy()
        if not synthetic:
            keep &= ~is_synth
    if sources is not None:
        keep &= frame["source"].isin(list(sources)).to_numpy()
    return frame[keep].reset_index(drop=True)


def label_indices(labels: pd.Series) -> np.ndarray:
    """Index of each label in the fixed 13-class order (``taxonomy.CLASSES``); -1 where there is none."""
    return pd.Categorical(labels.astype(object), categories=list(CLASSES)).codes.astype(np.int64)
