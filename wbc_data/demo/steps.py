"""The demo's commands, one builder per ``wbc-data`` command: from the same values each builds the arguments the
demo prints (and records) and the library call that does exactly what those arguments do, so the two cannot
drift apart; plus a one-line summary of each result (what the demo prints and the report's step table shows)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wbc_data.core.progress import Progress
from wbc_data.core.rows import is_usable
from wbc_data.core.workspace import Workspace


@dataclass(frozen=True)
class Command:
    """One command: ``argv`` (after ``wbc-data``) and ``call(progress)``, the library call it stands for."""

    argv: list[str]
    call: Callable[[Progress | None], Any]
    summary: Callable[[Any], str]


@dataclass(frozen=True)
class Context:
    """What every command of one demo run shares: the workspace and the worker count."""

    ws: Workspace
    workers: int = 0

    @property
    def w(self) -> list[str]:
        return ["-w", str(self.ws.root)]

    @property
    def j(self) -> list[str]:
        return ["-j", str(self.workers)] if self.workers else []


def _opt(flag: str, value: Any) -> list[str]:
    """``[flag, value]``, or nothing when the value is not set."""
    return [] if value is None else [flag, str(value)]


def ingest(ctx: Context, source: str, path: Path, name: str | None = None, label_map: Path | None = None,
           licence: str | None = None) -> Command:  # fmt: skip
    def call(progress: Progress | None) -> Any:
        from wbc_data.core.labelmap import LabelMap
        from wbc_data.ingest.engine import IngestOptions, run_ingest

        chosen_map = LabelMap.from_yaml(label_map) if label_map else None
        options = IngestOptions(source=source, path=path, workers=ctx.workers, name=name, label_map=chosen_map,
                                licence=licence)  # fmt: skip
        return run_ingest(ctx.ws, options, progress)

    argv = ["ingest", source, str(path), *_opt("--name", name), *_opt("--label-map", label_map),
            *_opt("--licence", licence), *ctx.w, *ctx.j]  # fmt: skip
    return Command(argv, call, ingest_summary)


def ingest_summary(result: Any) -> str:
    frame = result.frame
    used = int(is_usable(frame).sum())
    rejected = int((frame["status"] == "rejected").sum())
    return f"{result.files_seen:,} files: {used:,} images used, {rejected:,} rejected with a reason"


def merge(ctx: Context) -> Command:
    def call(progress: Progress | None) -> Any:
        from wbc_data.manifest.merge import run_merge

        return run_merge(ctx.ws, progress=progress)

    return Command(["manifest", *ctx.w], call, merge_summary)


def merge_summary(result: Any) -> str:
    stale = [s.message() for s in result.stages if not s.fresh]
    tail = f"; {'; '.join(stale)}" if stale else ""
    return f"{len(result.frame):,} rows from {result.frame['source'].nunique()} sources{tail}"


def dedup(ctx: Context) -> Command:
    def call(progress: Progress | None) -> Any:
        from wbc_data.dedup.run import DedupOptions
        from wbc_data.dedup.run import dedup as run

        return run(ctx.ws, DedupOptions(workers=ctx.workers), progress)

    return Command(["dedup", *ctx.w, *ctx.j], call, dedup_summary)


def dedup_summary(result: Any) -> str:
    row = result.summary().iloc[0]
    return f"{int(row['clusters'])} duplicate clusters, {int(row['dropped'])} copies dropped"


def split(ctx: Context, val: float, test: float, seed: int) -> Command:
    def call(progress: Progress | None) -> Any:
        from wbc_data.split import SplitOptions, run_split

        return run_split(ctx.ws, SplitOptions(val=val, test=test, seed=seed), progress)

    argv = ["split", "--val", f"{val:g}", "--test", f"{test:g}", "--seed", str(seed), *ctx.w]
    return Command(argv, call, split_summary)


def split_summary(result: Any) -> str:
    totals = result.table[["train", "val", "test"]].sum()
    return f"train {int(totals['train'])}, val {int(totals['val'])}, test {int(totals['test'])} real images"


def gap(ctx: Context, target: str, quota: Path) -> Command:
    def call(progress: Progress | None) -> Any:
        from wbc_data.gap import GapOptions, run_gap_report

        return run_gap_report(ctx.ws, GapOptions(target=target, quota=quota))

    return Command(["gap-report", "--target", target, "--quota", str(quota), *ctx.w], call, gap_summary)


def gap_summary(result: Any) -> str:
    plan = result.plan
    return f"synth plan: {plan.total:,} images over {sum(1 for q in plan.classes.values() if q.generate)} classes"


def synth_train(ctx: Context, recipe: str, steps: int, batch_size: int, out: Path) -> Command:
    """A generator trained for ``steps`` steps, checkpointed once at the end."""

    def call(progress: Progress | None) -> Any:
        from wbc_data.synth.train import SynthTrainOptions, run_synth_train

        options = SynthTrainOptions(recipe=recipe, steps=steps, batch_size=batch_size, checkpoint_every=steps, out=out)
        return run_synth_train(ctx.ws, options, progress)

    argv = ["synth", "train", "--recipe", recipe, "--steps", str(steps), "--batch-size", str(batch_size),
            "--checkpoint-every", str(steps), "--out", str(out), *ctx.w]  # fmt: skip
    return Command(argv, call, synth_train_summary)


def synth_train_summary(result: Any) -> str:
    return f"{result.steps:,} steps in {result.seconds:.0f} s, loss {result.loss:.3f}: {result.generator_dir}"


def train(ctx: Context, recipe: str, overrides: list[str], out: Path, synthetic_ratio: float) -> Command:
    def call(progress: Progress | None) -> Any:
        from wbc_data.train.run import TrainOptions, run_train

        options = TrainOptions(recipe=recipe, overrides=overrides, out=out, synthetic_ratio=synthetic_ratio)
        return run_train(ctx.ws, options, progress)

    sets = [a for override in overrides for a in ("--set", override)]
    argv = ["train", "--recipe", recipe, "--out", str(out), "--synthetic-ratio", f"{synthetic_ratio:g}", *sets, *ctx.w]
    return Command(argv, call, train_summary)


def train_summary(result: Any) -> str:
    if isinstance(result, Skipped):
        return f"skipped: {result.reason}"
    return f"validation macro-F1 {result.val.macro_f1:.3f} ({len(result.members)} members): {result.out}"


SKIPPED = "skipped.txt"
"""Left in a step's output folder when the step had nothing to do (its output for the demo's reuse check)."""


class Skipped:
    """A step that had nothing to do, and why (shown as its summary)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def synthetic_train_rows(ws: Workspace) -> int:
    """Usable synthetic rows in the merged manifest's train split."""
    from wbc_data.core.stages import load_view

    frame = load_view(ws).frame
    if "is_synthetic" not in frame.columns:
        return 0
    synthetic = frame["is_synthetic"].fillna(False).astype(bool) & is_usable(frame)
    return int((synthetic & (frame["split"] == "train")).sum())


