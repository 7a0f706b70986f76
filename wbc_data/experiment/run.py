"""``wbc-data experiment``: keep a class rare, train a generator on what is left, sample that class, and train the
classifier without and with the samples; report the class's real-test F1 with a bootstrap interval, and every other
class's change.

Each step is the stage a user would run by hand (``train --hold-rare``, ``synth train``, ``synth``, ``manifest``,
``train --synthetic-ratio``, ``evaluate --compare``), in a workspace of the experiment's own (``<out>/workspace``:
the user's manifest, stage results and source roots, nothing else), so the user's workspace never gains the
experiment's synthetic rows. The generator learns from exactly the rows the classifier without samples trained on
(its run's recorded roles), and starts from nothing unless ``init_from`` says otherwise: a prior trained on the whole
train split has seen the cells the experiment holds out. A finished step is not redone when the command is run again
with the same options; an interrupted one resumes.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from wbc_data.core.errors import UserError
from wbc_data.core.progress import Progress, or_null
from wbc_data.core.taxonomy import CLASSES
from wbc_data.core.workspace import Workspace
from wbc_data.io.atomic import atomic_write_text

STATE = "experiment.json"


class ExperimentError(UserError):
    pass


@dataclass
class ExperimentOptions:
    """What to hold rare and how each arm is trained; the defaults live here only."""

    hold_rare: dict[str, int] = field(default_factory=dict)  # CLASS -> real training images kept; the first is judged
    n: int = 200  # synthetic images of the rare class to add
    classifier: str = "lite0-cpu"  # classifier recipe (both arms)
    classifier_overrides: list[str] = field(default_factory=list)
    generator: str = "pbc-latent-32"  # generator recipe
    generator_overrides: list[str] = field(default_factory=list)
    generator_steps: int | None = None  # None: the recipe's
    init_from: str | None = None  # start the generator from this (a prior that saw the held-out cells biases it)
    synthetic_ratio: float = 0.05  # share of each training batch drawn from the synthetic rows
    sample_steps: int | None = None  # denoising steps (None: the recipe's)
    seed: int = 0  # sampling seed
    fidelity_gate: bool = True  # reject samples that are not plausible cells of the class (see synth.gate)
    seeds: int = 1  # classifier runs per arm (training seeds; the rows they train on stay the same)
    resamples: int = 2000  # bootstrap resamples
    confidence: float = 0.95
    out: Path | None = None  # default <workspace>/experiments/hold-<CLASS><N>

    def __post_init__(self) -> None:
        if not self.hold_rare:
            raise ExperimentError("--hold-rare: name the class to keep rare, e.g. --hold-rare PMY=13")
        unknown = [c for c in self.hold_rare if c not in CLASSES]
        if unknown:
            raise ExperimentError(f"--hold-rare {unknown[0]}: not a class ({', '.join(CLASSES)})")
        if self.seeds < 1:
            raise ExperimentError(f"--seeds {self.seeds}: at least one classifier run per arm")
        if self.n < 1:
            raise ExperimentError(f"--n {self.n}: at least one synthetic image")
        if not 0 < self.synthetic_ratio < 1:
            raise ExperimentError(f"--synthetic-ratio {self.synthetic_ratio:g}: a share between 0 and 1")

    @property
    def rare(self) -> str:
        return next(iter(self.hold_rare))

    def folder(self, workspace: Workspace) -> Path:
        if self.out is not None:
            return Path(self.out)
        name = "-".join(f"{c}{n}" for c, n in self.hold_rare.items())
        return workspace.root / "experiments" / f"hold-{name}"

    def key(self) -> dict[str, Any]:
        """What the results depend on: a re-run with another key starts the experiment afresh (more ``seeds``
        only add runs)."""
        skip = {"out", "resamples", "confidence", "seeds"}
        return {k: v for k, v in asdict(self).items() if k not in skip}


@dataclass
class ExperimentResult:
    out: Path
    rare: str
    table: pd.DataFrame  # per class + macro: F1 without / with, change, intervals (train.bootstrap)
    runs: pd.DataFrame  # per training seed: the rare class's and the macro F1 of both arms
    verdict: str  # helped | hurt | no detectable change (the rare class)
    synthetic: dict[str, Any]  # accepted, drawn, the guards' rejections
    test_rows: int
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # per step


def fork_workspace(source: Workspace, dest: Path) -> Workspace:
    """A workspace holding ``source``'s real sources and stage results, merged again, with every source root
    pointing where it lies for ``source`` (the images are not copied). Synthetic sources are left behind: the
    experiment compares real rows against real rows plus its own samples, never the user's earlier ones."""
    from wbc_data.core.roots import save_roots
    from wbc_data.core.workspace import workspace_roots
    from wbc_data.manifest.merge import MergeOptions, run_merge

    if not source.unified_manifest.is_file():
        raise ExperimentError(f"{source.root}: no manifest (run `wbc-data manifest` first)")
    staging = Workspace(dest.with_name(dest.name + ".partial"))
    shutil.rmtree(staging.root, ignore_errors=True)
    staging.sources_dir.mkdir(parents=True)
    roots = workspace_roots(source)
    real = []
    for manifest in source.source_manifests():
        if _synthetic_source(manifest):
            continue
        shutil.copy2(manifest, staging.sources_dir / manifest.name)
        real.append(manifest.stem)
    if source.stages_dir.is_dir():
        shutil.copytree(source.stages_dir, staging.stages_dir, ignore=shutil.ignore_patterns("*.tmp", "*.partial"))
    save_roots(staging.root, {name: roots.location(name) for name in roots.names() if name in real})
    run_merge(staging, MergeOptions(reports=False))
    shutil.rmtree(dest, ignore_errors=True)
    staging.root.rename(dest)
    return Workspace(dest)


