"""Per-image signatures computed from one decode: pixel hash, pHash (bit-equal to imagehash) and the
32x32 grey thumbnail that dedup reuses to hash flipped and rotated variants without re-decoding."""

from __future__ import annotations

import hashlib

import numpy as np
import scipy.fftpack
import xxhash
from PIL import Image

from wbc_data.imaging.lanczos import resize_grey

THUMB_SIZE = 32
HASH_SIZE = 8


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pixel_hash(rgb: Image.Image) -> str:
    """Hash of the decoded 8-bit RGB pixels and size: equal for the same picture in any container."""
    digest = xxhash.xxh3_128()
    digest.update(f"{rgb.width}x{rgb.height}:".encode())
    digest.update(rgb.tobytes())
    return digest.hexdigest()


def grey_thumbnail(rgb: Image.Image) -> np.ndarray:
    """The 32x32 LANCZOS grey thumbnail that imagehash.phash hashes (same conversion, same filter; the resize is
    PIL's bit for bit, computed faster for repeated shapes, see :mod:`wbc_data.imaging.lanczos`)."""
    grey = rgb if rgb.mode == "L" else rgb.convert("L")
    return resize_grey(grey, (THUMB_SIZE, THUMB_SIZE))


def dct_lowfreq(thumb: np.ndarray) -> np.ndarray:
    """The 8x8 low-frequency block of the 2-D DCT-II, computed exactly as imagehash does."""
    dct = scipy.fftpack.dct(scipy.fftpack.dct(thumb, axis=0), axis=1)
    return dct[:HASH_SIZE, :HASH_SIZE]


def bits_to_int(bits: np.ndarray) -> int:
    """Pack a boolean 8x8 array row-major, first bit most significant (imagehash's hex order)."""
    return int.from_bytes(np.packbits(bits.reshape(-1).astype(np.uint8)).tobytes(), "big")


def phash_from_thumb(thumb: np.ndarray) -> int:
    """64-bit pHash as an unsigned int; ``f'{h:016x}'`` equals ``str(imagehash.phash(img))``."""
    low = dct_lowfreq(thumb)
    return bits_to_int(low > np.median(low))


def phash(rgb: Image.Image) -> int:
    return phash_from_thumb(grey_thumbnail(rgb))
