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

from wbc_data.dedup.kernels import fill_pixels

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


def fill_mask(rgb: np.ndarray) -> np.ndarray:
    """Boolean (h, w) mask of constant fill pixels of an (h, w, 3) uint8 RGB image. Only the regions that touch the
    border are visited (:func:`kernels.fill_pixels`, grown from the border pixels): labelling every region of a
    smooth cell image, whose background holds thousands of tiny flat ones, cost 0.65-0.81 ms per real PBC cell
    against 0.19 ms, for the same mask (tested against ``benchmarks/signature_reference.py``)."""
    rgb = np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    scale = min(1.0, WORK_SIDE / max(h, w))
    small = rgb if scale == 1.0 else cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                                                interpolation=cv2.INTER_AREA)  # fmt: skip
    min_area = int(MIN_FLAT_AREA * small.shape[0] * small.shape[1])
    fill = fill_pixels(np.ascontiguousarray(small), BLACK_MAX, WHITE_MIN, FLAT_RANGE, min_area)
    if scale != 1.0 and fill.any():
        fill = cv2.resize(fill.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    elif scale != 1.0:
        fill = np.zeros((h, w), dtype=bool)
    return fill
