"""Numba kernels for the batched augmentation on a CPU: the colour stage and the affine warp.

Why compiled: torchvision's ``ColorJitter`` on a batch is a dozen whole-batch tensor passes (multiply, clamp,
truncate, a grey image and its mean, a blend), each reading and writing the batch from memory; on one core of a
DataLoader worker they cost about 0.3 ms per 128 px image, a third of the worker's time. Here each image gets its
adjustments in its own order in one or two passes while it sits in cache. The arithmetic follows torchvision's
kernels (``adjust_brightness``, ``adjust_contrast``, ``adjust_saturation``, and ``adjust_hue``'s ``_rgb_to_hsv`` and
``_hsv_to_rgb``; on whole levels the clamp and truncation of its uint8 path) in single precision, so a pixel can
land one level apart where an operation order differs; ``tests/test_batch_augment.py`` compares the result with
torchvision's per-image transforms. ``cache=True`` keeps the compiled code on disk.

The warp (:func:`affine_warp`) is the same reasoning for the geometry: ``grid_sample`` over a batch, plus the grid,
the fill mask and the blend around it, are five or six whole-batch passes (0.5-0.6 ms per 128 px image on one core,
the larger half of the worker's time); here each output pixel computes its source point, four weights and the
fill blend once for all channels.
"""

from __future__ import annotations

import numba as nb
import numpy as np

BRIGHTNESS, CONTRAST, SATURATION, HUE = 0, 1, 2, 3
RED, GREEN, BLUE = np.float32(0.2989), np.float32(0.587), np.float32(0.114)
TO_UNIT = np.float32(1.0 / 255.0)
TO_LEVELS = np.float32(255.0 + 1.0 - 1e-3)
"""torchvision's uint8 <-> float conversions around its hue kernel (``to_dtype_image``: ``* (1/255)`` in, ``* 255.999``
and truncation out)."""
SIXTH = np.float32(1.0 / 6.0)
ROUNDING = np.float32(12582912.0)
"""1.5 * 2**23: ``(v + ROUNDING) - ROUNDING`` is ``v`` rounded half to even (as ``torch.round``) for ``|v| < 2**22``,
in two additions instead of a call to ``rint`` per channel and pixel (a fifth of the warp's time)."""


@nb.njit(inline="always", cache=True)
def _settle(value: np.float32, top: np.float32, levels: bool) -> np.float32:
    value = min(max(value, np.float32(0.0)), top)
    return np.float32(np.floor(value)) if levels else value


@nb.njit(inline="always", cache=True)
def _grey(r: np.float32, g: np.float32, b: np.float32, levels: bool) -> np.float32:
    grey = r * RED + g * GREEN + b * BLUE
    return np.float32(np.floor(grey)) if levels else grey


@nb.njit(cache=True)
def colour_jitter(images: np.ndarray, order: np.ndarray, factors: np.ndarray, levels: bool) -> None:
    """In place: ``images`` (n, 3, h, w) float32 (whole levels 0-255 when ``levels``, else [0, 1]); for image ``i``
    the adjustments ``order[i]`` (ids ``BRIGHTNESS``, ``CONTRAST``, ``SATURATION``, ``HUE``; -1 ends the list) with
    ``factors[i, id]``."""
    n, _, h, w = images.shape
    top = np.float32(255.0) if levels else np.float32(1.0)
    for i in range(n):
        image = images[i]
        for k in range(order.shape[1]):
            op = order[i, k]
            if op < 0:
                break
            f = factors[i, op]
            rest = np.float32(1.0) - f
            if op == BRIGHTNESS:
                for c in range(3):
                    for y in range(h):
                        for x in range(w):
                            image[c, y, x] = _settle(image[c, y, x] * f, top, levels)
            elif op == CONTRAST:
                total = 0.0
                for y in range(h):
                    for x in range(w):
                        total += _grey(image[0, y, x], image[1, y, x], image[2, y, x], levels)
                mean = np.float32(total / (h * w)) * rest
                for c in range(3):
                    for y in range(h):
                        for x in range(w):
                            image[c, y, x] = _settle(image[c, y, x] * f + mean, top, levels)
            elif op == SATURATION:
                _saturate(image, f, rest, top, levels)
            else:  # HUE
                _shift_hue(image, f, levels)


