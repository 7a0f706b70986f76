"""``wbc-data synth --cls PLY --n 500``: draw samples in batches on the best device, pass each through the
memorisation guard and the fidelity gate (is it a plausible cell of its class at all?), replace rejected ones until
``n`` are accepted (at most ``max_attempts`` x ``n`` draws), then measure diversity and fidelity (KID and
precision/recall in an ImageNet embedding, beside real-vs-real and noise references; a classifier's agreement when
one is given), and write PNGs, the synthetic source manifest and a report. Rejected samples are written too, under
``rejected/``, with the reason, for inspection (never for training).

Every sample has its own seed (derived from ``--seed``, its class and its attempt number), so it depends on nothing
else: the same seed gives the same image, alone or in any batch, and a manifest row says how to make it again.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wbc_data.core.device import best_device, half_dtype
from wbc_data.core.progress import Progress, or_null
from wbc_data.core.taxonomy import CLASSES
from wbc_data.core.workspace import Workspace
from wbc_data.ingest.engine import IngestOptions, ingest
from wbc_data.io.locks import writer_lock
from wbc_data.sources.synth import GENERATION_FILE, SAMPLES_FILE, sample_line
from wbc_data.synth import SynthError
from wbc_data.synth.data import derive_seed, to_resolution
from wbc_data.synth.embedding import Embedder
from wbc_data.synth.fidelity import ClassFidelity, measure
from wbc_data.synth.folders import remove_stale, replace_dir, staging_dir
from wbc_data.synth.framing import FRAMED, Framing, sample_framing
from wbc_data.synth.gate import MIN_REAL, FidelityGate, GateCalibration, GateVerdict
from wbc_data.synth.generator import GeneratorInfo, cell_view, read_info, training_rows
from wbc_data.synth.guards import Agreement, Calibration, Diversity, MemorisationGuard, Verdict, agreement, diversity
from wbc_data.synth.recipe import SCHEDULERS
from wbc_data.synth.rows import folder_rel, png_bytes, source_name
from wbc_data.train.classifier import Classifier

Drawer = Callable[[str, list[int]], np.ndarray]
"""``draw(label, seeds) -> (len(seeds), h, w, 3) uint8``: one image per seed."""

STATS_LIMIT = 1000
"""Samples per class kept in memory for diversity and fidelity (the rest are on disk)."""
POOL_SIZE = 256
EXAMPLES = 8
"""Images per class shown in the report's grids."""


@dataclass
class SynthOptions:
    counts: dict[str, int]  # class -> accepted samples wanted
    guidance: float | None = None  # None: the recipe's default
    steps: int | None = None
    scheduler: str | None = None
    seed: int = 0
    domain: str | None = None
    batch_size: int | None = None
    max_attempts: float = 3.0  # draws per requested sample at most (rejected ones are replaced up to this)
    name: str | None = None
    device: str | None = None  # None: the best available
    classifier: Classifier | None = None  # reports its agreement with the intended class
    reference_max: int = 500  # real images of a class for the fidelity numbers, and for calibrating the gate
    reference_splits: list[str] | None = None  # splits the fidelity numbers' reference comes from (None: any)
    fidelity_gate: bool = True  # reject samples that are not plausible cells of their class (see synth.gate)
    fidelity_quantile: float = 0.95  # the gate's radius: this quantile of real cells' nearest-other-cell distances

    def __post_init__(self) -> None:
        if not 0.0 < self.fidelity_quantile <= 1.0:
            raise SynthError(f"--fidelity-quantile {self.fidelity_quantile:g}: a quantile above 0, at most 1")


@dataclass(frozen=True)
class Judged:
    """A sample's verdicts: the memorisation guard's, and the fidelity gate's (None when the gate is off)."""

    verdict: Verdict
    gate: GateVerdict | None = None

    @property
    def rejected_by(self) -> str | None:
        if self.verdict.copy:
            return "memorisation guard"
        if self.gate is not None and not self.gate.plausible:
            return "fidelity gate"
        return None

    @property
    def reason(self) -> str | None:
        reasons = [self.verdict.reason, self.gate.reason if self.gate is not None else None]
        return "; ".join(r for r in reasons if r) or None


