"""Generator recipes: plain YAML in ``generators/`` (shipped inside the package too) that a user copies and edits.

A recipe says what to train (resolution, UNet size, noise schedule, optional domain condition, optional local
diffusers model to start from), how (steps, batch, optimiser, EMA, label dropout, class balance, augmentation,
precision, checkpoints) and how to sample by default. Unknown keys are refused, so a typo never silently does nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wbc_data.core import config
from wbc_data.io.resources import generators_dir
from wbc_data.synth import SynthError

if TYPE_CHECKING:
    from wbc_data.synth.lora.recipe import LoraRecipe

SCHEDULERS = ("ddpm", "ddim", "dpm")
"""Sampling schedulers: DDPM (ancestral, the training schedule), DDIM (deterministic), DPM-Solver++ (2nd order)."""

PRECISIONS = ("auto", "no", "fp16", "bf16")
BLOCK_TYPES = ("DownBlock2D", "AttnDownBlock2D", "UpBlock2D", "AttnUpBlock2D")


@dataclass(frozen=True)
class ModelSpec:
    """The ``UNet2DModel`` arguments a recipe may set (the rest are diffusers' defaults)."""

    block_out_channels: tuple[int, ...] = (128, 128, 256, 256, 512, 512)
    layers_per_block: int = 2
    down_block_types: tuple[str, ...] = (
        "DownBlock2D",
        "DownBlock2D",
        "DownBlock2D",
        "DownBlock2D",
        "AttnDownBlock2D",
        "DownBlock2D",
    )
    up_block_types: tuple[str, ...] = (
        "UpBlock2D",
        "AttnUpBlock2D",
        "UpBlock2D",
        "UpBlock2D",
        "UpBlock2D",
        "UpBlock2D",
    )
    attention_head_dim: int = 8
    norm_num_groups: int = 32
    dropout: float = 0.0


@dataclass(frozen=True)
class ScheduleSpec:
    """The DDPM training schedule (diffusers' defaults: 1000 steps, linear betas, epsilon prediction)."""

    num_train_timesteps: int = 1000
    beta_schedule: str = "linear"
    prediction_type: str = "epsilon"


@dataclass(frozen=True)
class TrainSpec:
    steps: int = 10_000  # optimiser updates
    batch_size: int = 16  # per device
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-4
    lr_scheduler: str = "cosine"
    lr_warmup_steps: int = 500
    adam_beta1: float = 0.95
    adam_beta2: float = 0.999
    adam_weight_decay: float = 1e-6
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    ema_decay: float = 0.9999
    ema_inv_gamma: float = 1.0
    ema_power: float = 0.75
    label_dropout: float = 0.1  # share of labels replaced by the null class (classifier-free guidance)
    class_balance: float = 1.0  # 0: draw rows as they come; 1: every class equally often; between: count^-x
    dihedral: bool = True  # the 8 flips/rotations as augmentation (cells have no orientation)
    mixed_precision: str = "auto"  # auto: bf16 where the GPU has it, else fp16; none on CPU
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2
    grid_per_class: int = 4  # samples per class in the grid written at each checkpoint
    grid_steps: int = 25  # sampling steps for that grid (with the recipe's sampling scheduler)
    workers: int = 2  # processes decoding images into the pixel cache
    seed: int = 0


@dataclass(frozen=True)
class AutoencoderSpec:
    """Latent diffusion: a small diffusers ``AutoencoderKL`` learnt before the denoiser, which then works on its
    latents (``wbc_data.synth.autoencoder``). Each down block after the first halves the side."""

    block_out_channels: tuple[int, ...] = (32, 64, 64)
    layers_per_block: int = 1
    latent_channels: int = 4
    norm_num_groups: int = 16
    steps: int = 3000
    batch_size: int = 32
    learning_rate: float = 2e-3


@dataclass(frozen=True)
class SampleDefaults:
    scheduler: str = "dpm"
    steps: int = 25
    guidance: float = 3.0
    batch_size: int = 64


@dataclass(frozen=True)
class Recipe:
    name: str
    resolution: int
    description: str = ""
    domain_condition: bool = False  # also condition on the source (stain / scanner look)
    init_from: str | None = None  # a generator or diffusers folder to start from, or "pretrained:<name>" (shipped)
    autoencoder: AutoencoderSpec | None = None  # set: latent diffusion (the autoencoder is learnt first)
    expected_h100: str = ""  # expected wall time on one H100 (an estimate: how it was derived is in the file)
    model: ModelSpec = field(default_factory=ModelSpec)
    schedule: ScheduleSpec = field(default_factory=ScheduleSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    sample: SampleDefaults = field(default_factory=SampleDefaults)
    path: str = ""  # where it was read from (not part of the fingerprint)

    def to_dict(self) -> dict[str, Any]:
        data = config.plain(self)
        data.pop("path")
        return data

    def fingerprint(self) -> str:
        """What a checkpoint must match to be resumed (the training-relevant fields; not checkpoint cadence)."""
        data = self.to_dict()
        for key in ("description", "expected_h100", "sample"):
            data.pop(key)
        for key in ("checkpoint_every", "keep_checkpoints", "grid_per_class", "grid_steps", "workers", "steps"):
            data["train"].pop(key)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def latent_side(self) -> int:
        """The side the denoiser works at: the resolution, or the autoencoder's latent side."""
        if self.autoencoder is None:
            return self.resolution
        return self.resolution // 2 ** (len(self.autoencoder.block_out_channels) - 1)

    @property
    def channels(self) -> int:
        """Channels the denoiser works on: RGB, or the autoencoder's latent channels."""
        return 3 if self.autoencoder is None else self.autoencoder.latent_channels

    def with_overrides(self, **train: Any) -> Recipe:
        """A copy with some ``train`` fields replaced (``None`` values are ignored)."""
        changes = {k: v for k, v in train.items() if v is not None}
        return dataclasses.replace(self, train=dataclasses.replace(self.train, **changes)) if changes else self


def recipe_path(name_or_path: str | Path) -> Path:
    """A recipe file: a path as given, or a shipped recipe's name (``tiny-cpu`` -> ``generators/tiny-cpu.yaml``)."""
    return config.find(name_or_path, generators_dir(), SynthError)


def load_recipe(name_or_path: str | Path, overrides: Sequence[str] = ()) -> Recipe | LoraRecipe:
    """Read, override (``--set key.path=value``) and check a recipe; every problem is one line naming the file and
    the key. ``kind: sd-lora`` recipes (LoRA on a pretrained latent diffusion model) are read by ``synth.lora``."""
    path = recipe_path(name_or_path)
    data = config.read(path, SynthError, "generator recipe", overrides)
    kind = data.pop("kind", "pixel")
    if kind != "pixel":
        from wbc_data.synth.lora import recipe as lora_recipe

        if kind != lora_recipe.KIND:
            raise SynthError(f"{path}: kind {kind!r}: use pixel (the default) or {lora_recipe.KIND}")
        return lora_recipe.build({**data, "kind": kind}, path)
    recipe = config.build(Recipe, {**data, "path": str(path)}, str(path), SynthError)
    _check(recipe, path)
    return recipe


def dump_recipe(recipe: Recipe) -> str:
    """The recipe as YAML (what a run saves beside its generator)."""
    return config.dump(dataclasses.replace(recipe, path=""))


def _check(recipe: Recipe, path: Path) -> None:
    def fail(message: str) -> None:
        raise SynthError(f"{path}: {message}")

    if not 8 <= recipe.resolution <= 1024 or recipe.resolution % 8:
        fail(f"resolution {recipe.resolution}: a multiple of 8 between 8 and 1024")
    m = recipe.model
    if not (len(m.block_out_channels) == len(m.down_block_types) == len(m.up_block_types)):
        fail("model: block_out_channels, down_block_types and up_block_types must have the same length")
    for block in (*m.down_block_types, *m.up_block_types):
        if block not in BLOCK_TYPES:
            fail(f"model: unknown block type {block!r} (known: {', '.join(BLOCK_TYPES)})")
    if any(c % m.norm_num_groups for c in m.block_out_channels):
        fail(f"model: every block_out_channels value must be a multiple of norm_num_groups ({m.norm_num_groups})")
    side = recipe.resolution
    if recipe.autoencoder is not None:
        a = recipe.autoencoder
        if any(c % a.norm_num_groups for c in a.block_out_channels):
            fail(f"autoencoder: block_out_channels must be multiples of norm_num_groups ({a.norm_num_groups})")
        factor = 2 ** (len(a.block_out_channels) - 1)
        if side % factor:
            fail(f"resolution {side} cannot be halved {len(a.block_out_channels) - 1} times by the autoencoder")
        side //= factor
        for name in ("steps", "batch_size", "latent_channels"):
            if getattr(a, name) < 1:
                fail(f"autoencoder.{name} must be at least 1")
    if side % (2 ** (len(m.block_out_channels) - 1)):
        fail(f"a side of {side} cannot be halved {len(m.block_out_channels) - 1} times by the UNet")
    t = recipe.train
    for name in ("steps", "batch_size", "gradient_accumulation_steps", "checkpoint_every", "keep_checkpoints"):
        if getattr(t, name) < 1:
            fail(f"train.{name} must be at least 1")
    if not 0.0 <= t.label_dropout < 1.0:
        fail(f"train.label_dropout {t.label_dropout}: a share between 0 and 1 (0.1 is usual)")
    if t.class_balance < 0:
        fail("train.class_balance must be >= 0")
    if t.mixed_precision not in PRECISIONS:
        fail(f"train.mixed_precision {t.mixed_precision!r}: use one of {', '.join(PRECISIONS)}")
    if recipe.sample.scheduler not in SCHEDULERS:
        fail(f"sample.scheduler {recipe.sample.scheduler!r}: use one of {', '.join(SCHEDULERS)}")
    if recipe.schedule.prediction_type not in ("epsilon", "v_prediction", "sample"):
        fail(f"schedule.prediction_type {recipe.schedule.prediction_type!r}: epsilon, v_prediction or sample")
