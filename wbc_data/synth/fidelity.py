"""How close synthetic cells are to real ones, in an embedding not trained on them (:mod:`.embedding`), read
against two references measured the same way, so a number means something on its own:

- **KID** (Binkowski et al., "Demystifying MMD GANs", ICLR 2018): the unbiased estimate of the squared maximum mean
  discrepancy with the cubic polynomial kernel ``k(x, y) = (x . y / d + 1) ** 3``, as in torchmetrics and
  clean-fid. Unbiased at any size (its expectation is 0 when both sets come from one distribution, so it can be
  slightly negative), unlike the Fréchet distance, whose bias grows as sets shrink and whose covariance is singular
  below the feature dimension. Large sets are averaged over random subsets (``SUBSET_SIZE``, ``SUBSETS``).
- **Precision and recall** with k-nearest-neighbour manifolds (Kynkäänniemi et al., NeurIPS 2019): a real cell's
  neighbourhood is the ball reaching its k-th nearest other real cell; precision is the share of samples inside
  some real ball (are samples realistic?), recall the share of real cells inside some sample ball (do samples cover
  the variety of real cells?).

References (:func:`measure`): the real cells of a class are split into two disjoint random halves A and B; every
comparison is made against A. B against A is the **floor** (what a perfect generator would score at this size);
coloured noise with B's colour statistics, and B blurred, are **ceilings** (what failed generators score).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

SUBSET_SIZE = 1000
SUBSETS = 100
"""torchmetrics' defaults: sets larger than ``SUBSET_SIZE`` are compared over ``SUBSETS`` random subsets."""
NEIGHBOURS = 3
"""k of the precision/recall manifolds (Kynkäänniemi et al.'s default)."""
CEILING_MAX = 100
"""Ceiling images made from at most this many real cells (they are far from the real cells at any size)."""
BLUR = 1 / 16
"""The blurred ceiling: a Gaussian blur of this fraction of the image side (a nucleus loses its outline)."""


