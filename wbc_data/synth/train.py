"""``wbc-data synth train``: one readable Accelerate loop (after diffusers' ``train_unconditional.py``), so
``accelerate launch`` runs it on one GPU, several, or several machines unchanged, with mixed precision.

Per step: a class-balanced batch drawn from ``(seed, step)``, the 8 flips/rotations, labels dropped to the null class
(and domains to "no domain") ~10% of the time, DDPM noise at a random timestep, MSE on the recipe's target, AdamW,
EMA. Every ``checkpoint_every`` steps: a checkpoint (full state, resumable), the generator exported with the EMA
weights, and a per-class sample grid. Ctrl-C (or ``max_minutes``) stops at the end of the current step with a
checkpoint; a second Ctrl-C stops at once (the previous checkpoint stays). Noise, timesteps, augmentation and label
dropout come from a generator seeded by ``(seed, step, process)``, so a resumed run continues exactly as the
uninterrupted one would have.
"""

from __future__ import annotations

import hashlib
import json
import math
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from wbc_data.core.device import mixed_precision
from wbc_data.core.heap import retain_freed_memory
from wbc_data.core.progress import NullProgress, Progress, or_null
from wbc_data.core.taxonomy import CLASSES
from wbc_data.core.workspace import Workspace
from wbc_data.io.atomic import atomic_write_text
from wbc_data.io.locks import writer_lock
from wbc_data.synth import SynthError, TrainInterrupted
from wbc_data.synth import checkpoints as ckpt
from wbc_data.synth.data import (
    NULL_CLASS,
    BalancedBatches,
    TrainingSet,
    cache_folder,
    derive_seed,
    dihedral,
    drop_labels,
    pixel_cache,
    training_set,
)
from wbc_data.synth.generator import INFO_FILE, GeneratorInfo, read_info, save_generator
from wbc_data.synth.recipe import Recipe, dump_recipe

if TYPE_CHECKING:
    from wbc_data.synth.lora.recipe import LoraRecipe


@dataclass
class TrainResult:
    out_dir: Path
    generator_dir: Path
    info: GeneratorInfo
    steps: int
    total_steps: int
    seconds: float  # training wall time, all sessions of this run
    images_per_second: float
    loss: float
    stopped: str | None = None  # "time" when max_minutes ran out before the last step
    main_process: bool = True  # under `accelerate launch`, only the main process reports
    grids: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


CACHE_PHASE = "decoding images"
TRAIN_PHASE = "training"


def default_out(workspace: Workspace, recipe: Recipe) -> Path:
    return workspace.generator_dir(recipe.name)


class _Stop:
    """Ctrl-C once: finish the step, checkpoint, stop. Twice: stop now (KeyboardInterrupt)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> _Stop:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True


@dataclass
class SynthTrainOptions:
    """What ``wbc-data synth train`` trains and how; the defaults live here only (the CLI passes what the user gave).

    ``recipe`` is a :class:`Recipe`, a recipe YAML or a shipped recipe's name; ``steps``, ``batch_size`` and
    ``checkpoint_every`` override its ``train`` values; ``init_from`` starts a pixel or latent recipe from a local
    folder or ``pretrained:<name>``; ``base`` is the pipeline an ``sd-lora`` recipe adapts."""

    recipe: Any = None
    overrides: list[str] = field(default_factory=list)
    steps: int | None = None
    batch_size: int | None = None
    checkpoint_every: int | None = None
    init_from: str | None = None
    base: str | None = None
    out: Path | None = None
    resume: bool = False
    max_minutes: float | None = None
    only_rows: frozenset[str] | None = None  # train on just these train rows (sample_ids); None: the whole split

    def build_recipe(self) -> Any:
        """The recipe to train, with the overrides applied; a flag that does not fit the recipe's kind is one line."""
        import dataclasses

        from wbc_data.synth.recipe import load_recipe

        if self.recipe is None:
            raise SynthError("no recipe: name a shipped one (e.g. pbc-latent-32) or a recipe YAML")
        chosen = self.recipe if not isinstance(self.recipe, (str, Path)) else load_recipe(self.recipe, self.overrides)
        chosen = chosen.with_overrides(
            steps=self.steps, batch_size=self.batch_size, checkpoint_every=self.checkpoint_every
        )
        lora = getattr(chosen, "kind", "pixel") != "pixel"
        if self.base is not None and not lora:
            raise SynthError(f"--base: recipe {chosen.name} trains a pixel model from scratch; use --init-from for it")
        if self.init_from is not None and lora:
            raise SynthError(f"--init-from: recipe {chosen.name} adapts a base pipeline; give it with --base")
        if lora:
            chosen = chosen.with_base(self.base)
        if self.init_from is not None:
            chosen = dataclasses.replace(chosen, init_from=str(self.init_from))
        return chosen


