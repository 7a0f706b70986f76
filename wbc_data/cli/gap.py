"""`gap-report`: what each class has against a target, and the synth plan."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from wbc_data.cli.common import WorkspaceOpt, app, console, frame_table, friendly_errors, print_note
from wbc_data.core.workspace import Workspace


def render_gap_table(gap: Any) -> None:
    """The target and the per-class gap table (shared by `gap-report` and `demo`)."""
    from wbc_data.gap.report import display_table

    console.print(f"target: {gap.target.description}", highlight=False, soft_wrap=True)
    console.print(frame_table(display_table(gap, compact=True), title="Gap per class"))


@app.command("gap-report")
@friendly_errors
def gap_report(
    workspace: WorkspaceOpt = None,
    target: Annotated[
        str,
        typer.Option(
            "--target", "-t", help="A named target (manifests/targets) | uniform:N | min:N | a YAML file of counts."
        ),
    ] = "wbcbench",
    own: Annotated[
        list[str] | None,
        typer.Option("--own", help="Source(s) that are the user's own data (default: the target's, if ingested)."),
    ] = None,
    own_split: Annotated[
        list[str] | None,
        typer.Option(
            "--own-split", help="Count only these source_split values of own data (default: the target's train_splits)."
        ),
    ] = None,
    target_labels: Annotated[
        Path | None,
        typer.Option(
            "--target-labels",
            "--wbcbench-labels",
            help="Label files of the target's source to recount from (wbcbench: the folder of its label CSVs).",
        ),
    ] = None,
    solved_at: Annotated[float, typer.Option("--solved-at", help="available/target at or above: solved.")] = 1.0,
    partial_at: Annotated[float, typer.Option("--partial-at", help="available/target at or above: partial.")] = 0.5,
    quota: Annotated[
        Path | None, typer.Option("--quota", help="Write a synth plan YAML here (read by `wbc-data synth --plan`).")
    ] = None,
    max_synth_factor: Annotated[
        float, typer.Option("--max-synth-factor", help="At most this many synthetic images per real image of a class.")
    ] = 10.0,
) -> None:
    """Per class: own data, each external source, after dedup, coarse and synthetic apart, gain, status vs a target."""
    from wbc_data.gap import GapOptions, plan_frame, run_gap_report
    from wbc_data.gap.status import Thresholds

    ws = Workspace.at(workspace)
    options = GapOptions(
        target=target,
        own=own,
        own_splits=own_split,
        target_labels=target_labels,
        thresholds=Thresholds(solved_at=solved_at, partial_at=partial_at),
        quota=quota,
        max_synth_factor=max_synth_factor,
    )
    result = run_gap_report(ws, options)
    gap = result.gap
    render_gap_table(gap)
    sources = gap.sources[["source", "role", "licence", "publish", "commercial", "exact images", "after dedup"]]
    console.print(frame_table(sources, title="Sources"))
    for note in gap.notes:
        print_note(note)
    if result.plan is not None:
        console.print(frame_table(plan_frame(result.plan), title=f"Synth plan ({result.plan.total:,} images)"))
        console.print(f"synth plan: {result.plan_path}", highlight=False)
    console.print(f"report: {result.files.html}", highlight=False)
