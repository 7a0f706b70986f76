"""Is a difference in macro-F1 between two models on the same images more than the luck of which images were drawn?

``evaluate --compare`` scores two models on exactly the same real images, but a test set of a rare class holds a
handful of them: in the demo, 27 test images in 9 classes, where one image moves a class's F1 by a third. A paired
bootstrap (Efron and Tibshirani, 1993; the usual check when two systems are scored on one test set) answers how far
the difference would move with other images like these: the images are drawn again with replacement, both models
are scored on each draw (the same draw for both: the pairing), and the spread of the difference gives a 95%
percentile interval. An interval that holds 0 means the images do not show which model is better.

Each draw's macro-F1 is computed from per-class counts weighted by how often each image was drawn, a block of draws
in a few matrix products, instead of calling scikit-learn twice per draw: the same value as scikit-learn's
``f1_score(average="macro", labels=<classes present in the draw>, zero_division=0)`` on the drawn rows, which is how
:func:`wbc_data.train.metrics.macro_f1` scores (``tests/test_significance.py`` compares them draw by draw).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RESAMPLES = 2000
"""Draws of the test images (percentile intervals settle at a few thousand; 2,000 x 10,000 images take a second)."""

LEVEL = 0.95

BLOCK_CELLS = 1 << 23
"""Draw-by-image counts held at a time (64 MB of float64), so memory stays flat for any number of images."""


@dataclass(frozen=True)
class PairedDifference:
    """``second`` minus ``first`` in macro-F1 on the same images, and how far it moves over redrawn images."""

    first: str
    second: str
    difference: float  # on the images as they are
    low: float  # the LEVEL percentile interval of the difference over the draws
    high: float
    second_better: float  # share of draws in which the second model scores higher
    images: int
    resamples: int

    @property
    def shown(self) -> bool:
        """The interval excludes 0: these images show a difference."""
        return self.low > 0 or self.high < 0

    def describe(self) -> str:
        """One line for the terminal and the report."""
        if self.shown:
            verdict = f"{self.second if self.difference > 0 else self.first} is better on these images"
        else:
            verdict = "the interval holds 0: these images do not show which model is better"
        return (
            f"macro-F1 {self.second} - {self.first}: {self.difference:+.3f} ({LEVEL:.0%} paired-bootstrap interval "
            f"{self.low:+.3f} to {self.high:+.3f} over {self.resamples:,} redraws of the {self.images:,} images; "
            f"{self.second} higher in {self.second_better:.0%} of them): {verdict}"
        )

    def short(self) -> str:
        """A few words for a one-line summary (the demo's)."""
        verdict = "" if self.shown else ", which holds 0"
        return (f"{self.second} - {self.first} {self.difference:+.3f}, {LEVEL:.0%} interval {self.low:+.3f} to "
                f"{self.high:+.3f}{verdict}")  # fmt: skip

    def as_dict(self) -> dict[str, float | int | str | bool]:
        return {"first": self.first, "second": self.second, "difference": self.difference, "low": self.low,
                "high": self.high, "second_better": self.second_better, "images": self.images,
                "resamples": self.resamples, "level": LEVEL, "shown": self.shown}  # fmt: skip


def weighted_macro_f1(truth: np.ndarray, predicted: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Macro-F1 over the classes present (weight > 0 in the truth) for each row of ``weights`` ((d, n): how often
    each of the n images counts in each of d draws); F1 is 0 for a present class never predicted right."""
    classes = np.union1d(truth, predicted)
    is_true = (truth[:, None] == classes[None, :]).astype(np.float64)  # (n, C)
    is_predicted = (predicted[:, None] == classes[None, :]).astype(np.float64)
    w = np.asarray(weights, dtype=np.float64)
    support = w @ is_true  # (d, C)
    hits = w @ (is_true * is_predicted)
    called = w @ is_predicted
    denominator = support + called  # 2 TP + FP + FN
    f1 = np.divide(2 * hits, denominator, out=np.zeros_like(hits), where=denominator > 0)
    present = support > 0
    return (f1 * present).sum(axis=1) / np.maximum(present.sum(axis=1), 1)


def draw_counts(rng: np.random.Generator, images: int, draws: int) -> tuple[np.ndarray, np.ndarray]:
    """``draws`` redraws of ``images`` images with replacement: the drawn indices (draws, images) and how often each
    image was drawn (draws, images)."""
    drawn = rng.integers(0, images, size=(draws, images))
    offsets = (np.arange(draws) * images)[:, None]
    counts = np.bincount((drawn + offsets).ravel(), minlength=draws * images).reshape(draws, images)
    return drawn, counts


def paired_bootstrap(truth: np.ndarray, first: np.ndarray, second: np.ndarray, names: tuple[str, str],
                     resamples: int = RESAMPLES, seed: int = 0) -> PairedDifference:  # fmt: skip
    """The difference ``second`` - ``first`` in macro-F1 (class indices, one per image) and its interval over
    ``resamples`` paired redraws of the images (seeded: the same figures every run)."""
    truth, first, second = (np.asarray(a, dtype=np.int64) for a in (truth, first, second))
    n = len(truth)
    if not n:
        raise ValueError("no images to compare on")
    ones = np.ones((1, n))
    difference = float(weighted_macro_f1(truth, second, ones)[0] - weighted_macro_f1(truth, first, ones)[0])
    rng = np.random.default_rng(seed)
    block = max(1, BLOCK_CELLS // n)
    differences = []
    for start in range(0, resamples, block):
        _, counts = draw_counts(rng, n, min(block, resamples - start))
        differences.append(weighted_macro_f1(truth, second, counts) - weighted_macro_f1(truth, first, counts))
    spread = np.concatenate(differences)
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(spread, [tail, 100 - tail])
    return PairedDifference(names[0], names[1], difference, float(low), float(high), float((spread > 0).mean()), n,
                            resamples)  # fmt: skip
