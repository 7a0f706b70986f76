"""Decode any image file a dataset may hold into 8-bit RGB, or say exactly why it cannot be used.

Datasets ship CMYK and 16-bit TIFFs, RGBA TIFFs (AML-LMU), palette PNGs, truncated downloads and
files that only look like images (macOS ``.DS_*`` metadata). All of that funnels through
:func:`decode_rgb`, which either returns an RGB image or raises :class:`ImageRejected` with a
one-line reason suitable for the manifest.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 100_000_000
"""Images with more pixels are refused as possible decompression bombs (SegPC fields are ~5 Mpx)."""

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif"})
"""A still GIF is read (its one frame); an animated one is refused with that reason."""


class ImageRejected(Exception):
    """The file cannot be used as an image; ``str(exc)`` is the reason recorded in the manifest."""


@dataclass
class DecodedImage:
    rgb: Image.Image
    width: int
    height: int
    mode: str  # the file's own mode, before conversion (e.g. "RGBA", "CMYK", "I;16")
    format: str | None


def decode_rgb(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Fully decode ``data`` (so truncation is caught) and convert it to 8-bit RGB."""
    if not data:
        raise ImageRejected("empty file (0 bytes)")
    if Image.MAX_IMAGE_PIXELS is not None and max_pixels > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = max_pixels  # the limit is --max-pixels; Pillow's own must not refuse below it
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the check below is the one that counts
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise ImageRejected(
                    f"decompression bomb: {width}x{height} = {width * height:,} pixels exceeds the limit of "
                    f"{max_pixels:,} (--max-pixels)"
                )
            frames = getattr(image, "n_frames", 1)
            if image.format == "GIF" and frames > 1:
                raise ImageRejected(f"animated GIF ({frames} frames): not a still image")
            image.load()
    except ImageRejected:
        raise
    except Image.DecompressionBombError:
        raise ImageRejected(f"decompression bomb: more than {max_pixels:,} pixels, the limit (--max-pixels)") from None
    except UnidentifiedImageError:
        raise ImageRejected("not an image: no known image format recognised") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, MemoryError) as exc:
        message = str(exc).strip() or exc.__class__.__name__
        if "truncated" in message.lower():
            raise ImageRejected(f"truncated image: {message}") from None
        raise ImageRejected(f"cannot decode image: {message}") from None
    mode = image.mode
    try:
        rgb = to_rgb(image)
    except (OSError, ValueError, TypeError) as exc:
        raise ImageRejected(f"cannot convert {mode} image to RGB: {exc}") from None
    return DecodedImage(rgb=rgb, width=width, height=height, mode=mode, format=image.format)


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB from any PIL mode; high bit-depth images are scaled, not clipped; alpha is dropped
    (cell crops with transparency are composited on white so that transparent areas do not turn black)."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in {"L", "P", "CMYK", "YCbCr", "LAB", "HSV", "1"}:
        if mode == "P" and "transparency" in image.info:
            return _flatten_alpha(image.convert("RGBA"))
        return image.convert("RGB")
    if mode in {"RGBA", "LA", "RGBa", "La", "PA"}:
        return _flatten_alpha(image.convert("RGBA"))
    if mode.startswith("I;16") or mode in {"I", "F"}:
        array = np.asarray(image, dtype=np.float64)
        if mode.startswith("I;16"):
            scaled = array / 257.0
        else:
            low, high = float(array.min()), float(array.max())
            scaled = (array - low) * (255.0 / (high - low)) if high > low else np.zeros_like(array)
        grey = Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")
        return grey.convert("RGB")
    return image.convert("RGB")


def _flatten_alpha(rgba: Image.Image) -> Image.Image:
    alpha = rgba.getchannel("A")
    if alpha.getextrema() == (255, 255):
        return rgba.convert("RGB")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")