@nb.njit(cache=True)
def _saturate(image: np.ndarray, f: np.float32, rest: np.float32, top: np.float32, levels: bool) -> None:
    """In place: torchvision's ``adjust_saturation``, a blend of each pixel with its grey value, a row of each
    channel at a time so that the compiler vectorises it (5-8x faster than a loop over pixels with the channels
    inside)."""
    _, h, w = image.shape
    for y in range(h):
        red, green, blue = image[0, y], image[1, y], image[2, y]
        for x in range(w):
            r, g, b = red[x], green[x], blue[x]
            grey = _grey(r, g, b, levels) * rest
            red[x] = _settle(r * f + grey, top, levels)
            green[x] = _settle(g * f + grey, top, levels)
            blue[x] = _settle(b * f + grey, top, levels)


@nb.njit(cache=True, error_model="numpy")
def _shift_hue(image: np.ndarray, f: np.float32, levels: bool) -> None:
    """In place: one image's (3, h, w) hue turned by ``f`` (a share of the circle): torchvision's ``_rgb_to_hsv``, the
    shift modulo 1 and ``_hsv_to_rgb``, operation for operation in single precision (on whole levels with its uint8
    conversions around them).

    Written so that the compiler vectorises the pixel loop: every branch of torchvision's masks is a select, the
    ``fmod`` by 1 of a value in [5/6, 11/6) is one exact subtraction, and ``error_model="numpy"`` drops numba's
    check of every float division for a zero divisor (for inputs >= 0 the divisors are never zero: 1 where a pixel
    is grey). 7-8x the scalar loop it replaced on real cells at whole levels (20-30x on floats or random pixels),
    with the same pixels bit for bit."""
    _, h, w = image.shape
    zero, one, two = np.float32(0.0), np.float32(1.0), np.float32(2.0)
    three, four, five, six = np.float32(3.0), np.float32(4.0), np.float32(5.0), np.float32(6.0)
    for y in range(h):
        red, green, blue = image[0, y], image[1, y], image[2, y]
        for x in range(w):
            r, g, b = red[x], green[x], blue[x]
            if levels:
                r, g, b = r * TO_UNIT, g * TO_UNIT, b * TO_UNIT
            maxc, minc = max(max(r, g), b), min(min(r, g), b)
            equal = maxc == minc
            spread = maxc - minc
            s = spread / (one if equal else maxc)
            divisor = one if equal else spread
            rc, gc, bc = (maxc - r) / divisor, (maxc - g) / divisor, (maxc - b) / divisor
            hue = (bc - gc) if maxc == r else (((rc + two) - bc) if maxc == g else ((gc + four) - rc))
            hue = hue * SIXTH + one
            hue = hue - one if hue >= one else hue  # fmod(hue, 1): exact on [5/6, 11/6)
            hue = hue + f
            hue = hue - np.floor(hue)  # torch's remainder by 1
            h6 = hue * six
            sector = np.floor(h6)
            frac = h6 - sector
            sector = sector - six if sector >= six else sector  # int(sector) % 6
            sxf = s * frac
            one_minus_s = one - s
            v = maxc
            q = min(max((one - sxf) * v, zero), one)
            t = min(max((sxf + one_minus_s) * v, zero), one)
            p = min(max(one_minus_s * v, zero), one)
            # sector 0: (v, t, p), 1: (q, v, p), 2: (p, v, t), 3: (p, q, v), 4: (t, p, v), 5: (v, p, q)
            r = v if (sector == zero) | (sector == five) else (q if sector == one else (t if sector == four else p))
            g = t if sector == zero else (v if sector <= two else (q if sector == three else p))
            b = p if sector <= one else (t if sector == two else (v if sector <= four else q))
            if levels:
                r, g, b = np.floor(r * TO_LEVELS), np.floor(g * TO_LEVELS), np.floor(b * TO_LEVELS)
            red[x], green[x], blue[x] = r, g, b


@nb.njit(inline="always", cache=True)
def _level(value: np.float32, levels: bool) -> np.float32:
    """On whole levels, torchvision's rounding (half to even) and clamp to 0-255."""
    if levels:
        value = min(max((value + ROUNDING) - ROUNDING, np.float32(0.0)), np.float32(255.0))
    return value


@nb.njit(inline="always", cache=True)
def _finish(value: np.float32, fill: np.float32, mask: np.float32, has_fill: bool, levels: bool) -> np.float32:
    """torchvision's fill blend by the in-bounds weight, then :func:`_level`."""
    if has_fill:
        value = (value - fill) * mask + fill
    return _level(value, levels)


