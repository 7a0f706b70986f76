"""Windows of a field image: where a crop of that field (or a copy of such a crop) can be found.

A crop of a field shows a few per cent of it, so it cannot match the field's whole-image signature. Each field
therefore also gets signatures of overlapping square windows (0.45 of its shorter side: the size of a
white-blood-cell crop in the field sources, within the 1.5x scale a registration allows), half a window apart.
A crop then lies mostly inside one window at a similar scale; registration finds the rest (rotation, scale, the
remaining shift). The crops a field's own source cut are rows with their own signatures already.
"""

from __future__ import annotations

import numpy as np

WINDOW_SIZES = (0.45, 0.7)
"""Window sides as fractions of the field's shorter side."""

STRIDE = 0.5
"""Windows of one size are this fraction of their side apart."""

MAX_WINDOWS = 96
"""At most this many grid windows per field (very elongated fields get a coarser stride)."""


def grid_windows(width: int, height: int) -> np.ndarray:
    """(k, 4) int boxes (left, top, right, bottom) covering the field at every size of ``WINDOW_SIZES``."""
    boxes = []
    short = min(width, height)
    for fraction in WINDOW_SIZES:
        side = max(8, round(short * fraction))
        step = max(1, round(side * STRIDE))
        xs = _starts(width, side, step)
        ys = _starts(height, side, step)
        boxes += [(x, y, x + side, y + side) for y in ys for x in xs]
    out = np.array(boxes, dtype=np.int64).reshape(-1, 4)
    if len(out) > MAX_WINDOWS:
        out = out[np.linspace(0, len(out) - 1, MAX_WINDOWS).round().astype(np.int64)]
    return out


def _starts(length: int, side: int, step: int) -> list[int]:
    """Window starts along one axis: every ``step``, the last one flush with the far edge."""
    if side >= length:
        return [0]
    starts = list(range(0, length - side + 1, step))
    if starts[-1] != length - side:
        starts.append(length - side)
    return starts


def boxes_as_fractions(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """(k, 4) float32 (left, top, right, bottom) as fractions of the field's width and height."""
    scale = np.array([width, height, width, height], dtype=np.float64)
    return (np.asarray(boxes, np.float64).reshape(-1, 4) / scale).astype(np.float32)