# --------------------------------------------------------------------------- KID


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``(x . y / d + 1) ** 3`` for every pair of rows, in float64."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased MMD^2 estimate: within-set means over distinct pairs only (i != j), the cross term over all."""
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        raise ValueError(f"KID needs at least 2 vectors in each set, got {n} and {m}")
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within_x = (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
    within_y = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(within_x + within_y - 2.0 * kxy.mean())


def kid(
    x: np.ndarray, y: np.ndarray, subset_size: int = SUBSET_SIZE, subsets: int = SUBSETS, seed: int = 0
) -> tuple[float, float]:
    """KID of two (n, d) feature sets and its standard deviation over subsets (0 when computed once on all)."""
    if len(x) <= subset_size and len(y) <= subset_size:
        return mmd2_unbiased(x, y), 0.0
    rng = np.random.default_rng(seed)
    a, b = min(len(x), subset_size), min(len(y), subset_size)
    values = [
        mmd2_unbiased(x[rng.choice(len(x), a, replace=False)], y[rng.choice(len(y), b, replace=False)])
        for _ in range(subsets)
    ]
    return float(np.mean(values)), float(np.std(values))


# --------------------------------------------------------------------------- precision / recall


def manifold_radii(features: np.ndarray, k: int = NEIGHBOURS) -> np.ndarray:
    """Distance from each vector to its k-th nearest other vector of the same set."""
    from sklearn.neighbors import NearestNeighbors

    distances, _ = NearestNeighbors(n_neighbors=k + 1).fit(features).kneighbors(features)
    return distances[:, k]  # column 0 is the vector itself


def inside_share(queries: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> float:
    """The share of ``queries`` within ``radii[j]`` of some ``centres[j]`` (distances in bounded chunks)."""
    from sklearn.metrics import pairwise_distances_chunked

    def reduce(chunk: np.ndarray, start: int) -> np.ndarray:
        return (chunk <= radii[None, :]).any(axis=1)

    inside = np.concatenate(list(pairwise_distances_chunked(queries, centres, reduce_func=reduce)))
    return float(inside.mean())


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = NEIGHBOURS) -> tuple[float, float]:
    """Improved precision and recall (k-NN manifolds); each set needs more than ``k`` vectors."""
    if len(real) <= k or len(fake) <= k:
        raise ValueError(f"precision/recall with k={k}: {len(real)} and {len(fake)} vectors (more than k each)")
    precision = inside_share(fake, real, manifold_radii(real, k))
    recall = inside_share(real, fake, manifold_radii(fake, k))
    return precision, recall


# --------------------------------------------------------------------------- one comparison, and the references


@dataclass(frozen=True)
class Comparison:
    """One set against the real cells (half A)."""

    n_real: int
    n_other: int
    kid: float | None
    kid_std: float | None
    precision: float | None
    recall: float | None


def compare(real: np.ndarray, other: np.ndarray, k: int = NEIGHBOURS, seed: int = 0) -> Comparison:
    """KID and precision/recall of ``other`` against ``real`` (None where a set is too small)."""
    k_value = k_std = precision = recall = None
    if len(real) >= 2 and len(other) >= 2:
        k_value, k_std = kid(real, other, seed=seed)
    if len(real) > k and len(other) > k:
        precision, recall = precision_recall(real, other, k)
    return Comparison(len(real), len(other), k_value, k_std, precision, recall)


def noise_like(images: np.ndarray, seed: int = 0) -> np.ndarray:
    """Coloured noise: per image, Gaussian pixels with that image's per-channel mean and spread (what a failed
    generator draws: the right colours, no cell)."""
    rng = np.random.default_rng(seed)
    x = np.asarray(images, np.float32)
    mean = x.mean(axis=(1, 2), keepdims=True)
    std = x.std(axis=(1, 2), keepdims=True)
    return np.clip(np.rint(rng.normal(mean, std, x.shape)), 0, 255).astype(np.uint8)


def blurred(images: np.ndarray) -> np.ndarray:
    """Each image under a Gaussian blur of ``BLUR`` of its side."""
    out = [np.asarray(Image.fromarray(im).filter(ImageFilter.GaussianBlur(BLUR * max(im.shape[:2])))) for im in images]
    return np.stack(out) if out else np.asarray(images)


@dataclass(frozen=True)
class ClassFidelity:
    """The samples of one class against its real cells, beside the floor and the two ceilings."""

    n_reference: int  # real cells of the class measured (split into halves A and B)
    samples: Comparison
    floor: Comparison  # real half B against half A
    noise: Comparison  # coloured noise (from half B) against half A
    blurred: Comparison  # half B blurred against half A

    def rows(self) -> list[tuple[str, Comparison]]:
        return [("samples", self.samples), ("real (floor)", self.floor), ("blurred real", self.blurred),
                ("coloured noise (ceiling)", self.noise)]  # fmt: skip


Embed = Callable[[np.ndarray], np.ndarray]


def measure(
    reference: np.ndarray, synthetic_features: np.ndarray, embed: Embed, k: int = NEIGHBOURS, seed: int = 0
) -> ClassFidelity:
    """Fidelity of samples (their features) against ``reference`` real cells (uint8 images at the samples'
    resolution), with the floor and ceilings of the module docstring; ``embed`` maps images to features."""
    order = np.random.default_rng(seed).permutation(len(reference))
    half = math.ceil(len(order) / 2)
    a, b = np.sort(order[:half]), np.sort(order[half:])
    features_a = embed(reference[a])
    features_b = embed(reference[b])
    ceiling = reference[b[:CEILING_MAX]]
    return ClassFidelity(
        n_reference=len(reference),
        samples=compare(features_a, np.asarray(synthetic_features), k, seed),
        floor=compare(features_a, features_b, k, seed),
        noise=compare(features_a, embed(noise_like(ceiling, seed)), k, seed),
        blurred=compare(features_a, embed(blurred(ceiling)), k, seed),
    )
