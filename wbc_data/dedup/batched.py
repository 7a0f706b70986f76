"""Registration of many pairs at once: :func:`wbc_data.dedup.register.register`'s steps, vectorised over a batch.

The per-pair reference (:mod:`register`) calls OpenCV a hundred times per pair (a DFT, a warp, an inverse DFT for
each of 8 rotation hypotheses, twice the log-polar correlation...), so at 96 px most of its time went into call
overhead and into work repeated for every pair of a row (issue 21: 269 pairs/s on 2 cores). Here one batch of
pairs is registered in a few array passes:

1. every row's log-polar spectrum once per batch, stacked (:func:`prepare_rows`; taken from the run's stored
   spectra, :mod:`wbc_data.dedup.spectra`, where a row has one; the mirror image's is read off it); the masked
   canvas, its tapered window, the band-pass texture, the half-size canvas and their spectra only for the rows of
   pairs that pass step 2 (:func:`complete_rows`);
2. the log-polar phase correlation of all pairs (both mirror states), by batched real FFTs (``scipy.fft``); pairs
   whose surface peaks below :data:`~wbc_data.dedup.register.POLAR_FLOOR` stop here (most distinct candidates);
3. for the others, the same hypotheses as the reference (two peaks per mirror state, each angle and its
   180-degree twin): each hypothesis's half-size warp is one OpenCV call, the shift searches one batched FFT;
4. the best three hypotheses per pair are refined at full size and scored by the masked Pearson correlation,
   vectorised; the winner's texture correlation last.

Same decisions as the reference: same steps, same thresholds, same OpenCV warps; only the FFTs differ (pocketfft
in single precision vs OpenCV's), so correlations agree to about 1e-4 and angles to a small fraction of a degree
(``tests/test_dedup_fast.py`` compares both on real copies). Memory is bounded by the caller's batch (rows x
about 70 KB for the log-polar stage, about 300 KB for rows that pass it; pairs in chunks of ``CHUNK``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import scipy.fft

from wbc_data.core.device import cuda_available
from wbc_data.dedup.kernels import masked_correlations, top_local_peaks
from wbc_data.dedup.register import (
    ANGLE_PEAKS,
    ANGLES,
    COARSE,
    HYPOTHESES_SCORED,
    MAX_FREQUENCY,
    MIN_OVERLAP,
    NO_MATCH,
    POLAR_FLOOR,
    POLAR_ROWS,
    TAPER,
    TEXTURE_MARGIN,
    _highpass,
    _window,
    band_pass,
)

CHUNK = 256
"""Pairs per array pass of the log-polar stage (two 90 x 96 float32 surfaces each: about 18 MB a chunk)."""

POLAR_FLAGS = cv2.WARP_POLAR_LOG | cv2.INTER_LINEAR
_KERNEL = np.ones((2 * TEXTURE_MARGIN + 1, 2 * TEXTURE_MARGIN + 1), np.uint8)


def _rfft2(x: np.ndarray) -> np.ndarray:
    return scipy.fft.rfft2(x, axes=(-2, -1), workers=1)


def _phase(spectrum: np.ndarray) -> np.ndarray:
    """A spectrum divided by its magnitude: the cross-power spectrum of two such is already normalised
    (``a conj(b) / |a conj(b)|``, what ``register._surface`` computes per pair, done once per row instead).
    Multiplied by the reciprocal magnitude (a real factor): the same values as the complex division, 1.4x faster."""
    spectrum = spectrum.astype(np.complex64, copy=False)
    scale = np.abs(spectrum)
    scale += np.float32(1e-12)
    np.reciprocal(scale, out=scale)
    return spectrum * scale


def _surfaces(a: np.ndarray, b: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Phase-correlation surfaces of stacked phase-only half spectra (``_phase(rfft2(...))``), zero shift at
    [0, 0] (as ``register._surface``)."""
    return scipy.fft.irfft2(a * np.conj(b), s=shape, axes=(-2, -1), workers=1)


