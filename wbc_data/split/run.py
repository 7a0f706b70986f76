"""Run the split stage: read the manifest with dedup joined, build leak units, assign them, check that nothing
straddles, write ``stages/split.parquet`` and the report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from wbc_data.core.errors import UserError
from wbc_data.core.progress import Progress, or_null
from wbc_data.core.rows import is_usable
from wbc_data.core.stages import load_view, require_manifest, set_aside_if_damaged, write_stage
from wbc_data.core.workspace import Workspace
from wbc_data.io.locks import writer_lock
from wbc_data.split.assign import SPLITS, assign_units, eligible_rows
from wbc_data.split.folds import assign_folds
from wbc_data.split.official import official_splits
from wbc_data.split.report import class_split_table, unreached, write_report
from wbc_data.split.units import BY_CHOICES, leak_units, straddling_units

STAGE = "split"
COLUMNS = ["sample_id", "source", "source_split", "status", "label", "label_status", "group_id", "patient_id",
           "parent_id", "is_synthetic"]  # fmt: skip


class SplitError(UserError):
    pass


@dataclass
class SplitOptions:
    val: float = 0.15
    test: float = 0.15
    folds: int = 0
    seed: int = 0
    by: str = "patient"
    keep_source_splits: bool = False
    without_dedup: bool = False  # split even though dedup has not run (duplicate clusters then cannot be kept together)

    def check(self) -> None:
        for name, value in (("--val", self.val), ("--test", self.test)):
            if not 0.0 <= value < 1.0:
                raise SplitError(f"{name} {value}: a share between 0 and 1")
        if self.val + self.test >= 1.0:
            raise SplitError(f"--val {self.val} + --test {self.test} leave nothing for train")
        if self.folds == 1 or self.folds < 0:
            raise SplitError(f"--folds {self.folds}: use 0 (no folds) or at least 2")
        if self.by not in BY_CHOICES:
            raise SplitError(f"--by {self.by}: use one of {', '.join(BY_CHOICES)}")

    def describe(self) -> str:
        folds = f", {self.folds} folds over train+val" if self.folds else ""
        kept = ", official source splits kept" if self.keep_source_splits else ""
        return f"val {self.val:g}, test {self.test:g}, seed {self.seed}, units by {self.by}{folds}{kept}"


@dataclass
class SplitResult:
    stage_path: Path
    frame: pd.DataFrame  # usable rows with split, fold, split_unit, split_note
    table: pd.DataFrame  # classes x splits
    units: pd.DataFrame  # independent units per split
    notes: list[str] = field(default_factory=list)
    report_paths: list[Path] = field(default_factory=list)


def run_split(
    workspace: Workspace, options: SplitOptions | None = None, progress: Progress | None = None
) -> SplitResult:
    options = options or SplitOptions()
    options.check()
    require_manifest(workspace)
    with writer_lock(workspace.root, STAGE):
        return _run_split(workspace, options, or_null(progress))


def _run_split(workspace: Workspace, options: SplitOptions, progress: Progress) -> SplitResult:
    progress.phase("read")
    healed = set_aside_if_damaged(workspace, STAGE)
    view = load_view(workspace, COLUMNS)
    dedup = view.status("dedup")
    if dedup is None and not options.without_dedup:
        raise SplitError(
            f"{view.path}: run `wbc-data dedup` first so that copies of one cell never straddle splits "
            "(or pass --without-dedup to split anyway)"
        )
    if dedup is not None and not dedup.fresh:
        raise SplitError(f"{view.path}: dedup results are stale, so copies could straddle splits; {dedup.message()}")
    frame = view.frame[is_usable(view.frame)].reset_index(drop=True)
    if frame.empty:
        raise SplitError(f"{view.path}: no usable rows to split")

    progress.phase("units")
    units = leak_units(frame, options.by)
    fixed = official_splits(frame, source_split_maps(workspace)) if options.keep_source_splits else None
    progress.phase("assign")
    assignment = assign_units(frame, units, {"val": options.val, "test": options.test}, options.seed, fixed)
    split = assignment.split
    eligible = eligible_rows(frame)
    notes = [healed] if healed else []
    notes += assignment.notes
    fold = np.full(len(frame), -1, dtype=np.int64)
    if options.folds:
        fold = assign_folds(frame, units, eligible, np.isin(split, ["train", "val"]), options.folds, options.seed)
    in_split = np.where(np.isin(split, SPLITS), split, None)
    straddle = straddling_units(units, in_split)
    if len(straddle):  # the assignment is per unit: this would be a bug, never a data problem
        raise RuntimeError(f"internal error: {len(straddle)} leak unit(s) straddle splits")

    first_id = pd.Series(frame["sample_id"].to_numpy()).groupby(units).transform("min").to_numpy()
    frame = frame.assign(split=split, split_unit=first_id, split_note=assignment.note,
                         fold=pd.array(np.where(fold >= 0, fold, None), dtype="Int32"))  # fmt: skip
    results = frame[["sample_id", "split", "fold", "split_unit", "split_note"]]
    stage_path, _ = write_stage(
        workspace,
        STAGE,
        results,
        frame,
        command="wbc-data split",
        params=vars(options),
        upstream=["dedup"] if dedup is not None else [],
        defaults_for_synthetic={"split": "train"},
    )
    table = class_split_table(frame, eligible)
    notes += unreached(table)
    unit_table = _unit_table(frame, units, eligible)
    result = SplitResult(stage_path, frame, table, unit_table, notes)
    progress.phase("report")
    result.report_paths = write_report(table, unit_table, notes, options.describe(), workspace.reports_dir)
    return result


def _unit_table(frame: pd.DataFrame, units: np.ndarray, eligible: np.ndarray) -> pd.DataFrame:
    parts = pd.DataFrame({"split": frame["split"].to_numpy(), "unit": units, "eligible": eligible})
    rows = []
    for split in [*SPLITS, "excluded"]:
        part = parts[parts["split"] == split]
        sizes = part.groupby("unit").size()
        placed = split != "excluded"  # excluded rows are not placed: their patients' units sit in the splits above
        rows.append({"split": split, "rows": len(part), "eligible images": int(part["eligible"].sum()),
                     "units": len(sizes) if placed else None,
                     "largest unit": (int(sizes.max()) if len(sizes) else 0) if placed else None})  # fmt: skip
    table = pd.DataFrame(rows)
    return table.astype({"units": "Int64", "largest unit": "Int64"})


def source_split_maps(workspace: Workspace) -> dict[str, dict[str, str]]:
    """``{ingested source: {its split value: train|val|test}}`` from each source definition's ``splits:``."""
    from wbc_data.core.workspace import workspace_roots
    from wbc_data.sources.definition import SourceError, get_definition

    maps: dict[str, dict[str, str]] = {}
    for name, info in workspace_roots(workspace).infos.items():
        try:
            definition = get_definition(info.definition)
        except SourceError:
            continue
        maps[name] = dict(definition.splits)
    return maps
