"""Geometric signatures: what dedup needs from a row's pixels to find and verify copies at any angle.

The manifest's 64-bit pHash and 32x32 thumbnail (from ingest) only survive flips, 90-degree rotations and small
crops. A copy rotated by 37 degrees with black corners, shifted, zoomed and recompressed needs more, computed once
per distinct image (keyed by pixel hash, cached by :mod:`wbc_data.dedup.store`):

- ``canvas``: the grey image, aspect kept, fitted into ``CANVAS`` x ``CANVAS`` with 0 wherever there is no image
  content (constant fill borders, see :mod:`fill`, and the margin around a non-square image). Registration and the
  masked correlation that decide whether two rows are copies (:mod:`register`) run on it.
- ``words``: ORB keypoints (rotation invariant, OpenCV) of the image and of its mirror image, quantised to a fixed
  binary vocabulary and embedded as one tf-idf vector each (:mod:`words`): nearest neighbours in that space are
  the candidate copies (keypoint descriptors are not mirror invariant, so the mirror image gets its own vector).
- ``thumb``: the pHash thumbnail with fill pixels replaced by the mean of the valid ones (equal to the manifest's
  thumbnail when there is no fill), so the dihedral/crop hash search of issue 4 ignores fill borders too.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from wbc_data.dedup.fill import fill_mask
from wbc_data.dedup.words import Embedder
from wbc_data.imaging.signatures import THUMB_SIZE, grey_thumbnail

CANVAS = 96
"""Side of the registration canvas. Measured on augmented real PBC cells and BCCD fields (benchmarks/README.md,
dedup): at 64 px copies correlate >= 0.94 after registration and distinct cells <= 0.81."""

ORB_SIDE = 256
"""Images are resized so that their longer side is this before ORB: a half-size copy then shows its keypoints at
the original's scale."""

ORB_FEATURES = 300
ORB_FAST_THRESHOLD = 10
"""Smooth cell images give few corners at ORB's default FAST threshold (20)."""

ORB_LEVELS = 8
"""Pyramid levels (scale factor 1.2), OpenCV's default. Four would cut a quarter of ORB's time and keep the dense
case's accuracy (copies differ in scale by their zoom only, 0.85-1.2 each), but region-of-field copies (zoomed
1.5-3x into a field) then resemble their field's windows less often: 0.918 of them linked against 0.940, so the
eight levels stay (benchmarks/README.md, dedup, issue 21, tenth session)."""

ORB_MARGIN = 8
"""Keypoints closer than this (at ``ORB_SIDE``) to fill are dropped: their 31 px patch would see the fill."""

BLANK_STD = 2.0
BLANK_VALID = 0.05
"""An image is blank (nothing to compare) when its valid pixels vary by less than ``BLANK_STD`` grey levels or
cover less than ``BLANK_VALID`` of it: it is only matched as an exact copy."""


@dataclass
class Signature:
    canvas: np.ndarray  # (CANVAS, CANVAS) uint8; 0 = no image content
    words: np.ndarray  # (2, D) float16: embedding of the image, and of its mirror image
    thumb: np.ndarray  # (32, 32) uint8: the pHash thumbnail with fill replaced
    fill: float  # fraction of the image that is constant fill
    blank: bool


def grey_and_valid(rgb: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """Grey pixels (PIL's conversion, as the pHash uses) and the mask of valid (non-fill) pixels."""
    array = np.asarray(rgb if rgb.mode == "RGB" else rgb.convert("RGB"))
    grey = np.asarray(rgb.convert("L")) if rgb.mode != "L" else np.asarray(rgb)
    return grey, ~fill_mask(array)


def fitted(image: np.ndarray, side: int, interpolation: int = cv2.INTER_AREA) -> np.ndarray:
    """``image`` resized (aspect kept) so that its longer side is ``side``."""
    h, w = image.shape[:2]
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if size == (w, h):
        return image
    if scale > 1 and interpolation == cv2.INTER_AREA:
        interpolation = cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interpolation)


def make_canvas(grey: np.ndarray, valid: np.ndarray, side: int = CANVAS) -> np.ndarray:
    """The grey image fitted into ``side`` x ``side``, centred, 0 outside valid content (eroded by one pixel so
    no blend of fill and content survives)."""
    small = fitted(grey.astype(np.float32), side)
    if valid.all():  # what the resize and erosion below give for an image without fill, at no cost
        kept = np.ones(small.shape, bool)
    else:
        kept = fitted(valid.astype(np.float32), side) >= 0.999
        kept = cv2.erode(kept.astype(np.uint8), np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE) > 0
    out = np.zeros((side, side), np.uint8)
    h, w = small.shape
    y0, x0 = (side - h) // 2, (side - w) // 2
    out[y0 : y0 + h, x0 : x0 + w] = np.where(kept, np.clip(np.rint(small), 1, 255), 0).astype(np.uint8)
    return out


