"""The guards every sampling run applies and reports: memorisation (reject near-copies of training images),
diversity (flag collapse) and, given a classifier, its agreement with the intended class. Whether a sample is a
plausible cell at all is :mod:`.gate`'s job, and the fidelity numbers are :mod:`.fidelity`'s.

Two tests of "copy", both at the generator's resolution, between images as the generator saw them
(:func:`wbc_data.synth.data.to_resolution`):

- pixel distance: the least RMSE of RGB values in [0, 1] under any of the 8 flips/rotations (training used all of
  them) and a shift of up to 1 pixel;
- dedup's own copy test through its public function (:mod:`wbc_data.dedup.copies`): registration at any angle,
  scale, shift and mirror, then correlation of intensities and fine texture, with dedup's thresholds. It catches
  what a pixel distance cannot: a training cell turned by 37 degrees, zoomed 1.2x or cropped. Registration needs
  detail: measured on real PBC promyelocytes it catches such copies at 64 px and above; at 32 px and below it
  catches little beyond flips, and the pixel test is what guards there.

The pixel threshold is calibrated per class on real pairs: distances from perturbed copies of real images (noise,
contrast, a 1-pixel shift, JPEG, blur, a colour cast) to their originals are "copies"; distances from each real image
to its nearest *other* real image are "distinct cells". The threshold sits between the largest copy distance and the
5th percentile of distinct distances (their geometric mean); where they overlap it falls back to that percentile.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageFilter

from wbc_data.dedup.copies import Copy, encode, find_copies
from wbc_data.train.classifier import Classifier

MIN_CLASS_REFERENCE = 5
"""Below this many real images of a class, distinct-cell distances are measured among all classes' training images."""
COPY_CALIBRATION_IMAGES = 64
PERTURBATIONS = ("noise", "contrast", "shift", "jpeg", "blur", "colour")
CHUNK_VALUES = 1 << 24
"""Floats per distance chunk (64 MB): memory stays flat whatever the number of real images."""
DISTINCT_PROBE = (32, 96)
"""How often dedup's copy test calls distinct real cells copies at this resolution is measured on up to 32 real
images against up to 96 others (3,072 registrations, seconds): the false-alarm rate of that test here."""
DIHEDRAL = ("identity", "flip_lr", "flip_tb", "rot180", "transpose", "rot90", "rot270", "transverse")


# --------------------------------------------------------------------------- distances


def dihedral_stack(images: np.ndarray) -> np.ndarray:
    """(n, h, w, 3) -> (8, n, h, w, 3): each image under every flip and 90-degree rotation (``DIHEDRAL``)."""
    ops = {
        "identity": lambda a: a,
        "flip_lr": lambda a: a[:, :, ::-1],
        "flip_tb": lambda a: a[:, ::-1],
        "rot180": lambda a: a[:, ::-1, ::-1],
        "transpose": lambda a: a.transpose(0, 2, 1, 3),
        "rot90": lambda a: np.rot90(a, 1, axes=(1, 2)),
        "rot270": lambda a: np.rot90(a, -1, axes=(1, 2)),
        "transverse": lambda a: a[:, ::-1, ::-1].transpose(0, 2, 1, 3),
    }
    return np.stack([np.ascontiguousarray(ops[name](images)) for name in DIHEDRAL])


def _flat(images: np.ndarray, device: str = "cpu"):
    import torch

    flat = np.ascontiguousarray(images, dtype=np.float32).reshape(len(images), -1) / 255.0
    return torch.from_numpy(flat).to(device)


SHIFT = 1
"""Pixels a sample may be shifted by (each way, both axes) and still count as the same picture: distances compare
the real image's interior with the 9 equally sized windows of the sample."""


