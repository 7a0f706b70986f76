"""`dedup`: exact and near duplicates across sources (any angle, fill borders ignored), keep one, audit leakage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from wbc_data.cli.common import RichProgress, WorkspaceOpt, app, console, frame_table, friendly_errors
from wbc_data.core.workspace import Workspace


@app.command("dedup")
@friendly_errors
def dedup_cmd(
    workspace: WorkspaceOpt = None,
    threshold: Annotated[
        int | None, typer.Option("--threshold", "-t", help="Hamming radius of the pHash candidates (default 8).")
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
        int, typer.Option("--crop-threshold", help="Hamming radius of the crop-hash candidates.")
    ] = 10,
    crops: Annotated[
        bool, typer.Option("--crops/--no-crops", help="Also take candidates from the crop hashes (up to ~10%).")
    ] = True,
    min_correlation: Annotated[
        float | None,
        typer.Option("--min-correlation", help="Correlation a registered copy needs (default 0.90)."),
    ] = None,
    neighbours: Annotated[
        int | None,
        typer.Option("--neighbours", help="Bag-of-words candidates registered per image and mirror image (default 4)."),
    ] = None,
    fields: Annotated[
        bool,
        typer.Option("--fields/--no-fields", help="Search rows inside field images (crops of a field, at any angle)."),
    ] = True,
    regions: Annotated[
        bool,
        typer.Option(
            "--regions/--no-regions",
            help="With --fields: match keypoints to find zoomed, rotated, sheared or mirrored regions of field images.",
        ),
    ] = True,
    workers: Annotated[int, typer.Option("--workers", "-j", min=0, help="Worker processes (default: every core).")] = 0,
    engine: Annotated[
        str,
        typer.Option("--engine", help="Registration: batched (array passes, default) or reference (pair by pair)."),
    ] = "batched",
    device: Annotated[
        str,
        typer.Option(
            "--device",
            help="auto (a CUDA GPU when torch sees one), cpu or cuda: where the batched registration runs its FFTs.",
        ),
    ] = "auto",
    all_pairs: Annotated[
        bool,
        typer.Option(
            "--all-pairs",
            help="Register every candidate pair, also those inside one set of copies (slower; what the default's "
            "deferral is checked against).",
        ),
    ] = False,
) -> None:
    """Find exact and near copies across sources (any angle, shift, scale, mirror, crop), keep one, audit leakage.

    Fill borders are ignored; crops and regions of field images are linked to their field."""
    from wbc_data.dedup.policy import KeepPolicy, default_policy
    from wbc_data.dedup.run import DEFAULT_MIN_CORRELATION, DEFAULT_NEIGHBOURS, DEFAULT_THRESHOLD, DedupOptions, dedup

    ws = Workspace.at(workspace)
    options = DedupOptions(
        threshold=DEFAULT_THRESHOLD if threshold is None else threshold,
        policy=KeepPolicy.from_yaml(policy) if policy else default_policy(),
        against=against,
        exclude_leaks=exclude_leaks,
        workers=workers,
        crop_threshold=crop_threshold if crops else None,
        min_correlation=DEFAULT_MIN_CORRELATION if min_correlation is None else min_correlation,
        neighbours=DEFAULT_NEIGHBOURS if neighbours is None else neighbours,
        fields=fields,
        regions=regions,
        engine=engine,
        device=device,
        all_pairs=all_pairs,
    )
    with RichProgress("dedup") as progress:
        result = dedup(ws, options, progress)
    console.print(frame_table(result.summary(), title="Duplicates"))
    for note in result.notes():
        console.print(f"note: {note}", highlight=False)
    if against is not None:
        console.print(f"leakage: {len(result.leaks):,} training row(s) have a copy in {against}", highlight=False)
    console.print(f"dedup results: {result.stage_path} (joined when the manifest is read)", highlight=False)
    for path in result.report_paths:
        console.print(f"report: {path}", highlight=False)
