"""`dedup`: exact and near duplicates across sources, keep one, audit leakage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from wbc_data.cli.app import WorkspaceOpt, app, console, frame_table, friendly_errors, progress_bar
from wbc_data.workspace import Workspace


@app.command("dedup")
@friendly_errors
def dedup_cmd(
    workspace: WorkspaceOpt = None,
    threshold: Annotated[
        int | None, typer.Option("--threshold", "-t", help="Hamming radius on 64-bit pHashes (default 8).")
    ] = None,
    against: Annotated[
        Path | None, typer.Option("--against", help="Evaluation set to audit for leakage: a manifest or a folder.")
    ] = None,
    exclude_leaks: Annotated[
        bool, typer.Option("--exclude-leaks", help="Mark training rows with a copy in --against as not kept.")
    ] = False,
    policy: Annotated[
        Path | None, typer.Option("--policy", help="YAML keep policy (default: the source YAML's keep_priority/role).")
    ] = None,
    crop_threshold: Annotated[
        int, typer.Option("--crop-threshold", help="Hamming radius for cropped copies (default 10).")
    ] = 10,
    crops: Annotated[bool, typer.Option("--crops/--no-crops", help="Also search cropped copies (up to ~10%).")] = True,
    workers: Annotated[int, typer.Option("--workers", "-j", help="Worker processes for --against folders.")] = 0,
) -> None:
    """Find exact and near duplicates (any flip/rotation, small crops) across sources, keep one, audit leakage."""
    from wbc_data.dedup.policy import KeepPolicy, default_policy
    from wbc_data.dedup.run import DEFAULT_THRESHOLD, DedupOptions, dedup

    ws = Workspace.at(workspace)
    options = DedupOptions(
        threshold=DEFAULT_THRESHOLD if threshold is None else threshold,
        policy=KeepPolicy.from_yaml(policy) if policy else default_policy(),
        against=against,
        exclude_leaks=exclude_leaks,
        workers=workers,
        crop_threshold=crop_threshold if crops else None,
    )
    with progress_bar("dedup") as bar:
        task = bar.add_task("dedup", total=None)
        result = dedup(ws, options, step=lambda name: bar.update(task, description=f"dedup: {name}"))
    console.print(frame_table(result.summary(), title="Duplicates"))
    if against is not None:
        console.print(f"leakage: {len(result.leaks):,} training row(s) have a copy in {against}", highlight=False)
    console.print(f"dedup results: {result.stage_path} (joined when the manifest is read)", highlight=False)
    for path in result.report_paths:
        console.print(f"report: {path}", highlight=False)