def run_synth_train(workspace: Workspace, options: SynthTrainOptions, progress: Progress | None = None) -> TrainResult:
    """The stage's one entry point: build the recipe from ``options`` and train it (see :func:`train`)."""
    recipe = options.build_recipe()
    return train(workspace, recipe, options.out, options.resume, options.max_minutes, progress, options.only_rows)


def train(
    workspace: Workspace,
    recipe: Recipe | LoraRecipe,
    out_dir: Path | None = None,
    resume: bool = False,
    max_minutes: float | None = None,
    progress: Progress | None = None,
    only_rows: frozenset[str] | None = None,
) -> TrainResult:
    """Train ``recipe`` on the workspace's train split (``only_rows``: just those rows of it); see the module
    docstring (an ``sd-lora`` recipe: see :mod:`wbc_data.synth.lora.train`). One writer per generator folder.
    ``progress`` hears two phases (decoding images, training: loss and images/s) and notes."""
    out = Path(out_dir) if out_dir else default_out(workspace, recipe)
    with writer_lock(workspace.root, f"generator-{out.name}"):
        if getattr(recipe, "kind", "pixel") != "pixel":  # LoRA on a pretrained latent diffusion model
            from wbc_data.synth.lora.train import train_lora

            return train_lora(workspace, recipe, out, resume, max_minutes, or_null(progress), only_rows)  # type: ignore[arg-type]
        return _train(workspace, recipe, out, resume, max_minutes, or_null(progress), only_rows)


