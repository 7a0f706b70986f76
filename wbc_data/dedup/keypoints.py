"""Keypoint matching for region-of-field copies: SIFT keypoints, Lowe's ratio test and an affine fitted by RANSAC
(OpenCV).

Why a second verifier: a re-upload that zooms 1.5-3x into a field around a cell, rotates it a little with black
corners, shears and shifts it, is neither a copy of the whole field nor of a window of it at the scale the
registration of :mod:`register` accepts (1.5x). SIFT keypoints are scale and rotation invariant, and an affine
agreed on by many of them links such a region to its field (measured on regions of real BCCD fields in
benchmarks/README.md, dedup: at ``MIN_INLIERS`` no pair of distinct fields of one smear came near).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from wbc_data.dedup.fill import fill_mask

SIFT_FEATURES = 1500
"""Keypoints kept per image at most (the strongest)."""

CONTRAST_THRESHOLD = 0.01
"""SIFT's contrast threshold (OpenCV's default is 0.04). Smooth smear images give about 90 keypoints per BCCD field
at the default and 540 at 0.01; on 40 real BCCD fields x 3 regions the share of regions linked to their own field
rose from 0.71 to 0.98 while no pair of distinct fields exceeded 7 inliers (benchmarks/README.md, dedup)."""

MAX_SIDE = 800
"""Images are reduced (aspect kept) so that their longer side is at most this before detection: a bound on the cost
of very large fields (not measured for recall: BCCD's 640x480 fields, the only fields measured, are below it)."""

ROW_SCALE = 0.5
"""Rows matched against fields are detected at half their resolution (fields at full): SIFT's cost is its
pyramid, so this costs a quarter (10 ms instead of 44 ms for a PBC cell, 6 instead of 20 for a 320x240 region),
and on 40 real BCCD fields x 3 regions 0.958 of regions were still linked to their field (0.967 at full size), no
pair of distinct fields above 6 inliers (benchmarks/README.md, dedup)."""

FILL_MARGIN = 4
"""Keypoints closer than this many pixels to fill (black corners of a rotated copy) are dropped: their patch sees
the fill's edge, which the field does not have."""

RATIO = 0.75
"""Lowe's ratio test: a keypoint's best match must be clearly better than its second best."""

RANSAC_PIXELS = 3.0
MIN_INLIERS = 12
"""A region is part of a field when at least this many keypoint matches agree on one affine: on 40 real BCCD fields
x 3 regions, 0.97 of regions reached it and no pair of distinct fields went above 7 (benchmarks/README.md, dedup)."""

SCALE_RANGE = (1 / 8, 8.0)
"""Affines that shrink or enlarge beyond this are not a re-upload (they are degenerate fits)."""

KEYPOINT_FIELDS = ("inliers", "matches", "angle", "scale", "shear", "dx", "dy", "inside", "mirror")
"""Columns of :func:`match`'s result: inlier count, ratio-test matches, and the affine from the region's pixels
(from its mirror image's, when ``mirror`` is 1) to the field's (rotation in degrees, mean scale, negative for a
mirrored match, shear, translation in field pixels), and the fraction of the region's corners that land inside the
field."""

NO_MATCH = np.array([0, 0, 0, 1, 0, 0, 0, 0, 0], np.float32)

MIRROR_DESCRIPTOR = np.arange(128).reshape(4, 4, 8)[::-1][..., (-np.arange(8)) % 8].reshape(-1)
"""Where a SIFT descriptor's values go in the descriptor of the same keypoint in the mirror image. OpenCV's
descriptor is 4 x 4 cells x 8 orientation bins in the keypoint's own frame: mirroring the image reverses the cells
along the first axis and the bins' angles. Why: a mirrored region is matched with the keypoints already detected
(0.06 ms) instead of detecting the flipped image again (15 ms); on 40 real BCCD fields x 3 mirrored regions both
linked 0.95 of the regions to their field, and no wrong field came above 6 inliers (benchmarks/README.md, dedup)."""


@dataclass
class Keypoints:
    xy: np.ndarray  # (k, 2) float32: positions in the image's own pixels
    descriptors: np.ndarray  # (k, 128) uint8
    size: tuple[int, int]  # (width, height) of the image

    def __len__(self) -> int:
        return len(self.xy)


def detect(rgb: np.ndarray, factor: float = 1.0) -> Keypoints:
    """SIFT keypoints of an (h, w, 3) uint8 RGB image, away from constant fill, in the image's pixel coordinates;
    detected at ``factor`` times its size (and never above ``MAX_SIDE``)."""
    h, w = rgb.shape[:2]
    scale = min(factor, MAX_SIDE / max(h, w))
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    valid = (~fill_mask(rgb)).astype(np.uint8) * 255
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        valid = cv2.resize(valid, size, interpolation=cv2.INTER_NEAREST)
    valid = cv2.erode(valid, np.ones((2 * FILL_MARGIN + 1,) * 2, np.uint8), borderType=cv2.BORDER_REPLICATE)
    sift = cv2.SIFT_create(SIFT_FEATURES, 3, CONTRAST_THRESHOLD)
    points, descriptors = sift.detectAndCompute(grey, valid)
    if descriptors is None or not points:
        return Keypoints(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.uint8), (w, h))
    xy = np.array([p.pt for p in points], np.float32) / scale
    return Keypoints(xy, np.asarray(descriptors, np.uint8), (w, h))