def train_with_synthetic(ctx: Context, recipe: str, overrides: list[str], out: Path, synthetic_ratio: float) -> Command:
    """:func:`train` with synthetic rows, or :class:`Skipped` when no synthetic sample passed the guards (the
    generator drew no plausible cell: there is nothing to add, and the comparison would be real against real).
    A skip leaves only ``SKIPPED`` (with the reason) in ``out``, so no older model is compared by mistake."""
    plain = train(ctx, recipe, overrides, out, synthetic_ratio)

    def call(progress: Progress | None) -> Any:
        marker = out / SKIPPED
        if not synthetic_train_rows(ctx.ws):
            reason = (
                "no synthetic sample passed the guards (see the synth-demo-pmy report), so there is nothing to add; "
                "the classifier trained on real rows is evaluated alone"
            )
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            marker.write_text(reason + "\n", encoding="utf-8")
            return Skipped(reason)
        if marker.is_file():
            marker.unlink()
            if not any(out.iterdir()):
                out.rmdir()
        return plain.call(progress)

    return Command(plain.argv, call, train_summary)


def synth_sample(ctx: Context, generator: Path, cls: str, n: int, steps: int, classifier: Path, reference_split: str,
                 name: str, seed: int, attempts: float = 3.0) -> Command:  # fmt: skip
    def call(progress: Progress | None) -> Any:
        from wbc_data.synth.sample import SynthOptions, run_synth
        from wbc_data.train.classifier import load_classifier

        options = SynthOptions(counts={cls: n}, steps=steps, classifier=load_classifier(classifier),
                               reference_splits=[reference_split], name=name, seed=seed,
                               max_attempts=attempts)  # fmt: skip
        return run_synth(ctx.ws, generator, options, progress)

    argv = ["synth", "--cls", cls, "--n", str(n), "--steps", str(steps), "--max-attempts", f"{attempts:g}",
            "--generator", str(generator), "--classifier", str(classifier), "--reference-split", reference_split,
            "--name", name, "--seed", str(seed), *ctx.w]  # fmt: skip
    return Command(argv, call, synth_summary)


