"""`split`: train / val / test (and folds) that never leak."""

from __future__ import annotations

from typing import Annotated

import typer

from wbc_data.cli.common import RichProgress, WorkspaceOpt, app, console, frame_table, friendly_errors, print_note
from wbc_data.core.workspace import Workspace


@app.command("split")
@friendly_errors
def split_cmd(
    workspace: WorkspaceOpt = None,
    val: Annotated[float, typer.Option("--val", help="Share of each class for validation.")] = 0.15,
    test: Annotated[float, typer.Option("--test", help="Share of each class for test.")] = 0.15,
    folds: Annotated[
        int, typer.Option("--folds", help="Also K cross-validation folds over train + val (0: none).")
    ] = 0,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same data: same split.")] = 0,
    by: Annotated[
        str, typer.Option("--by", help="Keep together rows of one patient (patient) or only of one group (group).")
    ] = "patient",
    keep_source_splits: Annotated[
        bool,
        typer.Option(
            "--keep-source-splits", help="Keep sources' official test/val rows there (WBCBench eval, Raabin TestA/B)."
        ),
    ] = False,
    without_dedup: Annotated[
        bool, typer.Option("--without-dedup", help="Split although dedup has not run (copies may then straddle).")
    ] = False,
) -> None:
    """Assign train/val/test so that no patient, field, group or duplicate cluster straddles splits."""
    from wbc_data.split import SplitOptions, run_split

    options = SplitOptions(val=val, test=test, folds=folds, seed=seed, by=by,
                           keep_source_splits=keep_source_splits, without_dedup=without_dedup)  # fmt: skip
    with RichProgress("split") as progress:
        result = run_split(Workspace.at(workspace), options, progress)
    console.print(frame_table(result.table.reset_index(), title="Eligible images per class and split"))
    console.print(frame_table(result.units, title="Leak units per split"))
    for note in result.notes:
        print_note(note)
    console.print(f"split results: {result.stage_path} (joined when the manifest is read)", highlight=False)
    for path in result.report_paths:
        console.print(f"report: {path}", highlight=False)