def distance_matrix(a: np.ndarray, b: np.ndarray, shift: int = SHIFT, device: str = "cpu") -> np.ndarray:
    """(len(a), 8, len(b)): the least RMSE between a window of ``a[i]`` (shifted up to ``shift`` pixels) and the
    interior of ``b[j]`` under each dihedral transform; computed in chunks (flat memory), on ``device``."""
    import torch

    h, w = a.shape[1:3]
    s = shift if min(h, w) > 4 * shift else 0
    windows = [a[:, dy : h - 2 * s + dy, dx : w - 2 * s + dx] for dy in range(2 * s + 1) for dx in range(2 * s + 1)]
    left = _flat(np.concatenate(windows), device)  # (shifts * n, dims)
    dims = left.shape[1]
    stacked = dihedral_stack(b)[:, :, s : h - s, s : w - s] if len(b) else np.zeros((8, 0, h - 2 * s, w - 2 * s, 3))
    out = np.empty((len(a), len(DIHEDRAL), len(b)), dtype=np.float32)
    step = max(1, CHUNK_VALUES // max(dims * len(windows), 1))
    for t in range(len(DIHEDRAL)):
        for start in range(0, len(b), step):
            right = _flat(stacked[t, start : start + step], device)
            d = torch.cdist(left, right).reshape(len(windows), len(a), -1).amin(dim=0) / np.sqrt(dims)
            out[:, t, start : start + step] = d.cpu().numpy()
    return out


def nearest(samples: np.ndarray, reals: np.ndarray, exclude_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per sample: the smallest distance to any transform of any real image, and that real image's index.
    ``exclude_self``: ``samples`` are ``reals`` and an image is not its own neighbour."""
    d = distance_matrix(samples, reals).min(axis=1)
    if exclude_self:
        np.fill_diagonal(d, np.inf)
    index = d.argmin(axis=1) if d.shape[1] else np.full(len(samples), -1)
    best = d[np.arange(len(samples)), index] if d.shape[1] else np.full(len(samples), np.inf)
    return best.astype(np.float64), index


# --------------------------------------------------------------------------- memorisation


@dataclass(frozen=True)
class Verdict:
    """One sample against its class's real training images."""

    nearest_id: str  # the real image closest in pixels (any flip/rotation)
    distance: float  # pixel RMSE to it
    copy: bool
    reason: str | None = None
    registered: Copy | None = None  # dedup's copy test: the training image it matched and the transform
    registered_id: str | None = None


@dataclass(frozen=True)
class Calibration:
    n_real: int
    reference: str  # "class": distinct pairs within the class; "all classes": too few real images of it
    copies_max: float  # largest distance of a perturbed copy to its original
    copies_median: float
    distinct_low: float  # 5th percentile (or least, for few images) of nearest-distinct-real distances
    distinct_median: float
    threshold: float
    overlap: bool  # copies reach as far as distinct cells: the threshold is the distinct percentile
    dedup_rule_distinct: float  # share of probed distinct real images that dedup's copy test calls copies

    def describe(self) -> str:
        how = (
            "5th percentile of distinct cells (copies overlap it)"
            if self.overlap
            else ("geometric mean of the largest copy distance and the 5th percentile of distinct cells")
        )
        return (
            f"pixel RMSE < {self.threshold:.4f} ({how}; copies up to {self.copies_max:.4f}, distinct cells from "
            f"{self.distinct_low:.4f}, median {self.distinct_median:.4f}, reference: {self.reference}), or dedup's "
            f"registration matches (any angle, scale, crop; it calls {self.dedup_rule_distinct:.0%} of distinct "
            "real cells copies here)"
        )


def perturb(image: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """A near-copy of an (h, w, 3) uint8 image, as a generator that memorised it might return it."""
    x = image.astype(np.float32)
    if kind == "noise":
        x = x + rng.normal(0.0, 0.03 * 255, x.shape)
    elif kind == "contrast":
        x = (x - x.mean()) * 1.1 + x.mean() + 0.03 * 255
    elif kind == "shift":
        x = np.pad(x, ((1, 0), (1, 0), (0, 0)), mode="edge")[:-1, :-1]
    elif kind == "jpeg":
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=75)
        return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    elif kind == "blur":
        return np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(0.5)))
    elif kind == "colour":
        x = x + np.array([0.03, -0.02, 0.01], dtype=np.float32) * 255
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def distinct_copy_rate(reference: np.ndarray, rng: np.random.Generator) -> float:
    """The share of real images that dedup's copy test matches to some *other* real image (``DISTINCT_PROBE``)."""
    queries, others = DISTINCT_PROBE
    if len(reference) < 2:
        return 0.0
    order = rng.permutation(len(reference))
    q = min(queries, len(order) // 2)
    probe, rest = reference[order[:q]], reference[order[q : q + others]]
    found = find_copies(encode(probe), encode(rest))
    return float(np.mean([f is not None for f in found])) if found else 0.0


class MemorisationGuard:
    """Rejects samples that are near-copies of a class's real training images (see the module docstring)."""

    def __init__(self, reals: np.ndarray, ids: Sequence[str], threshold: float) -> None:
        if not len(reals):
            raise ValueError("the memorisation guard needs at least one real image")
        self.reals = np.asarray(reals, dtype=np.uint8)
        self.ids = list(ids)
        self.threshold = float(threshold)
        self.encoded = encode(self.reals)

    @classmethod
    def calibrated(
        cls, reals: np.ndarray, ids: Sequence[str], pool: np.ndarray | None = None, seed: int = 0
    ) -> tuple[MemorisationGuard, Calibration]:
        """A guard whose threshold is calibrated on this class's real images (``pool``: all classes' training
        images, used for distinct-cell distances when the class has fewer than ``MIN_CLASS_REFERENCE``)."""
        reals = np.asarray(reals, dtype=np.uint8)
        rng = np.random.default_rng(seed)
        reference, where = reals, "class"
        if len(reals) < MIN_CLASS_REFERENCE and pool is not None and len(pool) >= 2:
            reference, where = np.asarray(pool, dtype=np.uint8), "all classes"
        distinct, _ = (
            nearest(reference, reference, exclude_self=True)
            if len(reference) >= 2
            else (np.array([np.inf]), np.array([0]))
        )
        chosen = reals[rng.permutation(len(reals))[:COPY_CALIBRATION_IMAGES]]
        copies = np.concatenate(
            [nearest(np.stack([perturb(im, kind, rng) for im in chosen]), reals)[0] for kind in PERTURBATIONS]
        )
        low = float(np.quantile(distinct, 0.05)) if len(distinct) >= 20 else float(distinct.min())
        high = float(copies.max())
        overlap = not high < low
        threshold = low if overlap else float(np.sqrt(max(high, 1e-6) * low))
        calibration = Calibration(
            n_real=len(reals),
            reference=where,
            copies_max=high,
            copies_median=float(np.median(copies)),
            distinct_low=low,
            distinct_median=float(np.median(distinct)),
            threshold=threshold,
            overlap=overlap,
            dedup_rule_distinct=distinct_copy_rate(reference, rng),
        )
        return cls(reals, ids, threshold), calibration

    def check(self, samples: np.ndarray) -> list[Verdict]:
        """One verdict per (m, h, w, 3) uint8 sample."""
        samples = np.asarray(samples, dtype=np.uint8)
        if not len(samples):
            return []
        distance, index = nearest(samples, self.reals)
        registered = find_copies(encode(samples), self.encoded)
        verdicts = []
        for i, match in enumerate(registered):
            reasons = []
            if distance[i] < self.threshold:
                reasons.append(f"pixel RMSE {distance[i]:.4f} < {self.threshold:.4f} to {self.ids[index[i]]}")
            matched_id = self.ids[match.reference] if match is not None else None
            if match is not None:
                reasons.append(
                    f"dedup registration matches {matched_id} ({match.describe()}, correlation "
                    f"{match.correlation:.3f}, texture {match.texture:.3f})"
                )
            verdicts.append(
                Verdict(
                    self.ids[index[i]],
                    float(distance[i]),
                    bool(reasons),
                    "near-copy: " + "; ".join(reasons) if reasons else None,
                    match,
                    matched_id,
                )
            )
        return verdicts


# --------------------------------------------------------------------------- diversity


@dataclass(frozen=True)
class Diversity:
    n_synthetic: int
    n_real: int
    synthetic_mean: float  # mean pairwise pixel RMSE (any flip/rotation) among samples
    real_mean: float  # the same among real images of the class
    ratio: float  # synthetic_mean / real_mean (1: as varied as the real cells)
    near_duplicates: float  # share of samples with another sample closer than the memorisation threshold
    collapsed: bool

    def describe(self) -> str:
        flag = "COLLAPSE: " if self.collapsed else ""
        return (
            f"{flag}samples differ by {self.synthetic_mean:.4f} on average, real cells by {self.real_mean:.4f} "
            f"(ratio {self.ratio:.2f}); {self.near_duplicates:.0%} of samples have a near-duplicate sample"
        )


COLLAPSE_RATIO = 0.5
COLLAPSE_DUPLICATES = 0.25


def mean_pairwise(images: np.ndarray) -> float:
    if len(images) < 2:
        return float("nan")
    d = distance_matrix(images, images).min(axis=1)
    return float(d[~np.eye(len(images), dtype=bool)].mean())


def diversity(synthetic: np.ndarray, reals: np.ndarray, threshold: float, limit: int = 128, seed: int = 0) -> Diversity:
    """Pairwise distances among samples against those among real images; collapse when samples are less than half
    as varied as real cells, or a quarter of them have a near-duplicate among the others."""
    rng = np.random.default_rng(seed)
    synth = synthetic[rng.permutation(len(synthetic))[:limit]]
    real = reals[rng.permutation(len(reals))[:limit]]
    s_mean, r_mean = mean_pairwise(synth), mean_pairwise(real)
    ratio = s_mean / r_mean if r_mean and np.isfinite(r_mean) else float("nan")
    dup = 0.0
    if len(synth) >= 2:
        nn, _ = nearest(synth, synth, exclude_self=True)
        dup = float((nn < threshold).mean())
    collapsed = bool((np.isfinite(ratio) and ratio < COLLAPSE_RATIO) or dup > COLLAPSE_DUPLICATES)
    return Diversity(len(synthetic), len(reals), s_mean, r_mean, float(ratio), dup, collapsed)


# --------------------------------------------------------------------------- classifier agreement


@dataclass(frozen=True)
class Agreement:
    """How a trained classifier labels the samples (a check of the class condition, not of realism: a classifier
    can be fooled by images no haematologist would call cells; realism is :mod:`.gate` and :mod:`.fidelity`)."""

    agreement: float | None  # share of samples the classifier assigns to the intended class
    n_synthetic: int
    predicted: dict[str, int] = field(default_factory=dict)  # what the classifier called the samples


def _batched(
    fn: Callable[[list[Image.Image]], np.ndarray], images: Sequence[Image.Image], size: int = 64
) -> np.ndarray:
    parts = [np.asarray(fn(list(images[i : i + size]))) for i in range(0, len(images), size)]
    return np.concatenate(parts) if parts else np.zeros((0, 0))


def agreement(classifier: Classifier, label: str, synthetic: Sequence[Image.Image]) -> Agreement:
    """The share of samples ``classifier`` assigns to ``label``, and what it called them."""
    classes = list(classifier.classes)
    proba = _batched(classifier.predict_proba, synthetic)
    picked = proba.argmax(axis=1) if len(proba) else np.zeros(0, dtype=int)
    predicted = {classes[i]: int(n) for i, n in zip(*np.unique(picked, return_counts=True), strict=True)}
    share = float(np.mean(picked == classes.index(label))) if label in classes and len(picked) else None
    return Agreement(share, len(synthetic), predicted)
