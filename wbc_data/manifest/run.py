"""``wbc-data manifest``: one command for four jobs on the workspace's manifests, decided here so the CLI only
parses and renders: explain how a source's raw labels were mapped (nothing else runs), re-point source roots
(``roots.yaml``), check that every usable row opens on this machine (no merge), or merge the per-source manifests
into the unified one with its report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from wbc_data.core.progress import Progress, or_null
from wbc_data.core.workspace import Workspace
from wbc_data.manifest.check import CheckResult
from wbc_data.manifest.explain import Explanation
from wbc_data.manifest.merge import MergeOptions, MergeResult, run_merge

CHECK_FILE = "check.csv"
"""Every row the check found unusable, in the reports folder (written only when there are some)."""


@dataclass
class ManifestOptions:
    sources: list[str] | None = None  # merge only these ingested sources (default: every one)
    explain: str | None = None  # show how this ingested source's raw labels were mapped; nothing else runs
    roots: dict[str, str] = field(default_factory=dict)  # re-point sources: name -> path, saved in roots.yaml
    check: bool = False  # report usable rows whose file is missing or unreadable here (no merge)
    verify: bool = False  # check, and decode every row to compare its pixel hash
    workers: int = 0  # worker processes for verify (0 = every core)
    reports: bool = True  # the merge's report


@dataclass
class ManifestResult:
    explanation: Explanation | None = None
    roots: dict[str, str] = field(default_factory=dict)  # what was re-pointed
    roots_file: Path | None = None
    check: CheckResult | None = None
    check_file: Path | None = None  # all problem rows (CSV), when the check found some
    merged: MergeResult | None = None  # None when the job was explain, check, or roots of an empty workspace
    notes: list[str] = field(default_factory=list)


def run_manifest(workspace: Workspace, options: ManifestOptions, progress: Progress | None = None) -> ManifestResult:
    """Run the jobs ``options`` ask for, in the order the command always ran them."""
    progress = or_null(progress)
    if options.explain is not None:
        from wbc_data.manifest.explain import explain_source

        return ManifestResult(explanation=explain_source(workspace, options.explain))
    result = ManifestResult()
    if options.roots:
        from wbc_data.core.roots import save_roots
        from wbc_data.core.workspace import known_source_names

        known_source_names(workspace, options.roots)
        result.roots_file = save_roots(workspace.root, options.roots)
        result.roots = dict(options.roots)
        for name, location in options.roots.items():
            where = Path(location).expanduser()
            places = [where] if where.is_absolute() else [workspace.root / where, where]  # as Roots resolves it
            if not reads_rows(workspace, name) and not any(p.is_dir() for p in places):  # a Hub id names no folder
                result.notes.append(f"root {name} -> {location}: no such folder here (saved anyway; its rows will "
                                    "not open until it exists: `wbc-data manifest --check` lists them)")  # fmt: skip
    if options.check or options.verify:
        result.check, result.check_file = _check(workspace, options, progress)
        return result
    if options.roots and not workspace.source_manifests():
        return result  # a workspace copied without its per-source manifests: nothing to merge, the roots are saved
    result.merged = run_merge(workspace, MergeOptions(sources=options.sources, reports=options.reports), progress)
    return result


def _check(workspace: Workspace, options: ManifestOptions, progress: Progress) -> tuple[CheckResult, Path | None]:
    from wbc_data.io.pixels import PixelLoader
    from wbc_data.manifest.check import check_manifest
    from wbc_data.report.document import write_csv

    progress.phase("verify" if options.verify else "check")
    loader = PixelLoader.for_workspace(workspace)
    check = check_manifest(workspace.unified_manifest, loader, options.verify, options.workers, progress)
    if check.ok:
        return check, None
    return check, write_csv(workspace.reports_dir / CHECK_FILE, check.problems)


def reads_rows(workspace: Workspace, source: str) -> bool:
    """Whether ``source`` was read by an adapter whose samples are dataset rows (its root may be a Hub id)."""
    from wbc_data.core.workspace import workspace_roots
    from wbc_data.sources.base import load_adapter
    from wbc_data.sources.definition import SourceError, get_definition

    info = workspace_roots(workspace).infos.get(source)
    try:
        return load_adapter(get_definition(info.definition if info else source)).reads_rows
    except SourceError:
        return False
