"""`synth`: train a class-conditional diffusion generator (`synth train`) and sample guarded synthetic cells
(`synth --cls PLY --n 500`, or `synth --plan reports/synth-plan.yaml`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer

from wbc_data.cli.common import RichProgress, WorkspaceOpt, app, console, frame_table, friendly_errors, given, labelled
from wbc_data.core.workspace import Workspace

synth_app = typer.Typer(
    help="Generate synthetic cells of rare classes with a class-conditional diffusion model, guarded against copying.",
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(synth_app, name="synth")


ThreadsOpt = Annotated[
    int | None,
    typer.Option("--threads", help="CPU threads for torch (default: torch's; 1 is often faster on a busy machine)."),
]


def _threads(count: int | None) -> None:
    if count:
        import torch

        torch.set_num_threads(count)


@synth_app.callback(invoke_without_command=True)
@friendly_errors
def synth(
    ctx: typer.Context,
    cls: Annotated[
        list[str] | None, typer.Option("--cls", help="Class to generate (repeat for several), e.g. PLY.")
    ] = None,
    n: Annotated[int, typer.Option("--n", help="Accepted images per class.")] = 100,
    plan: Annotated[
        Path | None, typer.Option("--plan", help="A synth plan (gap-report --quota): every class's quota in one go.")
    ] = None,
    generator: Annotated[
        Path | None,
        typer.Option("--generator", help="Generator folder (default: the one under <workspace>/generators)."),
    ] = None,
    guidance: Annotated[
        float | None, typer.Option("--guidance", help="Classifier-free guidance scale (1: none; default: recipe's).")
    ] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="Denoising steps (default: recipe's).")] = None,
    scheduler: Annotated[
        str | None, typer.Option("--scheduler", help="ddpm | ddim | dpm (DPM-Solver++; default: recipe's).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same images.")] = 0,
    domain: Annotated[
        str | None, typer.Option("--domain", help="Render in this source's look (domain-conditioned generators).")
    ] = None,
    classifier: Annotated[
        Path | None,
        typer.Option("--classifier", help="A classifier from `wbc-data train`: its agreement with the class."),
    ] = None,
    reference_split: Annotated[
        list[str] | None,
        typer.Option("--reference-split", help="Fidelity numbers: real images of these splits only (default: any)."),
    ] = None,
    fidelity_gate: Annotated[
        bool,
        typer.Option(
            "--fidelity-gate/--no-fidelity-gate",
            help="Reject samples that are not plausible cells of their class (ImageNet embedding; default: on).",
        ),
    ] = True,
    fidelity_quantile: Annotated[
        float | None,
        typer.Option(
            "--fidelity-quantile",
            help="The gate's radius: this quantile of real cells' distances to their nearest other cell (0.95).",
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Name of the synthetic source (default: generator + classes).")
    ] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Images per batch.")] = None,
    max_attempts: Annotated[
        float, typer.Option("--max-attempts", help="At most this many draws per requested image.")
    ] = 3.0,
    device: Annotated[str | None, typer.Option("--device", help="cuda, cuda:1, cpu... (default: the best).")] = None,
    threads: ThreadsOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Sample synthetic cells (PNGs + a synthetic source manifest + report), guarded against copies."""
    if ctx.invoked_subcommand is not None:
        return
    from wbc_data.synth import SynthError
    from wbc_data.synth.sample import SynthOptions, parse_classes, plan_counts, run_synth

    if plan is not None and cls:
        raise SynthError("give --cls CLASS --n N or --plan PLAN, not both")
    if plan is not None:
        counts = plan_counts(plan)
    elif cls:
        counts = dict.fromkeys(parse_classes(cls), n)
    else:
        raise SynthError("say what to generate: --cls CLASS --n N, or --plan reports/synth-plan.yaml (see --help)")
    _threads(threads)
    options = SynthOptions(
        counts=counts,
        guidance=guidance,
        steps=steps,
        scheduler=scheduler,
        seed=seed,
        domain=domain,
        batch_size=batch_size,
        max_attempts=max_attempts,
        name=name,
        device=device,
        classifier=_classifier(classifier),
        reference_splits=reference_split or None,
        fidelity_gate=fidelity_gate,
        **given(fidelity_quantile=fidelity_quantile),
    )
    with RichProgress("synth") as progress:
        result = run_synth(Workspace.at(workspace), generator, options, progress)
    _print_result(result)


def _classifier(path: Path | None) -> Any:
    if path is None:
        return None
    from wbc_data.synth import SynthError

    try:
        from wbc_data.train.classifier import load_classifier

        return load_classifier(path)
    except ModuleNotFoundError as exc:
        if "wbc_data.train" not in str(exc):
            raise
        raise SynthError(
            f"--classifier {path}: this installation has no classifier loader (wbc_data.train, from `wbc-data train`)"
        ) from None


