"""The training loop of one ensemble member: staged fine-tuning under Accelerate, validation macro-F1 every epoch,
early stopping per stage (best weights restored, carried into the next stage), a checkpoint after every epoch.

The same code runs on a CPU, one GPU, or many GPUs and machines under ``accelerate launch``: Accelerate places the
model, shards the batches, wraps the forward pass in bf16/fp16 autocast and scales the loss. Each epoch reseeds every
RNG from (recipe seed, member, epoch), so a run resumed from its last checkpoint matches the uninterrupted run.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from wbc_data.core.progress import Progress
from wbc_data.core.taxonomy import CLASSES
from wbc_data.train import checkpoint
from wbc_data.train.checkpoint import LoopState
from wbc_data.train.errors import one_line_worker_errors
from wbc_data.train.metrics import macro_f1
from wbc_data.train.models import apply_stage, create_model, restore_all
from wbc_data.train.recipe import MemberSpec, Recipe, StageSpec

REPORT_EVERY = 5  # steps between progress updates (each one reads the loss back from the GPU)


@dataclass
class EpochRecord:
    member: str
    stage: str
    epoch: int  # over all stages, from 1
    stage_epoch: int
    lr: float
    train_loss: float
    val_loss: float
    val_macro_f1: float
    val_accuracy: float
    images_per_s: float
    seconds: float
    improved: bool

    def describe(self) -> str:
        """The line a finished epoch prints (a progress note)."""
        best = " best" if self.improved else ""
        return (
            f"{self.member} {self.stage} epoch {self.epoch}: loss {self.train_loss:.4f} · val loss "
            f"{self.val_loss:.4f} · val macro-F1 {self.val_macro_f1:.4f} · val acc {self.val_accuracy:.4f} · "
            f"{self.images_per_s:,.0f} img/s · {self.seconds:.0f} s{best}"
        )


@dataclass
class MemberData:
    """What one member trains and validates on, already wrapped as datasets."""

    train: torch.utils.data.Dataset
    val: torch.utils.data.Dataset
    train_labels: np.ndarray
    train_synthetic: np.ndarray
    val_labels: np.ndarray
    synthetic_ratio: float
    workers: int
    normalize: Callable[[torch.Tensor], torch.Tensor] | None = None  # on the device (cached path); None: done
    seeded: bool = False  # the train set takes (index, seed) keys and returns (image, label, seed)


@dataclass
class MemberResult:
    model: Any  # the plain (unfrozen, unwrapped) model holding the best weights, on the CPU
    history: list[dict[str, Any]]
    best_f1: float


def epoch_seed(seed: int, member: str, epoch: int) -> int:
    """A seed per (recipe seed, member name, epoch); epoch -1 seeds the model initialisation. By name, so a member
    trains the same alone (``--members``) as inside its ensemble."""
    return int(np.random.SeedSequence([seed, zlib.crc32(member.encode()), epoch + 1]).generate_state(1)[0])


def lr_scale(recipe: Recipe, num_processes: int) -> float:
    """Stage learning rates are for ``train.lr_base_batch`` (default: one process's batch); scaled linearly with
    the global batch (``data.batch_size`` x processes)."""
    base = recipe.train.lr_base_batch or recipe.data.batch_size
    return recipe.data.batch_size * num_processes / base


def stage_lr(recipe: Recipe, stage: StageSpec, progress: float) -> float:
    """The stage's learning rate ``progress`` epochs into it (fractions count: set every step): linear warmup over
    ``train.warmup_epochs``, then constant or cosine-decayed to 0 at the stage's last epoch. A function of the
    position alone, so a resumed run needs no scheduler state."""
    warmup = min(recipe.train.warmup_epochs, stage.epochs)
    if warmup and progress < warmup:
        return stage.lr * (progress + 1e-3) / warmup
    if recipe.train.schedule == "constant":
        return stage.lr
    span = max(stage.epochs - warmup, 1e-9)
    return stage.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, (progress - warmup) / span)))


def load_state(model: Any, state: dict[str, Any]) -> None:
    """Load weights saved with some stages' frozen batch norms into the current structure: they differ only in
    ``num_batches_tracked`` (which frozen batch norms lack); anything else is an error."""
    result = model.load_state_dict(state, strict=True)
    bad = [k for k in [*result.missing_keys, *result.unexpected_keys] if not k.endswith("num_batches_tracked")]
    if bad:
        raise RuntimeError(f"checkpoint does not fit the model: {bad[:3]}")


def _cpu_state(model: Any) -> dict[str, Any]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def train_member(
    accelerator: Any,
    recipe: Recipe,
    member: MemberSpec,
    data: MemberData,
    folder: Path,
    progress: Progress,
    should_stop: Callable[[], bool] = lambda: False,
) -> MemberResult:
    """Train one member through its enabled stages; ``folder`` holds its checkpoints (resumed when present).
    ``progress`` gets a phase per epoch, an advance every few batches (loss, lr, img/s) and a note per finished
    epoch, stage and resume."""
    from accelerate.utils import set_seed

    set_seed(epoch_seed(recipe.seed, member.name, -1))
    model = create_model(member)
    stages = member.active_stages()
    resumed = checkpoint.load(folder)
    state, optimizer_state = LoopState(), {}
    if resumed is not None:
        state, model_state, optimizer_state = resumed
        apply_stage(model, stages[min(state.stage, len(stages) - 1)])
        load_state(model, model_state)
        progress.note(f"{member.name}: resumed after epoch {state.epoch} (stage {state.stage + 1}/{len(stages)})")
    best_state = checkpoint.load_best(folder) if state.best_epoch >= 0 else None

    while state.stage < len(stages):
        stage = stages[state.stage]
        if stage.when == "improving" and state.stage > 0 and state.last_stopped_early:
            progress.note(f"{member.name}: stage {stage.name} skipped (validation stopped improving in the last stage)")
            state.stage += 1
            continue
        trainable = apply_stage(model, stage)
        progress.note(
            f"{member.name}: stage {stage.name} ({stage.train}, lr {stage.lr:g}): {trainable:,} trainable parameters"
        )
        best_state = _run_stage(
            accelerator,
            recipe,
            member,
            stage,
            model,
            data,
            folder,
            state,
            optimizer_state,
            best_state,
            progress,
            should_stop,
        )
        optimizer_state = {}
        if best_state is not None:
            load_state(model, best_state)
        state.last_stopped_early = state.bad_epochs >= (stage.patience or recipe.train.patience)
        state.stage += 1
        state.stage_epoch = 0
        state.bad_epochs = 0
        if accelerator.is_main_process:
            checkpoint.save(folder, state, _cpu_state(model), {})
        accelerator.wait_for_everyone()
    restore_all(model)
    accelerator.free_memory()
    return MemberResult(model.cpu().eval(), state.history, state.best_f1)


def _score(recipe: Recipe, val_loss: float, val_f1: float) -> float:
    """What early stopping maximises: validation macro-F1, or minus the validation loss."""
    return -val_loss if recipe.train.monitor == "loss" else val_f1


def _run_stage(
    accelerator: Any,
    recipe: Recipe,
    member: MemberSpec,
    stage: StageSpec,
    model: Any,
    data: MemberData,
    folder: Path,
    state: LoopState,
    optimizer_state: dict[str, Any],
    best_state: dict[str, Any] | None,
    progress: Progress,
    should_stop: Callable[[], bool],
) -> dict[str, Any] | None:
    from accelerate.utils import set_seed
    from timm.optim import create_optimizer_v2
    from torchvision.transforms import v2

    patience = stage.patience or recipe.train.patience
    if state.stage_epoch >= stage.epochs or state.bad_epochs >= patience:
        return best_state
    accelerator.free_memory()
    runner = model.to(accelerator.device)
    if recipe.train.channels_last:
        runner = runner.to(memory_format=torch.channels_last)
    optimizer = create_optimizer_v2(runner, "adamw", lr=stage.lr, weight_decay=recipe.train.weight_decay)
    if optimizer_state:
        optimizer.load_state_dict(optimizer_state)
    if recipe.train.compile:
        runner = torch.compile(runner)
    batch_size = recipe.data.batch_size
    sampler = _batch_sampler(recipe, data)
    persistent = data.workers > 0
    train_loader = DataLoader(
        data.train,
        batch_sampler=sampler,
        num_workers=data.workers,
        pin_memory=accelerator.device.type == "cuda",
        persistent_workers=persistent,
    )
    val_loader = DataLoader(
        data.val, batch_size=batch_size * 2, shuffle=False, num_workers=data.workers, persistent_workers=persistent
    )
    runner, optimizer, train_loader, val_loader = accelerator.prepare(runner, optimizer, train_loader, val_loader)
    cutmix = v2.CutMix(alpha=recipe.augment.cutmix.alpha, num_classes=len(CLASSES))
    ema = None
    if recipe.train.ema:
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(accelerator.unwrap_model(runner), decay=recipe.train.ema)
    scale = lr_scale(recipe, accelerator.num_processes)
    steps = len(train_loader)

    while state.stage_epoch < stage.epochs and state.bad_epochs < patience:
        epoch0 = state.stage_epoch
        lr = stage_lr(recipe, stage, epoch0) * scale

        def set_lr(step: int, epoch0: int = epoch0) -> None:
            for group in optimizer.param_groups:
                group["lr"] = stage_lr(recipe, stage, epoch0 + step / steps) * scale

        set_lr(0)
        set_seed(epoch_seed(recipe.seed, member.name, state.epoch))
        train_loader.set_epoch(state.epoch)
        progress.phase(f"{member.name} {stage.name} epoch {state.epoch + 1}", len(train_loader))
        start = time.perf_counter()
        runner.train()
        with one_line_worker_errors():
            loss_sum, seen = train_epoch(
                accelerator,
                recipe,
                runner,
                optimizer,
                train_loader,
                cutmix,
                progress,
                should_stop,
                data=data,
                set_lr=set_lr,
                ema=ema,
            )
            train_seconds = time.perf_counter() - start
            judged = ema.module if ema is not None else runner
            val_loss, val_f1, val_acc = _validate(accelerator, judged, val_loader, data.normalize)
        state.epoch += 1
        state.stage_epoch += 1
        score = _score(recipe, val_loss, val_f1)
        improved = score > state.best_score
        if improved:
            state.best_score, state.best_epoch, state.bad_epochs = score, state.epoch, 0
            state.best_f1 = val_f1
            best_state = _cpu_state(ema.module if ema is not None else model)
            if accelerator.is_main_process:
                checkpoint.save_best(folder, best_state)
        else:
            state.bad_epochs += 1
        record = EpochRecord(
            member.name,
            stage.name,
            state.epoch,
            state.stage_epoch,
            lr,
            loss_sum / max(seen, 1),
            val_loss,
            val_f1,
            val_acc,
            seen / max(train_seconds, 1e-9),
            time.perf_counter() - start,
            improved,
        )
        state.history.append(asdict(record))
        if accelerator.is_main_process:
            checkpoint.save(folder, state, _cpu_state(model), optimizer.state_dict())
        accelerator.wait_for_everyone()
        progress.note(record.describe())
    if state.bad_epochs >= patience:
        what = "loss" if recipe.train.monitor == "loss" else "macro-F1"
        progress.note(
            f"{member.name}: stage {stage.name} stopped early (no better validation {what} for "
            f"{patience} epochs; best macro-F1 {state.best_f1:.4f} at epoch {state.best_epoch})"
        )
    return best_state


def train_epoch(
    accelerator: Any,
    recipe: Recipe,
    runner: Any,
    optimizer: Any,
    loader: Any,
    cutmix: Any,
    progress: Progress,
    should_stop: Callable[[], bool],
    data: MemberData | None = None,
    set_lr: Callable[[int], None] | None = None,
    ema: Any = None,
) -> tuple[float, int]:
    """One pass over the epoch's batches; the summed loss (per image) and the images seen, all processes.
    The loss is read back from the device only every ``REPORT_EVERY`` steps, so the GPU never waits on the bar.
    Cached batches arrive augmented by the loader workers (uint8, or [0, 1] floats where a recipe adds noise after
    scaling), or raw uint8 augmented here on the device (``on_device``); all are normalised here."""
    loss_sum = torch.zeros((), device=accelerator.device)
    seen = 0
    start = time.perf_counter()
    normalize = data.normalize if data is not None else None
    on_device = data is not None and getattr(data.train, "on_device", False)
    for step, batch in enumerate(loader, 1):
        images, labels = batch[0], batch[1]
        if on_device:
            images = data.train.augment_batch(images, labels, batch[2])  # type: ignore[union-attr]
        if normalize is not None:
            images = normalize(images)
        if recipe.train.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        images, targets = apply_cutmix(recipe, images, labels, cutmix)
        with accelerator.autocast():
            logits = runner(images)
        loss = F.cross_entropy(logits.float(), targets, label_smoothing=recipe.train.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        if recipe.train.grad_clip:
            accelerator.clip_grad_norm_(runner.parameters(), recipe.train.grad_clip)
        optimizer.step()
        if ema is not None:
            ema.update(accelerator.unwrap_model(runner))
        if set_lr is not None:
            set_lr(step)
        n = images.shape[0] * accelerator.num_processes
        loss_sum += loss.detach() * n
        seen += n
        if step % REPORT_EVERY == 0 or step == len(loader):
            progress.advance(step, len(loader), loss=float(loss_sum) / seen, lr=optimizer.param_groups[0]["lr"],
                             img_per_s=seen / max(time.perf_counter() - start, 1e-9))  # fmt: skip
        if should_stop():
            raise KeyboardInterrupt
    return float(loss_sum), seen


def apply_cutmix(recipe: Recipe, images: torch.Tensor, labels: torch.Tensor, cutmix: Any = None) -> tuple[Any, Any]:
    """CutMix (torchvision v2) on a share ``augment.cutmix.p`` of batches: a box of another image of the batch pasted
    in, the targets mixed by its area; other batches pass unchanged with hard labels."""
    if not recipe.augment.cutmix.p or float(torch.rand(())) >= recipe.augment.cutmix.p:
        return images, labels
    if cutmix is None:
        from torchvision.transforms import v2

        cutmix = v2.CutMix(alpha=recipe.augment.cutmix.alpha, num_classes=len(CLASSES))
    return cutmix(images, labels)


def _batch_sampler(recipe: Recipe, data: MemberData) -> Any:
    from wbc_data.train.sampling import MixedBatchSampler

    real = int((~data.train_synthetic).sum())
    size = real if recipe.data.epoch_size == "auto" else int(recipe.data.epoch_size)
    batches = max(1, math.ceil(size / recipe.data.batch_size))
    return MixedBatchSampler(
        data.train_labels,
        data.train_synthetic,
        recipe.data.batch_size,
        batches,
        data.synthetic_ratio,
        recipe.data.sampling,
        recipe.seed,
        with_seeds=data.seeded,
    )


@torch.no_grad()
def _validate(
    accelerator: Any, runner: Any, loader: Any, normalize: Callable[[torch.Tensor], torch.Tensor] | None = None
) -> tuple[float, float, float]:
    """Validation loss, macro-F1 and accuracy over every process's share, duplicates from padding dropped
    (channels_last batches when the recipe asks)."""
    runner.eval()
    logits_all, labels_all = [], []
    for batch in loader:
        images, labels = batch[0], batch[1]
        if normalize is not None:
            images = normalize(images)
        with accelerator.autocast():
            logits = runner(images)
        logits, labels = accelerator.gather_for_metrics((logits.float(), labels))
        logits_all.append(logits.cpu())
        labels_all.append(labels.cpu())
    logits = torch.cat(logits_all)
    labels = torch.cat(labels_all)
    loss = float(F.cross_entropy(logits, labels))
    predicted = logits.argmax(1).numpy()
    truth = labels.numpy()
    return loss, macro_f1(truth, predicted), float((predicted == truth).mean())
