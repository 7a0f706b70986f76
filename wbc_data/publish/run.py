"""``wbc-data publish`` in three steps, so a caller can show each one: plan (every check, nothing written), build
(the folder the Hub repo will hold), upload (only what changed, one commit)."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wbc_data.core.progress import Progress, or_null
from wbc_data.core.stages import ManifestView, load_view, read_stage
from wbc_data.core.workspace import Workspace
from wbc_data.io.atomic import atomic_write_text
from wbc_data.io.pixels import PixelLoader
from wbc_data.publish.card import CardInputs, card_text
from wbc_data.publish.folder import LocalFile, check_output_folder, list_files, staging, write_marker
from wbc_data.publish.hfdata import PUBLISHED_COLUMNS, features
from wbc_data.publish.licences import LicenceDecision, decide, source_licences, training_terms
from wbc_data.publish.rows import PublishError, PublishRows, choose_rows
from wbc_data.publish.shards import DATA_DIR, SplitShards, write_split
from wbc_data.publish.upload import UploadResult, require_token, upload_folder_changes
from wbc_data.sources.definition import SourceDefinition, source_definitions

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")
IMAGES_DIR = "images"


@dataclass
class PublishOptions:
    repo_id: str  # ORG/NAME
    private: bool = False
    include_synthetic: bool = False
    exclude_sources: Sequence[str] = ()
    out: Path | None = None  # default: <workspace>/publish/<ORG>__<NAME>
    dry_run: bool = False


@dataclass
class PublishPlan:
    """Everything decided before anything is written."""

    workspace: Workspace
    options: PublishOptions
    out: Path
    view: ManifestView
    rows: PublishRows
    decision: LicenceDecision
    definitions: dict[str, SourceDefinition | None]
    columns: list[str]
    features: Any  # datasets.Features

    @property
    def total(self) -> int:
        return len(self.rows.frame)


@dataclass
class BuiltFolder:
    out: Path
    files: list[LocalFile]
    splits: list[SplitShards]
    notes: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


@dataclass
class PublishResult:
    plan: PublishPlan
    built: BuiltFolder
    upload: UploadResult | None = None  # None: --dry-run


def check_repo_id(repo_id: str) -> str:
    if not REPO_ID.match(repo_id or "") or "--" in repo_id or ".." in repo_id:
        raise PublishError(
            f"--repo-id {repo_id!r}: expected ORG/NAME (letters, digits, '-', '_', '.'), e.g. my-lab/wbc-13"
        )
    return repo_id


def default_out(workspace: Workspace, repo_id: str) -> Path:
    return workspace.publish_folder(repo_id)


def plan_publish(workspace: Workspace, options: PublishOptions) -> PublishPlan:
    """Check everything (repo id, token, fresh dedup and split, licences, output folder) and write nothing."""
    repo_id = check_repo_id(options.repo_id)
    if not options.dry_run:
        require_token()
    view = load_view(workspace)
    rows = choose_rows(view, options.include_synthetic, options.exclude_sources)
    definitions = source_definitions(workspace, sorted(view.frame["source"].dropna().unique()))
    decision = decide(source_licences(rows.frame, definitions, training_terms(view.frame, definitions)))
    decision.check()
    out = Path(options.out) if options.out is not None else default_out(workspace, repo_id)
    check_output_folder(out)
    columns = [c for c in PUBLISHED_COLUMNS if c in rows.frame.columns]
    return PublishPlan(workspace, options, out, view, rows, decision, definitions, columns, features(columns))


def build_folder(plan: PublishPlan, progress: Progress | None = None, loader: PixelLoader | None = None) -> BuiltFolder:
    """Write the shards, the card and the chart into a staging folder and swap it in for the output folder; one
    progress phase per split."""
    loader = loader or PixelLoader.for_workspace(plan.workspace)
    progress = or_null(progress)
    notes: list[str] = []
    with staging(plan.out) as folder:
        written = []
        for split in plan.rows.splits:
            part = plan.rows.split(split)
            progress.phase(f"{split} ({len(part):,} rows)", len(part))
            counted = _Counted(progress, len(part))
            written.append(write_split(part, loader, plan.columns, plan.features, folder / DATA_DIR, split, counted))
        chart, target = _gap_chart(plan.workspace, folder, notes)
        inputs = CardInputs(
            repo_id=plan.options.repo_id,
            rows=plan.rows,
            decision=plan.decision,
            splits=written,
            features=plan.features,
            definitions=plan.definitions,
            workspace_frame=plan.view.frame,
            stage_params={s: _params(plan.workspace, s) for s in ("dedup", "split")},
            shard_sizes={s.split: sum(p.stat().st_size for p in s.paths) for s in written},
            gap_chart=chart,
            gap_target=target,
        )
        atomic_write_text(folder / "README.md", card_text(inputs, folder))
        files = list_files(folder)
        write_marker(folder, plan.options.repo_id, files)
        splits = [
            SplitShards(s.split, [plan.out / p.relative_to(folder) for p in s.paths], s.num_examples, s.num_bytes)
            for s in written
        ]
    return BuiltFolder(plan.out, files, splits, notes)


def upload(plan: PublishPlan, built: BuiltFolder, show_progress: bool = False) -> UploadResult:
    """Send what the Hub repo lacks, in one commit (see :mod:`wbc_data.publish.upload`)."""
    counts = ", ".join(f"{s.split} {s.num_examples:,}" for s in built.splits)
    return upload_folder_changes(
        built.out,
        built.files,
        plan.options.repo_id,
        private=plan.options.private,
        commit_message=f"wbc-data publish: {plan.total:,} images ({counts})",
        commit_description=plan.decision.statement(),
        show_progress=show_progress,
    )


def publish(
    workspace: Workspace, options: PublishOptions, progress: Progress | None = None, hub_bars: bool = False
) -> PublishResult:
    """Plan (every check before anything is written), build, and (unless ``dry_run``) upload; ``hub_bars`` shows
    huggingface_hub's own upload bars."""
    plan = plan_publish(workspace, options)
    built = build_folder(plan, progress)
    return PublishResult(plan, built, None if options.dry_run else upload(plan, built, show_progress=hub_bars))


class _Counted:
    """The shard writer's per-row increments as the absolute count a progress phase expects."""

    def __init__(self, progress: Progress, total: int) -> None:
        self.progress, self.total, self.done = progress, total, 0

    def __call__(self, rows: int) -> None:
        self.done += rows
        self.progress.advance(self.done, self.total)


def _params(workspace: Workspace, stage: str) -> dict[str, Any]:
    path = workspace.stage_path(stage)
    if not path.is_file():
        return {}
    params = read_stage(path).json_meta("params")
    return params if isinstance(params, dict) else {}


def _gap_chart(workspace: Workspace, folder: Path, notes: list[str]) -> tuple[Path | None, str | None]:
    """Copy the gap report's class chart into the folder (the card embeds it); its target for the caption."""
    from wbc_data.gap.report import STEM

    chart = workspace.reports_dir / f"{STEM}-classes.png"
    if not chart.is_file():
        notes.append("no gap report in the workspace: run `wbc-data gap-report` to embed its chart in the card")
        return None, None
    copy = folder / IMAGES_DIR / chart.name
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(chart, copy)
    target = None
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError, AttributeError):
        report = json.loads((workspace.reports_dir / f"{STEM}.json").read_text(encoding="utf-8"))
        target = str(report["target"]["description"]).split(" (")[0]  # the name, not how it was counted
    return copy, target
