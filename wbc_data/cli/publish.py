"""`publish`: the deduplicated, split manifest as a Hugging Face dataset (licences checked first)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer

from wbc_data.cli.common import (
    RichProgress,
    WorkspaceOpt,
    app,
    console,
    err_console,
    frame_table,
    friendly_errors,
    print_note,
)
from wbc_data.core.workspace import Workspace


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1000
    return f"{size} B"  # pragma: no cover


@app.command("publish")
@friendly_errors
def publish_cmd(
    repo_id: Annotated[str, typer.Option("--repo-id", help="The dataset repo on the Hub, ORG/NAME.")],
    workspace: WorkspaceOpt = None,
    private: Annotated[
        bool, typer.Option("--private", help="Create the repo private (when it does not exist).")
    ] = False,
    include_synthetic: Annotated[
        bool, typer.Option("--include-synthetic", help="Also publish synthetic rows (train only, marked as such).")
    ] = False,
    exclude_source: Annotated[
        list[str] | None, typer.Option("--exclude-source", help="Leave this source out (repeat for several).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Build the repo folder here (default <workspace>/publish/ORG__NAME).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Build everything locally and list what would be uploaded; send nothing.")
    ] = False,
) -> None:
    """Publish train/validation/test as parquet shards with a dataset card; upload only what changed, in one commit."""
    from wbc_data.publish import PublishOptions, publish
    from wbc_data.publish.facts import licence_table

    options = PublishOptions(repo_id, private, include_synthetic, tuple(exclude_source or ()), out, dry_run)
    with RichProgress("publish") as progress:
        published = publish(Workspace.at(workspace), options, progress, hub_bars=err_console.is_terminal)
    plan, built = published.plan, published.built
    console.print(frame_table(licence_table(plan.decision), title="Licences"))
    console.print(plan.decision.statement(), highlight=False, soft_wrap=True)
    for note in built.notes:
        print_note(note)
    counts = ", ".join(f"{s.split} {s.num_examples:,}" for s in built.splits)
    console.print(f"built {built.out} ({plan.total:,} images: {counts})", highlight=False, soft_wrap=True)
    if dry_run:
        files = pd.DataFrame([{"file": f.path, "size": human_size(f.size)} for f in built.files])
        console.print(frame_table(files, title=f"Would upload to {repo_id}"))
        console.print(
            f"dry run: {len(built.files)} files, {human_size(built.size)} would be uploaded to {repo_id};"
            " nothing was sent",
            highlight=False,
        )
        return
    _report_upload(published.upload)


def _report_upload(result: Any) -> None:
    plan = result.plan
    rows = [{"file": f.path, "size": human_size(f.size), "action": "uploaded"} for f in plan.upload]
    rows += [{"file": f.path, "size": human_size(f.size), "action": "unchanged"} for f in plan.unchanged]
    rows += [{"file": p, "size": "", "action": "deleted"} for p in plan.delete]
    console.print(frame_table(pd.DataFrame(rows).sort_values("file"), title=result.url))
    for note in result.notes:
        print_note(note)
    created = "created the dataset repo; " if result.created else ""
    if result.commit_url is None:
        console.print(f"{created}{result.repo_id} is up to date: nothing uploaded", highlight=False)
        return
    console.print(
        f"{created}published {result.repo_id} in one commit: {len(plan.upload)} file(s) uploaded "
        f"({human_size(plan.upload_bytes)}), {len(plan.delete)} deleted, {len(plan.unchanged)} unchanged: "
        f"{result.commit_url}",
        highlight=False,
        soft_wrap=True,
    )