def synth_summary(result: Any) -> str:
    parts = []
    for o in result.outcomes:
        a = o.agreement
        agreement = f", classifier agrees on {a.agreement:.0%}" if a is not None and a.agreement is not None else ""
        gate = f", {o.implausible} rejected as not plausible {o.label} cells" if o.gate is not None else ""
        parts.append(f"{o.label}: {o.accepted} of {o.attempts} drawn accepted, {o.rejected} rejected as near-copies"
                     f"{gate}{agreement}")  # fmt: skip
        if o.accepted == 0:
            parts.append(f"NO {o.label} SAMPLE PASSED THE GUARDS: the generator does not draw {o.label} cells yet")
    return "; ".join(parts)


def evaluate(ctx: Context, model: Path, compare: Path, out: Path) -> Command:
    """Two models side by side on the same rows, per source."""

    def call(progress: Progress | None) -> Any:
        from wbc_data.train.evaluate import EvalOptions
        from wbc_data.train.evaluate import evaluate as run

        return run(ctx.ws, model, EvalOptions(compare=compare, by_source=True, out=out), progress)

    argv = ["evaluate", "--model", str(model), "--compare", str(compare), "--by", "source", "--out", str(out), *ctx.w]
    return Command(argv, call, evaluate_summary)


def evaluate_demo(ctx: Context, with_synthetic: Path, real_only: Path, out: Path) -> Command:
    """The two classifiers compared (the change is with-synthetic - real-only: positive when the synthetic cells
    helped), or the real-only one alone when none was trained with synthetic rows."""
    compared = evaluate(ctx, real_only, with_synthetic, out)

    def call(progress: Progress | None) -> Any:
        if (with_synthetic / "classifier.json").is_file():
            return compared.call(progress)
        from wbc_data.train.evaluate import EvalOptions
        from wbc_data.train.evaluate import evaluate as run

        return run(ctx.ws, real_only, EvalOptions(by_source=True, out=out), progress)

    return Command(compared.argv, call, evaluate_summary)


def evaluate_summary(result: Any) -> str:
    scores = "; ".join(f"{s.name}: test macro-F1 {s.metrics.macro_f1:.3f}" for s in result.scores)
    return scores + (f" ({result.difference.short()})" if getattr(result, "difference", None) else "")


def publish(ctx: Context, repo_id: str, out: Path) -> Command:
    """The dry-run publish with synthetic rows, then the folder loaded back as any user of the dataset would."""

    def call(progress: Progress | None) -> dict[str, Any]:
        import datasets

        from wbc_data.publish import PublishOptions
        from wbc_data.publish import publish as run

        result = run(ctx.ws, PublishOptions(repo_id, dry_run=True, include_synthetic=True, out=out), progress)
        shown = datasets.is_progress_bar_enabled()
        datasets.disable_progress_bars()
        try:
            loaded = datasets.load_dataset(str(result.built.out))
        finally:
            if shown:
                datasets.enable_progress_bars()
        return {"result": result, "splits": {name: part.num_rows for name, part in loaded.items()},
                "classes": loaded[next(iter(loaded))].features["label"].names}  # fmt: skip

    argv = ["publish", "--repo-id", repo_id, "--dry-run", "--include-synthetic", "--out", str(out), *ctx.w]
    return Command(argv, call, publish_summary)


def publish_summary(value: dict[str, Any]) -> str:
    splits = ", ".join(f"{k} {v}" for k, v in value["splits"].items())
    return f"load_dataset gives {splits} with {len(value['classes'])} class names"