def mirrored(keypoints: Keypoints) -> Keypoints:
    """The keypoints of the mirror image (left-right) of the image ``keypoints`` were detected in."""
    xy = keypoints.xy.copy()
    xy[:, 0] = keypoints.size[0] - 1 - xy[:, 0]
    return Keypoints(xy, keypoints.descriptors[:, MIRROR_DESCRIPTOR], keypoints.size)


def match_mirror(region: Keypoints, field: Keypoints) -> np.ndarray:
    """:func:`match` for the mirror image of ``region``: its scale negative and ``mirror`` 1."""
    out = match(mirrored(region), field)
    out[KEYPOINT_FIELDS.index("scale")] *= -1
    out[KEYPOINT_FIELDS.index("mirror")] = 1
    return out


def match(region: Keypoints, field: Keypoints) -> np.ndarray:
    """``KEYPOINT_FIELDS`` (float32) for ``region`` (a possible re-upload) against ``field``."""
    if len(region) < 3 or len(field) < 2:
        return NO_MATCH.copy()
    matcher = cv2.BFMatcher(cv2.NORM_L2)
    pairs = matcher.knnMatch(region.descriptors.astype(np.float32), field.descriptors.astype(np.float32), k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < RATIO * p[1].distance]
    if len(good) < 3:
        return _result(0, len(good), None, region.size, field.size)
    src = region.xy[[m.queryIdx for m in good]]
    dst = field.xy[[m.trainIdx for m in good]]
    affine, inliers = cv2.estimateAffine2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PIXELS,
                                           maxIters=2000, confidence=0.995, refineIters=10)  # fmt: skip
    count = int(inliers.sum()) if inliers is not None else 0
    return _result(count, len(good), affine, region.size, field.size)


def _result(inliers: int, matches: int, affine: np.ndarray | None, region_size: tuple[int, int],
            field_size: tuple[int, int]) -> np.ndarray:  # fmt: skip
    if affine is None or not np.isfinite(affine).all():
        out = NO_MATCH.copy()
        out[1] = matches
        return out
    a = affine[:, :2]
    sx = float(np.hypot(a[0, 0], a[1, 0]))
    angle = float(np.degrees(np.arctan2(a[1, 0], a[0, 0])))
    det = float(np.linalg.det(a))
    shear = float((a[0, 0] * a[0, 1] + a[1, 0] * a[1, 1]) / (sx * sx)) if sx else 0.0
    w, h = region_size
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
    mapped = corners @ a.T + affine[:, 2]
    fw, fh = field_size
    inside = float(np.mean((mapped[:, 0] >= -0.05 * fw) & (mapped[:, 0] <= 1.05 * fw)
                           & (mapped[:, 1] >= -0.05 * fh) & (mapped[:, 1] <= 1.05 * fh)))  # fmt: skip
    scale = float(np.sign(det) * np.sqrt(abs(det)))  # negative: a mirrored fit
    return np.array([inliers, matches, angle, scale, shear, affine[0, 2], affine[1, 2], inside, 0], np.float32)


def column(results: np.ndarray, name: str) -> np.ndarray:
    return results[:, KEYPOINT_FIELDS.index(name)]


def linked(results: np.ndarray) -> np.ndarray:
    """Pairs whose affine links the region to the field: enough inliers, a plausible scale, a determinant of the
    sign the match asked for (positive, or negative for a mirror-image match: the other sign is a degenerate fit),
    and the region's footprint mostly inside the field."""
    scale = column(results, "scale")
    size = np.abs(scale)
    return (
        (column(results, "inliers") >= MIN_INLIERS)
        & (size >= SCALE_RANGE[0])
        & (size <= SCALE_RANGE[1])
        & ((scale < 0) == (column(results, "mirror") > 0))
        & (column(results, "inside") >= 0.5)
    )


def describe(row: np.ndarray) -> str:
    """Short text for the manifest, e.g. ``region x0.42 rot 12 shear 0.10 (37 keypoints)``: the region's scale
    relative to the field's pixels, rotation, shear, and how many keypoints agreed (``mirrored region`` when the
    region is a mirror image)."""
    values = dict(zip(KEYPOINT_FIELDS, (float(v) for v in row), strict=True))
    kind = "mirrored region" if values["mirror"] else "region"
    parts = [f"{kind} x{abs(values['scale']):.2f}", f"rot {values['angle']:.0f}"]
    if abs(values["shear"]) >= 0.02:
        parts.append(f"shear {values['shear']:.2f}")
    parts.append(f"({values['inliers']:.0f} keypoints)")
    return " ".join(parts)
