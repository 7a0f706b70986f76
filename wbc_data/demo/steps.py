"""The demo's steps as plain library calls, each doing exactly what its recorded ``wbc-data`` command does, plus a
one-line summary of each result (what the demo prints and the report's step table shows)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from wbc_data.core.progress import Progress, or_null
from wbc_data.core.rows import is_usable
from wbc_data.core.workspace import Workspace


def ingest(
    ws: Workspace, source: str, path: Path, settings: Any, name: str | None = None, label_map: Path | None = None,
    licence: str | None = None, progress: Progress | None = None,
) -> Any:  # fmt: skip
    from wbc_data.core.labelmap import LabelMap
    from wbc_data.ingest.engine import IngestOptions
    from wbc_data.ingest.engine import ingest as run

    chosen_map = LabelMap.from_yaml(label_map) if label_map else None
    options = IngestOptions(workers=settings.workers, name=name, label_map=chosen_map, licence=licence)
    return run(source, path, ws, options, progress)


def ingest_summary(result: Any) -> str:
    frame = result.frame
    used = int(is_usable(frame).sum())
    rejected = int((frame["status"] == "rejected").sum())
    return f"{result.files_seen:,} files: {used:,} images used, {rejected:,} rejected with a reason"


def merge(ws: Workspace) -> Any:
    from wbc_data.manifest.merge import merge as run
    from wbc_data.manifest.report import build

    result = run(ws)
    build(result.frame, ws.reports_dir)
    return result


def merge_summary(result: Any) -> str:
    stale = [s.message() for s in result.stages if not s.fresh]
    tail = f"; {'; '.join(stale)}" if stale else ""
    return f"{len(result.frame):,} rows from {result.frame['source'].nunique()} sources{tail}"


def dedup(ws: Workspace, settings: Any) -> Any:
    from wbc_data.dedup.run import DedupOptions
    from wbc_data.dedup.run import dedup as run

    return run(ws, DedupOptions(workers=settings.workers))


def dedup_summary(result: Any) -> str:
    row = result.summary().iloc[0]
    return f"{int(row['clusters'])} duplicate clusters, {int(row['dropped'])} copies dropped"


def split(ws: Workspace) -> Any:
    from wbc_data.split import SplitOptions, run_split

    return run_split(ws, SplitOptions(val=0.2, test=0.2, seed=0))


def split_summary(result: Any) -> str:
    totals = result.table[["train", "val", "test"]].sum()
    return f"train {int(totals['train'])}, val {int(totals['val'])}, test {int(totals['test'])} real images"


def gap(ws: Workspace, quota: Path) -> Any:
    from wbc_data.gap import GapOptions, run_gap_report

    return run_gap_report(ws, GapOptions(target="wbcbench", quota=quota))


def gap_summary(result: Any) -> str:
    plan = result.plan
    return f"synth plan: {plan.total:,} images over {sum(1 for q in plan.classes.values() if q.generate)} classes"


def synth_train(
    ws: Workspace, recipe: str, steps: int, batch_size: int, out: Path, progress: Progress | None = None
) -> Any:
    from wbc_data.synth.recipe import load_recipe
    from wbc_data.synth.train import train

    chosen = load_recipe(recipe).with_overrides(steps=steps, batch_size=batch_size, checkpoint_every=steps)
    return train(ws, chosen, out, progress=progress)


def synth_train_summary(result: Any) -> str:
    return f"{result.steps:,} steps in {result.seconds:.0f} s, loss {result.loss:.3f}: {result.generator_dir}"


class _EpochProgress:
    """The trainer's progress protocol (``wbc_data.train.loop.TrainProgress``) as demo progress: one phase per
    epoch."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress, self.steps = or_null(progress), 0

    def begin_epoch(self, member: str, stage: str, epoch: int, steps: int) -> None:
        self.steps = steps
        self.progress.phase(f"{member} {stage} epoch {epoch}", steps)

    def step(self, loss: float, images_per_s: float, steps_done: int) -> None:
        self.progress.advance(steps_done, self.steps, loss=loss)

    def end_epoch(self, record: Any) -> None:
        pass

    def note(self, text: str) -> None:
        pass


def train(ws: Workspace, recipe: str, overrides: list[str], out: Path, synthetic_ratio: float,
          progress: Progress | None = None) -> Any:  # fmt: skip
    from wbc_data.train.recipe import load_recipe
    from wbc_data.train.run import TrainOptions
    from wbc_data.train.run import train as run

    options = TrainOptions(out=out, synthetic_ratio=synthetic_ratio)
    return run(ws, load_recipe(recipe, overrides), options, progress=_EpochProgress(progress))


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


def train_with_synthetic(ws: Workspace, recipe: str, overrides: list[str], out: Path, synthetic_ratio: float,
                         progress: Progress | None = None) -> Any:  # fmt: skip
    """:func:`train` with synthetic rows, or :class:`Skipped` when no synthetic sample passed the guards (the
    generator drew no plausible cell: there is nothing to add, and the comparison would be real against real).
    A skip leaves only ``SKIPPED`` (with the reason) in ``out``, so no older model is compared by mistake."""
    marker = out / SKIPPED
    if not synthetic_train_rows(ws):
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
    return train(ws, recipe, overrides, out, synthetic_ratio, progress)


def synth_sample(ws: Workspace, generator: Path, cls: str, n: int, steps: int, classifier: Path, name: str,
                 progress: Progress | None = None) -> Any:  # fmt: skip
    from wbc_data.synth.sample import SynthOptions, run_synth
    from wbc_data.train.classifier import load_classifier

    options = SynthOptions(counts={cls: n}, steps=steps, classifier=load_classifier(classifier),
                           reference_splits=["train"], name=name, seed=0)  # fmt: skip
    return run_synth(ws, generator, options, progress)


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


def evaluate(ws: Workspace, model: Path, compare: Path, out: Path) -> Any:
    from wbc_data.train.evaluate import EvalOptions
    from wbc_data.train.evaluate import evaluate as run

    return run(ws, model, EvalOptions(compare=compare, by_source=True, out=out))


def evaluate_demo(ws: Workspace, with_synthetic: Path, real_only: Path, out: Path) -> Any:
    """The two classifiers compared, or the real-only one alone when none was trained with synthetic rows."""
    if (with_synthetic / "classifier.json").is_file():
        return evaluate(ws, with_synthetic, real_only, out)
    from wbc_data.train.evaluate import EvalOptions
    from wbc_data.train.evaluate import evaluate as run

    return run(ws, real_only, EvalOptions(by_source=True, out=out))


def evaluate_summary(result: Any) -> str:
    return "; ".join(f"{s.name}: test macro-F1 {s.metrics.macro_f1:.3f}" for s in result.scores)


def publish(ws: Workspace, repo_id: str, out: Path) -> dict[str, Any]:
    """The dry-run publish, then the folder loaded back as any user of the dataset would."""
    import datasets

    from wbc_data.publish import PublishOptions
    from wbc_data.publish import publish as run

    result = run(ws, PublishOptions(repo_id, dry_run=True, include_synthetic=True, out=out))
    shown = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        loaded = datasets.load_dataset(str(result.built.out))
    finally:
        if shown:
            datasets.enable_progress_bars()
    return {"result": result, "splits": {name: part.num_rows for name, part in loaded.items()},
            "classes": loaded[next(iter(loaded))].features["label"].names}  # fmt: skip


def publish_summary(value: dict[str, Any]) -> str:
    splits = ", ".join(f"{k} {v}" for k, v in value["splits"].items())
    return f"load_dataset gives {splits} with {len(value['classes'])} class names"