@dataclass
class ClassOutcome:
    label: str
    requested: int
    accepted: int
    rejected: int  # near-copies (memorisation guard)
    attempts: int
    calibration: Calibration
    implausible: int = 0  # not plausible cells of the class (fidelity gate)
    gate: GateCalibration | None = None  # None: the gate was off, or the class has too few real cells
    gate_note: str | None = None  # why the gate was not applied
    diversity: Diversity | None = None
    fidelity: ClassFidelity | None = None  # the accepted samples against real cells of the class
    fidelity_drawn: ClassFidelity | None = None  # every drawn sample, before the guards (when the gate ran)
    agreement: Agreement | None = None
    accepted_distances: list[float] = field(default_factory=list)  # pixel distance, samples that are no copy
    rejected_distances: list[float] = field(default_factory=list)  # pixel distance, near-copies
    gate_distances: dict[bool, list[float]] = field(default_factory=dict)  # plausible? -> embedding distances
    seconds: float = 0.0

    @property
    def short(self) -> int:
        return self.requested - self.accepted

    @property
    def yield_rate(self) -> float:
        """Accepted samples per draw (the guards' yield: 1 when nothing was rejected)."""
        return self.accepted / self.attempts if self.attempts else float("nan")


@dataclass
class SynthResult:
    name: str
    source: str
    manifest_path: Path
    folder: Path
    generator: GeneratorInfo
    device: str
    seconds: float
    settings: dict[str, Any]
    outcomes: list[ClassOutcome]
    report_paths: list[Path] = field(default_factory=list)
    grid_path: Path | None = None
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- what to sample


def parse_classes(values: list[str]) -> list[str]:
    """Class codes, case-insensitive; an unknown one is one clear line."""
    out = []
    for value in values:
        code = value.strip().upper()
        if code not in CLASSES:
            raise SynthError(f"--cls {value}: unknown class (known: {', '.join(CLASSES)})")
        out.append(code)
    return list(dict.fromkeys(out))


def plan_counts(path: Path) -> dict[str, int]:
    from wbc_data.gap import load_plan

    plan = load_plan(path)
    counts = plan.counts()
    if not counts:
        raise SynthError(f"{path}: the plan asks for no synthetic image (every class is at 0)")
    return counts