def _synthetic_source(manifest: Path) -> bool:
    """Whether a per-source manifest holds generated rows (``wbc-data synth`` writes ``is_synthetic``)."""
    import pyarrow.parquet as pq

    if "is_synthetic" not in pq.read_schema(manifest).names:
        return False
    return any(pq.read_table(manifest, columns=["is_synthetic"]).column(0).to_pylist())


def run_experiment(
    workspace: Workspace, options: ExperimentOptions, progress: Progress | None = None
) -> ExperimentResult:
    """Run (or finish) the experiment in ``options.folder(workspace)``; see the module docstring."""
    from wbc_data.experiment.report import write_report
    from wbc_data.train.bootstrap import paired_bootstrap, per_run, verdict

    progress = or_null(progress)
    out = options.folder(workspace)
    state = _state(out, options)
    ws = Workspace(out / "workspace")
    seconds: dict[str, float] = dict(state.get("seconds", {}))

    def step(name: str, work: Any) -> Any:
        if name in state["done"]:
            progress.note(f"{name}: done in an earlier run, kept")
            return None
        progress.note(f"experiment step: {name}")
        start = time.perf_counter()
        value = work()
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start
        state["done"].append(name)
        state["seconds"] = seconds
        _save_state(out, state)
        return value

    ratio = options.synthetic_ratio
    step("workspace", lambda: fork_workspace(workspace, ws.root))
    step("classifier without", lambda: _train_classifier(ws, options, out / arm("without", 0), 0.0, 0, progress))
    step("generator", lambda: _train_generator(ws, options, out, progress))
    step("samples", lambda: _sample(ws, options, out, progress))
    for k in range(options.seeds):
        if k:
            step(f"classifier without{_tag(k)}",
                 lambda k=k: _train_classifier(ws, options, out / arm("without", k), 0.0, k, progress))  # fmt: skip
        step(f"classifier with{_tag(k)}",
             lambda k=k: _train_classifier(ws, options, out / arm("with", k), ratio, k, progress))  # fmt: skip
    truth, without, with_synthetic, notes = _predictions(ws, out, options.seeds, progress)
    table = paired_bootstrap(truth, without, with_synthetic, options.resamples, options.confidence, options.seed)
    rare_row = table.set_index("class").loc[options.rare]
    runs = per_run(truth, without, with_synthetic, options.rare)
    result = ExperimentResult(
        out=out,
        rare=options.rare,
        table=table,
        runs=runs,
        verdict=verdict(rare_row, runs["change"].tolist()),
        synthetic=_synthetic_summary(out),
        test_rows=len(truth),
        notes=notes,
        seconds=seconds,
    )
    result.files = write_report(result, options)
    return result


def _state(out: Path, options: ExperimentOptions) -> dict[str, Any]:
    """The steps already done for these options; another set of options starts afresh (the earlier run's models,
    samples and reports are removed first, so no result of other options is ever reported as this one's)."""
    key = json.loads(json.dumps(options.key(), default=str))
    path = out / STATE
    if path.is_file():
        try:
            found = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            found = {}
        if found.get("key") == key:
            return found
        for pattern in ("workspace", "without*", "with*", "generator", "evaluation*"):
            for folder in out.glob(pattern):
                shutil.rmtree(folder, ignore_errors=True)
        for pattern in ("samples.json", "result.json", "report.*", "experiment.csv", "change.png"):
            for file in out.glob(pattern):
                file.unlink()
    return {"key": key, "done": [], "seconds": {}}


def _save_state(out: Path, state: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / STATE, json.dumps(state, indent=2) + "\n")


def arm(name: str, k: int) -> str:
    """An arm's model folder for training seed ``k`` (0: the recipe's own seed)."""
    return f"{name}{_tag(k)}"


def _tag(k: int) -> str:
    return f"-seed{k}" if k else ""


