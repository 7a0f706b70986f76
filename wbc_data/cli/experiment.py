"""`experiment`: does adding synthetic cells of a rare class help a classifier on real cells?"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from wbc_data.cli.common import RichProgress, WorkspaceOpt, app, console, frame_table, friendly_errors, given
from wbc_data.cli.train import _pairs
from wbc_data.core.workspace import Workspace


@app.command("experiment")
@friendly_errors
def experiment_cmd(
    hold_rare: Annotated[
        list[str], typer.Option("--hold-rare", help="CLASS=N: keep N real training images of CLASS, test the rest.")
    ],
    workspace: WorkspaceOpt = None,
    n: Annotated[int | None, typer.Option("--n", help="Synthetic images of the class to add (default 200).")] = None,
    classifier: Annotated[
        str | None, typer.Option("--classifier", help="Classifier recipe for both arms (default lite0-cpu).")
    ] = None,
    classifier_set: Annotated[
        list[str] | None, typer.Option("--classifier-set", help="Override a classifier recipe value: key=value.")
    ] = None,
    generator: Annotated[
        str | None, typer.Option("--generator", help="Generator recipe (default pbc-latent-32).")
    ] = None,
    generator_set: Annotated[
        list[str] | None, typer.Option("--generator-set", help="Override a generator recipe value: key=value.")
    ] = None,
    generator_steps: Annotated[
        int | None, typer.Option("--generator-steps", help="Generator training steps (default: the recipe's).")
    ] = None,
    init_from: Annotated[
        str | None,
        typer.Option("--init-from", help="Start the generator from this (one that saw the held-out cells biases it)."),
    ] = None,
    synthetic_ratio: Annotated[
        float | None, typer.Option("--synthetic-ratio", help="Share of each batch from synthetic rows (default 0.05).")
    ] = None,
    sample_steps: Annotated[int | None, typer.Option("--sample-steps", help="Denoising steps per sample.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Sampling and bootstrap seed.")] = None,
    seeds: Annotated[
        int | None,
        typer.Option("--seeds", help="Classifier runs per arm, each its own training seed (default 1)."),
    ] = None,
    no_fidelity_gate: Annotated[
        bool, typer.Option("--no-fidelity-gate", help="Keep samples that are not plausible cells (not advised).")
    ] = False,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Experiment folder.")] = None,
) -> None:
    """Does synthesising a rare class help? Classifiers without and with its samples, on the same real test cells.

    The class is kept rare, a generator trained on its remaining training images, its samples added; both arms are
    compared with paired bootstrap intervals."""
    from wbc_data.experiment.run import ExperimentOptions, run_experiment

    options = ExperimentOptions(
        hold_rare=_pairs(hold_rare, "--hold-rare"),
        classifier_overrides=classifier_set or [],
        generator_overrides=generator_set or [],
        fidelity_gate=not no_fidelity_gate,
        **given(n=n, classifier=classifier, generator=generator, generator_steps=generator_steps, init_from=init_from,
                synthetic_ratio=synthetic_ratio, sample_steps=sample_steps, seed=seed, seeds=seeds, out=out),
    )  # fmt: skip
    with RichProgress("experiment") as progress:
        result = run_experiment(Workspace.at(workspace), options, progress)
    shown = result.table[["class", "support", "f1 without", "f1 with", "change", "change low", "change high"]]
    console.print(frame_table(shown.round(3), title="F1 on the same real test images"))
    if len(result.runs) > 1:
        console.print(frame_table(result.runs.round(3), title="Per training seed"))
    from wbc_data.experiment.report import sentence

    console.print(sentence(result, options), highlight=False, soft_wrap=True)
    console.print(f"report: {result.out / 'report.html'}", highlight=False)
