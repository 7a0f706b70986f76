"""Trainer recipes: plain YAML a user can copy and edit (``trainers/*.yaml``), read into frozen dataclasses.

Every key is declared here, so a typo is one clear line (``recipe.yaml: unknown key 'augment.rotat'``) instead of a
silently ignored setting. ``--set key.path=value`` overrides apply to the YAML before it is checked, and the resolved
recipe is saved beside the trained model, so a run can always be repeated.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wbc_data.core import config
from wbc_data.core.taxonomy import CLASSES
from wbc_data.io.resources import trainers_dir
from wbc_data.train.errors import RecipeError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEGRADATIONS = (
    "gaussian_noise",
    "poisson_noise",
    "motion_blur",
    "defocus_blur",
    "jpeg",
    "illumination",
    "colour_shift",
)
SAMPLING = ("balanced", "sqrt", "natural")


INTERPOLATIONS = ("bilinear", "bicubic")


@dataclass(frozen=True)
class ImageSpec:
    size: int = 224  # the longer side is resized to this, then padded to a square (aspect kept)
    # null: from the (first) member's timm pretrained config (EfficientNet-Lite: 0.5/0.5, bicubic; most: ImageNet)
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    interpolation: str | None = None  # bilinear | bicubic (resizing to ``size``)
    pad_fill: str | tuple[int, int, int] = "mean"  # "mean": the normalisation mean (zero after Normalize)
    # the centred fraction of each side kept before resizing: CellaVision-style crops (PBC, APL/AML, WBCBench; the
    # cell in the middle of ~360 px) spend most pixels on red cells; 1.0 keeps the whole image. Rows cut from an
    # annotated box (BCCD, detection sources) are framed on their cell already and always kept whole
    centre: float = 1.0

    def __post_init__(self) -> None:
        # built in Python without them: ImageNet's statistics, bilinear (a recipe fills them from its model first)
        defaults = {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "interpolation": "bilinear"}
        for key, value in defaults.items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, value)

    def fill(self) -> tuple[int, int, int]:
        if isinstance(self.pad_fill, str):
            return tuple(round(255 * m) for m in (self.mean or IMAGENET_MEAN))  # type: ignore[return-value]
        return tuple(int(v) for v in self.pad_fill)  # type: ignore[return-value]

    def check(self, where: str) -> None:
        if not 8 <= self.size <= 2048:
            raise RecipeError(f"{where}: image.size {self.size}: use 8 to 2048 pixels")
        if not 0.2 <= self.centre <= 1.0:
            raise RecipeError(f"{where}: image.centre {self.centre}: use 0.2 to 1.0 (the centred fraction kept)")
        if isinstance(self.pad_fill, str) and self.pad_fill != "mean":
            raise RecipeError(f"{where}: image.pad_fill {self.pad_fill!r}: use 'mean' or [R, G, B]")
        if self.mean is None or self.std is None or len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise RecipeError(f"{where}: image.mean and image.std need 3 values (std > 0)")
        if self.interpolation not in INTERPOLATIONS:
            raise RecipeError(f"{where}: image.interpolation {self.interpolation!r}: bilinear or bicubic")


@dataclass(frozen=True)
class Strength:
    """One augmentation strength (``augment.normal``; ``augment.rare`` overrides keys of it for rare classes)."""

    rotate: float = 0.0  # degrees either way
    flip: bool = False  # horizontal and vertical flips
    zoom: tuple[float, float] = (1.0, 1.0)  # scale range
    shift: float = 0.0  # translation, share of the side
    crop: tuple[float, float] = (1.0, 1.0)  # random resized crop, share of the area
    perspective: float = 0.0  # distortion scale (torchvision RandomPerspective)
    perspective_p: float = 0.5  # share of images warped
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0
    blur: float = 0.0  # probability of a Gaussian blur
    noise: float = 0.0  # probability of Gaussian noise

    def check(self, where: str) -> None:
        for name in ("blur", "noise", "perspective_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise RecipeError(f"{where}: {name} {getattr(self, name)}: a probability between 0 and 1")
        if not (0 < self.crop[0] <= self.crop[1] <= 1.0):
            raise RecipeError(f"{where}: crop {list(self.crop)}: an area range within (0, 1]")
        if not (0 < self.zoom[0] <= self.zoom[1]):
            raise RecipeError(f"{where}: zoom {list(self.zoom)}: a scale range [low, high] above 0")
        if not 0.0 <= self.hue <= 0.5:
            raise RecipeError(f"{where}: hue {self.hue}: between 0 and 0.5")


@dataclass(frozen=True)
class CutMixSpec:
    p: float = 0.0  # share of batches mixed
    alpha: float = 1.0


@dataclass(frozen=True)
class DegradeSpec:
    """WBCBench-like corruptions (noise, blur, JPEG, illumination, colour) applied to a share of training images."""

    p: float = 0.0
    severity: tuple[int, int] = (1, 3)  # 1 (mild) .. 5 (severe), drawn uniformly per image
    kinds: tuple[str, ...] = DEGRADATIONS

    def check(self, where: str) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise RecipeError(f"{where}: augment.degrade.p {self.p}: a probability between 0 and 1")
        if not 1 <= self.severity[0] <= self.severity[1] <= 5:
            raise RecipeError(f"{where}: augment.degrade.severity {list(self.severity)}: a range within 1..5")
        unknown = [k for k in self.kinds if k not in DEGRADATIONS]
        if unknown or not self.kinds:
            raise RecipeError(
                f"{where}: augment.degrade.kinds {unknown or '[]'}: use some of {', '.join(DEGRADATIONS)}"
            )


@dataclass(frozen=True)
class AugmentSpec:
    normal: Strength = field(default_factory=Strength)
    rare: dict[str, Any] = field(default_factory=dict)  # keys of Strength overriding ``normal`` for rare classes
    rare_classes: str | tuple[str, ...] = "auto"  # auto: classes whose real training count is below rare_below x max
    rare_below: float = 0.15
    cutmix: CutMixSpec = field(default_factory=CutMixSpec)
    degrade: DegradeSpec = field(default_factory=DegradeSpec)

    def rare_strength(self) -> Strength:
        return config.build(Strength, {**dataclasses.asdict(self.normal), **self.rare}, "augment.rare", RecipeError)

    def check(self, where: str) -> None:
        self.normal.check(f"{where}: augment.normal")
        self.rare_strength().check(f"{where}: augment.rare")
        self.degrade.check(where)
        if isinstance(self.rare_classes, str) and self.rare_classes != "auto":
            raise RecipeError(f"{where}: augment.rare_classes {self.rare_classes!r}: use 'auto' or a list of classes")
        if not isinstance(self.rare_classes, str):
            _check_classes(self.rare_classes, f"{where}: augment.rare_classes")
        if not 0.0 <= self.cutmix.p <= 1.0 or self.cutmix.alpha <= 0:
            raise RecipeError(f"{where}: augment.cutmix: p between 0 and 1, alpha above 0")


@dataclass(frozen=True)
class DataSpec:
    batch_size: int = 32
    workers: int | str = "auto"  # DataLoader workers; auto: the CPU cores this process may use, at most 8
    sampling: str = "balanced"  # balanced: each class equally often; sqrt: by the square root of its count; natural
    epoch_size: int | str = "auto"  # images drawn per epoch; auto: as many as real training images
    max_per_class: int | None = None  # cap real training images per class (quick runs), chosen by the seed
    hold_rare: dict[str, int] = field(
        default_factory=dict
    )  # {PMY: 13}: keep that many real train images, test the rest
    select_seed: int | None = None  # seeds the rows hold_rare and max_per_class choose (None: the recipe's seed), so
    # that runs of several training seeds can keep the same rows

    def check(self, where: str) -> None:
        if self.batch_size < 1:
            raise RecipeError(f"{where}: data.batch_size {self.batch_size}: at least 1")
        if self.sampling not in SAMPLING:
            raise RecipeError(f"{where}: data.sampling {self.sampling!r}: use one of {', '.join(SAMPLING)}")
        if (isinstance(self.workers, str) and self.workers != "auto") or (
            isinstance(self.workers, int) and self.workers < 0
        ):
            raise RecipeError(f"{where}: data.workers {self.workers!r}: 'auto' or a number >= 0")
        if isinstance(self.epoch_size, str) and self.epoch_size != "auto":
            raise RecipeError(f"{where}: data.epoch_size {self.epoch_size!r}: 'auto' or a number of images")
        if self.max_per_class is not None and self.max_per_class < 1:
            raise RecipeError(f"{where}: data.max_per_class {self.max_per_class}: at least 1 (or null)")
        check_hold_rare(self.hold_rare, f"{where}: data.hold_rare")


@dataclass(frozen=True)
class StageSpec:
    """One phase of staged fine-tuning: which part trains, at which learning rate, for at most how many epochs."""

    name: str
    train: str = "all"  # head | top<N> (head + the N top block groups of timm's group_matcher) | all
    lr: float = 1e-3
    epochs: int = 1
    patience: int | None = None  # early stopping on train.monitor (None: the recipe's train.patience)
    enabled: bool = True
    when: str = "always"  # always | improving: only if the previous stage was still improving (not stopped early)

    def top_groups(self) -> int | None:
        """Block groups trained besides the head: 0 for head, N for topN / lastN, None for all."""
        if self.train == "all":
            return None
        if self.train == "head":
            return 0
        for prefix in ("top", "last"):
            if self.train.startswith(prefix) and self.train[len(prefix) :].isdigit():
                return int(self.train[len(prefix) :])
        raise RecipeError(
            f"stage {self.name}: train {self.train!r}: use head, top<N> (N coarse block groups, e.g. top2), "
            "last<N> (N single blocks, e.g. last2) or all"
        )

    def fine_blocks(self) -> bool:
        """``last<N>`` counts single blocks (timm's fine groups); ``top<N>`` coarse groups (whole stages)."""
        return self.train.startswith("last")


@dataclass(frozen=True)
class MemberSpec:
    name: str
    model: str  # a timm model name
    pretrained: bool = False
    weights: str | None = None  # local weights file; None with pretrained: timm's local Hugging Face cache
    drop_rate: float = 0.0
    stages: tuple[StageSpec, ...] = ()

    def active_stages(self) -> tuple[StageSpec, ...]:
        return tuple(s for s in self.stages if s.enabled)


@dataclass(frozen=True)
class TrainSpec:
    mixed_precision: str = "auto"  # auto: bf16 on GPUs that have it, else fp16 on GPU; none on CPU | no | bf16 | fp16
    channels_last: bool = True
    compile: bool = False  # torch.compile the model (GPU; slow start, faster steps)
    patience: int = 5
    weight_decay: float = 0.01
    label_smoothing: float = 0.0
    grad_clip: float | None = None
    schedule: str = "constant"  # constant | cosine: each stage's lr decays to 0 over its epochs (set every step)
    warmup_epochs: float = 0.0  # linear warmup at the start of each stage (fractions of an epoch allowed)
    monitor: str = "macro_f1"  # early stopping and best weights on validation macro_f1 (higher) or loss (lower)
    ema: float | None = None  # model EMA decay (timm ModelEmaV3, e.g. 0.999): validate and keep the EMA weights
    lr_base_batch: int | None = None  # stage lrs are for this global batch; scaled linearly (None: data.batch_size)
    cache: bool = True  # decode each row once into a letterboxed uint8 cache; augment tensors (on the GPU if any)

    def check(self, where: str) -> None:
        if self.schedule not in ("constant", "cosine"):
            raise RecipeError(f"{where}: train.schedule {self.schedule!r}: constant or cosine")
        if self.monitor not in ("macro_f1", "loss"):
            raise RecipeError(f"{where}: train.monitor {self.monitor!r}: macro_f1 or loss")
        if self.ema is not None and not 0.0 < self.ema < 1.0:
            raise RecipeError(f"{where}: train.ema {self.ema}: a decay between 0 and 1 (e.g. 0.999), or null")
        if self.warmup_epochs < 0 or not 0.0 <= self.label_smoothing < 1.0:
            raise RecipeError(f"{where}: train.warmup_epochs >= 0 and 0 <= train.label_smoothing < 1")
        if self.mixed_precision not in ("auto", "no", "bf16", "fp16"):
            raise RecipeError(f"{where}: train.mixed_precision {self.mixed_precision!r}: auto, no, bf16 or fp16")
        if self.patience < 1:
            raise RecipeError(f"{where}: train.patience {self.patience}: at least 1")


@dataclass(frozen=True)
class EnsembleSpec:
    weights: str = "uniform"  # uniform | fit (fitted on validation by log-loss)

    def check(self, where: str) -> None:
        if self.weights not in ("uniform", "fit"):
            raise RecipeError(f"{where}: ensemble.weights {self.weights!r}: uniform or fit")


@dataclass(frozen=True)
class Recipe:
    name: str
    members: tuple[MemberSpec, ...]
    description: str = ""
    seed: int = 0
    image: ImageSpec = field(default_factory=ImageSpec)
    data: DataSpec = field(default_factory=DataSpec)
    augment: AugmentSpec = field(default_factory=AugmentSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    ensemble: EnsembleSpec = field(default_factory=EnsembleSpec)

    def check(self, where: str) -> None:
        self.image.check(where)
        self.data.check(where)
        self.augment.check(where)
        self.train.check(where)
        self.ensemble.check(where)
        if not self.members:
            raise RecipeError(f"{where}: members: at least one model")
        names = [m.name for m in self.members]
        if len(set(names)) != len(names):
            raise RecipeError(f"{where}: members: names must differ ({', '.join(names)})")
        for member in self.members:
            if not member.active_stages():
                raise RecipeError(f"{where}: member {member.name}: no enabled stage")
            for stage in member.stages:
                stage.top_groups()
                if stage.when not in ("always", "improving"):
                    raise RecipeError(
                        f"{where}: member {member.name} stage {stage.name}: when {stage.when!r}: always or improving"
                    )
                if stage.epochs < 1 or stage.lr <= 0:
                    raise RecipeError(f"{where}: member {member.name} stage {stage.name}: epochs >= 1 and lr > 0")
            if not member.pretrained and member.weights:
                raise RecipeError(f"{where}: member {member.name}: weights given but pretrained is false")

    def to_dict(self) -> dict[str, Any]:
        return config.plain(self)


# --------------------------------------------------------------------------- loading


def resolve_recipe_path(name_or_path: str | Path) -> Path:
    """A recipe file: an existing path, else a recipe shipped with the tool by name (``tiny-cpu``)."""
    return config.find(name_or_path, trainers_dir(), RecipeError)


def load_recipe(name_or_path: str | Path, overrides: Sequence[str] = ()) -> Recipe:
    """Read, override (``key.path=value``, YAML values) and check a recipe; one clear line when it cannot be used."""
    path = resolve_recipe_path(name_or_path)
    return recipe_from_dict(config.read(path, RecipeError, "recipe", overrides), str(path))


def recipe_from_dict(raw: Mapping[str, Any], where: str) -> Recipe:
    image = raw.get("image") if isinstance(raw.get("image"), Mapping) else {}
    unset = [k for k in ("mean", "std", "interpolation") if image.get(k) is None]
    recipe = resolve_image(config.build(Recipe, raw, where, RecipeError), where, unset)
    recipe.check(where)
    return recipe


def resolve_image(recipe: Recipe, where: str, unset: Sequence[str]) -> Recipe:
    """Fill ``image.mean``/``std``/``interpolation`` the recipe leaves out (or null) from the members' timm
    pretrained configs (what their ImageNet weights expect); members that disagree need the recipe to choose."""
    image = recipe.image
    if not unset:
        return recipe
    from wbc_data.train.weights import pretrained_data_config

    configs = {}
    for member in recipe.members:
        try:
            configs[member.name] = pretrained_data_config(member.model)
        except (RuntimeError, KeyError, ValueError):
            continue
    values: dict[str, Any] = {}
    for key in unset:
        seen = {str(c[key]) for c in configs.values()}
        if len(seen) > 1:
            listed = ", ".join(f"{n}: {c[key]}" for n, c in configs.items())
            raise RecipeError(f"{where}: members expect different image.{key} ({listed}): set image.{key}")
        default = {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "interpolation": "bilinear"}[key]
        values[key] = next(iter(configs.values()))[key] if configs else default
    return dataclasses.replace(recipe, image=dataclasses.replace(image, **values))


def select_members(recipe: Recipe, names: Sequence[str]) -> Recipe:
    """The recipe with only the named members (e.g. one member per GPU job; the ensemble is then of those)."""
    known = [m.name for m in recipe.members]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise RecipeError(f"--members {', '.join(unknown)}: not in recipe {recipe.name} (has {', '.join(known)})")
    return dataclasses.replace(recipe, members=tuple(m for m in recipe.members if m.name in set(names)))


def check_hold_rare(hold: dict[str, int], where: str) -> None:
    """CLASS -> real training images kept: known classes, at least one image each (the recipe's ``data.hold_rare``
    or ``train --hold-rare``)."""
    _check_classes(hold, where)
    for cls, n in hold.items():
        if not isinstance(n, int) or n < 1:
            raise RecipeError(f"{where} {cls}: {n!r}: keep at least 1 real training image")


def _check_classes(classes: Any, where: str) -> None:
    unknown = [c for c in classes if c not in CLASSES]
    if unknown:
        raise RecipeError(f"{where}: unknown class(es) {', '.join(map(str, unknown))} (known: {', '.join(CLASSES)})")


def dump_recipe(recipe: Recipe) -> str:
    return config.dump(recipe)
