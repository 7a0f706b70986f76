"""The straightforward signature code that :mod:`wbc_data.dedup.signature` and :mod:`wbc_data.dedup.fill` shortcut
for speed (issue 21): OpenCV's per-component statistics for fill borders, every resize and erosion done even when an
image has no fill, numpy's standard deviation, the thumbnail computed again, and the nearest-word loop that kept the
best word as it went. Kept so the tests can prove the fast code gives the same
signatures, bit for bit, and `benchmarks/dedup_signatures.py` can measure what the shortcuts buy."""

from __future__ import annotations

import cv2
import numba as nb
import numpy as np
from PIL import Image

from wbc_data.dedup import fill as F
from wbc_data.dedup.kernels import popcount64
from wbc_data.dedup.signature import (
    BLANK_STD,
    BLANK_VALID,
    ORB_FAST_THRESHOLD,
    ORB_FEATURES,
    ORB_LEVELS,
    ORB_MARGIN,
    ORB_SIDE,
    Signature,
    fitted,
)
from wbc_data.dedup.words import Embedder
from wbc_data.imaging.signatures import THUMB_SIZE, grey_thumbnail


@nb.njit(cache=True)
def nearest_words(descriptors: np.ndarray, words: np.ndarray) -> np.ndarray:
    n, k = descriptors.shape[0], words.shape[0]
    out = np.empty(n, np.int64)
    for i in range(n):
        d0, d1, d2, d3 = descriptors[i, 0], descriptors[i, 1], descriptors[i, 2], descriptors[i, 3]
        best = np.uint64(1 << 20)
        arg = 0
        for j in range(k):
            d = (popcount64(d0 ^ words[j, 0]) + popcount64(d1 ^ words[j, 1]) + popcount64(d2 ^ words[j, 2])
                 + popcount64(d3 ^ words[j, 3]))  # fmt: skip
            if d < best:
                best = d
                arg = j
        out[i] = arg
    return out


def embed(embedder: Embedder, descriptors: np.ndarray) -> np.ndarray:
    counts = np.zeros(embedder.size, np.float32)
    if len(descriptors):
        nearest = nearest_words(np.ascontiguousarray(descriptors, np.uint8).view(np.uint64), embedder.words_u64)
        counts = np.bincount(nearest, minlength=embedder.size).astype(np.float32)
    return embedder.project(embedder.weigh(counts))


def border_components(mask: np.ndarray, min_area: int = 0, rgb: np.ndarray | None = None) -> np.ndarray:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=4)
    if count <= 1:
        return np.zeros(mask.shape, dtype=bool)
    edge = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    touching = np.zeros(count, dtype=bool)
    touching[edge] = True
    touching[0] = False
    touching &= stats[:, cv2.CC_STAT_AREA] >= min_area
    if rgb is not None:
        for label in np.flatnonzero(touching):
            x, y, w, h = stats[label, :4]
            inside = labels[y : y + h, x : x + w] == label
            colours = rgb[y : y + h, x : x + w][inside]
            touching[label] = bool((colours.max(axis=0).astype(int) - colours.min(axis=0) <= F.FLAT_RANGE).all())
    return touching[labels]


def channel_max_min(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r, g, b = cv2.split(rgb)
    return cv2.max(cv2.max(r, g), b), cv2.min(cv2.min(r, g), b)


def on_border(mask: np.ndarray) -> bool:
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


def fill_mask(rgb: np.ndarray) -> np.ndarray:
    """Every 4-connected region of near-black/near-white pixels, and of locally flat ones, labelled over the whole
    image; those touching the border (flat ones: large and of one colour) are fill."""
    rgb = np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    scale = min(1.0, F.WORK_SIDE / max(h, w))
    small = rgb if scale == 1.0 else cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                                                interpolation=cv2.INTER_AREA)  # fmt: skip
    brightest, darkest = channel_max_min(small)
    extreme = (brightest <= F.BLACK_MAX) | (darkest >= F.WHITE_MIN)
    kernel = np.ones((3, 3), np.uint8)
    spread, _ = channel_max_min(cv2.absdiff(cv2.dilate(small, kernel), cv2.erode(small, kernel)))
    flat = spread == 0
    fill = np.zeros(small.shape[:2], dtype=bool)
    if on_border(extreme):
        fill |= border_components(extreme)
    if on_border(flat):
        fill |= border_components(flat, int(F.MIN_FLAT_AREA * small.shape[0] * small.shape[1]), small)
    if scale != 1.0 and fill.any():
        fill = cv2.resize(fill.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    elif scale != 1.0:
        fill = np.zeros((h, w), dtype=bool)
    return fill


def signature(rgb: Image.Image, embedder: Embedder, canvas_side: int) -> Signature:
    grey = np.asarray(rgb.convert("L"))
    valid = ~fill_mask(np.asarray(rgb.convert("RGB")))
    fill = 1.0 - float(valid.mean())
    blank = fill > 1.0 - BLANK_VALID or float(grey[valid].std()) < BLANK_STD
    small = fitted(grey.astype(np.float32), canvas_side)
    kept = fitted(valid.astype(np.float32), canvas_side) >= 0.999
    kept = cv2.erode(kept.astype(np.uint8), np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE) > 0
    canvas = np.zeros((canvas_side, canvas_side), np.uint8)
    h, w = small.shape
    y0, x0 = (canvas_side - h) // 2, (canvas_side - w) // 2
    canvas[y0 : y0 + h, x0 : x0 + w] = np.where(kept, np.clip(np.rint(small), 1, 255), 0).astype(np.uint8)
    if valid.all() or not valid.any():
        thumb = grey_thumbnail(rgb)
    else:
        flat = np.where(valid, grey, np.uint8(round(float(grey[valid].mean()))))
        thumb = grey_thumbnail(Image.fromarray(flat.astype(np.uint8), "L"))
    if blank:
        words = np.zeros((2, embedder.dim), np.float16)
    else:
        g = fitted(grey, ORB_SIDE, cv2.INTER_AREA)
        m = fitted(valid.astype(np.uint8) * 255, ORB_SIDE, cv2.INTER_NEAREST)
        m = cv2.erode(m, np.ones((2 * ORB_MARGIN + 1, 2 * ORB_MARGIN + 1), np.uint8), borderType=cv2.BORDER_REPLICATE)
        orb = cv2.ORB_create(ORB_FEATURES, fastThreshold=ORB_FAST_THRESHOLD, nlevels=ORB_LEVELS)
        sets = []
        for image, mask in ((g, m), (np.ascontiguousarray(g[:, ::-1]), np.ascontiguousarray(m[:, ::-1]))):
            _, desc = orb.detectAndCompute(image, mask)
            sets.append(np.zeros((0, 32), np.uint8) if desc is None else desc)
        words = np.stack([embed(embedder, d) for d in sets]).astype(np.float16)
    return Signature(canvas, words, thumb.reshape(THUMB_SIZE, THUMB_SIZE), fill, blank)