@dataclass
class Rows:
    """The log-polar stage's inputs of a batch's rows, stacked (index = position in the batch's canvases): about
    70 KB per row. :func:`complete_rows` makes the rest (:class:`Completed`) for the rows of pairs that pass it."""

    valid: np.ndarray  # (r,) int: valid pixel count
    mean: np.ndarray  # (r,) float32
    polar: np.ndarray  # (r, POLAR_ROWS, n//2+1) complex64: spectrum of the log-polar image
    polar_mirror: np.ndarray  # the same for the mirror image
    canvases: np.ndarray  # (r, n, n) uint8: what the rest is made from


@dataclass
class Completed:
    """What registration needs beyond the log-polar stage, for the rows of surviving pairs only, stacked densely
    (index = position in ``which`` of :func:`complete_rows`)."""

    valid: np.ndarray  # (c,) int: valid pixel count
    mean: np.ndarray  # (c,) float32
    values: np.ndarray  # (c, n, n) float32, invalid pixels at the mean
    mask: np.ndarray  # (c, n, n) float32
    inner: np.ndarray  # (c, n, n) float32: mask eroded by TEXTURE_MARGIN
    texture: np.ndarray  # (c, n, n) float32 band-pass
    windowed: np.ndarray  # (c, n, n) float32 tapered, zero-mean content
    coarse: np.ndarray  # (c, COARSE, COARSE) float32
    spectrum: np.ndarray  # (c, n, n//2+1) complex64 of windowed * window
    coarse_spectrum: np.ndarray  # (c, COARSE, COARSE//2+1) complex64


PREPARE_CHUNK = 512
"""Rows prepared per array pass: the temporaries (a full complex spectrum, the log-polar image) stay small."""