def _train(
    workspace: Workspace,
    recipe: Recipe,
    out_dir: Path,
    resume: bool,
    max_minutes: float | None,
    progress: Progress,
    only_rows: frozenset[str] | None = None,
) -> TrainResult:
    """Train ``recipe`` on the workspace's train split; see the module docstring."""
    import torch
    import torch.nn.functional as F
    from accelerate import Accelerator
    from diffusers import UNet2DModel
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel

    from wbc_data.synth.model import build_unet, noise_scheduler, unet_from_local
    from wbc_data.synth.pipeline import condition_rows, sum_condition_embeddings

    say = progress.note
    out = Path(out_dir) if out_dir else default_out(workspace, recipe)
    found = resumable(out, resume)

    t = recipe.train
    precision = mixed_precision(t.mixed_precision)
    retain_freed_memory()
    accelerator = Accelerator(mixed_precision=precision, gradient_accumulation_steps=t.gradient_accumulation_steps)
    if not accelerator.is_main_process:
        progress = NullProgress()  # one voice under `accelerate launch`
        say = progress.note
    else:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "recipe.yaml", dump_recipe(recipe))  # the run's own copy, --set values included
    data = training_set(workspace, recipe.domain_condition, only_rows)
    counts = data.class_counts()
    cache = _cache(data, workspace, recipe, out, accelerator, progress)
    say(f"{len(data):,} training images: " + ", ".join(f"{c} {n:,}" for c, n in counts.items() if n))
    vae, latents = _latent_space(recipe, data, cache, out, accelerator, progress)

    rows = condition_rows(len(CLASSES), len(data.domain_names))
    torch.manual_seed(t.seed)
    notes: list[str] = []
    if recipe.init_from:
        model, notes = unet_from_local(recipe.init_from, recipe, rows)
    else:
        model = build_unet(recipe, rows)
    if data.domain_names:
        sum_condition_embeddings(model)
    scheduler = noise_scheduler(recipe)
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=t.learning_rate,
        betas=(t.adam_beta1, t.adam_beta2),
        weight_decay=t.adam_weight_decay,
        eps=t.adam_epsilon,
    )
    lr_schedule = get_scheduler(
        t.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=t.lr_warmup_steps * accelerator.num_processes,
        num_training_steps=t.steps * accelerator.num_processes,
    )
    model, optimizer, lr_schedule = accelerator.prepare(model, optimizer, lr_schedule)
    ema = EMAModel(
        accelerator.unwrap_model(model).parameters(),
        decay=t.ema_decay,
        use_ema_warmup=True,
        inv_gamma=t.ema_inv_gamma,
        power=t.ema_power,
        model_cls=UNet2DModel,
        model_config=accelerator.unwrap_model(model).config,
    )
    ema.to(accelerator.device)
    accelerator.register_for_checkpointing(ema)

    state = {"recipe": recipe.fingerprint(), "data": data.fingerprint(), "seconds": 0.0, "images": 0, "loss": None}
    start = 0
    if found:
        saved = ckpt.read_state(found[1])
        for key, what in (("recipe", "recipe"), ("data", "training rows")):
            if saved.get(key) != state[key]:
                raise SynthError(
                    f"{found[1]}: was trained with another {what}; resume needs the same (or use --out for a new run)"
                )
        accelerator.load_state(str(found[1]))
        ema.to(accelerator.device)
        start = int(saved["step"])
        state.update(
            seconds=float(saved.get("seconds", 0.0)), images=int(saved.get("images", 0)), loss=saved.get("loss")
        )
        say(f"resumed from {found[1]} (step {start:,} of {t.steps:,})")
    if start >= t.steps:
        say(f"already trained {start:,} of {t.steps:,} steps")

    batches = BalancedBatches(data.labels, t.class_balance, t.batch_size, t.seed, accelerator.num_processes)
    offset = len(CLASSES) + 1
    labels_all = torch.from_numpy(data.labels)
    domains_all = torch.from_numpy(data.domains)
    device = accelerator.device
    per_step = t.batch_size * accelerator.num_processes * t.gradient_accumulation_steps
    sampling_info = _Grid(recipe, data, out, accelerator, vae)

    def step_once(step: int) -> float:
        total = 0.0
        for micro in range(t.gradient_accumulation_steps):
            gen = torch.Generator(device=device).manual_seed(
                derive_seed(t.seed, step, micro, accelerator.process_index)
            )
            idx = batches.indices(step, accelerator.process_index, micro)
            if latents is not None:  # one of the 8 cached flips/rotations of each latent (all 8 with dihedral)
                views = torch.randint(0, 8 if t.dihedral else 1, (len(idx),), generator=gen, device=device)
                stack = torch.from_numpy(np.ascontiguousarray(latents[idx])).to(device).float()
                clean = stack[torch.arange(len(idx), device=device), views]
            else:
                pixels = torch.from_numpy(np.ascontiguousarray(cache[idx])).to(device)
                clean = pixels.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
                if t.dihedral:
                    clean = dihedral(clean, gen)
            classes = drop_labels(labels_all[idx].to(device), t.label_dropout, NULL_CLASS, gen)
            if data.domain_names:
                null_domain = offset + len(data.domain_names)
                doms = drop_labels(domains_all[idx].to(device) + offset, t.label_dropout, null_domain, gen)
                cond = torch.stack([classes, doms], dim=1)
            else:
                cond = classes
            noise = torch.randn(clean.shape, generator=gen, device=device)
            steps_t = torch.randint(
                0, scheduler.config.num_train_timesteps, (clean.shape[0],), generator=gen, device=device
            )
            noisy = scheduler.add_noise(clean, noise, steps_t)
            target = _target(recipe.schedule.prediction_type, scheduler, clean, noise, steps_t)
            with accelerator.accumulate(model):
                pred = model(noisy, steps_t, class_labels=cond).sample
                loss = F.mse_loss(pred.float(), target.float())
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), t.max_grad_norm)
                optimizer.step()
                lr_schedule.step()
                optimizer.zero_grad(set_to_none=True)
            total += float(loss.detach())
        ema.step(accelerator.unwrap_model(model).parameters())
        return total / t.gradient_accumulation_steps

    def save_all(step: int) -> None:
        ckpt.save(accelerator, out / "checkpoints", step, state, t.keep_checkpoints)
        unwrapped = accelerator.unwrap_model(model)
        with _ema_weights(unwrapped, ema):
            if accelerator.is_main_process:
                sampling_info.export(unwrapped, scheduler, step, state, notes)
                sampling_info.grid(unwrapped, scheduler, step)
        accelerator.wait_for_everyone()
        _append_log(out, accelerator, {"step": step, **{k: state[k] for k in ("seconds", "images", "loss")}})
        say(f"step {step:,}: checkpoint, generator and sample grid saved")

    steps_done, stopped = run_steps(
        t.steps, start, t.checkpoint_every, step_once, save_all, state, per_step, max_minutes, out, progress
    )
    if sampling_info.last_info is None and not (out / "generator" / INFO_FILE).is_file():
        with _ema_weights(accelerator.unwrap_model(model), ema):  # nothing trained here: export what was resumed
            if accelerator.is_main_process:
                sampling_info.export(accelerator.unwrap_model(model), scheduler, start, state, notes)
    accelerator.wait_for_everyone()
    info = sampling_info.last_info or read_info(out / "generator")
    return finished(out, info, steps_done, t.steps, state, stopped, accelerator.is_main_process,
                    sampling_info.grids, notes)  # fmt: skip