def filled_thumb(grey: np.ndarray, valid: np.ndarray, stored: np.ndarray | None = None) -> np.ndarray:
    """The pHash thumbnail, with fill pixels set to the mean valid grey first (unchanged when nothing is fill: then
    the thumbnail ingest ``stored`` from the same pixels is that thumbnail, and is not computed again)."""
    if valid.all() and stored is not None:
        return stored
    if valid.all() or not valid.any():
        return grey_thumbnail(Image.fromarray(np.ascontiguousarray(grey), "L"))  # PIL's grey, as ingest hashed it
    flat = np.where(valid, grey, np.uint8(round(float(grey[valid].mean()))))
    return grey_thumbnail(Image.fromarray(flat.astype(np.uint8), "L"))


ORB_SCALE = 1.2
"""ORB's pyramid scale factor (OpenCV's default)."""


def mirrored_keypoints(keypoints: tuple, width: int) -> list:
    """The keypoints of an image of ``width`` as the mirror image has them: x mirrored within the keypoint's own
    pyramid level (``width / 1.2**octave`` pixels wide, rounded in single precision as ORB sizes its levels), the
    orientation reflected (an intensity centroid's x changes sign: angle a becomes 180 - a)."""
    scales = [np.float32(ORB_SCALE**level) for level in range(ORB_LEVELS)]  # ORB's own arithmetic, in float32
    widths = [int(np.rint(np.float32(width) * (np.float32(1) / scale))) for scale in scales]
    right = [(w - 1) * float(scale) for w, scale in zip(widths, scales, strict=True)]  # x' = (w - 1 - x / s) * s
    return [cv2.KeyPoint(right[p.octave] - p.pt[0], p.pt[1], p.size, (180.0 - p.angle) % 360.0, p.response, p.octave,
                         p.class_id) for p in keypoints]  # fmt: skip


def orb_descriptors(grey: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ORB descriptors (n, 32) uint8 of the image and of its mirror image, keypoints away from fill. The mirror
    image's are computed at the mirrored keypoints rather than detected again (ORB's detector is mirror symmetric:
    on 300 real cells and copies, 296 descriptor sets came out identical to detecting on the flipped image, and every
    mirror embedding had a cosine of 1.000 with the detected one), which saves a sixth of the signature."""
    g = fitted(grey, ORB_SIDE, cv2.INTER_AREA)
    m: np.ndarray | None = None  # no fill: no mask (an all-255 one gives the same keypoints at 15% more ORB time)
    if not valid.all():
        m = fitted(valid.astype(np.uint8) * 255, ORB_SIDE, cv2.INTER_NEAREST)
        m = cv2.erode(m, np.ones((2 * ORB_MARGIN + 1, 2 * ORB_MARGIN + 1), np.uint8),
                      borderType=cv2.BORDER_REPLICATE)  # fmt: skip
    orb = cv2.ORB_create(ORB_FEATURES, scaleFactor=ORB_SCALE, nlevels=ORB_LEVELS, fastThreshold=ORB_FAST_THRESHOLD)
    keypoints, image = orb.detectAndCompute(g, m)
    mirror = None
    if keypoints:
        _, mirror = orb.compute(np.ascontiguousarray(g[:, ::-1]), mirrored_keypoints(keypoints, g.shape[1]))
    empty = np.zeros((0, 32), np.uint8)
    return (empty if image is None else image), (empty if mirror is None else mirror)


def valid_std(grey: np.ndarray, valid: np.ndarray) -> float:
    """Standard deviation of the valid grey levels (OpenCV's masked one pass: a tenth of numpy's copy and cast)."""
    if not valid.any():
        return 0.0
    _, std = cv2.meanStdDev(grey, mask=np.ascontiguousarray(valid).view(np.uint8))
    return float(std[0, 0])


def signature(rgb: Image.Image, embedder: Embedder, stored_thumb: np.ndarray | None = None) -> Signature:
    """Everything dedup needs from one image's pixels (``stored_thumb``: the manifest's thumbnail of them, if any)."""
    grey, valid = grey_and_valid(rgb)
    fill = 1.0 - float(valid.mean())
    blank = fill > 1.0 - BLANK_VALID or valid_std(grey, valid) < BLANK_STD
    canvas = make_canvas(grey, valid)
    thumb = filled_thumb(grey, valid, stored_thumb)
    if blank:
        words = np.zeros((2, embedder.dim), np.float16)
    else:
        image, mirror = orb_descriptors(grey, valid)
        words = np.stack([embedder.embed(image), embedder.embed(mirror)]).astype(np.float16)
    return Signature(canvas, words, thumb.reshape(THUMB_SIZE, THUMB_SIZE), fill, blank)
