"""One cropping path for every detection and segmentation source: a box, a mask or a centroid + size
becomes a crop with a margin, clamped to the image. Crops keep their box and parent image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 with exclusive ends, in parent pixels


class CropRejected(Exception):
    """The crop cannot be made; ``str(exc)`` is the reason recorded in the manifest."""


def with_margin(box: tuple[float, float, float, float], margin: float) -> tuple[float, float, float, float]:
    """Grow a box by ``margin`` x its width/height on every side (0.1 = 10%)."""
    x0, y0, x1, y1 = box
    dx, dy = (x1 - x0) * margin, (y1 - y0) * margin
    return (x0 - dx, y0 - dy, x1 + dx, y1 + dy)


def clamp(box: tuple[float, float, float, float], width: int, height: int) -> Box:
    """Round outwards and clamp to the image; raise if nothing of the box is inside it."""
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0:
        raise CropRejected(f"empty box ({x0:g}, {y0:g}, {x1:g}, {y1:g})")
    cx0, cy0 = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
    cx1, cy1 = min(width, int(np.ceil(x1))), min(height, int(np.ceil(y1)))
    if cx1 <= cx0 or cy1 <= cy0:
        raise CropRejected(f"box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) lies outside the {width}x{height} image")
    return (cx0, cy0, cx1, cy1)


def box_from_centroid(cx: float, cy: float, size: int) -> tuple[float, float, float, float]:
    half = size / 2
    return (cx - half, cy - half, cx + half, cy + half)


def box_from_mask(mask: np.ndarray, values: tuple[int, ...] | None = None) -> tuple[int, int, int, int]:
    """Bounding box of the mask's foreground (``values``, or any non-zero value); first channel only."""
    if mask.ndim == 3:
        mask = mask[..., 0]
    foreground = np.isin(mask, values) if values else mask != 0
    ys, xs = np.nonzero(foreground)
    if len(xs) == 0:
        raise CropRejected("mask is empty (no foreground pixel)")
    return (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def read_mask(path: Path, expected_size: tuple[int, int]) -> np.ndarray:
    try:
        with Image.open(path) as image:
            image.load()
            size = image.size
            array = np.asarray(image)
    except FileNotFoundError:
        raise CropRejected(f"mask file missing: {path.name}") from None
    except OSError as exc:
        raise CropRejected(f"mask {path.name} unreadable: {exc}") from None
    if size != expected_size:
        raise CropRejected(
            f"mask {path.name} is {size[0]}x{size[1]} but the image is {expected_size[0]}x{expected_size[1]}"
        )
    return array