def _print_result(result: Any) -> None:
    from wbc_data.synth.report import outcome_table

    console.print(frame_table(outcome_table(result.outcomes), title=f"Synthetic {result.source}"))
    for o in result.outcomes:
        gate = f"{o.implausible:,} not plausible {o.label} cells (fidelity gate)" if o.gate else f"gate {o.gate_note}"
        console.print(
            f"{o.label}: {o.accepted:,} accepted of {o.attempts:,} drawn (yield {o.yield_rate:.0%}); rejected: "
            f"{o.rejected:,} near-copies, {gate}",
            highlight=False,
        )
        if o.short:
            said = f"{o.label}: {o.accepted:,} of {o.requested:,} accepted"
            console.print(labelled("short:", "yellow", said), highlight=False)
        if o.accepted == 0:
            console.print(
                f"[red]no {o.label} sample passed the guards:[/] the generator does not draw {o.label} cells yet "
                f"(rejected samples: {result.folder / 'rejected' / o.label})",
                highlight=False,
            )
        if o.diversity and o.diversity.collapsed:
            console.print(labelled("collapse:", "yellow", f"{o.label}: {o.diversity.describe()}"), highlight=False)
    console.print(f"images: {result.folder}", highlight=False)
    console.print(f"synthetic source: {result.manifest_path} (merge with `wbc-data manifest`)", highlight=False)
    if result.grid_path:
        console.print(f"grid: {result.grid_path}", highlight=False)
    for path in result.report_paths:
        console.print(f"report: {path}", highlight=False)


@synth_app.command("train")
@friendly_errors
def train_cmd(
    recipe: Annotated[str, typer.Option("--recipe", help="A recipe YAML, or a shipped recipe's name (tiny-cpu...).")],
    workspace: WorkspaceOpt = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Run folder (default: <workspace>/generators/<recipe name>).")
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the run's latest checkpoint.")] = False,
    steps: Annotated[int | None, typer.Option("--steps", help="Override the recipe's training steps.")] = None,
    max_minutes: Annotated[
        float | None, typer.Option("--max-minutes", help="Stop (with a checkpoint) after this much wall time.")
    ] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Override the recipe's batch size.")] = None,
    checkpoint_every: Annotated[
        int | None,
        typer.Option("--checkpoint-every", help="Steps between checkpoints and sample grids (default: recipe's)."),
    ] = None,
    init_from: Annotated[
        Path | None,
        typer.Option("--init-from", help="Start from a diffusers UNet or pipeline folder on disk (never downloaded)."),
    ] = None,
    base: Annotated[
        str | None,
        typer.Option(
            "--base",
            help="sd-lora recipes: the pretrained pipeline to adapt, a Hub id (cached, honours HF_HUB_OFFLINE) "
            "or a local diffusers folder.",
        ),
    ] = None,
    threads: ThreadsOpt = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a recipe value: key.path=value (e.g. train.learning_rate=2e-4)."),
    ] = None,
) -> None:
    """Train a class-conditional diffusion generator on the train split (Accelerate: `accelerate launch` for GPUs);
    `--recipe sd-lora --base <model>` fine-tunes a pretrained Stable-Diffusion-style model with LoRA instead."""
    from wbc_data.synth.train import SynthTrainOptions, run_synth_train

    options = SynthTrainOptions(
        recipe=recipe,
        overrides=overrides or [],
        **given(
            steps=steps,
            batch_size=batch_size,
            checkpoint_every=checkpoint_every,
            init_from=str(init_from) if init_from is not None else None,
            base=base,
            out=out,
            resume=resume or None,
            max_minutes=max_minutes,
        ),
    )
    chosen = options.build_recipe()  # a bad recipe or flag is one line before anything starts
    _threads(threads)
    with RichProgress("synth train") as progress:
        result = run_synth_train(Workspace.at(workspace), dataclasses.replace(options, recipe=chosen), progress)
    if not result.main_process:
        return  # under `accelerate launch` the main process reports
    info = result.info
    console.print(
        f"trained {result.steps:,} of {result.total_steps:,} steps in {result.seconds / 60:.1f} min "
        f"({result.images_per_second:.1f} images/s, {info.device}); loss {result.loss:.4f}",
        highlight=False,
    )
    if result.stopped == "time":
        console.print("[yellow]stopped:[/] time budget reached; continue with --resume", highlight=False)
    console.print(f"generator: {result.generator_dir} ({info.id})", highlight=False)
    if result.grids:
        console.print(f"sample grid: {result.grids[-1]}", highlight=False)
    if chosen.expected_h100:
        console.print(f"expected on one H100 (estimate): {chosen.expected_h100}", highlight=False)
