"""Crop-tolerant hashes from the stored 32x32 thumbnail: the pHash of "this image cropped by a few per cent".

Why: a crop of 5-10% moves a pHash by 10-24 bits, as far as distinct look-alike cells, so Hamming search on the
plain hash misses cropped copies. The pHash only keeps the 8x8 lowest DCT frequencies, which the 32x32 thumbnail
still carries faithfully, so the thumbnail of "the original cropped to a box" is well approximated by resampling
that box of the original's thumbnail back to 32x32 (separable cubic interpolation; no re-decoding). Every indexed
row gets a few such zoomed hashes over a small grid of boxes (``CROP_GRID``); a cropped copy's own hash then lands
near one of them. The resampling and the 8x8 DCT block are linear, so each box is two small (8 x 32) matrices.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fftpack

from wbc_data.imaging.signatures import HASH_SIZE, THUMB_SIZE, pack_hashes


@dataclass(frozen=True)
class CropBox:
    """Fractions of the width/height removed at each side (left, right, top, bottom) of the original."""

    left: float
    right: float
    top: float
    bottom: float

    def describe(self) -> str:
        """Short tag for the manifest, e.g. ``crop l5 r0 t2 b2`` (per cent of the side removed)."""
        parts = zip("lrtb", (self.left, self.right, self.top, self.bottom), strict=True)
        return "crop " + " ".join(f"{s}{round(v * 100):g}" for s, v in parts)


IDENTITY = CropBox(0.0, 0.0, 0.0, 0.0)


def _box(left: float, right: float, top: float, bottom: float) -> CropBox:
    return CropBox(left / 100, right / 100, top / 100, bottom / 100)


CROP_GRID: tuple[CropBox, ...] = (
    _box(4, 4, 4, 4),
    _box(7, 1, 2, 2),
    _box(1, 7, 2, 2),
    _box(2, 2, 7, 1),
    _box(2, 2, 1, 7),
    _box(6, 0, 6, 0),
    _box(0, 6, 0, 6),
    _box(6, 0, 0, 6),
    _box(0, 6, 6, 0),
)
"""The zoomed boxes indexed for every row, besides the plain pHash (chosen on real PBC cells, see
benchmarks/README.md, dedup): a centred 8% crop, four 8% crops shifted towards one side, four corner crops. Every
crop removing up to 10% of the width and of the height lies within a few per cent of one of them, which keeps the
cropped copy's pHash within 10 bits of that box's zoomed hash."""

MAX_SIDE = 0.15
"""Refinement never removes more than this fraction at one side."""


def _cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys' cubic convolution kernel (PIL's BICUBIC uses a = -0.5)."""
    x = np.abs(x)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x <= 1, near, np.where(x < 2, far, 0.0))


def resample_matrices(start: np.ndarray, end: np.ndarray, size: int = THUMB_SIZE) -> np.ndarray:
    """(p, size, size) matrices, one per span: take a row of ``size`` pixels to ``size`` samples of the span that
    removes ``start[k]`` and ``end[k]`` (fractions) at its two ends, by cubic interpolation with the edge pixels
    repeated; rows sum to 1."""
    start, end = np.atleast_1d(np.asarray(start, np.float64)), np.atleast_1d(np.asarray(end, np.float64))
    lo, hi = start * size, (1.0 - end) * size
    # output sample centres, in input pixel-centre coordinates
    centres = lo[:, None] + (np.arange(size) + 0.5)[None, :] * ((hi - lo) / size)[:, None] - 0.5
    base = np.floor(centres).astype(np.int64)
    out = np.zeros((len(start), size, size), dtype=np.float64)
    span, row = np.arange(len(start))[:, None], np.arange(size)[None, :]
    for k in range(-1, 3):
        idx = base + k
        np.add.at(out, (span, row, np.clip(idx, 0, size - 1)), _cubic(centres - idx))
    return out / out.sum(axis=2, keepdims=True)


@lru_cache(maxsize=256)
def resample_matrix(start: float, end: float, size: int = THUMB_SIZE) -> np.ndarray:
    """One :func:`resample_matrices` matrix, cached (the grid's boxes are reused for every batch)."""
    return resample_matrices(np.array([start]), np.array([end]), size)[0]


@lru_cache(maxsize=1)
def _dct_rows() -> np.ndarray:
    """(8, 32): the first rows of scipy's unnormalised DCT-II matrix (what imagehash applies per axis)."""
    return scipy.fftpack.dct(np.eye(THUMB_SIZE), axis=0)[:HASH_SIZE]


def span_matrices(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """:func:`resample_matrices` for many spans, computed once per distinct span (refinement moves boxes on a
    lattice, so a batch of thousands of boxes has only a few hundred distinct sides)."""
    start, end = np.asarray(start, np.float64), np.asarray(end, np.float64)
    key = np.round(start * 1e6).astype(np.int64) * 10_000_000 + np.round(end * 1e6).astype(np.int64)
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    return resample_matrices(start[first], end[first]).astype(np.float32)[inverse.reshape(-1)]


def crop_thumbs(thumbs: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(p, 32, 32) float32: ``thumbs[k]`` with box ``boxes[k]`` (left, right, top, bottom fractions) resampled
    back to 32x32, i.e. approximately the thumbnail of the image cropped to that box."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    rows = span_matrices(boxes[:, 2], boxes[:, 3])
    cols = span_matrices(boxes[:, 0], boxes[:, 1])
    return rows @ np.asarray(thumbs, dtype=np.float32) @ cols.transpose(0, 2, 1)


def grid_crops(thumbs: np.ndarray, box: np.ndarray) -> np.ndarray:
    """:func:`crop_thumbs` of a stack with one box (left, right, top, bottom): ``rows @ thumb @ cols.T`` for every
    thumbnail as two matrix products over the whole stack."""
    thumbs = np.asarray(thumbs, dtype=np.float32)
    m, size, _ = thumbs.shape
    rows = resample_matrix(float(box[2]), float(box[3])).astype(np.float32)
    cols = resample_matrix(float(box[0]), float(box[1])).astype(np.float32)
    left = rows @ thumbs.transpose(1, 0, 2).reshape(size, m * size)  # rows @ thumb, every thumb side by side
    return (left.reshape(size, m, size).transpose(1, 0, 2).reshape(m * size, size) @ cols.T).reshape(m, size, size)


def as_array(boxes: tuple[CropBox, ...]) -> np.ndarray:
    """(k, 4) float64 of (left, right, top, bottom)."""
    return np.array([(b.left, b.right, b.top, b.bottom) for b in boxes], dtype=np.float64).reshape(-1, 4)


def zoomed_phashes(thumbs: np.ndarray, grid: tuple[CropBox, ...] = CROP_GRID, batch: int = 1 << 14) -> np.ndarray:
    """(n, len(grid)) uint64: column k is the pHash of the thumbnail cropped to ``grid[k]`` and resampled."""
    dct = _dct_rows()
    mats = [(dct @ resample_matrix(b.top, b.bottom), dct @ resample_matrix(b.left, b.right)) for b in grid]
    out = np.zeros((len(thumbs), len(grid)), dtype=np.uint64)
    for start in range(0, len(thumbs), batch):
        part = np.asarray(thumbs[start : start + batch], dtype=np.float64)
        for k, (rows, cols) in enumerate(mats):
            out[start : start + batch, k] = pack_hashes(np.einsum("ij,njk,lk->nil", rows, part, cols, optimize=True))
    return out
