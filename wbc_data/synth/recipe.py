"""Generator recipes: plain YAML in ``generators/`` (shipped inside the package too) that a user copies and edits.

A recipe says what to train (resolution, UNet size, noise schedule, optional domain condition, optional local
diffusers model to start from), how (steps, batch, optimiser, EMA, label dropout, class balance, augmentation,
precision, checkpoints) and how to sample by default. Unknown keys are refused, so a typo never silently does nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wbc_data.io.resources import generators_dir
from wbc_data.io.yamlfile import read_yaml
from wbc_data.synth import SynthError

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
    init_from: str | None = None  # a local diffusers UNet or pipeline folder to start from
    expected_h100: str = ""  # expected wall time on one H100 (an estimate: how it was derived is in the file)
    model: ModelSpec = field(default_factory=ModelSpec)
    schedule: ScheduleSpec = field(default_factory=ScheduleSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    sample: SampleDefaults = field(default_factory=SampleDefaults)
    path: str = ""  # where it was read from (not part of the fingerprint)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
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

    def with_overrides(self, **train: Any) -> Recipe:
        """A copy with some ``train`` fields replaced (``None`` values are ignored)."""
        changes = {k: v for k, v in train.items() if v is not None}
        return dataclasses.replace(self, train=dataclasses.replace(self.train, **changes)) if changes else self


def recipe_path(name_or_path: str | Path) -> Path:
    """A recipe file: a path as given, or a shipped recipe's name (``tiny-cpu`` -> ``generators/tiny-cpu.yaml``)."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    shipped = generators_dir() / f"{Path(str(name_or_path)).stem}.yaml"
    if path.suffix in ("", ".yaml", ".yml") and shipped.is_file() and len(path.parts) <= 2:
        return shipped
    known = ", ".join(sorted(p.stem for p in generators_dir().glob("*.yaml"))) or "none"
    raise SynthError(f"{path}: no recipe file here (shipped recipes: {known})")


def load_recipe(name_or_path: str | Path) -> Recipe:
    """Read and check a recipe; every problem is one line naming the file and the key."""
    path = recipe_path(name_or_path)
    data = read_yaml(path, SynthError, "generator recipe")
    if not isinstance(data, dict):
        raise SynthError(f"{path}: a generator recipe must be a YAML mapping")
    recipe = _build(Recipe, {**data, "path": str(path)}, path, "")
    _check(recipe, path)
    return recipe


def _build(cls: type, data: dict[str, Any], path: Path, where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise SynthError(f"{path}: unknown key {where}{unknown[0]} (known: {', '.join(sorted(names - {'path'}))})")
    values = {}
    for name, value in data.items():
        values[name] = _convert(hints[name], value, path, f"{where}{name}")
    try:
        return cls(**values)
    except TypeError as exc:
        raise SynthError(f"{path}: {where.rstrip('.') or 'recipe'}: {exc}") from None


def _convert(kind: Any, value: Any, path: Path, key: str) -> Any:
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise SynthError(f"{path}: {key} must be a mapping")
        return _build(kind, value, path, f"{key}.")
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        if value is None and type(None) in args:
            return None
        kind = next(a for a in args if a is not type(None))
        return _convert(kind, value, path, key)
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or not value:
            raise SynthError(f"{path}: {key} must be a non-empty list")
        return tuple(_convert(args[0], v, path, key) for v in value)
    if kind is bool:
        if not isinstance(value, bool):
            raise SynthError(f"{path}: {key} must be true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SynthError(f"{path}: {key} must be a whole number, got {value!r}")
        return value
    if kind is float:
        if isinstance(value, str):  # PyYAML reads 1e-4 (no dot) as a string
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SynthError(f"{path}: {key} must be a number, got {value!r}")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise SynthError(f"{path}: {key} must be text, got {value!r}")
        return value
    return value


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
    if recipe.resolution % (2 ** (len(m.block_out_channels) - 1)):
        fail(f"resolution {recipe.resolution} cannot be halved {len(m.block_out_channels) - 1} times by the UNet")
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
