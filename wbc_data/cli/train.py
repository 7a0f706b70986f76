"""`train`, `evaluate`, `predict`: timm classifiers on the manifest's splits, scored on real images only."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from wbc_data.cli.common import (
    RichProgress,
    WorkspaceOpt,
    app,
    console,
    frame_table,
    friendly_errors,
    given,
    print_note,
)
from wbc_data.core.errors import UserError
from wbc_data.core.workspace import Workspace


def _pairs(items: list[str] | None, option: str) -> dict[str, int]:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not value.strip().isdigit():
            raise UserError(f"{option} {item!r}: use CLASS=N, e.g. {option} PMY=13")
        out[key.strip().upper()] = int(value)
    return out


def _split_list(items: list[str] | None) -> list[str] | None:
    if not items:
        return None
    return [part.strip() for item in items for part in item.split(",") if part.strip()]


@app.command("train")
@friendly_errors
def train_cmd(
    recipe: Annotated[
        str, typer.Option("--recipe", "-r", help="Recipe YAML (trainers/<name>.yaml) or a shipped name.")
    ],
    workspace: WorkspaceOpt = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Model folder (default <workspace>/models/<recipe name>).")
    ] = None,
    synthetic_ratio: Annotated[
        float | None,
        typer.Option("--synthetic-ratio", help="Share of each training batch drawn from synthetic rows (default 0)."),
    ] = None,
    sources: Annotated[
        list[str] | None, typer.Option("--sources", help="Train and validate on these sources only (comma-separated).")
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run in --out.")] = False,
    hold_rare: Annotated[
        list[str] | None,
        typer.Option("--hold-rare", help="Keep a class rare: CLASS=N real training images, the rest tested."),
    ] = None,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Override a recipe value: key.path=value (e.g. image.size=64).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", min=0, help="DataLoader workers (default: the recipe's).")
    ] = None,
    members: Annotated[
        list[str] | None, typer.Option("--members", help="Train only these members of the recipe (comma-separated).")
    ] = None,
) -> None:
    """Train the recipe's members on the manifest's splits and save the soft-voting ensemble with a model card.

    One GPU, several, or several machines: `accelerate launch -m wbc_data train --recipe ...` (same options)."""
    from wbc_data.train.run import TrainOptions, run_train

    options = TrainOptions(recipe=recipe, overrides=overrides or [], members=_split_list(members), out=out,
                           sources=_split_list(sources), resume=resume,
                           hold_rare=_pairs(hold_rare, "--hold-rare") or None,
                           **given(synthetic_ratio=synthetic_ratio, workers=workers))  # fmt: skip
    with RichProgress("train") as progress:
        result = run_train(Workspace.at(workspace), options, progress)
    if not result.main_process:
        return
    console.print(frame_table(result.data.counts().reset_index(), title="Images per class"))
    members = pd.DataFrame(result.members).round(4)
    members["pretrained"] = members["pretrained"].map({True: "yes", False: "no"})
    console.print(frame_table(members, title="Members (best validation macro-F1)"))
    console.print(
        f"ensemble on validation: macro-F1 {result.val.macro_f1:.4f}, balanced accuracy "
        f"{result.val.balanced_accuracy:.4f} ({result.val.n:,} images)",
        highlight=False,
    )
    console.print(f"model: {result.out}   card: {result.card}", highlight=False)
    console.print(f"next: wbc-data evaluate --model {result.out}", highlight=False)


@app.command("evaluate")
@friendly_errors
def evaluate_cmd(
    model: Annotated[Path, typer.Option("--model", "-m", help="A model folder written by `wbc-data train`.")],
    workspace: Annotated[
        Path | None,
        typer.Option("--workspace", "-w", help="Workspace (default: the one the model was trained on)."),
    ] = None,
    split: Annotated[str, typer.Option("--split", help="train, val or test (+ the rows the run held out).")] = "test",
    by: Annotated[str | None, typer.Option("--by", help="Also per 'source'.")] = None,
    compare: Annotated[
        Path | None, typer.Option("--compare", help="A second model folder, scored on the same rows.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Report folder (default <model>/evaluation/...).")
    ] = None,
    tta: Annotated[bool, typer.Option("--tta", help="Average over the 8 flips/rotations.")] = False,
    test_source: Annotated[
        list[str] | None,
        typer.Option(
            "--test-source",
            help="Also score every unseen row of this source (any split; classes the model knows): domain shift.",
        ),
    ] = None,
) -> None:
    """Score a model on real images never trained on: macro-F1, per class, confusion matrix, mistakes.

    Metrics from scikit-learn; per source with --by source; side by side with --compare (with paired bootstrap
    intervals of the change)."""
    from wbc_data.train.evaluate import EvalOptions, EvaluateError, evaluate, model_workspace, summary_table

    if by not in (None, "source"):
        raise EvaluateError(f"--by {by}: only 'source' is supported")
    options = EvalOptions(
        split=split, by_source=by == "source", compare=compare, out=out, tta=tta, test_sources=test_source or None
    )
    with RichProgress("evaluate") as progress:
        result = evaluate(model_workspace(model, workspace), model, options, progress)
    for note in result.notes:
        print_note(note)
    for s in result.scores:
        console.print(frame_table(s.metrics.per_class.round(4), title=f"{s.name} on {split}"))
        if s.by_source is not None:
            console.print(frame_table(s.by_source.round(4), title=f"{s.name} per source"))
    if result.comparison is not None:
        console.print(frame_table(result.comparison.round(4), title="Side by side (F1 change = second - first)"))
    summary = summary_table(result.scores).round(4)
    console.print(frame_table(summary, title=f"{split}: {len(result.rows):,} real images"))
    if result.difference is not None:
        console.print(result.difference.describe(), highlight=False, soft_wrap=True)
    console.print(f"report: {result.out / 'report.html'}", highlight=False)


@app.command("predict")
@friendly_errors
def predict_cmd(
    source: Annotated[Path, typer.Argument(help="A folder of images, a manifest .parquet, or a workspace.")],
    model: Annotated[Path, typer.Option("--model", "-m", help="A model folder written by `wbc-data train`.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output folder (default <model>/predictions/<input>).")
    ] = None,
    tta: Annotated[bool, typer.Option("--tta", help="Average over the 8 flips/rotations.")] = False,
    split: Annotated[str | None, typer.Option("--split", help="Workspace or its manifest: only this split.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per forward pass.")] = 64,
) -> None:
    """Class probabilities (probabilities.csv) and the WBCBench submission (submission.csv: ID,labels)."""
    from wbc_data.train.predict import PredictOptions, predict

    options = PredictOptions(out=out, tta=tta, split=split, batch_size=batch_size)
    with RichProgress("predict") as progress:
        result = predict(model, source, options, progress)
    for note in result.notes:
        print_note(note)
    counts = result.probabilities["predicted"].value_counts().rename_axis("class").reset_index(name="images")
    console.print(frame_table(counts, title=f"{len(result.probabilities):,} images predicted"))
    console.print(f"submission: {result.submission}\nprobabilities: {result.probabilities_path}", highlight=False)
