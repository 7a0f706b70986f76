"""Merge per-source manifests into the unified manifest (the input of dedup, split and the gap report).

Merging owns ``manifest.parquet`` and nothing else: the results of later stages live in their own files
(``wbc_data.core.stages``) and survive a re-merge; the merge reports which of them the new rows made stale.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa

from wbc_data.core import manifest
from wbc_data.core.errors import UserError
from wbc_data.core.progress import Progress, or_null
from wbc_data.core.roots import INFO_KEY, infos_to_json, read_source_info
from wbc_data.core.workspace import Workspace
from wbc_data.io.locks import check_workspace_folder, writer_lock


class MergeError(UserError):
    pass


@dataclass
class MergeOptions:
    sources: list[str] | None = None  # merge only these ingested sources (default: every one)
    reports: bool = True  # write reports/manifest.{md,html} and the class chart


@dataclass
class MergeResult:
    path: Path
    frame: pd.DataFrame  # the unified manifest without thumbnails
    stages: list = field(default_factory=list)  # wbc_data.core.stages.StageStatus, one per stage found
    report_paths: list[Path] = field(default_factory=list)  # Markdown, then HTML


def run_merge(
    workspace: Workspace, options: MergeOptions | None = None, progress: Progress | None = None
) -> MergeResult:
    """The merge stage: the unified manifest, then (unless ``reports`` is off) its report."""
    options = options or MergeOptions()
    progress = or_null(progress)
    progress.phase("merge")
    result = merge(workspace, options.sources)
    if options.reports:
        from wbc_data.manifest.report import build

        progress.phase("report")
        result.report_paths = list(build(result.frame, workspace.reports_dir))
    return result


def merge(workspace: Workspace, sources: list[str] | None = None) -> MergeResult:
    """Concatenate per-source manifests (all, or the named ones) and write ``manifest.parquet`` atomically (no
    report: :func:`run_merge` is the stage)."""
    from wbc_data.core.stages import stage_statuses

    check_workspace_folder(workspace.root)
    paths = workspace.source_manifests()
    if sources:
        wanted = set(sources)
        missing = wanted - {p.stem for p in paths}
        if missing:
            raise MergeError(f"no ingested source named {', '.join(sorted(missing))} in {workspace.sources_dir}")
        paths = [p for p in paths if p.stem in wanted]
    if not paths:
        raise MergeError(f"{workspace.sources_dir}: nothing ingested yet (run `wbc-data ingest <source> <path>`)")
    with writer_lock(workspace.root, "manifest"):
        tables = [manifest.read(p) for p in paths]
        table = pa.concat_tables(tables, promote_options="default")
        infos = [read_source_info(p) for p in paths]
        manifest.write(
            table,
            workspace.unified_manifest,
            sources=",".join(p.stem for p in paths),
            **{INFO_KEY: infos_to_json(infos)},
        )
    frame = manifest.to_frame(table.drop_columns(["thumb"]))
    return MergeResult(workspace.unified_manifest, frame, stage_statuses(workspace, frame))
