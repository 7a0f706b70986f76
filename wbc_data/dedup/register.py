"""Is row b a copy of row a under some rotation, scale, shift and mirror? Registration, then masked correlation.

Fourier-Mellin registration (Reddy & Chatterji, IEEE TIP 1996), with OpenCV's ``warpPolar`` and
``phaseCorrelate``: the magnitude of an image's Fourier transform ignores shifts, and in log-polar coordinates a
rotation or a scale of the image becomes a plain shift, so one phase correlation of the two log-polar magnitude
images gives the angle (up to 180 degrees: the magnitude is point-symmetric) and the scale; after undoing them a
second phase correlation gives the shift. The mirror image is tried too. Hypotheses (mirror or not, the two
highest log-polar peaks, the angle or the angle + 180) get a shift search on a half-size canvas; the three whose
shift peaks highest are refined and scored at full size by the Pearson correlation over the pixels valid in both
canvases (fill borders and the margins of non-square images never count); the best one wins. Each canvas's
spectra are computed once (:func:`prepare`), so a pair costs a few small inverse DFTs and warps, and a pair whose
log-polar correlation is flat is rejected after the first two.

Why not keypoints and RANSAC here: ORB/SIFT matches need a mirror pass too and, on smooth cells with half-size
recompressed copies, give a handful of inliers for some true copies and up to 18 for distinct cells (measured,
benchmarks/README.md), while registration plus correlation separates them cleanly (true copies >= 0.94,
distinct cells <= 0.81 on real PBC; fields >= 0.96 against <= 0.73).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import cv2
import numpy as np

ANGLES = 180
"""Rows the log-polar image would have over 360 degrees (2 degrees each; sub-pixel peaks refine it)."""

POLAR_ROWS = ANGLES // 2
"""Rows of the log-polar image kept: 180 degrees. The magnitude spectrum of a real image is point-symmetric, so its
log-polar image repeats after 180 degrees (the halves agree to 1e-7 on real canvases); over 360 degrees the odd
angular harmonics of the correlation are rounding noise, which phase normalisation raises to the weight of the
signal. Without them, copies and distinct cells separate better and the stage costs half (benchmarks/README.md,
dedup, issue 21, eleventh session). An angle found is known up to 180 degrees either way: both are tried."""

MIN_OVERLAP = 0.35
"""The registered canvases must share at least this fraction of the smaller one's valid pixels."""


COARSE = 48
"""The shift of every rotation/scale hypothesis is first searched on the canvas halved to this side (a quarter of
the work); the best hypotheses are then refined, and scored, at full size."""


@dataclass(frozen=True)
class Side:
    """One orientation (as is, or mirrored) of a prepared canvas."""

    values: np.ndarray  # (n, n) float32 grey, invalid pixels set to the mean of the valid ones
    mask: np.ndarray  # (n, n) float32, 1 where the canvas holds image content
    texture: np.ndarray  # (n, n) float32 band-pass of the values (difference of Gaussians)
    windowed: np.ndarray  # (n, n) float32, zero-mean content tapered to zero at the edges of the valid region
    coarse: np.ndarray  # the same at COARSE x COARSE
    polar_spectrum: np.ndarray  # DFT of the log-polar magnitude image


@dataclass(frozen=True)
class Prepared:
    """One canvas made ready for registration (computed once per row, reused for every pair)."""

    plain: Side
    mirrored: Side
    spectrum: np.ndarray  # DFT of the windowed canvas: the target of the shift search
    coarse_spectrum: np.ndarray  # the same at COARSE
    valid: int  # number of valid pixels
    mean: float


@dataclass(frozen=True)
class Match:
    correlation: float  # Pearson correlation over the overlap (-1 when the overlap is too small)
    texture: float  # the same for the band-pass images, away from the edges of the valid region
    overlap: float  # overlap / the smaller valid area
    angle: float  # degrees, counter-clockwise, applied to a (after the mirror) to land on b
    scale: float
    mirror: bool
    shift: tuple[float, float]  # (dx, dy) pixels of the canvas

    def describe(self) -> str:
        """Short text for the manifest, e.g. ``mirror rot 37 scale 1.08 shift 3,-2``."""
        parts = ["mirror"] if self.mirror else []
        parts.append(f"rot {self.angle:.0f}")
        if abs(self.scale - 1) >= 0.02:
            parts.append(f"scale {self.scale:.2f}")
        dx, dy = self.shift
        if abs(dx) >= 1 or abs(dy) >= 1:
            parts.append(f"shift {dx:.0f},{dy:.0f}")
        return " ".join(parts)


NO_MATCH = Match(-1.0, -1.0, 0.0, 0.0, 1.0, False, (0.0, 0.0))