def finished(out: Path, info: GeneratorInfo, steps_done: int, total_steps: int, state: dict[str, Any],
             stopped: str | None, main_process: bool, grids: list[Path],
             notes: list[str] | None = None) -> TrainResult:  # fmt: skip
    """The result of a run (pixel, latent or LoRA) from its exported generator and its step-loop state, built by
    keyword in one place (a positional build once swapped three fields)."""
    rate = state["images"] / state["seconds"] if state["seconds"] else 0.0
    return TrainResult(
        out_dir=out,
        generator_dir=out / "generator",
        info=info,
        steps=steps_done,
        total_steps=total_steps,
        seconds=float(state["seconds"]),
        images_per_second=rate,
        loss=float(state["loss"]) if state["loss"] is not None else float("nan"),
        stopped=stopped,
        main_process=main_process,
        grids=grids,
        notes=list(notes or []),
    )


def resumable(out: Path, resume: bool) -> tuple[int, Path] | None:
    """The checkpoint to resume from; a run folder in the wrong state for ``resume`` is one line."""
    found = ckpt.latest(out / "checkpoints")
    if found and not resume:
        raise SynthError(
            f"{out}: holds checkpoints of an earlier run (step {found[0]:,}): pass --resume to continue it, "
            "or --out for a new run"
        )
    if resume and not found:
        raise SynthError(f"{out}: no checkpoint to resume from (train without --resume to start)")
    return found


