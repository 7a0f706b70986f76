"""`demo`: the whole road on the real sample shipped with the tool."""

from __future__ import annotations

from typing import Annotated

import typer

from wbc_data import summary
from wbc_data.cli.app import WorkspaceOpt, app, console, frame_table, friendly_errors, progress_bar
from wbc_data.cli.data import render_ingest
from wbc_data.cli.gap import render_gap_table
from wbc_data.workspace import Workspace


@app.command()
@friendly_errors
def demo(workspace: WorkspaceOpt = None, workers: Annotated[int, typer.Option("--workers", "-j")] = 0) -> None:
    """Run the main job on the real sample shipped with the tool: ingest, merge, dedup, split, gap report."""
    from wbc_data.demo import run_demo

    ws = Workspace.at(workspace)
    with progress_bar("demo") as bar:
        task = bar.add_task("ingest sample", total=None)
        result = run_demo(ws, workers, progress=lambda done, total: bar.update(task, completed=done, total=total))
    for ingested in result.ingests:
        render_ingest(ingested)
        console.print()
    console.print(
        frame_table(summary.class_by_source(result.manifest), title="Images per class and source", index=True)
    )
    console.print(f"unified manifest: {result.manifest_path} ({len(result.manifest):,} rows)", highlight=False)
    console.print(frame_table(result.dedup.summary(), title="Duplicates (the Kaggle copies of PBC files)"))
    console.print(frame_table(result.split.table.reset_index(), title="Split: eligible images per class"))
    render_gap_table(result.gap.gap)
    console.print(f"synth plan: {result.gap.plan_path}", highlight=False)
    for path in (result.report_path, *result.dedup.report_paths, *result.split.report_paths, result.gap.files.html):
        if str(path).endswith(".html"):
            console.print(f"report: {path}", highlight=False)