TEXTURE_BAND = (1.0, 3.0)
"""Gaussian sigmas (canvas pixels) of the band-pass the texture correlation uses: fine structure (granules,
chromatin, the exact outline of neighbouring cells) that two distinct smooth round cells do not share even when
their intensities align; measured on real cells in benchmarks/README.md (dedup)."""

TEXTURE_MARGIN = 5
"""The texture correlation ignores pixels this close to the edge of either valid region (the band-pass of the
mean-filled margin is not image content)."""


def band_pass(values: np.ndarray) -> np.ndarray:
    low, high = TEXTURE_BAND
    return cv2.GaussianBlur(values, (0, 0), low) - cv2.GaussianBlur(values, (0, 0), high)


@lru_cache(maxsize=4)
def _window(n: int) -> np.ndarray:
    """A radial Hann window: round, so it adds no horizontal/vertical streaks to the spectrum (a separable window
    or a square border would, and every canvas would then look unrotated to the log-polar correlation)."""
    yy, xx = np.mgrid[0:n, 0:n] + 0.5 - n / 2
    radius = np.hypot(yy, xx) / (n / 2)
    return np.where(radius < 1, 0.5 + 0.5 * np.cos(np.pi * radius), 0).astype(np.float32)


TAPER = 3.0
"""Pixels over which content fades to zero at the edge of the valid region (fill borders, margins): a hard edge
would put streaks at the fill's angle into the spectrum."""


