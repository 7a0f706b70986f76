"""Numba kernel for the colour stage of the batched augmentation on a CPU.

Why compiled: torchvision's ``ColorJitter`` on a batch is a dozen whole-batch tensor passes (multiply, clamp,
truncate, a grey image and its mean, a blend), each reading and writing the batch from memory; on one core of a
DataLoader worker they cost about 0.3 ms per 128 px image, a third of the worker's time. Here each image gets its
adjustments in its own order in one or two passes while it sits in cache. The arithmetic follows torchvision's
kernels (``adjust_brightness``, ``adjust_contrast``, ``adjust_saturation``; on whole levels the clamp and truncation
of its uint8 path) in single precision, so a pixel can land one level apart where an operation order differs;
``tests/test_batch_augment.py`` compares the result with torchvision's per-image transforms. ``cache=True`` keeps
the compiled code on disk.
"""

from __future__ import annotations

import numba as nb
import numpy as np

BRIGHTNESS, CONTRAST, SATURATION = 0, 1, 2
RED, GREEN, BLUE = np.float32(0.2989), np.float32(0.587), np.float32(0.114)


@nb.njit(inline="always", cache=True)
def _settle(value: np.float32, top: np.float32, levels: bool) -> np.float32:
    value = min(max(value, np.float32(0.0)), top)
    return np.float32(np.floor(value)) if levels else value


@nb.njit(inline="always", cache=True)
def _grey(r: np.float32, g: np.float32, b: np.float32, levels: bool) -> np.float32:
    grey = r * RED + g * GREEN + b * BLUE
    return np.float32(np.floor(grey)) if levels else grey


@nb.njit(cache=True)
def colour_jitter(images: np.ndarray, order: np.ndarray, factors: np.ndarray, levels: bool) -> None:
    """In place: ``images`` (n, 3, h, w) float32 (whole levels 0-255 when ``levels``, else [0, 1]); for image ``i``
    the adjustments ``order[i]`` (ids ``BRIGHTNESS``, ``CONTRAST``, ``SATURATION``; -1 ends the list) with
    ``factors[i, id]``."""
    n, _, h, w = images.shape
    top = np.float32(255.0) if levels else np.float32(1.0)
    for i in range(n):
        image = images[i]
        for k in range(order.shape[1]):
            op = order[i, k]
            if op < 0:
                break
            f = factors[i, op]
            rest = np.float32(1.0) - f
            if op == BRIGHTNESS:
                for c in range(3):
                    for y in range(h):
                        for x in range(w):
                            image[c, y, x] = _settle(image[c, y, x] * f, top, levels)
            elif op == CONTRAST:
                total = 0.0
                for y in range(h):
                    for x in range(w):
                        total += _grey(image[0, y, x], image[1, y, x], image[2, y, x], levels)
                mean = np.float32(total / (h * w)) * rest
                for c in range(3):
                    for y in range(h):
                        for x in range(w):
                            image[c, y, x] = _settle(image[c, y, x] * f + mean, top, levels)
            else:  # SATURATION
                for y in range(h):
                    for x in range(w):
                        grey = _grey(image[0, y, x], image[1, y, x], image[2, y, x], levels) * rest
                        for c in range(3):
                            image[c, y, x] = _settle(image[c, y, x] * f + grey, top, levels)
