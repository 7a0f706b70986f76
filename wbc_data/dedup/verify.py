"""Second, cheap check of a candidate pair: correlation of the aligned 32x32 thumbnails.

Distinct PBC cells look alike (a centred cell on a pink background), so some distinct pairs fall within the
pHash radius; their thumbnails correlate less than a recompressed, resized or colour-shifted copy does
(brightness and contrast changes do not move a normalised correlation).
"""

from __future__ import annotations

import numpy as np

from wbc_data.dedup.dihedral import TRANSFORMS

_BATCH = 1 << 16


def normalise(thumbs: np.ndarray) -> np.ndarray:
    """Zero-mean, unit-norm float32 thumbnails (n, 32, 32): a dot product is then the correlation."""
    flat = thumbs.reshape(len(thumbs), -1).astype(np.float32)
    flat -= flat.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(flat, axis=1, keepdims=True)
    return (flat / np.where(norm == 0, 1.0, norm)).reshape(thumbs.shape)


def transform_batch(stack: np.ndarray, name: str) -> np.ndarray:
    """``dihedral.transform_array`` on every image of an (n, h, w) stack."""
    ops = {
        "identity": lambda a: a,
        "flip_lr": lambda a: a[:, :, ::-1],
        "flip_tb": lambda a: a[:, ::-1, :],
        "rot180": lambda a: a[:, ::-1, ::-1],
        "transpose": lambda a: a.transpose(0, 2, 1),
        "rot90": lambda a: np.rot90(a, 1, axes=(1, 2)),
        "rot270": lambda a: np.rot90(a, -1, axes=(1, 2)),
        "transverse": lambda a: a[:, ::-1, ::-1].transpose(0, 2, 1),
    }
    return ops[name](stack)


def aligned_correlation(unit: np.ndarray, first: np.ndarray, second: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """Correlation of ``unit[first]`` transformed by ``TRANSFORMS[transform]`` with ``unit[second]`` (per pair).

    ``unit`` comes from :func:`normalise`; pairs are processed in batches so memory stays flat.
    """
    out = np.zeros(len(first), dtype=np.float32)
    for t, name in enumerate(TRANSFORMS):
        sel = np.flatnonzero(transform == t)
        for start in range(0, len(sel), _BATCH):
            part = sel[start : start + _BATCH]
            moved = transform_batch(unit[first[part]], name)
            out[part] = np.einsum("ijk,ijk->i", moved, unit[second[part]])
    return out