def run_steps(
    total: int,
    start: int,
    checkpoint_every: int,
    step_once: Any,
    save_all: Any,
    state: dict[str, Any],
    per_step: int,
    max_minutes: float | None,
    out: Path,
    progress: Progress,
) -> tuple[int, str | None]:
    """Steps ``start..total`` with progress, checkpoints, Ctrl-C and the time budget: the one loop of the pixel,
    latent and LoRA recipes. Returns the steps done and why it stopped early ("time"), if it did."""
    budget = max_minutes * 60.0 if max_minutes else math.inf
    began = time.perf_counter()
    session_images, session_train, smoothed = 0, 0.0, float("nan")
    steps_done, stopped = start, None
    progress.phase(TRAIN_PHASE, total)
    with _Stop() as stop:
        for step in range(start, total):
            tick = time.perf_counter()
            loss = step_once(step)
            spent = time.perf_counter() - tick
            session_train += spent
            session_images += per_step
            state["seconds"] = float(state["seconds"]) + spent
            state["images"] = int(state["images"]) + per_step
            smoothed = loss if math.isnan(smoothed) else 0.9 * smoothed + 0.1 * loss
            state["loss"] = smoothed
            done = steps_done = step + 1
            try:
                progress.advance(done, total, loss=smoothed, images_per_s=session_images / max(session_train, 1e-9))
            except KeyboardInterrupt:
                stop.requested = True
            over_time = time.perf_counter() - began > budget
            if done % checkpoint_every == 0 or done == total or stop.requested or over_time:
                save_all(done)
            if stop.requested:
                raise TrainInterrupted(
                    f"interrupted at step {done:,} of {total:,}: checkpoint saved in {out / 'checkpoints'}; "
                    "re-run with --resume to continue"
                )
            if over_time and done < total:
                stopped = "time"
                progress.note(f"time budget of {max_minutes:g} min reached at step {done:,} of {total:,}")
                break
    return steps_done, stopped


def _target(kind: str, scheduler: Any, clean: Any, noise: Any, steps: Any) -> Any:
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return scheduler.get_velocity(clean, noise, steps)
    return clean


def _cache(
    data: TrainingSet, workspace: Workspace, recipe: Recipe, out: Path, accelerator: Any, progress: Progress
) -> np.ndarray:
    """Decode the training images once (main process), the others wait and map the same file."""
    from wbc_data.io.pixels import PixelLoader

    folder = cache_folder(out)

    args = (data.frame, PixelLoader.for_workspace(workspace), recipe.resolution, folder, data.fingerprint())
    if accelerator.is_main_process:
        progress.phase(CACHE_PHASE)
        cache = pixel_cache(*args, workers=recipe.train.workers, progress=progress)
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        cache = pixel_cache(*args, workers=0)
    return cache


def _latent_space(
    recipe: Recipe, data: TrainingSet, cache: np.ndarray, out: Path, accelerator: Any, progress: Progress
) -> tuple[Any, np.ndarray | None]:
    """Latent recipes: the autoencoder and the training images' latents (else ``(None, None)``).

    The autoencoder comes from ``init_from`` when that generator has one (frozen: its denoiser was trained in that
    latent space), else from this run's ``autoencoder/`` folder when it was trained on the same rows and recipe, else
    it is trained now (main process) and saved there, so a resumed run never trains it twice."""
    from wbc_data.synth.autoencoder import latent_cache, reconstruction_error, train_autoencoder
    from wbc_data.synth.folders import replace_dir, staging_dir
    from wbc_data.synth.model import autoencoder_from, resolve_init

    spec = recipe.autoencoder
    if spec is None:
        return None, None
    key = f"{data.fingerprint()}-{recipe.fingerprint()}"
    folder = out / "autoencoder"
    vae = autoencoder_from(resolve_init(recipe.init_from)) if recipe.init_from else None
    fit_scale = False
    if vae is not None:
        progress.note(f"autoencoder: from {recipe.init_from} (kept as it is)")
        key = f"{data.fingerprint()}-{recipe.init_from}"
    elif (folder / "wbc_key.txt").is_file() and (folder / "wbc_key.txt").read_text().strip() == key:
        vae = autoencoder_from(folder.parent, subfolder=folder.name)
        progress.note(f"autoencoder: reused from {folder}")
    elif accelerator.is_main_process:
        try:
            vae = train_autoencoder(cache, spec, recipe.resolution, recipe.train.seed, accelerator.device, progress)
        except KeyboardInterrupt:
            raise TrainInterrupted(
                "interrupted while training the autoencoder (nothing to resume yet): run the command again"
            ) from None
        fit_scale = True
    path = cache_folder(out) / f"latents-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npy"
    if accelerator.is_main_process:
        latents = latent_cache(vae, cache, path, fit_scale=fit_scale)
        if fit_scale:
            error = reconstruction_error(vae, cache[: min(len(cache), 512)])
            progress.note(f"autoencoder: {spec.steps:,} steps, reconstruction error {error:.3f} (mean |pixel|, 0-1)")
            tmp = staging_dir(folder)
            vae.save_pretrained(tmp)
            (tmp / "wbc_key.txt").write_text(key + "\n", encoding="utf-8")
            replace_dir(tmp, folder)
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        vae = vae or autoencoder_from(folder.parent, subfolder=folder.name)
        latents = np.load(path, mmap_mode="r")
    vae.to(accelerator.device).eval().requires_grad_(False)
    return vae, latents