def find_generator(workspace: Workspace) -> Path:
    """The one generator trained in this workspace (``<workspace>/generators/*/generator``)."""
    found = sorted(p.parent for p in (workspace.generators_dir).glob("*/generator/wbc_generator.json"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise SynthError(
            f"{workspace.generators_dir}: no trained generator here; train one with `wbc-data synth train` "
            "or pass --generator DIR"
        )
    names = ", ".join(str(p) for p in found)
    raise SynthError(f"{workspace.generators_dir}: several generators ({names}); choose one with --generator")


def check_request(info: GeneratorInfo, folder: Path, options: SynthOptions) -> None:
    seen = info.trained_classes()
    for label, n in options.counts.items():
        if label not in CLASSES:
            raise SynthError(f"--cls {label}: unknown class (known: {', '.join(CLASSES)})")
        if label not in seen:
            raise SynthError(
                f"{folder}: generator {info.id} never saw a {label} image, so it cannot render {label} "
                f"(it learnt: {', '.join(seen) or 'nothing'})"
            )
        if n < 1:
            raise SynthError(f"--n {n}: ask for at least one image")
    if options.domain is not None:
        if not info.domains:
            raise SynthError(f"--domain {options.domain}: generator {info.id} was trained without a domain condition")
        if options.domain not in info.domains:
            raise SynthError(
                f"--domain {options.domain}: unknown to {info.id} (its domains: {', '.join(info.domains)})"
            )
    if options.scheduler is not None and options.scheduler not in SCHEDULERS:
        raise SynthError(f"--scheduler {options.scheduler}: use one of {', '.join(SCHEDULERS)}")
    if options.max_attempts < 1:
        raise SynthError(f"--max-attempts {options.max_attempts}: at least 1 (one draw per requested image)")
    if not 0.0 < options.fidelity_quantile <= 1.0:
        raise SynthError(f"--fidelity-quantile {options.fidelity_quantile}: use a value in (0, 1]")


def run_name(info: GeneratorInfo, options: SynthOptions) -> str:
    raw = options.name or (
        f"{info.name}-{'-'.join(options.counts)}" if len(options.counts) <= 3 else f"{info.name}-plan"
    )
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", raw).strip("-.")
    if not name:
        raise SynthError(f"--name {options.name!r}: use letters, digits, '.', '_' or '-'")
    return name


# --------------------------------------------------------------------------- devices and drawing


def pipeline_drawer(pipe: Any, guidance: float, steps: int, scheduler: str, domain: str | None) -> Drawer:
    import torch

    def draw(label: str, seeds: list[int]) -> np.ndarray:
        generators = [torch.Generator().manual_seed(int(s)) for s in seeds]  # CPU noise: same image on any device
        return pipe(
            [label] * len(seeds),
            domain=domain,
            guidance_scale=guidance,
            num_inference_steps=steps,
            scheduler=scheduler,
            generator=generators,
            output_type="uint8",
        ).images

    return draw


def sample_seed(seed: int, label: str, attempt: int) -> int:
    return derive_seed(seed, CLASSES.index(label), attempt)


# --------------------------------------------------------------------------- real images


def _open_at(frame: pd.DataFrame, workspace: Workspace, size: int, view: Any = None) -> np.ndarray:
    from wbc_data.io.pixels import PixelLoader, row_refs

    loader = PixelLoader.for_workspace(workspace)
    view = view or (lambda image: to_resolution(image, size))
    images = [np.asarray(view(loader.open(ref))) for ref in row_refs(frame)]
    return np.stack(images) if images else np.zeros((0, size, size, 3), dtype=np.uint8)


def training_images(
    workspace: Workspace,
    folder: Path,
    info: GeneratorInfo,
    frame: pd.DataFrame,
    label: str | None,
    limit: int | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, list[str]]:
    """The generator's own training images (of ``label``, or any), reopened from this workspace at its resolution."""
    rows = training_rows(folder)
    if label is not None:
        rows = rows[rows["label"] == label]
    if limit is not None and len(rows) > limit:
        rows = rows.iloc[np.sort(np.random.default_rng(seed).permutation(len(rows))[:limit])]
    found = frame[frame["sample_id"].isin(rows["sample_id"])]
    if len(found) < len(rows):
        raise SynthError(
            f"{workspace.unified_manifest}: {len(rows) - len(found):,} of the {len(rows):,} training images of "
            f"generator {info.id}{f' ({label})' if label else ''} are not in this workspace; the memorisation guard "
            "needs them (sample in the workspace the generator was trained on)"
        )
    found = found.set_index("sample_id").loc[rows["sample_id"]].reset_index()
    return _open_at(found, workspace, info.resolution, cell_view(info)), found["sample_id"].tolist()


def reference_images(
    workspace: Workspace,
    frame: pd.DataFrame,
    label: str,
    size: int,
    limit: int,
    seed: int,
    splits: list[str] | None = None,
) -> np.ndarray:
    """Real images of ``label`` in the workspace (real, exact, kept; of ``splits``, or any) for the fidelity guard."""
    from wbc_data.core.rows import select_rows

    rows = select_rows(frame, splits, exact_only=True, kept_only=True, synthetic=False)
    rows = rows[rows["label"] == label].sort_values("sample_id")
    if len(rows) > limit:
        rows = rows.iloc[np.sort(np.random.default_rng(seed).permutation(len(rows))[:limit])]
    return _open_at(rows, workspace, size)


# --------------------------------------------------------------------------- the run


@dataclass
class Draws:
    """What :func:`sample_class` drew for one class."""

    accepted: int = 0
    rejected: int = 0  # near-copies
    implausible: int = 0  # failed the fidelity gate
    attempts: int = 0
    kept: list[np.ndarray] = field(default_factory=list)  # accepted images (up to STATS_LIMIT)
    kept_features: list[np.ndarray] = field(default_factory=list)  # their embedding (when the gate ran)
    drawn_features: list[np.ndarray] = field(default_factory=list)  # every drawn sample's embedding (gate ran)
    rejected_examples: list[np.ndarray] = field(default_factory=list)  # the first few rejected images


def sample_class(
    label: str,
    n: int,
    draw: Drawer,
    guard: MemorisationGuard,
    options: SynthOptions,
    batch_size: int,
    emit: Callable[[str, int, np.ndarray, Judged, int], None],
    progress: Callable[[int], None] | None = None,
    gate: FidelityGate | None = None,
) -> Draws:
    """Draw until ``n`` samples pass the guard (and the gate, if any) or ``max_attempts`` x ``n`` draws are spent;
    ``emit`` each sample (label, attempt, image, verdicts, seed)."""
    cap = max(n, math.ceil(n * options.max_attempts))
    out = Draws()
    while out.accepted < n and out.attempts < cap:
        m = min(batch_size, n - out.accepted, cap - out.attempts)
        seeds = [sample_seed(options.seed, label, out.attempts + k) for k in range(m)]
        images = np.asarray(draw(label, seeds), dtype=np.uint8)
        gated, features = gate.check(images) if gate is not None else ([None] * m, None)
        for k, (image, verdict) in enumerate(zip(images, guard.check(images), strict=True)):
            judged = Judged(verdict, gated[k])
            emit(label, out.attempts + k, image, judged, seeds[k])
            if features is not None and len(out.drawn_features) < STATS_LIMIT:
                out.drawn_features.append(features[k])
            if judged.rejected_by and len(out.rejected_examples) < EXAMPLES:
                out.rejected_examples.append(image)
            if judged.rejected_by == "memorisation guard":
                out.rejected += 1
            elif judged.rejected_by == "fidelity gate":
                out.implausible += 1
            elif out.accepted < n:
                out.accepted += 1
                if len(out.kept) < STATS_LIMIT:
                    out.kept.append(image)
                    if features is not None:
                        out.kept_features.append(features[k])
        out.attempts += m
        if progress:
            progress(m)
    return out


class _Writer:
    """Writes each sample's PNG into the staging folder and its line of ``samples.jsonl`` (how it was made, the
    guards' verdict), and remembers its distance; :meth:`finish` adds ``generation.json``. Ingest then reads the
    folder through the ``synth`` source adapter like any other source."""

    def __init__(
        self, staged: Path, info: GeneratorInfo, settings: dict[str, Any], framing: dict[str, Framing]
    ) -> None:
        self.staged = staged
        self.info = info
        self.settings = settings
        self.framing = framing  # class -> the framing its samples imitate
        self.lines: list[dict[str, Any]] = []
        self.distances: dict[tuple[str, bool], list[float]] = {}
        self.gate_distances: dict[str, dict[bool, list[float]]] = {}

    def __call__(self, label: str, attempt: int, image: np.ndarray, judged: Judged, seed: int) -> None:
        verdict, gate = judged.verdict, judged.gate
        source_path = f"{'rejected/' if judged.rejected_by else ''}{label}/{label}_{attempt:06d}.png"
        path = self.staged / source_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png_bytes(image))
        s = self.settings
        match = verdict.registered
        line: dict[str, Any] = {
            "copy": verdict.copy,
            "rejected_by": judged.rejected_by,
            "reason": judged.reason,
            "nearest_id": verdict.nearest_id,
            "distance": float(verdict.distance),
            "copy_of": verdict.registered_id,
            "correlation": round(match.correlation, 4) if match is not None else None,
            "transform": match.describe() if match is not None else None,
        }
        if gate is not None:
            line |= {"plausible": gate.plausible, "embedding_distance": round(gate.distance, 4),
                     "embedding_nearest": gate.nearest_id}  # fmt: skip
            self.gate_distances.setdefault(label, {}).setdefault(gate.plausible, []).append(gate.distance)
        framing = self.framing.get(label, "whole")
        self.lines.append(
            sample_line(source_path, label, seed, s["guidance"], s["steps"], s["scheduler"], s["domain"], line, framing)
        )
        self.distances.setdefault((label, verdict.copy), []).append(verdict.distance)

    def finish(self, notes: dict[str, Any]) -> None:
        text = "".join(json.dumps(line, sort_keys=True) + "\n" for line in self.lines)
        (self.staged / SAMPLES_FILE).write_text(text, encoding="utf-8")
        generation = {"generator_id": self.info.id, "generator_hash": self.info.content_hash, "notes": notes}
        (self.staged / GENERATION_FILE).write_text(json.dumps(generation, indent=2, default=str), encoding="utf-8")


class _Ticker:
    """Counts drawn samples for the progress bar; on CPU, estimates the remaining time after the first batch."""

    def __init__(self, total: int, on_cpu: bool, progress: Progress) -> None:
        self.total = total
        self.on_cpu = on_cpu
        self.progress = progress
        self.done = 0
        self.started = time.perf_counter()

    def __call__(self, m: int) -> None:
        first = self.done == 0
        self.done += m
        if first and self.on_cpu:
            per = (time.perf_counter() - self.started) / max(m, 1)
            left = max(self.total - self.done, 0)
            self.progress.note(
                f"CPU: {per:.2f} s per image; about {left * per / 60:.1f} min for the remaining {left:,} "
                "(more if samples are rejected); a GPU takes seconds"
            )
        self.progress.advance(min(self.done, self.total), self.total)


def run_synth(
    workspace: Workspace,
    generator_dir: Path | None,
    options: SynthOptions,
    progress: Progress | None = None,
    draw: Drawer | None = None,
) -> SynthResult:
    """Sample, guard, write; ``draw`` replaces the generator's pipeline (tests plant copies with it)."""
    from wbc_data.core.stages import load_view

    progress = or_null(progress)
    say = progress.note
    folder = Path(generator_dir).expanduser() if generator_dir else find_generator(workspace)
    info = read_info(folder)
    check_request(info, folder, options)
    defaults = info.recipe.get("sample", {})
    settings = {
        "guidance": options.guidance if options.guidance is not None else float(defaults.get("guidance", 3.0)),
        "steps": options.steps or int(defaults.get("steps", 25)),
        "scheduler": options.scheduler or str(defaults.get("scheduler", "dpm")),
        "seed": options.seed,
        "domain": options.domain,
        "batch_size": options.batch_size or int(defaults.get("batch_size", 64)),
        "max_attempts": options.max_attempts,
        "fidelity_gate": options.fidelity_gate,
        "fidelity_quantile": options.fidelity_quantile,
        "reference_max": options.reference_max,
    }
    if settings["steps"] < 1 or settings["batch_size"] < 1:
        raise SynthError("--steps and --batch-size must be at least 1")
    device_name = "test drawer"
    if draw is None:
        from wbc_data.synth.generator import load_generator

        device = options.device or best_device(allow_mps=True)
        dtype = None if options.device else half_dtype(device)
        pipe, info = load_generator(folder, device=device, dtype=dtype)
        draw = pipeline_drawer(pipe, settings["guidance"], settings["steps"], settings["scheduler"], options.domain)
        device_name = f"{device} ({str(dtype).replace('torch.', '') if dtype else 'float32'})"
        if device == "cpu":
            say(
                f"sampling on CPU (no GPU found): slow; a time estimate follows the first batch "
                f"({sum(options.counts.values()):,} images, {settings['steps']} {settings['scheduler']} steps, "
                f"{info.resolution} px)"
            )
    name = run_name(info, options)
    source = source_name(name)
    final = workspace.root / folder_rel(name)
    with writer_lock(workspace.root, f"synth-{source}"):  # ingest, at the end, holds source-<name>
        frame = load_view(workspace).frame

        remove_stale(final.parent, final.name)
        staged = staging_dir(final)
        training = training_rows(folder)
        framing = {label: sample_framing(training, frame, label, options.domain) for label in options.counts}
        writer = _Writer(staged, info, settings, framing)
        progress.phase("sampling", sum(options.counts.values()))
        ticker = _Ticker(sum(options.counts.values()), device_name.startswith("cpu"), progress)
        outcomes: list[ClassOutcome] = []
        embedder = Embedder(device=options.device or best_device())
        real_grid: dict[str, np.ndarray] = {}
        synth_grid: dict[str, np.ndarray] = {}
        rejected_grid: dict[str, np.ndarray] = {}
        pool: np.ndarray | None = None
        try:
            for label, n in options.counts.items():
                t0 = time.perf_counter()
                reals, ids = training_images(workspace, folder, info, frame, label)
                if len(reals) < 5 and pool is None:
                    pool, _ = training_images(workspace, folder, info, frame, None, POOL_SIZE, options.seed)
                guard, calibration = MemorisationGuard.calibrated(reals, ids, pool, options.seed)
                say(f"{label}: {len(reals):,} training images, framed {FRAMED[framing[label]]}; near-copy when "
                    f"{calibration.describe()}")  # fmt: skip
                gate, gate_calibration, gate_note = _gate(label, reals, ids, options, embedder)
                say(f"{label}: fidelity gate: {gate_calibration.describe(label) if gate_calibration else gate_note}")
                draws = sample_class(label, n, draw, guard, options, settings["batch_size"], writer, ticker, gate)
                outcome = ClassOutcome(
                    label,
                    n,
                    draws.accepted,
                    draws.rejected,
                    draws.attempts,
                    calibration,
                    implausible=draws.implausible,
                    gate=gate_calibration,
                    gate_note=gate_note,
                    accepted_distances=writer.distances.get((label, False), []),
                    rejected_distances=writer.distances.get((label, True), []),
                    gate_distances=writer.gate_distances.get(label, {}),
                )
                if draws.kept:
                    outcome.diversity = diversity(np.stack(draws.kept), reals, guard.threshold, seed=options.seed)
                    if options.classifier is not None:
                        from PIL import Image

                        kept_images = [Image.fromarray(a) for a in draws.kept]
                        outcome.agreement = agreement(options.classifier, label, kept_images)
                    synth_grid[label] = np.stack(draws.kept[:EXAMPLES])
                if draws.rejected_examples:
                    rejected_grid[label] = np.stack(draws.rejected_examples)
                order = np.random.default_rng(options.seed).permutation(len(reals))[:EXAMPLES]
                real_grid[label] = reals[np.sort(order)]
                _measure(outcome, draws, options, workspace, frame, info.resolution, embedder)
                outcome.seconds = time.perf_counter() - t0
                outcomes.append(outcome)
                if draws.accepted < n:
                    say(
                        f"{label}: only {draws.accepted:,} of {n:,} samples passed the guards after "
                        f"{draws.attempts:,} draws ({draws.rejected:,} near-copies, {draws.implausible:,} not "
                        f"plausible {label} cells rejected); raise --max-attempts or train longer"
                    )
            writer.finish(notes_for(outcomes, info, settings))
            replace_dir(staged, final)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        options_in = IngestOptions(name=source, licence=info.licence(), citation=info.citation(), workers=1)
        manifest_path = ingest("synth", final, workspace, options_in).manifest_path
        seconds = time.perf_counter() - ticker.started
        result = SynthResult(name, source, manifest_path, final, info, device_name, seconds, settings, outcomes)
        from wbc_data.synth.report import write_report

        write_report(result, workspace, real_grid, synth_grid, rejected_grid)
        return result


def _gate(
    label: str, reals: np.ndarray, ids: list[str], options: SynthOptions, embedder: Embedder
) -> tuple[FidelityGate | None, GateCalibration | None, str | None]:
    """The class's fidelity gate, calibrated on up to ``reference_max`` of its training images; or why there is
    none."""
    if not options.fidelity_gate:
        return None, None, "off (--no-fidelity-gate)"
    if len(reals) < MIN_REAL:
        return None, None, f"not applied: {len(reals)} real {label} training image(s), at least {MIN_REAL} needed"
    pick = np.sort(np.random.default_rng(options.seed).permutation(len(reals))[: options.reference_max])
    gate, calibration = FidelityGate.calibrated(
        label, reals[pick], [ids[i] for i in pick], embedder, options.fidelity_quantile
    )
    return gate, calibration, None


def _measure(
    outcome: ClassOutcome,
    draws: Draws,
    options: SynthOptions,
    workspace: Workspace,
    frame: pd.DataFrame,
    size: int,
    embedder: Embedder,
) -> None:
    """KID and precision/recall of the accepted samples (and, when the gate ran, of every drawn sample) against
    the class's real cells, with the references of :mod:`wbc_data.synth.fidelity`."""
    if not draws.kept and not draws.drawn_features:
        return
    refs = reference_images(
        workspace, frame, outcome.label, size, options.reference_max, options.seed, options.reference_splits
    )
    if len(refs) < 2:
        return
    features = np.stack(draws.kept_features) if draws.kept_features else None
    if features is None and draws.kept:
        features = embedder(np.stack(draws.kept))
    if features is not None:
        outcome.fidelity = measure(refs, features, embedder, seed=options.seed)
    if draws.drawn_features:
        outcome.fidelity_drawn = measure(refs, np.stack(draws.drawn_features), embedder, seed=options.seed)


def notes_for(outcomes: list[ClassOutcome], info: GeneratorInfo, settings: dict[str, Any]) -> dict[str, Any]:
    """What the manifest's metadata records about the run: per class requested/accepted/rejected and the guards."""
    per_class = {}
    for o in outcomes:
        entry: dict[str, Any] = {
            "requested": o.requested,
            "accepted": o.accepted,
            "rejected_near_copies": o.rejected,
            "rejected_not_plausible": o.implausible,
            "attempts": o.attempts,
            "yield": round(o.yield_rate, 4) if o.attempts else None,
            "threshold": round(o.calibration.threshold, 5),
            "calibration": o.calibration.describe(),
            "fidelity_gate": o.gate.describe(o.label) if o.gate else o.gate_note,
        }
        if o.diversity:
            entry["diversity"] = o.diversity.describe()
            entry["collapsed"] = o.diversity.collapsed
        if o.agreement:
            entry["agreement"] = o.agreement.agreement
        for key, fid in (("fidelity", o.fidelity), ("fidelity_drawn", o.fidelity_drawn)):
            if fid is not None:
                entry[key] = {name: {"kid": c.kid, "precision": c.precision, "recall": c.recall, "n": c.n_other}
                              for name, c in fid.rows()}  # fmt: skip
        per_class[o.label] = entry
    rule = "every licence of the generator's training data (all classes: the model learnt from all of them)"
    return {"generator": info.id, "settings": settings, "classes": per_class, "licence_rule": rule}
