"""The user's own data when ``--own`` is not given, as the target files declare it: the target's source if it was
ingested, only its training splits (held-out evaluation and test images are not training data). A target that
names no source (uniform:N, min:N, plain counts) falls back on the sources the named targets declare."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from wbc_data.gap.target_files import load_targets
from wbc_data.gap.targets import Target


@dataclass(frozen=True)
class OwnData:
    sources: list[str]
    splits: list[str] | None  # None: every split of the own sources
    note: str


def default_own(frame: pd.DataFrame, target: Target, targets: Path | None = None) -> OwnData:
    if target.source:
        declared = [(target.source, target.train_splits)]
    else:
        declared = [(t.source, t.train_splits) for t in load_targets(targets).values() if t.source]
    present = set(frame["source"].unique())
    chosen = [(source, splits) for source, splits in declared if source in present]
    sources = list(dict.fromkeys(source for source, _ in chosen))
    if not sources:
        names = ", ".join(dict.fromkeys(str(s) for s, _ in declared)) or "none declared"
        return OwnData([], None, f"no own data (no --own given and no target source ingested: {names})")
    if any(splits is None for _, splits in chosen):
        return OwnData(sources, None, f"own data = {', '.join(sources)} (all splits)")
    splits = list(dict.fromkeys(s for _, split_list in chosen for s in split_list or ()))
    own_rows = frame["source"].isin(sources)
    in_splits = frame["source_split"].isin(splits)
    if not (own_rows & in_splits).any():  # ingested without its splits: all of it is own data
        return OwnData(sources, None, f"own data = {', '.join(sources)} (none of its rows in {', '.join(splits)})")
    held = frame.loc[own_rows & ~in_splits, "source_split"].fillna("(no split)").unique()
    held_out = f"held out: {', '.join(sorted(held))}; " if len(held) else ""
    return OwnData(
        sources, splits, f"own data = {', '.join(sources)} {' + '.join(splits)} ({held_out}--own-split to change)"
    )
