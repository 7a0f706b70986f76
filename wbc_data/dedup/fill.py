"""Constant fill borders: the black or white corners a rotation leaves, padding and letterbox bars.

Why: a fill region is not image content, yet it dominates a 64-bit pHash and a thumbnail correlation (two distinct
fields rotated by similar angles share the same black corners), so every signature and every correlation in dedup
sees only the *valid* pixels this module finds.

A pixel is fill when it lies in a region that touches the image border and is either near-black / near-white
(rotation corners and padding after JPEG still sit within a few levels of 0 or 255), or one constant colour (no
variation at all between neighbours, and at most ``FLAT_RANGE`` levels over the whole region, covering at least
``MIN_FLAT_AREA`` of the image: a letterbox bar in any colour). A smooth real background after JPEG is locally flat
in places, but its colour drifts across the region, so it is not taken for fill (checked on the PBC cells, whose
pale backgrounds are the smoothest of the shared data); an over-exposed white background is not content
either, so calling it fill loses nothing.
"""

from __future__ import annotations

import cv2
import numpy as np

from wbc_data.dedup.kernels import border_regions

BLACK_MAX = 24
"""A fill pixel is near-black when its brightest channel is at most this (JPEG lifts pure black by a few levels)."""

WHITE_MIN = 232
"""... or near-white when its darkest channel is at least this."""

FLAT_RANGE = 2
"""A constant-colour region spans at most this many levels per channel (JPEG keeps a flat pad within 1-2)."""

MIN_FLAT_AREA = 0.01
"""A flat border region counts as fill only when it covers at least this fraction of the image."""

WORK_SIDE = 512
"""Fill is found on the image resized (area average) to at most this side: enough to place a border exactly."""


def _border_components(mask: np.ndarray, min_area: int = 0, rgb: np.ndarray | None = None) -> np.ndarray:
    """The pixels of ``mask`` in 4-connected components that touch the image border, are at least ``min_area``
    pixels and (with ``rgb``) span at most ``FLAT_RANGE`` levels in every channel.

    Labels come without OpenCV's per-component statistics (those cost four times the labelling on a smooth cell
    image, whose background holds thousands of tiny flat components); areas and colours are counted in one compiled
    pass, only for the components that touch the border (:func:`kernels.border_regions`)."""
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=4, ltype=cv2.CV_32S)
    if count <= 1:
        return np.zeros(mask.shape, dtype=bool)
    colours = np.zeros((1, 1, 3), np.uint8) if rgb is None else np.ascontiguousarray(rgb)
    return border_regions(labels, count, min_area, colours, -1 if rgb is None else FLAT_RANGE)


def _channel_max_min(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel brightest and darkest channel (OpenCV: an order of magnitude faster than numpy's axis max)."""
    r, g, b = cv2.split(rgb)
    return cv2.max(cv2.max(r, g), b), cv2.min(cv2.min(r, g), b)


def _on_border(mask: np.ndarray) -> bool:
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


def fill_mask(rgb: np.ndarray) -> np.ndarray:
    """Boolean (h, w) mask of constant fill pixels of an (h, w, 3) uint8 RGB image."""
    rgb = np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    scale = min(1.0, WORK_SIDE / max(h, w))
    small = rgb if scale == 1.0 else cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                                                interpolation=cv2.INTER_AREA)  # fmt: skip
    brightest, darkest = _channel_max_min(small)
    extreme = (brightest <= BLACK_MAX) | (darkest >= WHITE_MIN)
    kernel = np.ones((3, 3), np.uint8)
    spread, _ = _channel_max_min(cv2.absdiff(cv2.dilate(small, kernel), cv2.erode(small, kernel)))
    flat = spread == 0
    fill = np.zeros(small.shape[:2], dtype=bool)
    if _on_border(extreme):
        fill |= _border_components(extreme)
    if _on_border(flat):
        fill |= _border_components(flat, int(MIN_FLAT_AREA * small.shape[0] * small.shape[1]), small)
    if scale != 1.0 and fill.any():
        fill = cv2.resize(fill.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    elif scale != 1.0:
        fill = np.zeros((h, w), dtype=bool)
    return fill
