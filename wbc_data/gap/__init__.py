"""The gap report: what each class has (own data, each external source, after dedup, coarse, synthetic),
against a target, and the synth plan that fills what real data cannot."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from wbc_data.core import manifest
from wbc_data.core.stages import load_view
from wbc_data.core.workspace import Workspace
from wbc_data.gap.errors import GapError, PlanError
from wbc_data.gap.plan import DEFAULT_MAX_SYNTH_FACTOR, SynthPlan, load_plan, make_plan, write_plan
from wbc_data.gap.report import ReportFiles, write_report
from wbc_data.gap.status import Thresholds
from wbc_data.gap.table import COLUMNS_NEEDED, OPTIONAL_COLUMNS, GapTable, gap_table

__all__ = ["GapError", "GapOptions", "GapResult", "PlanError", "SynthPlan", "load_plan", "plan_frame", "run_gap_report"]


@dataclass
class GapOptions:
    """What the gap report compares against and what it writes (the defaults live here only)."""

    target: str = "wbcbench"  # wbcbench | a named target | uniform:N | min:N | a targets YAML
    own: Sequence[str] | None = None  # sources that are the user's own data (default: the target's source)
    own_splits: Sequence[str] | None = None  # of the own sources, only these source splits
    target_labels: Path | None = None  # the target's label tables, when not the shipped ones
    thresholds: Thresholds = field(default_factory=Thresholds)
    quota: Path | None = None  # write the synth plan here
    max_synth_factor: float = DEFAULT_MAX_SYNTH_FACTOR
    manifest_path: Path | None = None  # a manifest file of its own instead of the workspace's


@dataclass(frozen=True)
class GapResult:
    gap: GapTable
    files: ReportFiles
    plan: SynthPlan | None
    plan_path: Path | None


def read_manifest(workspace: Workspace, path: Path) -> tuple[pd.DataFrame, list[str]]:
    """Only the columns the report needs (no thumbnails), with the dedup stage's results joined where it ran;
    plus a note for every stage whose results are stale."""
    if path != workspace.unified_manifest:  # a manifest file of its own: no stages to join
        table = manifest.read(path)
        columns = COLUMNS_NEEDED + [c for c in OPTIONAL_COLUMNS if c in table.column_names]
        return manifest.to_frame(table.select(columns)), []
    view = load_view(workspace, [*COLUMNS_NEEDED, "is_synthetic"])
    frame = view.frame[COLUMNS_NEEDED + [c for c in OPTIONAL_COLUMNS if c in view.frame.columns]]
    return frame, [s.message() for s in view.stages if not s.fresh]


def plan_frame(plan: SynthPlan) -> pd.DataFrame:
    rows = [
        {
            "class": c,
            "generate": q.generate,
            "real": q.real,
            "existing synthetic": q.existing_synthetic,
            "target": "-" if q.target is None else q.target,
            "reason": q.reason,
        }
        for c, q in plan.classes.items()
    ]
    return pd.DataFrame(rows)


def run_gap_report(workspace: Workspace, options: GapOptions | None = None) -> GapResult:
    """Read the unified manifest, compute the gap table, write the report files (and the plan if asked)."""
    o = options or GapOptions()
    if o.quota is not None and Path(o.quota).is_dir():
        example = Path(o.quota) / "synth-plan.yaml"
        raise GapError(f"--quota {o.quota}: a folder; name the plan file to write (e.g. {example})")
    path = Path(o.manifest_path or workspace.unified_manifest)
    if not path.is_file():
        raise GapError(f"{path}: no unified manifest (run `wbc-data manifest` first)")
    frame, stale = read_manifest(workspace, path)
    from wbc_data.sources.definition import source_definitions

    definitions = source_definitions(workspace, sorted(frame["source"].dropna().astype(str).unique()))
    gap = gap_table(frame, o.target, own=o.own, own_splits=o.own_splits, thresholds=o.thresholds,
                    target_labels=o.target_labels, definitions=definitions)  # fmt: skip
    gap.notes.extend(stale)
    plan = None
    if o.quota is not None:
        t = gap.classes
        plan = make_plan(
            t["available"].to_dict(), gap.target.counts, t["synthetic"].to_dict(), o.max_synth_factor, gap.target.spec
        )
        write_plan(plan, o.quota)
    files = write_report(gap, workspace.reports_dir, o.quota, plan_frame(plan) if plan else None)
    return GapResult(gap, files, plan, o.quota)
