"""The 8 pHashes of a row under the dihedral group (flips and 90-degree rotations), from its stored thumbnail.

No re-decoding: a flip of the 32x32 thumbnail only changes the sign of odd DCT frequencies along that axis
(DCT-II of a reversed sequence is ``(-1)^k`` times the original) and a transpose transposes the DCT block, so all
8 hashes come from one DCT per row. The identity hash is bit-equal to ``imagehash.phash``.
"""

from __future__ import annotations

import numpy as np

from wbc_data.imaging.signatures import HASH_SIZE, THUMB_SIZE, dct_lowfreq, pack_hashes

TRANSFORMS: tuple[str, ...] = (
    "identity",
    "flip_lr",
    "flip_tb",
    "rot180",
    "transpose",
    "rot90",
    "rot270",
    "transverse",
)
"""Names follow PIL's ``Image.Transpose`` (rot90 = ROTATE_90, counter-clockwise)."""

_SIGN = (-1.0) ** np.arange(HASH_SIZE)
_ROWS = _SIGN[:, None]  # flips along axis 0 (top-bottom) negate odd vertical frequencies
_COLS = _SIGN[None, :]  # flips along axis 1 (left-right) negate odd horizontal frequencies


def transform_array(image: np.ndarray, name: str) -> np.ndarray:
    """Apply a dihedral transform to a 2-D array exactly as PIL's ``Image.transpose`` does to an image."""
    ops = {
        "identity": lambda a: a,
        "flip_lr": lambda a: a[:, ::-1],
        "flip_tb": lambda a: a[::-1, :],
        "rot180": lambda a: a[::-1, ::-1],
        "transpose": lambda a: a.T,
        "rot90": lambda a: np.rot90(a, 1),
        "rot270": lambda a: np.rot90(a, -1),
        "transverse": lambda a: a[::-1, ::-1].T,
    }
    return np.ascontiguousarray(ops[name](image))


def thumbs_from_bytes(blobs: list[bytes | None]) -> tuple[np.ndarray, np.ndarray]:
    """Stack thumbnail bytes into (n, 32, 32) uint8; the mask says which rows had a usable thumbnail."""
    size = THUMB_SIZE * THUMB_SIZE
    ok = np.array([b is not None and len(b) == size for b in blobs], dtype=bool)
    out = np.zeros((len(blobs), THUMB_SIZE, THUMB_SIZE), dtype=np.uint8)
    for i in np.flatnonzero(ok):
        out[i] = np.frombuffer(blobs[i], dtype=np.uint8).reshape(THUMB_SIZE, THUMB_SIZE)
    return out, ok


def _variants(low: np.ndarray) -> list[np.ndarray]:
    low_t = np.swapaxes(low, 1, 2)
    return [
        low,
        low * _COLS,
        low * _ROWS,
        low * _ROWS * _COLS,
        low_t,
        low_t * _ROWS,
        low_t * _COLS,
        low_t * _ROWS * _COLS,
    ]


def dihedral_phashes(thumbs: np.ndarray, batch: int = 1 << 14) -> np.ndarray:
    """(n, 8) uint64: column t is the pHash of the thumbnail transformed by ``TRANSFORMS[t]`` (in batches: the DCT
    works in float64, 8 KB per thumbnail)."""
    out = np.zeros((len(thumbs), len(TRANSFORMS)), dtype=np.uint64)
    for start in range(0, len(thumbs), batch):
        low = dct_lowfreq(thumbs[start : start + batch])
        out[start : start + batch] = np.stack([pack_hashes(v) for v in _variants(low)], axis=1)
    return out
