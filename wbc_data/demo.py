"""The main job on the built-in real sample: the whole data road in seconds, with no download.

ingest PBC and a Kaggle re-upload that copies some of it -> merge -> dedup (finds the copies) -> split ->
gap-report against the WBCBench 2026 training distribution, with a synth plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from wbc_data.dedup.run import DedupOptions, DedupResult, dedup
from wbc_data.gap import GapResult, run_gap_report
from wbc_data.ingest.engine import IngestOptions, IngestResult, ProgressFn, ingest
from wbc_data.merge import merge
from wbc_data.report.manifest_report import build
from wbc_data.resources import sample_dir
from wbc_data.split import SplitOptions, SplitResult, run_split
from wbc_data.workspace import Workspace


@dataclass
class DemoResult:
    ingests: list[IngestResult] = field(default_factory=list)
    manifest_path: Path | None = None
    manifest: pd.DataFrame | None = None
    report_path: Path | None = None
    dedup: DedupResult | None = None
    split: SplitResult | None = None
    gap: GapResult | None = None


def run_demo(workspace: Workspace, workers: int = 0, progress: ProgressFn | None = None) -> DemoResult:
    sample = sample_dir()
    result = DemoResult()
    options = IngestOptions(workers=workers)
    result.ingests.append(ingest("pbc", sample / "pbc", workspace, options, progress))
    result.ingests.append(ingest("kaggle-cancer-mix", sample / "kaggle_cancer_mix", workspace, options, progress))
    merged = merge(workspace, [r.name for r in result.ingests])
    result.manifest_path, result.manifest = merged.path, merged.frame
    _, result.report_path = build(result.manifest, workspace.reports_dir)
    result.dedup = dedup(workspace, DedupOptions(workers=workers))
    result.split = run_split(workspace, SplitOptions(val=0.2, test=0.2, seed=0))
    result.gap = run_gap_report(workspace, "wbcbench", quota=workspace.reports_dir / "synth-plan.yaml")
    return result
