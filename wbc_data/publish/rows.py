"""Which manifest rows a published dataset holds, in which Hub split, in a stable order.

The deduplicated, split manifest's train/val/test rows with an exact 13-class label (the same rows ``wbc-data
train`` learns from, :func:`wbc_data.core.rows.select_rows`), synthetic rows only when asked for, minus excluded
sources. Every usable row left out is counted with its reason so the card can say what is not there.
The order (split, source, source path, sample id) does not depend on how the manifest was merged, so the same
rows give the same shards, byte for byte, and re-publishing uploads only what changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from wbc_data.core.errors import UserError
from wbc_data.core.rows import is_kept, is_synthetic, is_usable, select_rows
from wbc_data.core.stages import ManifestView
from wbc_data.core.taxonomy import LabelStatus

HUB_SPLITS = {"train": "train", "val": "validation", "test": "test"}
"""Manifest split -> the split name users load (``load_dataset(...)["validation"]``)."""


class PublishError(UserError):
    """Publishing cannot go on: bad option, nothing to publish, unusable output folder, Hub refused."""


@dataclass
class PublishRows:
    frame: pd.DataFrame  # the rows to publish, with `hub_split`, in publishing order
    left_out: dict[str, int] = field(default_factory=dict)  # usable rows not published, by reason
    synthetic_available: int = 0  # synthetic rows in the workspace's splits (published or not)

    def split(self, name: str) -> pd.DataFrame:
        return self.frame[self.frame["hub_split"] == name]

    @property
    def splits(self) -> list[str]:
        present = set(self.frame["hub_split"])
        return [s for s in HUB_SPLITS.values() if s in present]


def choose_rows(view: ManifestView, include_synthetic: bool, exclude_sources: Sequence[str] = ()) -> PublishRows:
    """The rows to publish from a manifest view whose dedup and split are fresh (else one line says what to run)."""
    view.require("dedup", "publish")
    view.require("split", "publish")
    frame = view.frame
    known = sorted(frame["source"].dropna().unique())
    unknown = sorted(set(exclude_sources) - set(known))
    if unknown:
        raise PublishError(
            f"--exclude-source {unknown[0]}: no source of that name in the manifest (sources: {', '.join(known)})"
        )
    sources = [s for s in known if s not in set(exclude_sources)]
    chosen = select_rows(
        frame, splits=list(HUB_SPLITS), exact_only=True, kept_only=True, synthetic=include_synthetic, sources=sources
    )
    if chosen.empty:
        raise PublishError(
            f"{view.path}: no rows to publish (no exact-label train/val/test rows of {', '.join(sources)})"
        )
    chosen = chosen.assign(hub_split=chosen["split"].map(HUB_SPLITS))
    order = {name: i for i, name in enumerate(HUB_SPLITS.values())}
    chosen = chosen.assign(_order=chosen["hub_split"].map(order))
    chosen = chosen.sort_values(["_order", "source", "source_path", "sample_id"], kind="stable")
    chosen = chosen.drop(columns="_order").reset_index(drop=True)
    synthetic = _synthetic(frame)
    in_splits = frame["split"].isin(list(HUB_SPLITS)).fillna(False).to_numpy(bool)
    return PublishRows(
        frame=chosen,
        left_out=left_out_counts(frame, include_synthetic, exclude_sources),
        synthetic_available=int((synthetic & in_splits & is_usable(frame)).sum()),
    )


def _synthetic(frame: pd.DataFrame) -> np.ndarray:
    if "is_synthetic" not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    return is_synthetic(frame)


def left_out_counts(frame: pd.DataFrame, include_synthetic: bool, exclude_sources: Sequence[str]) -> dict[str, int]:
    """Usable rows that are not published, each counted once under the first reason that applies."""
    usable = is_usable(frame)
    reasons = [
        ("source excluded (--exclude-source)", frame["source"].isin(list(exclude_sources)).to_numpy()),
        ("synthetic (publish with --include-synthetic)", _synthetic(frame) & (not include_synthetic)),
        (
            "duplicate dropped by dedup",
            ~is_kept(frame),
        ),
        ("no exact 13-class label (coarse, conflict, not a leukocyte...)",
         (frame["label_status"] != LabelStatus.EXACT.value).to_numpy()),
        ("excluded by the split (kept out of val/test without leaking)",
         ~frame["split"].isin(list(HUB_SPLITS)).fillna(False).to_numpy(bool)),
    ]  # fmt: skip
    taken = ~usable
    out: dict[str, int] = {}
    for reason, mask in reasons:
        hit = usable & ~taken & np.asarray(mask, dtype=bool)
        if hit.any():
            out[reason] = int(hit.sum())
        taken |= hit
    return out