@lru_cache(maxsize=4)
def _highpass(n: int) -> np.ndarray:
    """Weights the spectrum by radius: low frequencies (overall shape, shared by every cell) count less."""
    yy, xx = np.mgrid[-n // 2 : n - n // 2, -n // 2 : n - n // 2]
    return (np.hypot(yy, xx) / (n / 2)).astype(np.float32)


def _dft(image: np.ndarray) -> np.ndarray:
    return cv2.dft(np.ascontiguousarray(image, np.float32), flags=cv2.DFT_COMPLEX_OUTPUT)


MAX_FREQUENCY = 1.0
"""The log-polar image covers frequencies up to this fraction of Nyquist: above it, resampling and JPEG leave
axis-aligned artefacts that every canvas shares, which look like "no rotation" to the correlation."""


def _log_polar(windowed: np.ndarray) -> np.ndarray:
    n = windowed.shape[0]
    spectrum = cv2.magnitude(*cv2.split(_dft(windowed)))
    spectrum = np.log1p(np.fft.fftshift(spectrum)) * _highpass(n)
    radius = MAX_FREQUENCY * n / 2
    polar = cv2.warpPolar(spectrum, (n, ANGLES), (n / 2, n / 2), radius, cv2.WARP_POLAR_LOG | cv2.INTER_LINEAR)
    return polar[:POLAR_ROWS]


def _surface(spectrum_a: np.ndarray, spectrum_b: np.ndarray) -> np.ndarray:
    """The phase-correlation surface of two DFTs (OpenCV's ``phaseCorrelate`` steps), zero shift at [0, 0]."""
    cross = cv2.mulSpectrums(spectrum_a, spectrum_b, 0, conjB=True)
    magnitude = cv2.magnitude(cross[..., 0], cross[..., 1])
    cross /= (magnitude + 1e-12)[..., None]
    return cv2.idft(cross, flags=cv2.DFT_REAL_OUTPUT | cv2.DFT_SCALE)


def _centroid(surface: np.ndarray, px: int, py: int) -> tuple[float, float]:
    """Sub-pixel (dx, dy) of the peak at (px, py) of an unshifted surface: weighted centroid of its 5x5 window
    (cyclic), as OpenCV does on the shifted one; shifts beyond half the size wrap to negative."""
    h, w = surface.shape
    ys, xs = (np.arange(py - 2, py + 3) % h), (np.arange(px - 2, px + 3) % w)
    window = surface[np.ix_(ys, xs)]
    total = float(window.sum())
    offsets = np.arange(-2, 3)
    fy = float(window.sum(axis=1) @ offsets) / total if total > 0 else 0.0
    fx = float(window.sum(axis=0) @ offsets) / total if total > 0 else 0.0
    y, x = py + fy, px + fx
    y = y - h if y >= h / 2 else y
    x = x - w if x >= w / 2 else x
    return -x, -y


def phase_shift(spectrum_a: np.ndarray, spectrum_b: np.ndarray) -> tuple[float, float, float]:
    """``cv2.phaseCorrelate(a, b)`` from the two images' precomputed DFTs: the (dx, dy) shift that moves a onto
    b and the peak height. Equal to OpenCV's result (tests); faster here because each image's DFT is computed
    once, not per pair."""
    surface = _surface(spectrum_a, spectrum_b)
    _, peak, _, (px, py) = cv2.minMaxLoc(surface)
    return (*_centroid(surface, px, py), float(peak))


def phase_peaks(spectrum_a: np.ndarray, spectrum_b: np.ndarray, count: int) -> list[tuple[float, float, float]]:
    """The ``count`` highest local maxima of the phase-correlation surface, as (dx, dy, height): the log-polar
    surface often has a second peak nearly as high as the right one (structure every canvas shares)."""
    surface = _surface(spectrum_a, spectrum_b)
    padded = np.pad(surface, 2, mode="wrap")  # the surface is cyclic
    local = surface >= cv2.dilate(padded, np.ones((5, 5), np.uint8))[2:-2, 2:-2]
    ys, xs = np.nonzero(local)
    order = np.argsort(-surface[ys, xs])[:count]
    return [(*_centroid(surface, int(xs[k]), int(ys[k])), float(surface[ys[k], xs[k]])) for k in order]


def _mirror_rows(polar: np.ndarray) -> np.ndarray:
    """The log-polar image of the mirror (left-right) image: angle t becomes 180 - t, that is -t modulo 180."""
    return polar[(-np.arange(POLAR_ROWS)) % POLAR_ROWS]


def _windowed(values: np.ndarray, mask: np.ndarray, mean: float) -> np.ndarray:
    """Zero-mean content tapered to zero over ``TAPER`` pixels at the edges of the valid region."""
    inside = cv2.distanceTransform((mask > 0).astype(np.uint8), cv2.DIST_L2, 3)
    soft = np.clip(inside / TAPER, 0, 1).astype(np.float32)
    return ((values - mean) * soft).astype(np.float32)


def _canvas_values(canvas: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, float]:
    """(values with invalid pixels at the valid mean, mask, valid pixel count, mean) of a uint8 canvas."""
    mask = (canvas > 0).astype(np.float32)
    valid = int(mask.sum())
    raw = canvas.astype(np.float32)
    mean = float(raw[mask > 0].mean()) if valid else 0.0
    return np.where(mask > 0, raw, mean).astype(np.float32), mask, valid, mean


def polar_image(canvas: np.ndarray) -> np.ndarray:
    """The log-polar magnitude image :func:`register` starts from (rows: angle, columns: log radius)."""
    values, mask, _, mean = _canvas_values(canvas)
    return _log_polar(_windowed(values, mask, mean) * _window(len(values)))


def polar_spectra(canvas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DFTs of the canvas's log-polar image and of its mirror image's: all :func:`polar_peak` needs."""
    polar = polar_image(canvas)
    return _dft(polar), _dft(_mirror_rows(polar))


def polar_peak(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    """:func:`register`'s first test on its own: the highest log-polar correlation peak over both mirror states
    of ``a`` (``polar_spectra`` of each canvas). Below :data:`POLAR_FLOOR` the pair is no copy."""
    return max(float(_surface(a[0], b[0]).max()), float(_surface(a[1], b[0]).max()))


def _sides(values: np.ndarray, mask: np.ndarray, mean: float) -> tuple[Side, Side]:
    """The canvas as is and mirrored (the mirror is read off the first: no second spectrum of the image)."""
    windowed = _windowed(values, mask, mean)
    coarse = cv2.resize(windowed, (COARSE, COARSE), interpolation=cv2.INTER_AREA)
    polar = _log_polar(windowed * _window(len(values)))
    texture = band_pass(values)
    plain = Side(values, mask, texture, windowed, coarse, _dft(polar))

    def flip(image: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(image[:, ::-1])

    mirrored = Side(flip(values), flip(mask), flip(texture), flip(windowed), flip(coarse), _dft(_mirror_rows(polar)))
    return plain, mirrored


def prepare(canvas: np.ndarray) -> Prepared:
    """Precompute what :func:`register` needs from one canvas (0 = no content)."""
    n = canvas.shape[0]
    values, mask, valid, mean = _canvas_values(canvas)
    plain, mirrored = _sides(values, mask, mean)
    return Prepared(plain, mirrored, _dft(plain.windowed * _window(n)), _dft(plain.coarse * _window(COARSE)),
                    valid, mean)  # fmt: skip


def correlation(a: np.ndarray, mask_a: np.ndarray, b: np.ndarray, mask_b: np.ndarray, min_pixels: int) -> float:
    """Pearson correlation of ``a`` and ``b`` over pixels valid in both (-1 below ``min_pixels`` of overlap)."""
    both = (mask_a * mask_b).reshape(-1)
    count = float(both.sum())
    if count < max(min_pixels, 16):
        return -1.0
    x, y = a.reshape(-1).astype(np.float64), b.reshape(-1).astype(np.float64)
    wx, wy = both * x, both * y
    sx, sy = wx.sum(), wy.sum()
    cov = float(wx @ y) - sx * sy / count
    vx = float(wx @ x) - sx * sx / count
    vy = float(wy @ y) - sy * sy / count
    return cov / np.sqrt(vx * vy) if vx > 0 and vy > 0 else -1.0


ANGLE_PEAKS = 2
"""Rotation/scale hypotheses taken from the log-polar correlation per mirror state: its highest peak is not always
the right one (structure every canvas shares, e.g. resampling, peaks at "no rotation")."""

POLAR_FLOOR = 0.11
"""A pair whose log-polar correlation peaks below this is no copy, and is rejected before any shift search (most of
the work saved). On the dense benchmark's real PBC cells, 2,400 pairs of augmented copies of one cell and 12,000
pairs of distinct cells that are bag-of-words neighbours: 2,399 copies peak at >= 0.11 (the lowest 0.102) and 96% of
the distinct pairs below (benchmarks/README.md, dedup, issue 21, eleventh session; over 360 degrees the floor was
0.07, which 2,397 copies and 92% of the distinct pairs met)."""

HYPOTHESES_SCORED = 3
"""Of the hypotheses (mirror state x angle peak x the 180-degree twin), the ones whose shift search peaks highest
are scored by correlation (a right rotation gives a sharp shift peak)."""


def register(a: Prepared, b: Prepared) -> Match:
    """The best similarity transform (with optional mirror) taking ``a`` onto ``b``, and its correlation."""
    if a.valid == 0 or b.valid == 0:
        return NO_MATCH
    n = len(a.plain.values)
    log_base = np.log(MAX_FREQUENCY * n / 2) / n  # log-radius per column of the log-polar image
    peaks = [
        (mirror, side, phase_peaks(side.polar_spectrum, b.plain.polar_spectrum, ANGLE_PEAKS))
        for mirror, side in ((False, a.plain), (True, a.mirrored))
    ]
    if max(found[0][2] for _, _, found in peaks) < POLAR_FLOOR:
        return NO_MATCH
    hypotheses = []
    for mirror, side, found in peaks:
        for dx, dy, _ in found:
            angle = dy * 360.0 / ANGLES
            scale = float(np.exp(np.clip(-dx * log_base, -30.0, 30.0)))  # a wild peak must not overflow
            if 0.25 <= scale <= 4.0:
                for turn in (angle, angle + 180.0):
                    peak = _shift(side.coarse, b.coarse_spectrum, turn, scale)[2]
                    hypotheses.append((peak, mirror, side, turn, scale))
    best, best_side, best_matrix = NO_MATCH, a.plain, None
    min_pixels = int(MIN_OVERLAP * min(a.valid, b.valid))
    for _, mirror, side, turn, scale in sorted(hypotheses, key=lambda h: -h[0])[:HYPOTHESES_SCORED]:
        tx, ty, _ = _shift(side.windowed, b.spectrum, turn, scale)
        matrix = cv2.getRotationMatrix2D((n / 2, n / 2), -turn, scale)
        matrix[:, 2] += (tx, ty)
        values = cv2.warpAffine(side.values, matrix, (n, n), flags=cv2.INTER_LINEAR, borderValue=a.mean)
        mask = cv2.warpAffine(side.mask, matrix, (n, n), flags=cv2.INTER_LINEAR, borderValue=0.0)
        mask = (mask > 0.99).astype(np.float32)
        score = correlation(values, mask, b.plain.values, b.plain.mask, min_pixels)
        if score > best.correlation:
            overlap = float((mask * b.plain.mask).sum()) / max(1, min(a.valid, b.valid))
            angle = ((-turn + 180) % 360) - 180
            best = Match(score, -1.0, overlap, angle, scale, mirror, (float(tx), float(ty)))
            best_side, best_matrix = side, (matrix, mask)
    if best_matrix is None:
        return best
    matrix, mask = best_matrix
    texture = cv2.warpAffine(best_side.texture, matrix, (n, n), flags=cv2.INTER_LINEAR, borderValue=0.0)
    kernel = np.ones((2 * TEXTURE_MARGIN + 1, 2 * TEXTURE_MARGIN + 1), np.uint8)
    inner_a, inner_b = cv2.erode(mask, kernel), cv2.erode(b.plain.mask, kernel)
    score = correlation(texture, inner_a, b.plain.texture, inner_b, min_pixels // 4)
    return replace(best, texture=score)


def _shift(windowed: np.ndarray, target: np.ndarray, turn: float, scale: float) -> tuple[float, float, float]:
    """Rotate/scale ``windowed`` about its centre, then the shift onto the image whose DFT is ``target``."""
    n = len(windowed)
    rotation = cv2.getRotationMatrix2D((n / 2, n / 2), -turn, scale)
    moved = cv2.warpAffine(windowed, rotation, (n, n), flags=cv2.INTER_LINEAR, borderValue=0.0)
    return phase_shift(_dft(moved * _window(n)), target)