@nb.njit(cache=True)
def affine_warp(images: np.ndarray, coefficients: np.ndarray, fill: np.ndarray, has_fill: bool, levels: bool,
                out: np.ndarray) -> None:  # fmt: skip
    """``out[i]`` = ``images[i]`` (n, c, h, w; float32, or uint8 read as its levels) warped into float32 as
    torchvision's tensor ``affine`` warps it, with bilinear sampling: the sampling point of output pixel (x, y),
    centred coordinates ``(px, py)``, is
    ``g = px * coefficients[i, 0] + py * coefficients[i, 1] + coefficients[i, 2]`` in ``grid_sample``'s normalised
    units (:func:`~wbc_data.train.batch_augment._sampling_grid` builds the same grid), sampled as ``grid_sample``
    does (``align_corners=False``, zero padding). With ``has_fill``, what falls outside is blended towards
    ``fill`` by the in-bounds weight, as torchvision's kernel blends it with its sampled mask; on whole ``levels``
    the result is rounded (half to even, as ``torch.round``) and clamped to 0-255. Points whose four neighbours
    are all inside (most of them) take a branch without the border clamps or the blend (their in-bounds weight is
    1, as the torch path's computed coverage says; the sampled mask differs from 1 by an ulp at most)."""
    n, channels, h, w = images.shape
    half_w, half_h = np.float32(0.5 * w), np.float32(0.5 * h)
    shift_w, shift_h = np.float32(0.5 * w - 0.5), np.float32(0.5 * h - 0.5)
    one, zero = np.float32(1.0), np.float32(0.0)
    columns = np.empty(w, np.float32)  # each output column's centred x
    for x in range(w):
        columns[x] = np.float32(x - 0.5 * (w - 1))
    frac_x, frac_y = np.empty(w, np.float32), np.empty(w, np.float32)
    cell_x, cell_y = np.empty(w, np.int64), np.empty(w, np.int64)
    for i in range(n):
        source, target = images[i], out[i]
        c00, c10, c20 = coefficients[i, 0, 0], coefficients[i, 1, 0], coefficients[i, 2, 0]
        c01, c11, c21 = coefficients[i, 0, 1], coefficients[i, 1, 1], coefficients[i, 2, 1]
        for y in range(h):
            py = np.float32(y - 0.5 * (h - 1))
            row_x, row_y = py * c10, py * c11  # the same products, once per row
            # first every point of the row (branch-free: the compiler vectorises it), then the gathers
            for x in range(w):
                px = columns[x]
                ix = (px * c00 + row_x + c20) * half_w + shift_w  # grid_sample's ((g + 1) * size - 1) / 2
                iy = (px * c01 + row_y + c21) * half_h + shift_h
                x0f, y0f = np.floor(ix), np.floor(iy)
                frac_x[x], frac_y[x] = ix - x0f, iy - y0f
                cell_x[x], cell_y[x] = np.int64(x0f), np.int64(y0f)
            for x in range(w):
                tx, ty, x0, y0 = frac_x[x], frac_y[x], cell_x[x], cell_y[x]
                if x0 >= 0 and x0 < w - 1 and y0 >= 0 and y0 < h - 1:
                    sx, sy = one - tx, one - ty
                    nw, ne, sw, se = sy * sx, sy * tx, ty * sx, ty * tx
                    for k in range(channels):
                        plane = source[k]
                        value = (np.float32(plane[y0, x0]) * nw + np.float32(plane[y0, x0 + 1]) * ne) + (
                            np.float32(plane[y0 + 1, x0]) * sw + np.float32(plane[y0 + 1, x0 + 1]) * se
                        )
                        target[k, y, x] = _level(value, levels)
                    continue
                wx0 = one - tx if (x0 >= 0 and x0 < w) else zero  # a neighbour outside weighs nothing
                wx1 = tx if (x0 >= -1 and x0 < w - 1) else zero
                wy0 = one - ty if (y0 >= 0 and y0 < h) else zero
                wy1 = ty if (y0 >= -1 and y0 < h - 1) else zero
                xa, xb = min(max(x0, 0), w - 1), min(max(x0 + 1, 0), w - 1)
                ya, yb = min(max(y0, 0), h - 1), min(max(y0 + 1, 0), h - 1)
                nw, ne, sw, se = wy0 * wx0, wy0 * wx1, wy1 * wx0, wy1 * wx1
                mask = (nw + ne) + (sw + se)
                for k in range(channels):
                    plane = source[k]
                    value = (np.float32(plane[ya, xa]) * nw + np.float32(plane[ya, xb]) * ne) + (
                        np.float32(plane[yb, xa]) * sw + np.float32(plane[yb, xb]) * se
                    )
                    target[k, y, x] = _finish(value, fill[k], mask, has_fill, levels)
