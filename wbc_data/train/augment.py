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

from wbc_data.train.degrade import Degrade
from wbc_data.train.recipe import DegradeSpec, ImageSpec, Strength


class Letterbox:
    """Resize the longer side to ``size`` (PIL's antialiased bilinear) and pad the shorter one to a centred square
    with ``fill``. Works on PIL images: geometric and colour augmentations stay in PIL's fast C code."""

    def __init__(self, size: int, fill: tuple[int, int, int]) -> None:
        self.size = size
        self.fill = tuple(fill)

    def __call__(self, image: Image.Image) -> Image.Image:
        scale = self.size / max(image.size)
        width, height = max(1, round(image.width * scale)), max(1, round(image.height * scale))
        if (width, height) != image.size:
            image = image.resize((width, height), Image.Resampling.BILINEAR)
        if (width, height) == (self.size, self.size):
            return image
        square = Image.new("RGB", (self.size, self.size), self.fill)
        square.paste(image, ((self.size - width) // 2, (self.size - height) // 2))
        return square

    def __repr__(self) -> str:
        return f"Letterbox(size={self.size}, fill={list(self.fill)})"


def eval_transform(image: ImageSpec) -> v2.Compose:
    """PIL image -> normalised float tensor, aspect kept: what validation, test, predict and embed see."""
    return v2.Compose(
        [
            Letterbox(image.size, image.fill()),
            v2.PILToTensor(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(image.mean, image.std),
        ]
    )


def train_transform(image: ImageSpec, strength: Strength, degrade: DegradeSpec) -> v2.Compose:
    """The eval transform with the recipe's augmentations (one strength) in between: geometry, colour and blur on
    the PIL image, then degradation, noise and normalisation on the tensor."""
    fill = list(image.fill())
    steps: list[Callable[[Any], Any]] = [Letterbox(image.size, image.fill())]
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
        steps.append(v2.RandomPerspective(strength.perspective, p=0.5, fill=fill))
    if strength.brightness or strength.contrast or strength.saturation or strength.hue:
        steps.append(v2.ColorJitter(strength.brightness, strength.contrast, strength.saturation, strength.hue))
    if strength.blur:
        steps.append(v2.RandomApply([v2.GaussianBlur(5, sigma=(0.1, 1.5))], p=strength.blur))
    steps.append(v2.PILToTensor())
    if degrade.p:
        steps.append(Degrade(degrade))
    steps.append(v2.ToDtype(torch.float32, scale=True))
    if strength.noise:
        steps.append(v2.RandomApply([v2.GaussianNoise(sigma=0.03)], p=strength.noise))
    steps.append(v2.Normalize(image.mean, image.std))
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