def _train_classifier(
    ws: Workspace, options: ExperimentOptions, out: Path, ratio: float, k: int, progress: Progress
) -> Any:
    """One arm's classifier; run ``k`` trains with the recipe's seed + k on the same rows (the hold-rare choice
    stays seeded by the recipe's own seed)."""
    from wbc_data.train.recipe import load_recipe
    from wbc_data.train.run import TrainOptions, run_train

    overrides = list(options.classifier_overrides)
    if k:
        base = load_recipe(options.classifier, overrides).seed
        overrides += [f"seed={base + k}", f"data.select_seed={base}"]
    train_options = TrainOptions(recipe=options.classifier, overrides=overrides, out=out,
                                 hold_rare=dict(options.hold_rare), synthetic_ratio=ratio,
                                 resume=(out / "run.json").is_file())  # fmt: skip
    return run_train(ws, train_options, progress)


def _train_generator(ws: Workspace, options: ExperimentOptions, out: Path, progress: Progress) -> Any:
    """The generator, trained on exactly the real rows the classifier without samples trained on."""
    from wbc_data.synth.train import SynthTrainOptions, run_synth_train
    from wbc_data.train.run import read_roles

    roles = read_roles(out / "without")
    trained_on = frozenset(roles.loc[roles["role"] == "train", "sample_id"].astype(str))
    folder = out / "generator"
    synth_options = SynthTrainOptions(recipe=options.generator, overrides=list(options.generator_overrides),
                                      steps=options.generator_steps, init_from=options.init_from, out=folder,
                                      resume=folder.is_dir(), only_rows=trained_on)  # fmt: skip
    return run_synth_train(ws, synth_options, progress)


def _sample(ws: Workspace, options: ExperimentOptions, out: Path, progress: Progress) -> Any:
    """``n`` samples of the rare class through the guards, merged into the experiment's train split. The fidelity
    numbers are measured against the real test cells of the class (which neither model trains on)."""
    from wbc_data.manifest.merge import run_merge
    from wbc_data.synth.sample import SynthOptions, run_synth
    from wbc_data.train.classifier import load_classifier

    for stale in ws.sources_dir.glob("synth-experiment*"):
        stale.unlink()  # an interrupted earlier attempt: its rows are replaced, not added to
    generator = out / "generator" / "generator"  # the pipeline folder `synth train` exports
    synth_options = SynthOptions(counts={options.rare: options.n}, steps=options.sample_steps, seed=options.seed,
                                 name="experiment", reference_splits=["test"], fidelity_gate=options.fidelity_gate,
                                 classifier=load_classifier(out / "without"))  # fmt: skip
    result = run_synth(ws, generator, synth_options, progress)
    run_merge(ws, progress=progress)
    outcome = result.outcomes[0]
    summary = {"requested": outcome.requested, "accepted": outcome.accepted, "drawn": outcome.attempts,
               "near_copies": outcome.rejected, "implausible": outcome.implausible,
               "report": str(ws.reports_dir), "images": str(result.folder),
               "grid": str(result.grid_path) if result.grid_path else None}  # fmt: skip
    if outcome.agreement is not None and outcome.agreement.agreement is not None:
        summary["classifier_agreement"] = outcome.agreement.agreement
    atomic_write_text(out / "samples.json", json.dumps(summary, indent=2, default=float) + "\n")
    if outcome.accepted == 0:
        raise ExperimentError(
            f"no {options.rare} sample passed the guards ({outcome.attempts} drawn): there is nothing to add; "
            f"see {ws.reports_dir} (a longer-trained generator, --generator-steps, may draw cells)"
        )
    return result


def _synthetic_summary(out: Path) -> dict[str, Any]:
    path = out / "samples.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _predictions(
    ws: Workspace, out: Path, seeds: int, progress: Progress
) -> tuple[pd.Series, list[pd.Series], list[pd.Series], list[str]]:
    """Both arms of every seed on the same real test rows (the held-out rare cells included): the truth and each
    run's predictions, aligned by sample_id (``evaluate --compare`` writes each pair's report)."""
    from wbc_data.train.evaluate import EvalOptions, evaluate

    truth, without, with_synthetic, notes = None, [], [], []
    for k in range(seeds):
        options = EvalOptions(compare=out / arm("with", k), by_source=True, out=out / arm("evaluation", k))
        rows = evaluate(ws, out / arm("without", k), options, progress).rows.set_index("sample_id")
        if truth is None:
            truth = rows["label"]
            notes.append(f"{len(rows):,} real test images, the same for every run")
        elif set(rows.index) != set(truth.index):
            raise ExperimentError(f"{out / arm('evaluation', k)}: run {k} was scored on other rows than run 0")
        rows = rows.loc[truth.index]
        without.append(rows["predicted"])
        with_synthetic.append(rows[f"predicted {arm('with', k)}"])
    assert truth is not None
    return truth, without, with_synthetic, notes