@contextmanager
def _ema_weights(model: Any, ema: Any) -> Iterator[None]:
    """The model with its EMA weights inside the block, its training weights again after."""
    ema.store(model.parameters())
    ema.copy_to(model.parameters())
    try:
        yield
    finally:
        ema.restore(model.parameters())


def _append_log(out: Path, accelerator: Any, entry: dict[str, Any]) -> None:
    if accelerator.is_main_process:
        with open(out / "train_log.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")


class _Grid:
    """Exports the generator and draws the per-class grid at each checkpoint (main process)."""

    def __init__(self, recipe: Recipe, data: TrainingSet, out: Path, accelerator: Any, vae: Any = None) -> None:
        self.vae = vae
        self.recipe = recipe
        self.data = data
        self.out = out
        self.accelerator = accelerator
        self.grids: list[Path] = []
        self.last_info: GeneratorInfo | None = None

    def export(self, model: Any, scheduler: Any, step: int, state: dict[str, Any], notes: list[str]) -> None:
        seconds = float(state["seconds"])
        info = GeneratorInfo(
            name=self.recipe.name,
            resolution=self.recipe.resolution,
            class_counts=self.data.class_counts(),
            domains=list(self.data.domain_names),
            sources=self.data.sources(),
            recipe=self.recipe.to_dict(),
            trained_steps=step,
            planned_steps=self.recipe.train.steps,
            training_seconds=round(seconds, 2),
            images_per_second=round(state["images"] / seconds, 2) if seconds else 0.0,
            device=f"{self.accelerator.device} x{self.accelerator.num_processes}, "
            f"mixed precision {self.accelerator.mixed_precision}",
            init_from=self.recipe.init_from,
            created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        self.last_info = save_generator(self.out / "generator", model, scheduler, info, self.data.frame, self.vae)

    def grid(self, model: Any, scheduler: Any, step: int) -> None:
        import torch

        from wbc_data.synth.grids import class_grid
        from wbc_data.synth.pipeline import WbcCellPipeline

        t = self.recipe.train
        if t.grid_per_class <= 0:
            return
        pipe = WbcCellPipeline(model, scheduler, list(CLASSES), list(self.data.domain_names), vae=self.vae)
        pipe.set_progress_bar_config(disable=True)
        counts = self.data.class_counts()
        shown = [(index, name) for index, name in enumerate(CLASSES) if counts[name]]
        # one batch for every class (each image still draws from its own seed): on a CPU, 9 classes sampled apart
        # took 25 s of a 10-step demo fine-tune, most of it per-call overhead of batches of 4
        labels = [name for _, name in shown for _ in range(t.grid_per_class)]
        gens = [
            torch.Generator().manual_seed(derive_seed(t.seed, i, k)) for i, _ in shown for k in range(t.grid_per_class)
        ]
        images = pipe(
            labels,
            guidance_scale=self.recipe.sample.guidance,
            num_inference_steps=t.grid_steps,
            scheduler=self.recipe.sample.scheduler,
            generator=gens,
            output_type="uint8",
        ).images
        samples = {name: images[k * t.grid_per_class : (k + 1) * t.grid_per_class] for k, (_, name) in enumerate(shown)}
        title = f"{self.recipe.name}: step {step:,} (EMA weights, {self.recipe.sample.scheduler} {t.grid_steps} steps)"
        self.grids.append(class_grid(samples, self.out / "samples" / f"step-{step:07d}.png", title))
