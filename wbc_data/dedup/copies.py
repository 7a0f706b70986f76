"""dedup's copy test as a public function, for other stages (synth's memorisation guard): encode images, then ask
which query images are copies of which reference images, and by what transform.

The same steps and thresholds as a dedup run, without its manifest, store or candidate search: every image becomes
dedup's registration canvas (:func:`~wbc_data.dedup.signature.make_canvas`: grey, aspect kept, fill borders such as
rotation corners marked as no content), and every (reference, query) pair is registered by the batched engine
(:mod:`~wbc_data.dedup.batched`: Fourier-Mellin registration at any angle, scale, shift and mirror, then the masked
correlation of intensities and of fine texture). A pair matches under dedup's rule (:mod:`~wbc_data.dedup.linkage`):
correlation >= ``MIN_CORRELATION``, texture correlation >= ``MIN_TEXTURE`` and an overlap of at least ``MIN_OVERLAP``
of the smaller image. dedup then tells copies from overlapping views of one scene (shift, scale, labels); for a
question like "did the generator reproduce a training image", both count, so this function does not.

All pairs are registered (no candidate search: the reference sets here are a class's training images, hundreds, not
a million); pairs whose log-polar correlation is flat stop after one FFT (on the GPU where there is one), and
references are taken in blocks of ``REFERENCE_BLOCK``, so memory stays bounded. Cost: about 800 pairs/s on one
busy CPU core at 64 px (64 samples against 500 training images: 40 s).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from wbc_data.dedup.batched import register_many, resolve_device
from wbc_data.dedup.confirm import RESULT_FIELDS
from wbc_data.dedup.linkage import MIN_CORRELATION, MIN_TEXTURE
from wbc_data.dedup.register import MIN_OVERLAP, Match
from wbc_data.dedup.signature import BLANK_STD, CANVAS, grey_and_valid, make_canvas

REFERENCE_BLOCK = 256
"""References registered against the queries at once (about 300 KB of prepared arrays per image)."""


@dataclass(frozen=True)
class Encoded:
    """Images as dedup compares them."""

    canvases: np.ndarray  # (n, CANVAS, CANVAS) uint8, 0 = no image content
    blank: np.ndarray  # (n,) bool: nothing to register (a flat or almost empty image)

    def __len__(self) -> int:
        return len(self.canvases)


@dataclass(frozen=True)
class Copy:
    """A query image found to be a copy of a reference image."""

    query: int
    reference: int
    correlation: float  # of the registered intensities
    texture: float  # of the registered band-pass images
    angle: float  # degrees, counter-clockwise: the reference (after the mirror) turned by this lands on the query
    scale: float  # the query shows the reference this much larger
    mirror: bool
    shift: tuple[float, float]  # canvas pixels

    def describe(self) -> str:
        """E.g. ``mirror rot 37 scale 1.20 shift 3,-2`` (dedup's wording)."""
        match = Match(self.correlation, self.texture, 1.0, self.angle, self.scale, self.mirror, self.shift)
        return match.describe()


def encode(images: Sequence[np.ndarray | Image.Image]) -> Encoded:
    """dedup's registration canvas of each image (uint8 RGB arrays or PIL images, any size)."""
    canvases = np.zeros((len(images), CANVAS, CANVAS), np.uint8)
    blank = np.zeros(len(images), bool)
    for i, image in enumerate(images):
        pil = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, np.uint8))
        grey, valid = grey_and_valid(pil.convert("RGB"))
        blank[i] = not valid.any() or float(grey[valid].std()) < BLANK_STD
        canvases[i] = make_canvas(grey, valid)
    return Encoded(canvases, blank)


def find_copies(
    queries: Encoded, references: Encoded, min_correlation: float = MIN_CORRELATION, device: str = "auto"
) -> list[Copy | None]:
    """Per query, its best-matching reference under dedup's rule (highest correlation), or None. ``device``: where
    the log-polar stage runs (``auto``: the GPU if torch sees one, else numpy; ``cpu``; ``cuda``)."""
    torch_device = resolve_device(device)
    best: list[Copy | None] = [None] * len(queries)
    live_q = np.flatnonzero(~queries.blank)
    live_r = np.flatnonzero(~references.blank)
    if not len(live_q) or not len(live_r):
        return best
    col = {name: k for k, name in enumerate(RESULT_FIELDS)}
    for start in range(0, len(live_r), REFERENCE_BLOCK):
        block = live_r[start : start + REFERENCE_BLOCK]
        canvases = np.concatenate([references.canvases[block], queries.canvases[live_q]])
        ref_pos, query_pos = np.meshgrid(np.arange(len(block)), len(block) + np.arange(len(live_q)), indexing="ij")
        pairs = np.stack([ref_pos.reshape(-1), query_pos.reshape(-1)], axis=1)  # a = reference, b = query
        results = register_many(canvases, pairs, torch_device)
        matched = (
            (results[:, col["correlation"]] >= min_correlation)
            & (results[:, col["texture"]] >= MIN_TEXTURE)
            & (results[:, col["overlap"]] >= MIN_OVERLAP)
        )
        for k in np.flatnonzero(matched):
            r, q = block[pairs[k, 0]], live_q[pairs[k, 1] - len(block)]
            row = results[k]
            found = best[q]
            if found is None or row[col["correlation"]] > found.correlation:
                best[q] = Copy(
                    int(q),
                    int(r),
                    float(row[col["correlation"]]),
                    float(row[col["texture"]]),
                    float(row[col["angle"]]),
                    float(row[col["scale"]]),
                    bool(row[col["mirror"]]),
                    (float(row[col["dx"]]), float(row[col["dy"]])),
                )
    return best