def _valid_and_mean(canvases: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Valid pixel counts and the mean grey of the valid pixels of canvases (0 = no content)."""
    r = len(canvases)
    flat = canvases.reshape(r, -1)
    valid = np.count_nonzero(flat, axis=1).astype(np.int64)
    total = flat.sum(axis=1, dtype=np.float64)  # invalid pixels are 0: they add nothing
    return valid, np.where(valid > 0, total / np.maximum(valid, 1), 0).astype(np.float32)


def _content(canvases: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """valid counts, means, values (invalid pixels at the mean), masks and tapered zero-mean content of canvases."""
    mask = (canvases > 0).astype(np.float32)
    valid, mean = _valid_and_mean(canvases)
    raw = canvases.astype(np.float32)
    values = np.where(mask > 0, raw, mean[:, None, None]).astype(np.float32)
    windowed = np.empty_like(values)
    for k in range(len(canvases)):
        inside = cv2.distanceTransform((canvases[k] > 0).astype(np.uint8), cv2.DIST_L2, 3)
        soft = np.clip(inside / TAPER, 0, 1).astype(np.float32)
        windowed[k] = (values[k] - mean[k]) * soft
    return valid, mean, values, mask, windowed


def polar_spectra(canvases: np.ndarray) -> np.ndarray:
    """(r, POLAR_ROWS, n//2+1) complex64: the phase-only spectrum of each canvas's log-polar magnitude image (180
    degrees of it, as :func:`register._log_polar`), what the log-polar stage needs of a row (the mirror image's is
    :func:`mirror_spectra` of it), a chunk of rows at a time so the temporaries stay small."""
    r, n, _ = canvases.shape
    out = np.empty((r, POLAR_ROWS, n // 2 + 1), np.complex64)
    radius = MAX_FREQUENCY * n / 2
    for start in range(0, r, PREPARE_CHUNK):
        part = slice(start, min(r, start + PREPARE_CHUNK))
        windowed = _content(canvases[part])[4]
        spectrum = np.abs(scipy.fft.fft2(windowed * _window(n), axes=(-2, -1), workers=1))
        spectrum = (np.log1p(np.fft.fftshift(spectrum, axes=(-2, -1))) * _highpass(n)).astype(np.float32)
        polar = np.empty((len(spectrum), POLAR_ROWS, n), np.float32)
        for k in range(len(spectrum)):
            polar[k] = cv2.warpPolar(spectrum[k], (n, ANGLES), (n / 2, n / 2), radius, POLAR_FLAGS)[:POLAR_ROWS]
        out[part] = _phase(_rfft2(polar))
    return out


_NEGATED = (-np.arange(POLAR_ROWS)) % POLAR_ROWS


def mirror_spectra(polar: np.ndarray) -> np.ndarray:
    """The mirror image's :func:`polar_spectra` from the image's, without a transform: the mirror's log-polar image
    is the image's read backwards (row t becomes -t, :func:`register._mirror_rows`), and the DFT of a sequence read
    backwards is the DFT at -m. Equal to transforming the mirrored image up to float rounding."""
    return polar[..., _NEGATED, :]


def prepare_rows(canvases: np.ndarray, known: tuple[np.ndarray, np.ndarray] | None = None) -> Rows:
    """The log-polar stage's inputs of every canvas (0 = no content): what :func:`register.prepare` computes
    first, for a stack at once. ``known``: (row positions, their :func:`polar_spectra`) computed earlier (once per
    run, :mod:`wbc_data.dedup.spectra`); the other rows' are computed here. :func:`complete_rows` adds the rest for
    the rows that pass the stage."""
    r, n, _ = canvases.shape
    valid, mean = _valid_and_mean(canvases)
    polar = np.empty((r, POLAR_ROWS, n // 2 + 1), np.complex64)
    todo = np.ones(r, bool)
    if known is not None and len(known[0]):
        polar[known[0]] = known[1]
        todo[known[0]] = False
    if todo.all():
        polar = polar_spectra(canvases)
    elif todo.any():
        polar[todo] = polar_spectra(canvases[todo])
    return Rows(valid, mean, polar, mirror_spectra(polar), canvases=canvases)


def complete_rows(rows: Rows, which: np.ndarray) -> Completed:
    """Values, masks, texture, eroded masks, half-size canvases and the shift-search spectra of the rows ``which``
    (those in a pair that passed the log-polar stage), in arrays of ``len(which)`` rows.

    Dense on purpose: arrays of every batch row, zeroed and filled only where needed, looked free (untouched pages
    are never faulted in) but were not: numpy asks Linux for transparent huge pages on large arrays, so the first
    write into each 2 MB of a sparse array zeroes all of it. On the PBC half's batches that made this step 10x
    slower (benchmarks/README.md, dedup, sixteenth session)."""
    c, n = len(which), rows.canvases.shape[1]
    values = np.empty((c, n, n), np.float32)
    mask = np.empty((c, n, n), np.float32)
    windowed = np.empty((c, n, n), np.float32)
    texture = np.empty((c, n, n), np.float32)
    inner = np.empty((c, n, n), np.float32)
    coarse = np.empty((c, COARSE, COARSE), np.float32)
    spectrum = np.empty((c, n, n // 2 + 1), np.complex64)
    coarse_spectrum = np.empty((c, COARSE, COARSE // 2 + 1), np.complex64)
    window, coarse_window = _window(n), _window(COARSE)
    for start in range(0, c, PREPARE_CHUNK):  # the temporaries of a chunk, never of the whole batch
        part = slice(start, min(c, start + PREPARE_CHUNK))
        _, _, values[part], mask[part], windowed[part] = _content(rows.canvases[which[part]])
        for k in range(part.start, part.stop):
            texture[k] = band_pass(values[k])
            inner[k] = cv2.erode(mask[k], _KERNEL)
            coarse[k] = cv2.resize(windowed[k], (COARSE, COARSE), interpolation=cv2.INTER_AREA)
        spectrum[part] = _phase(_rfft2(windowed[part] * window))
        coarse_spectrum[part] = _phase(_rfft2(coarse[part] * coarse_window))
    return Completed(rows.valid[which], rows.mean[which], values, mask, inner, texture, windowed, coarse, spectrum,
                     coarse_spectrum)  # fmt: skip


def _centroids(surfaces: np.ndarray, py: np.ndarray, px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised ``register._centroid``: sub-pixel (dx, dy) of peaks (py, px) of unshifted cyclic surfaces."""
    m, h, w = surfaces.shape
    offsets = np.arange(-2, 3)
    ys = (py[:, None] + offsets) % h  # (m, 5)
    xs = (px[:, None] + offsets) % w
    window = surfaces[np.arange(m)[:, None, None], ys[:, :, None], xs[:, None, :]]  # (m, 5, 5)
    total = window.sum(axis=(1, 2), dtype=np.float64)
    safe = np.where(total > 0, total, 1.0)
    fy = np.where(total > 0, window.sum(axis=2, dtype=np.float64) @ offsets / safe, 0.0)
    fx = np.where(total > 0, window.sum(axis=1, dtype=np.float64) @ offsets / safe, 0.0)
    y, x = py + fy, px + fx
    y = np.where(y >= h / 2, y - h, y)
    x = np.where(x >= w / 2, x - w, x)
    return -x, -y


def _top_peaks(surfaces: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``count`` highest local maxima (5 x 5, cyclic) of each surface: (dx, dy, height), each (m, count);
    NaN shifts where a surface has fewer maxima (the caller skips them)."""
    m = len(surfaces)
    py, px, height = top_local_peaks(np.ascontiguousarray(surfaces, np.float32), count)
    dx, dy = _centroids(np.repeat(surfaces, count, axis=0), py.reshape(-1), px.reshape(-1))
    real = np.isfinite(height)
    return np.where(real, dx.reshape(m, count), np.nan), np.where(real, dy.reshape(m, count), np.nan), height


def _peak_and_shift(surfaces: np.ndarray, with_shift: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Global maximum of each surface (the first in raster order, as ``cv2.minMaxLoc``), and its sub-pixel shift."""
    m, _, w = surfaces.shape
    flat = surfaces.reshape(m, -1)
    arg = flat.argmax(axis=1)
    peak = flat[np.arange(m), arg]
    if not with_shift:
        return peak, np.zeros(m), np.zeros(m)
    dx, dy = _centroids(surfaces, arg // w, arg % w)
    return peak, dx, dy


def _rotation(n: int, turn: float, scale: float) -> np.ndarray:
    return cv2.getRotationMatrix2D((n / 2, n / 2), -turn, scale)


def _side(image: np.ndarray, mirror: bool) -> np.ndarray:
    return np.ascontiguousarray(image[:, ::-1]) if mirror else image


def _polar_stage(rows: Rows, pairs: np.ndarray, live: np.ndarray, n: int, _: str | None = None) -> tuple[list, list]:
    """Pairs (of ``live``) whose log-polar correlation reaches ``POLAR_FLOOR`` (per chunk) and their angle/scale
    peaks ((k, 4, ANGLE_PEAKS): dx, dy as is, dx, dy mirrored)."""
    survivors, peaks = [], []
    for start in range(0, len(live), CHUNK):
        chunk = live[start : start + CHUNK]
        a, b = pairs[chunk, 0], pairs[chunk, 1]
        plain = _surfaces(rows.polar[a], rows.polar[b], (POLAR_ROWS, n))
        mirror = _surfaces(rows.polar_mirror[a], rows.polar[b], (POLAR_ROWS, n))
        best = np.maximum(plain.reshape(len(chunk), -1).max(axis=1), mirror.reshape(len(chunk), -1).max(axis=1))
        keep = best >= POLAR_FLOOR
        if keep.any():
            survivors.append(chunk[keep])
            peaks.append(_peaks_of(plain[keep], mirror[keep]))
    return survivors, peaks


def _peaks_of(plain: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    dx, dy, _ = _top_peaks(np.concatenate([plain, mirror]), ANGLE_PEAKS)
    k = len(plain)
    return np.stack([dx[:k], dy[:k], dx[k:], dy[k:]], axis=1)


TORCH_CHUNK = 2048


def _polar_stage_torch(rows: Rows, pairs: np.ndarray, live: np.ndarray, n: int, device: str) -> tuple[list, list]:
    """:func:`_polar_stage` with the FFTs in torch on ``device`` (a GPU: the stage that costs most per pair);
    only the surfaces of surviving pairs come back for the peak search."""
    import torch

    dev = torch.device(device)
    polar = torch.from_numpy(rows.polar).to(dev)
    polar_mirror = torch.from_numpy(rows.polar_mirror).to(dev)
    survivors, peaks = [], []
    for start in range(0, len(live), TORCH_CHUNK):
        chunk = live[start : start + TORCH_CHUNK]
        a = torch.from_numpy(pairs[chunk, 0]).to(dev)
        b = torch.from_numpy(pairs[chunk, 1]).to(dev)
        target = polar[b].conj()
        plain = torch.fft.irfft2(polar[a] * target, s=(POLAR_ROWS, n))
        mirror = torch.fft.irfft2(polar_mirror[a] * target, s=(POLAR_ROWS, n))
        best = torch.maximum(plain.flatten(1).amax(dim=1), mirror.flatten(1).amax(dim=1))
        keep = (best >= POLAR_FLOOR).cpu().numpy()
        if keep.any():
            index = torch.from_numpy(np.flatnonzero(keep)).to(dev)
            survivors.append(chunk[keep])
            peaks.append(_peaks_of(plain[index].cpu().numpy(), mirror[index].cpu().numpy()))
    return survivors, peaks


def resolve_device(device: str) -> str | None:
    """``auto``: the GPU where torch sees one, else the numpy path (``None``); ``cpu``: numpy; ``cuda``: torch on
    the GPU (an error without one); ``torch-cpu``: torch on the CPU (the tests' stand-in for a GPU)."""
    if device == "cpu":
        return None
    if device == "torch-cpu":
        return "cpu"
    cuda = cuda_available()
    if device == "auto":
        return "cuda" if cuda else None
    if device.startswith("cuda") and not cuda:
        from wbc_data.core.errors import DedupError

        raise DedupError(f"--device {device}: torch sees no CUDA GPU here (use --device auto or cpu)")
    return device


def _hypotheses(pairs: np.ndarray, found: np.ndarray, log_base: float) -> tuple[np.ndarray, ...]:
    """(pair, mirror, turn, scale) of every hypothesis, in the reference's order: per pair, as is then mirrored,
    each angle peak whose scale is within 0.25-4 (a missing peak is NaN and never is), the angle then its
    180-degree twin. ``found``: (k, 4, ANGLE_PEAKS) dx, dy as is, dx, dy mirrored."""
    dx, dy = found[:, 0::2], found[:, 1::2]  # (k, 2 mirror states, ANGLE_PEAKS)
    angle = dy * 360.0 / ANGLES
    with np.errstate(invalid="ignore"):
        scale = np.exp(np.clip(-dx * log_base, -30.0, 30.0))
        valid = (scale >= 0.25) & (scale <= 4.0)
    shape = (*angle.shape, 2)
    keep = np.broadcast_to(valid[..., None], shape).reshape(-1)
    turn = np.stack([angle, angle + 180.0], axis=-1).reshape(-1)[keep]
    pair = np.broadcast_to(pairs[:, None, None, None], shape).reshape(-1)[keep]
    mirror = np.broadcast_to(np.array([False, True])[None, :, None, None], shape).reshape(-1)[keep]
    return pair.astype(np.int64), mirror, turn.astype(np.float64), np.repeat(scale.reshape(-1)[valid.reshape(-1)], 2)


def _winners(pair_of: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Position of each pair's best-scored hypothesis (``pair_of`` grouped by pair; ``np.argmax`` within a group:
    the first of equal scores, a NaN first of all), for pairs whose best beats -1 (no match)."""
    if not len(pair_of):
        return np.zeros(0, np.int64)
    key = np.where(np.isnan(score), np.inf, score)
    order = np.lexsort((np.arange(len(score)), -key, pair_of))
    first = np.ones(len(order), bool)
    first[1:] = pair_of[order][1:] != pair_of[order][:-1]
    best = order[first]
    return best[score[best] > -1.0].astype(np.int64)


def register_many(canvases: np.ndarray, pairs: np.ndarray, torch_device: str | None = None,
                  known: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:  # fmt: skip
    """``confirm.register_batch``'s result ((p, 8) float32, ``confirm.RESULT_FIELDS``) for ``pairs`` of positions
    into ``canvases`` ((r, n, n) uint8), computed in array passes; ``torch_device``: run the log-polar stage in
    torch there (``None``: numpy); ``known``: rows whose log-polar spectra were computed before
    (:func:`prepare_rows`)."""
    from wbc_data.dedup.confirm import as_row

    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    out = np.tile(np.array(as_row(NO_MATCH), np.float32), (len(pairs), 1))
    if not len(pairs):
        return out
    n = canvases.shape[1]
    has = canvases.reshape(len(canvases), -1).any(axis=1)
    live = np.flatnonzero(has[pairs[:, 0]] & has[pairs[:, 1]])
    if not len(live):
        return out
    rows = prepare_rows(canvases, known)
    # 2. log-polar stage over every pair, both mirror states of a against b as is
    stage = _polar_stage if torch_device is None else _polar_stage_torch
    survivors, peaks = stage(rows, pairs, live, n, torch_device)  # type: ignore[operator]
    if not survivors:
        return out
    survivors_a = np.concatenate(survivors)
    found = np.concatenate(peaks)
    which = np.unique(pairs[survivors_a].reshape(-1))
    done = complete_rows(rows, which)
    slot = np.full(len(canvases), -1, np.int64)
    slot[which] = np.arange(len(which))
    pairs = slot[pairs]  # positions into ``done`` from here on (-1 for the pairs that stopped at step 2)
    log_base = np.log(MAX_FREQUENCY * n / 2) / n
    # 3. hypotheses: (pair, mirror, turn, scale), in the reference's order; their half-size shift peaks
    hp, hm, ht, hs = _hypotheses(survivors_a, found, log_base)
    if not len(hp):
        return out
    coarse_peak = np.empty(len(hp), np.float64)
    win_c = _window(COARSE)
    for start in range(0, len(hp), 4 * CHUNK):
        idx = np.arange(start, min(len(hp), start + 4 * CHUNK))
        moved = np.empty((len(idx), COARSE, COARSE), np.float32)
        for j, h in enumerate(idx):
            image = _side(done.coarse[pairs[hp[h], 0]], bool(hm[h]))
            moved[j] = cv2.warpAffine(image, _rotation(COARSE, ht[h], hs[h]), (COARSE, COARSE),
                                      flags=cv2.INTER_LINEAR, borderValue=0.0)  # fmt: skip
        surfaces = _surfaces(_phase(_rfft2(moved * win_c)), done.coarse_spectrum[pairs[hp[idx], 1]], (COARSE, COARSE))
        coarse_peak[idx] = _peak_and_shift(surfaces, False)[0]
    # 4. the best HYPOTHESES_SCORED of each pair (stable: ties keep the reference's order), refined at full size
    order = np.lexsort((-coarse_peak, hp))
    first = np.ones(len(order), bool)
    first[1:] = hp[order][1:] != hp[order][:-1]
    rank = np.arange(len(order)) - np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))
    chosen = order[rank < HYPOTHESES_SCORED]
    win_n = _window(n)
    tx = np.empty(len(chosen))
    ty = np.empty(len(chosen))
    score = np.empty(len(chosen))
    overlap = np.empty(len(chosen))
    for start in range(0, len(chosen), CHUNK):
        part = chosen[start : start + CHUNK]
        moved = np.empty((len(part), n, n), np.float32)
        for j, h in enumerate(part):
            image = _side(done.windowed[pairs[hp[h], 0]], bool(hm[h]))
            moved[j] = cv2.warpAffine(image, _rotation(n, ht[h], hs[h]), (n, n), flags=cv2.INTER_LINEAR,
                                      borderValue=0.0)  # fmt: skip
        surfaces = _surfaces(_phase(_rfft2(moved * win_n)), done.spectrum[pairs[hp[part], 1]], (n, n))
        _, dx, dy = _peak_and_shift(surfaces, True)
        tx[start : start + len(part)], ty[start : start + len(part)] = dx, dy
        values = np.empty((len(part), n, n), np.float32)
        mask = np.empty((len(part), n, n), np.float32)
        for j, h in enumerate(part):
            a = pairs[hp[h], 0]
            matrix = _rotation(n, ht[h], hs[h])
            matrix[:, 2] += (dx[j], dy[j])
            values[j] = cv2.warpAffine(_side(done.values[a], bool(hm[h])), matrix, (n, n), flags=cv2.INTER_LINEAR,
                                       borderValue=float(done.mean[a]))  # fmt: skip
            mask[j] = cv2.warpAffine(_side(done.mask[a], bool(hm[h])), matrix, (n, n), flags=cv2.INTER_LINEAR,
                                     borderValue=0.0)  # fmt: skip
        mask = (mask > 0.99).astype(np.float32)
        a_rows, b_rows = pairs[hp[part], 0], pairs[hp[part], 1]
        min_pixels = (MIN_OVERLAP * np.minimum(done.valid[a_rows], done.valid[b_rows])).astype(np.int64)
        score[start : start + len(part)] = masked_correlations(values, mask, done.values, done.mask, b_rows,
                                                               min_pixels)  # fmt: skip
        shared = (mask * done.mask[b_rows]).reshape(len(part), -1).sum(axis=1)
        overlap[start : start + len(part)] = shared / np.maximum(1, np.minimum(done.valid[a_rows], done.valid[b_rows]))
    # the winner per pair: highest correlation, the first on a tie (chosen is in rank order); -1 is no match
    win = _winners(hp[chosen], score)
    if not len(win):
        return out
    h_win = chosen[win]
    texture_score = np.full(len(win), np.nan)
    for start in range(0, len(win), CHUNK):  # a chunk's warped textures at a time: a batch of copies has many winners
        part = slice(start, min(len(win), start + CHUNK))
        texture = np.empty((len(win[part]), n, n), np.float32)
        inner_a = np.empty((len(win[part]), n, n), np.float32)
        for j, (k, h) in enumerate(zip(win[part], h_win[part], strict=True)):
            a = pairs[hp[h], 0]
            matrix = _rotation(n, ht[h], hs[h])
            matrix[:, 2] += (tx[k], ty[k])
            texture[j] = cv2.warpAffine(_side(done.texture[a], bool(hm[h])), matrix, (n, n), flags=cv2.INTER_LINEAR,
                                        borderValue=0.0)  # fmt: skip
            moved_mask = cv2.warpAffine(_side(done.mask[a], bool(hm[h])), matrix, (n, n), flags=cv2.INTER_LINEAR,
                                        borderValue=0.0)  # fmt: skip
            inner_a[j] = cv2.erode((moved_mask > 0.99).astype(np.float32), _KERNEL)
        a_rows, b_rows = pairs[hp[h_win[part]], 0], pairs[hp[h_win[part]], 1]
        min_pixels = (MIN_OVERLAP * np.minimum(done.valid[a_rows], done.valid[b_rows])).astype(np.int64) // 4
        texture_score[part] = masked_correlations(texture, inner_a, done.texture, done.inner, b_rows, min_pixels)
    angle = ((-ht[h_win] + 180) % 360) - 180
    out[hp[h_win]] = np.stack([score[win], texture_score, overlap[win], angle, hs[h_win], hm[h_win].astype(float),
                               tx[win], ty[win]], axis=1).astype(np.float32)  # fmt: skip
    return out
