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


def dct_lowfreq(thumbs: np.ndarray) -> np.ndarray:
    """The 8x8 low-frequency block of the 2-D DCT-II of each thumbnail (``(..., 32, 32)`` -> ``(..., 8, 8)``),
    computed exactly as imagehash does."""
    pixels = np.asarray(thumbs, dtype=np.float64)
    dct = scipy.fftpack.dct(scipy.fftpack.dct(pixels, axis=-2), axis=-1)
    return dct[..., :HASH_SIZE, :HASH_SIZE]


def pack_hashes(blocks: np.ndarray) -> np.ndarray:
    """(n, 8, 8) DCT blocks -> (n,) uint64 pHashes: a bit is set where the coefficient is above its block's
    median (imagehash's rule), packed row-major with the first bit most significant (imagehash's hex order)."""
    flat = blocks.reshape(len(blocks), HASH_SIZE * HASH_SIZE)
    bits = flat > np.median(flat, axis=1, keepdims=True)
    return np.packbits(bits, axis=1).view(">u8").reshape(-1).astype(np.uint64)


def phash_from_thumb(thumb: np.ndarray) -> int:
    """64-bit pHash as an unsigned int; ``f'{h:016x}'`` equals ``str(imagehash.phash(img))``."""
    return int(pack_hashes(dct_lowfreq(thumb)[None])[0])


def phash(rgb: Image.Image) -> int:
    return phash_from_thumb(grey_thumbnail(rgb))
