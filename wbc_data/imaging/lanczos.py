"""PIL's 8-bit LANCZOS downscale of a grey image, reproduced exactly with two matrix products.

Why: the 32x32 thumbnail (the pHash input) is the most expensive step of ingest after the decode; PIL runs it as
a scalar loop (~0.45 ms for a 360x363 PBC image), two float64 matrix products do the same integer arithmetic
in about half the time. PIL's result is the definition, so nothing here is trusted blindly:

- weights are PIL's own: the same LANCZOS kernel in double precision, normalised, then rounded to 22-bit fixed
  point exactly as ``Resample.c`` does; sums of 8-bit pixels times these integers stay far below 2**53, so the
  float64 products are exact and ``floor((sum + 2**21) / 2**22)`` clipped to 0..255 is PIL's ``clip8``;
- PIL runs the two passes in an order chosen by the image shape (Pillow >= 12 may run the vertical pass first),
  and the rounding in between makes the order matter, so the order is *calibrated*, not guessed: the second time
  a shape is seen, two random probes of that shape are resized by PIL and by both orders here; only an order that
  reproduces PIL on both probes is used for that shape, otherwise that shape always goes through PIL;
- shapes seen once (e.g. crops of unique size) and anything that is not a plain 8-bit grey downscale simply call
  PIL, so the result is PIL's in every case. ``tests/test_signatures.py`` checks equality with imagehash;
- the matrix path is used only where BLAS runs on one thread (see :func:`enable_in_worker`).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image

PRECISION_BITS = 22  # Resample.c: 32 - 8 bits of result - 2 bits of headroom
_HALF = float(1 << (PRECISION_BITS - 1))
_ONE = float(1 << PRECISION_BITS)
_LANCZOS_SUPPORT = 3.0
_CALIBRATE_AFTER = 2  # sightings of a shape before calibrating it (unique shapes never pay for a calibration)
_MAX_SHAPES = 4096
_MAX_SIDE = 2048  # larger images (whole fields) go through PIL: dense products grow with the square of the side

_enabled = False

_seen: dict[tuple[int, int, int, int], int] = {}
_order: dict[tuple[int, int, int, int], str | None] = {}  # "hv", "vh", or None = use PIL


def _sinc(x: float) -> float:
    if x == 0.0:
        return 1.0
    x = x * math.pi
    return math.sin(x) / x


def _lanczos(x: float) -> float:
    if -3.0 <= x < 3.0:
        return _sinc(x) * _sinc(x / 3)
    return 0.0


@lru_cache(maxsize=256)
def weights(in_size: int, out_size: int) -> np.ndarray:
    """``out_size x in_size`` matrix of PIL's fixed-point LANCZOS weights (integers held in float64)."""
    scale = filterscale = in_size / out_size
    filterscale = max(filterscale, 1.0)
    support = _LANCZOS_SUPPORT * filterscale
    ss = 1.0 / filterscale
    matrix = np.zeros((out_size, in_size), dtype=np.float64)
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        row = [_lanczos((x + xmin - center + 0.5) * ss) for x in range(xmax)]
        total = 0.0
        for w in row:  # sequential sum, as in C
            total += w
        for x, w in enumerate(row):
            if total != 0.0:
                w = w / total
            fixed = w * (1 << PRECISION_BITS)
            matrix[xx, xmin + x] = int(fixed - 0.5) if w < 0 else int(fixed + 0.5)
    matrix.setflags(write=False)
    return matrix


def _clip8(acc: np.ndarray) -> np.ndarray:
    acc += _HALF
    acc /= _ONE  # exact: division by a power of two
    np.floor(acc, out=acc)
    return np.clip(acc, 0.0, 255.0, out=acc)


