"""Image transforms (torchvision transforms v2): the aspect-preserving square every model sees, the training
augmentations of a recipe (stronger for rare classes), and the dataset wrapper that picks them by label.

Cells have no orientation, so rotations go all the way round; the pad colour fills what rotation and shifts uncover,
so no black wedges appear that a model could learn from.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import InterpolationMode, v2

from wbc_data.io.pixels import BOX_CROP
from wbc_data.train.degrade import Degrade
from wbc_data.train.recipe import DegradeSpec, ImageSpec, Strength

RESAMPLING = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


class Letterbox:
    """Keep the centred ``centre`` fraction of each side, resize the longer side to ``size`` (PIL's antialiased
    bilinear or bicubic) and pad the shorter one to a centred square with ``fill``. Every row, real or synthetic, goes
    through it (the training cache too), so neither framing nor padding is a shortcut a classifier could learn.

    ``centre`` is for whole images (a CellaVision-style crop holds the cell in its middle with red cells around it).
    A row the pixel loader cut from an annotated box (``info[BOX_CROP]``, e.g. a BCCD detection) is already framed
    on its cell and is kept whole: cutting it again would cut the cell. So one recipe serves a workspace that mixes
    both kinds of source."""

    def __init__(
        self, size: int, fill: tuple[int, int, int], interpolation: str = "bilinear", centre: float = 1.0
    ) -> None:
        self.size = size
        self.fill = tuple(fill)
        self.interpolation = interpolation
        self.centre = centre

    def centre_of(self, image: Image.Image) -> float:
        """The fraction of each side kept for this image: all of a box crop, ``centre`` of anything else."""
        return 1.0 if image.info.get(BOX_CROP) is True else self.centre

    def __call__(self, image: Image.Image) -> Image.Image:
        centre = self.centre_of(image)
        image = image.convert("RGB")
        if centre < 1.0:
            width, height = max(1, round(image.width * centre)), max(1, round(image.height * centre))
            left, top = (image.width - width) // 2, (image.height - height) // 2
            image = image.crop((left, top, left + width, top + height))
        scale = self.size / max(image.size)
        width, height = max(1, round(image.width * scale)), max(1, round(image.height * scale))
        if (width, height) != image.size:
            image = image.resize((width, height), RESAMPLING[self.interpolation])
        if (width, height) == (self.size, self.size):
            return image
        square = Image.new("RGB", (self.size, self.size), self.fill)
        square.paste(image, ((self.size - width) // 2, (self.size - height) // 2))
        return square

    def __repr__(self) -> str:
        centre = f", centre={self.centre}" if self.centre < 1.0 else ""
        return f"Letterbox(size={self.size}, fill={list(self.fill)}, interpolation={self.interpolation}{centre})"


def letterbox(image: ImageSpec) -> Letterbox:
    return Letterbox(image.size, image.fill(), image.interpolation or "bilinear", image.centre)


def eval_transform(image: ImageSpec) -> v2.Compose:
    """PIL image -> normalised float tensor, aspect kept: what validation, test, predict and embed see."""
    return v2.Compose(
        [
            letterbox(image),
            v2.PILToTensor(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(image.mean, image.std),
        ]
    )


def _geometry_and_colour(image: ImageSpec, strength: Strength) -> list[Callable[[Any], Any]]:
    """The augmentations of one strength that work alike on PIL images and uint8 tensors."""
    fill = list(image.fill())
    steps: list[Callable[[Any], Any]] = []
    if strength.crop != (1.0, 1.0):
        steps.append(v2.RandomResizedCrop(image.size, scale=strength.crop, ratio=(0.9, 1.1), antialias=True))
    if strength.rotate or strength.shift or strength.zoom != (1.0, 1.0):
        translate = (strength.shift, strength.shift) if strength.shift else None
        steps.append(
            v2.RandomAffine(
                degrees=strength.rotate,
                translate=translate,
                scale=strength.zoom if strength.zoom != (1.0, 1.0) else None,
                interpolation=InterpolationMode.BILINEAR,
                fill=fill,
            )
        )
    if strength.flip:
        steps += [v2.RandomHorizontalFlip(), v2.RandomVerticalFlip()]
    if strength.perspective:
        steps.append(v2.RandomPerspective(strength.perspective, p=strength.perspective_p, fill=fill))
    if strength.brightness or strength.contrast or strength.saturation or strength.hue:
        steps.append(v2.ColorJitter(strength.brightness, strength.contrast, strength.saturation, strength.hue))
    if strength.blur:
        steps.append(v2.RandomApply([v2.GaussianBlur(5, sigma=(0.1, 1.5))], p=strength.blur))
    return steps


def train_transform(image: ImageSpec, strength: Strength, degrade: DegradeSpec) -> v2.Compose:
    """The PIL path (the baseline of ``benchmarks/train.py`` and ``train.cache: false``): decode, letterbox, the
    recipe's augmentations on the PIL image, then degradation, noise and normalisation on the tensor."""
    steps: list[Callable[[Any], Any]] = [letterbox(image), *_geometry_and_colour(image, strength), v2.PILToTensor()]
    if degrade.p:
        steps.append(Degrade(degrade))
    steps.append(v2.ToDtype(torch.float32, scale=True))
    if strength.noise:
        steps.append(v2.RandomApply([v2.GaussianNoise(sigma=0.03)], p=strength.noise))
    steps.append(v2.Normalize(image.mean, image.std))
    return v2.Compose(steps)


def tensor_transform(image: ImageSpec, strength: Strength, degrade: DegradeSpec) -> v2.Compose:
    """The cached path: the same augmentations on an already letterboxed uint8 CHW tensor (CPU or GPU), giving a
    float image in [0, 1] (normalised with the batch, on the device)."""
    steps = _geometry_and_colour(image, strength)
    if degrade.p:
        steps.append(Degrade(degrade))
    steps.append(v2.ToDtype(torch.float32, scale=True))
    if strength.noise:
        steps.append(v2.RandomApply([v2.GaussianNoise(sigma=0.03)], p=strength.noise))
    return v2.Compose(steps)


class LabelAwareAugment(Dataset):
    """Training rows of a base dataset (PIL image, label) transformed by ``rare`` for rare classes and by
    ``normal`` for the others: the few images of a rare class are seen in more varied forms."""

    def __init__(
        self,
        base: Dataset,
        labels: list[int],
        normal: Callable[[Any], Any],
        rare: Callable[[Any], Any],
        rare_labels: Collection[int],
    ) -> None:
        self.base = base
        self.labels = labels
        self.normal = normal
        self.rare = rare
        self.rare_labels = frozenset(rare_labels)

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image, label = self.base[index][:2]
        transform = self.rare if label in self.rare_labels else self.normal
        return transform(image), label
