"""Which manifest rows train, validate and (later) test a model, decided once and saved with it.

Training uses the split stage's ``train`` rows (real, exact label, kept by dedup, of ``--sources``) plus synthetic
rows when ``--synthetic-ratio`` asks for them; validation uses real ``val`` rows only. ``hold_rare`` makes a class
rare on purpose (``PMY: 13`` keeps 13 real training images): the class's other train and val rows are *held out*
and join the test rows when the model is evaluated, so the experiment is measured on real images it never saw.
Synthetic rows never reach validation or test, whatever the split file says.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from wbc_data.core.rows import is_synthetic, is_usable, select_rows
from wbc_data.core.taxonomy import CLASSES, LabelStatus
from wbc_data.train.errors import TrainError

ROLES = ("train", "val", "heldout")


@dataclass
class TrainingData:
    train: pd.DataFrame  # real training rows, then synthetic ones (``is_synthetic``)
    val: pd.DataFrame
    heldout: pd.DataFrame  # rows removed by hold_rare: tested with the test split
    notes: list[str] = field(default_factory=list)

    def roles(self) -> pd.DataFrame:
        """``sample_id, role, label, source, is_synthetic`` of every row the model used or held out."""
        parts = []
        for role, frame in (("train", self.train), ("val", self.val), ("heldout", self.heldout)):
            part = frame[["sample_id", "label", "source"]].copy()
            part["role"] = role
            part["is_synthetic"] = _synthetic(frame)
            parts.append(part)
        return pd.concat(parts, ignore_index=True)[["sample_id", "role", "label", "source", "is_synthetic"]]

    def counts(self) -> pd.DataFrame:
        """Images per class: real train, synthetic train, val, held out (classes with any only)."""
        synth = _synthetic(self.train)
        table = pd.DataFrame(
            {
                "train (real)": self.train.loc[~synth, "label"].value_counts(),
                "train (synthetic)": self.train.loc[synth, "label"].value_counts(),
                "val": self.val["label"].value_counts(),
                "held out (tested)": self.heldout["label"].value_counts(),
            }
        )
        table = table.reindex([c for c in CLASSES if c in table.index]).fillna(0).astype(int)
        table.index.name = "class"
        return table

    def source_counts(self) -> pd.DataFrame:
        """Images per source and role."""
        roles = self.roles()
        table = roles.pivot_table(index="source", columns="role", values="sample_id", aggfunc="count", fill_value=0)
        return table.reindex(columns=[r for r in ROLES if r in table.columns]).astype(int)


def _synthetic(frame: pd.DataFrame) -> np.ndarray:
    if "is_synthetic" not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    return is_synthetic(frame)


def select_training_data(
    frame: pd.DataFrame,
    where: str,
    *,
    sources: Sequence[str] | None = None,
    synthetic_ratio: float = 0.0,
    hold_rare: Mapping[str, int] | None = None,
    max_per_class: int | None = None,
    seed: int = 0,
) -> TrainingData:
    """The rows of a joined manifest view (with ``split``) that train and validate; ``where`` names the manifest
    in messages. Raises :class:`TrainError` (one line) for an empty split or a class absent from train."""
    if not 0.0 <= synthetic_ratio < 1.0:
        raise TrainError(f"--synthetic-ratio {synthetic_ratio}: a share of each batch, from 0 up to (not) 1")
    if sources:
        known = sorted(frame["source"].dropna().unique())
        unknown = [s for s in sources if s not in known]
        if unknown:
            raise TrainError(f"{where}: --sources {', '.join(unknown)}: not in the manifest (has {', '.join(known)})")
    notes: list[str] = []
    real_train = select_rows(frame, ["train"], synthetic=False, sources=sources)
    val = select_rows(frame, ["val"], synthetic=False, sources=sources)  # real only, whatever the split says
    synthetic = select_rows(frame, ["train"], synthetic=True)
    synthetic = synthetic[_synthetic(synthetic)].reset_index(drop=True)
    coarse_synth = _count_coarse_synthetic(frame)
    if coarse_synth:
        notes.append(f"{coarse_synth:,} synthetic row(s) with a coarse label left out (exact labels only)")

    if real_train.empty:
        scope = f" of source(s) {', '.join(sources)}" if sources else ""
        raise TrainError(f"{where}: the train split has no usable real rows{scope} (exact label, kept by dedup)")
    if val.empty:
        raise TrainError(
            f"{where}: the val split is empty{' for those sources' if sources else ''}: early stopping and ensemble "
            "weights need validation images (re-run `wbc-data split` with --val above 0)"
        )
    heldout = real_train.iloc[:0]
    if hold_rare:
        real_train, val, heldout, held_notes = _hold_rare(real_train, val, hold_rare, seed)
        notes += held_notes
    if max_per_class:
        real_train, capped = _cap_per_class(real_train, max_per_class, seed)
        if capped:
            notes.append(f"at most {max_per_class:,} real training images per class: {capped:,} train row(s) unused")
    if synthetic_ratio > 0:
        if synthetic.empty:
            raise TrainError(
                f"{where}: --synthetic-ratio {synthetic_ratio:g} but the train split has no synthetic rows "
                "(generate them with `wbc-data synth`, then `wbc-data manifest`)"
            )
        train = pd.concat([real_train, synthetic], ignore_index=True)
    else:
        train = real_train
        if len(synthetic):
            notes.append(f"{len(synthetic):,} synthetic row(s) in the manifest not used (--synthetic-ratio 0)")

    present = set(train["label"])
    missing = [c for c in CLASSES if c in set(val["label"]) and c not in present]
    if missing:
        counts = val["label"].value_counts()
        shown = ", ".join(f"{c} ({counts[c]} val)" for c in missing)
        raise TrainError(
            f"{where}: class(es) {shown} absent from train: a model cannot learn a class it never sees "
            "(add real or synthetic training rows, or leave the class out of the sources)"
        )
    return TrainingData(train.reset_index(drop=True), val.reset_index(drop=True), heldout.reset_index(drop=True), notes)


def _count_coarse_synthetic(frame: pd.DataFrame) -> int:
    if "is_synthetic" not in frame.columns:
        return 0
    synth = is_synthetic(frame) & is_usable(frame)
    return int((synth & (frame["label_status"] != LabelStatus.EXACT.value)).sum())


def _choose(frame: pd.DataFrame, n: int, rng: np.random.Generator) -> np.ndarray:
    """Positions of ``n`` rows of ``frame`` chosen by ``rng``, independent of row order (sorted by sample_id)."""
    order = np.argsort(frame["sample_id"].to_numpy(), kind="stable")
    return np.sort(order[rng.permutation(len(order))[:n]])


def _hold_rare(
    train: pd.DataFrame, val: pd.DataFrame, hold: Mapping[str, int], seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, list[str]]:
    notes = []
    held = []
    keep_train = np.ones(len(train), dtype=bool)
    keep_val = np.ones(len(val), dtype=bool)
    for cls, n in sorted(hold.items()):
        rng = np.random.default_rng([seed, CLASSES.index(cls), 1])
        in_train = np.flatnonzero(train["label"].to_numpy() == cls)
        in_val = np.flatnonzero(val["label"].to_numpy() == cls)
        if len(in_train) <= n:
            notes.append(f"hold_rare {cls}: {n} asked, the train split has only {len(in_train)}: all kept")
            continue
        kept = in_train[_choose(train.iloc[in_train], n, rng)]
        # validation keeps the class as rare as train does (at least one image where it had any)
        n_val = min(len(in_val), max(1, round(n * len(in_val) / len(in_train)))) if len(in_val) else 0
        kept_val = in_val[_choose(val.iloc[in_val], n_val, rng)] if n_val else in_val[:0]
        drop_train = np.setdiff1d(in_train, kept)
        drop_val = np.setdiff1d(in_val, kept_val)
        keep_train[drop_train] = False
        keep_val[drop_val] = False
        held += [train.iloc[drop_train], val.iloc[drop_val]]
        notes.append(
            f"{cls} kept rare: {n} real training and {n_val} validation image(s); the other "
            f"{len(drop_train) + len(drop_val):,} are held out and tested with the test split"
        )
    heldout = pd.concat(held, ignore_index=True) if held else train.iloc[:0]
    return train[keep_train].reset_index(drop=True), val[keep_val].reset_index(drop=True), heldout, notes


def _cap_per_class(train: pd.DataFrame, cap: int, seed: int) -> tuple[pd.DataFrame, int]:
    keep = np.ones(len(train), dtype=bool)
    for cls in sorted(set(train["label"])):
        rows = np.flatnonzero(train["label"].to_numpy() == cls)
        if len(rows) > cap:
            rng = np.random.default_rng([seed, CLASSES.index(cls), 2])
            chosen = rows[_choose(train.iloc[rows], cap, rng)]
            keep[np.setdiff1d(rows, chosen)] = False
    return train[keep].reset_index(drop=True), int((~keep).sum())