@lru_cache(maxsize=256)
def bands(in_size: int, out_size: int, parts: int = 4) -> tuple[tuple[int, int, int, int, np.ndarray], ...]:
    """The weight matrix cut into ``parts`` groups of outputs, each with only the input span it touches:
    ``(first_out, end_out, first_in, end_in, weights[first_out:end_out, first_in:end_in])``.

    Why: LANCZOS weights are zero outside ~6 source pixels per output pixel, so the dense product spends most of
    its time multiplying zeros; four bands do the expensive first pass in ~2/3 of the time. Dropping exact zeros
    does not change any sum."""
    matrix = weights(in_size, out_size)
    step = -(-out_size // parts)
    out = []
    for first in range(0, out_size, step):
        end = min(first + step, out_size)
        used = np.flatnonzero(matrix[first:end].any(axis=0))
        lo, hi = (int(used[0]), int(used[-1]) + 1) if used.size else (0, 1)
        out.append((first, end, lo, hi, np.ascontiguousarray(matrix[first:end, lo:hi])))
    return tuple(out)


def _resample(grey: np.ndarray, size: tuple[int, int], order: str) -> np.ndarray:
    height, width = grey.shape
    if order == "hv":  # horizontal pass first (PIL's order for most shapes), banded; then the small vertical one
        tmp = np.empty((height, size[0]), dtype=np.float64)
        for first, end, lo, hi, band in bands(width, size[0]):
            np.matmul(grey[:, lo:hi], band.T, out=tmp[:, first:end])
        out = _clip8(weights(height, size[1]) @ _clip8(tmp))
    else:  # vertical pass first, banded; then the small horizontal one
        tmp = np.empty((size[1], width), dtype=np.float64)
        for first, end, lo, hi, band in bands(height, size[1]):
            np.matmul(band, grey[lo:hi], out=tmp[first:end])
        out = _clip8(_clip8(tmp) @ weights(width, size[0]).T)
    return out.astype(np.uint8)


def _calibrate(width: int, height: int, size: tuple[int, int]) -> str | None:
    rng = np.random.default_rng(width * 100_003 + height)
    matches = {"hv", "vh"}
    for _ in range(2):
        probe = rng.integers(0, 256, (height, width), dtype=np.uint8)
        expected = np.asarray(Image.fromarray(probe, mode="L").resize(size, Image.Resampling.LANCZOS))
        matches = {o for o in matches if np.array_equal(_resample(probe, size, o), expected)}
    return matches.pop() if len(matches) == 1 else None


def set_enabled(enabled: bool) -> None:
    """Switch the matrix path on or off in this process (tests; :func:`enable_in_worker` for the pool)."""
    global _enabled
    _enabled = enabled


def enable_in_worker() -> bool:
    """Pool initializer step: pin BLAS to one thread, then use the matrix path; returns whether it is on.

    Why the pin matters: each worker already owns a core; OpenBLAS's threaded GEMM would start more threads that
    spin against the other workers (measured 0.4 ms -> 14 ms per thumbnail on a busy 2-core machine), and
    splitting the product into blocks small enough to stay single-threaded costs more than PIL. Without
    threadpoolctl the thread count cannot be changed after numpy is loaded, so PIL keeps doing the resize.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return False
    threadpool_limits(limits=1, user_api="blas")
    set_enabled(True)
    return True


def resize_grey(grey: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """``np.asarray(grey.resize(size, Image.Resampling.LANCZOS))``, bit for bit, faster for repeated shapes."""
    width, height = grey.size
    if not _enabled or grey.mode != "L" or not (size[0] < width <= _MAX_SIDE and size[1] < height <= _MAX_SIDE):
        return np.asarray(grey.resize(size, Image.Resampling.LANCZOS))
    key = (width, height, *size)
    if key not in _order:
        count = _seen.get(key, 0) + 1
        if count < _CALIBRATE_AFTER or len(_order) >= _MAX_SHAPES:
            if len(_seen) < _MAX_SHAPES:
                _seen[key] = count
            return np.asarray(grey.resize(size, Image.Resampling.LANCZOS))
        _order[key] = _calibrate(width, height, size)
        _seen.pop(key, None)
    order = _order[key]
    if order is None:
        return np.asarray(grey.resize(size, Image.Resampling.LANCZOS))
    return _resample(np.asarray(grey, dtype=np.float64), size, order)
