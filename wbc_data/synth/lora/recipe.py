"""LoRA recipes (``kind: sd-lora`` in ``generators/*.yaml``): read by the same loader as the pixel recipes
(:func:`wbc_data.synth.recipe.load_recipe` hands them here), checked, fingerprinted for resume, dumped beside a run.

Prompts: one per class, ``template`` filled with the class's readable name from the taxonomy (``promyelocyte``), or
a whole prompt per class code in ``classes``. With ``domain_condition`` each training image's prompt also names its
source (``domains`` maps a source to the phrase; by default ``<source> dataset``), so ``--domain pbc`` renders a class
in that source's look.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wbc_data.core import config
from wbc_data.core.taxonomy import CLASSES, FULL_NAMES
from wbc_data.synth import SynthError

KIND = "sd-lora"
PRECISIONS = ("auto", "no", "fp16", "bf16")
SCHEDULERS = ("ddpm", "ddim", "dpm")
INTERPOLATIONS = ("bilinear", "bicubic")


@dataclass(frozen=True)
class LoraSpec:
    """peft ``LoraConfig`` arguments: rank, alpha (scale = alpha / rank), the attention projections adapted."""

    rank: int = 16
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ("to_k", "to_q", "to_v", "to_out.0")
    text_encoder_target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "out_proj")


@dataclass(frozen=True)
class PromptSpec:
    template: str = "a May-Grünwald-Giemsa stained peripheral blood smear photomicrograph of a {name}"
    classes: dict[str, str] = field(default_factory=dict)  # class code -> whole prompt (replaces the template)
    domain_condition: bool = False  # append the source's phrase: one look per source, chosen with --domain
    domains: dict[str, str] = field(default_factory=dict)  # source -> phrase (default "<source> dataset")
    dropout: float = 0.0  # share of prompts replaced by "" (the unconditional prompt guidance contrasts with)

    def for_class(self, code: str) -> str:
        return self.classes.get(code) or self.template.format(name=FULL_NAMES[code], code=code)

    def for_domain(self, prompt: str, domain: str | None) -> str:
        if domain is None:
            return prompt
        return f"{prompt}, {self.domains.get(domain) or f'{domain} dataset'}"


@dataclass(frozen=True)
class LetterboxSpec:
    """How cells become squares: the classifier's letterbox (longer side resized, shorter padded with ``fill``).
    The defaults match ``trainers/lite0-cpu.yaml`` (EfficientNet-Lite0: mean 0.5 -> fill 128, bicubic)."""

    fill: tuple[int, int, int] = (128, 128, 128)
    interpolation: str = "bicubic"


@dataclass(frozen=True)
class LoraTrainSpec:
    steps: int = 3000  # optimiser updates
    batch_size: int = 8  # per device
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-4
    lr_scheduler: str = "constant_with_warmup"
    lr_warmup_steps: int = 100
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_weight_decay: float = 1e-2
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    ema_decay: float = 0.999  # EMA of the adapter weights (what is exported)
    ema_inv_gamma: float = 1.0
    ema_power: float = 0.75
    class_balance: float = 1.0  # 1: every class equally often (see data.BalancedBatches)
    dihedral: bool = True  # the 8 flips/rotations (cells have no orientation)
    train_text_encoder: bool = False  # also LoRA on the text encoder
    gradient_checkpointing: bool = True
    mixed_precision: str = "auto"  # auto: bf16 where the GPU has it, else fp16; none on CPU
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    grid_per_class: int = 2  # samples per class in the grid drawn at each checkpoint (0: none)
    grid_steps: int = 25
    workers: int = 2  # processes decoding images into the pixel cache
    seed: int = 0


@dataclass(frozen=True)
class LoraSampleDefaults:
    scheduler: str = "dpm"
    steps: int = 25
    guidance: float = 5.0
    batch_size: int = 8


@dataclass(frozen=True)
class LoraRecipe:
    name: str
    kind: str = KIND
    base: str | None = None  # Hub id or local diffusers folder (--base replaces it)
    resolution: int | None = 256  # null: the base's own size (UNet sample size x VAE scale factor)
    save_base: bool = False  # copy the base pipeline into the generator folder (self-contained, large)
    description: str = ""
    expected_h100: str = ""
    lora: LoraSpec = field(default_factory=LoraSpec)
    prompts: PromptSpec = field(default_factory=PromptSpec)
    letterbox: LetterboxSpec = field(default_factory=LetterboxSpec)
    train: LoraTrainSpec = field(default_factory=LoraTrainSpec)
    sample: LoraSampleDefaults = field(default_factory=LoraSampleDefaults)
    path: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = config.plain(self)
        data.pop("path")
        return data

    def fingerprint(self) -> str:
        """What a checkpoint must match to be resumed (not the cadence, not the number of steps, not sampling)."""
        data = self.to_dict()
        for key in ("description", "expected_h100", "sample", "save_base"):
            data.pop(key)
        for key in ("checkpoint_every", "keep_checkpoints", "grid_per_class", "grid_steps", "workers", "steps"):
            data["train"].pop(key)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def with_overrides(self, **train: Any) -> LoraRecipe:
        changes = {k: v for k, v in train.items() if v is not None}
        return dataclasses.replace(self, train=dataclasses.replace(self.train, **changes)) if changes else self

    def with_base(self, base: str | Path | None) -> LoraRecipe:
        return dataclasses.replace(self, base=str(base)) if base is not None else self


def build(data: dict[str, Any], path: Path) -> LoraRecipe:
    """A checked recipe from the YAML mapping (``--set`` already applied)."""
    recipe = config.build(LoraRecipe, {**data, "path": str(path)}, str(path), SynthError)
    check(recipe, path)
    return recipe


def check(recipe: LoraRecipe, path: Path | str) -> None:
    def fail(message: str) -> None:
        raise SynthError(f"{path}: {message}")

    if recipe.resolution is not None and (not 8 <= recipe.resolution <= 2048 or recipe.resolution % 8):
        fail(f"resolution {recipe.resolution}: a multiple of 8 between 8 and 2048, or null for the base's size")
    if recipe.lora.rank < 1 or recipe.lora.alpha <= 0:
        fail("lora.rank must be at least 1 and lora.alpha above 0")
    if not recipe.lora.target_modules:
        fail("lora.target_modules: name at least one module (to_q, to_k, to_v, to_out.0)")
    unknown = [c for c in recipe.prompts.classes if c not in CLASSES]
    if unknown:
        fail(f"prompts.classes: unknown class {unknown[0]!r} (known: {', '.join(CLASSES)})")
    try:
        recipe.prompts.for_class(CLASSES[0])
    except (KeyError, IndexError, ValueError) as exc:
        fail(f"prompts.template {recipe.prompts.template!r}: use {{name}} or {{code}} only ({exc})")
    if not 0.0 <= recipe.prompts.dropout < 1.0:
        fail(f"prompts.dropout {recipe.prompts.dropout}: a share between 0 and 1")
    if recipe.letterbox.interpolation not in INTERPOLATIONS:
        fail(f"letterbox.interpolation {recipe.letterbox.interpolation!r}: use one of {', '.join(INTERPOLATIONS)}")
    if any(not 0 <= v <= 255 for v in recipe.letterbox.fill):
        fail("letterbox.fill: three values 0-255")
    t = recipe.train
    for name in ("steps", "batch_size", "gradient_accumulation_steps", "checkpoint_every", "keep_checkpoints"):
        if getattr(t, name) < 1:
            fail(f"train.{name} must be at least 1")
    if t.class_balance < 0:
        fail("train.class_balance must be >= 0")
    if t.mixed_precision not in PRECISIONS:
        fail(f"train.mixed_precision {t.mixed_precision!r}: use one of {', '.join(PRECISIONS)}")
    if recipe.sample.scheduler not in SCHEDULERS:
        fail(f"sample.scheduler {recipe.sample.scheduler!r}: use one of {', '.join(SCHEDULERS)}")
