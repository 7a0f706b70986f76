"""Per-class F1 of two classifiers on the same real test rows, with paired bootstrap confidence intervals.

Paired: each resample draws the same rows for both arms, so the interval of the *change* reflects how much the test
set alone could move it (it does not cover training noise: that needs several seeds per arm). F1 per class is
computed from counts for all resamples at once; ``tests/test_experiment.py`` holds it equal to scikit-learn's.
``wbc-data experiment`` judges its arms with it, and ``evaluate --compare`` says with it whether the images can tell
two models apart (:class:`Difference`): on the demo's 27 test images a change of 0.03 in macro-F1 is noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from wbc_data.core.taxonomy import CLASSES

CHUNK = 256
"""Resamples computed at once (memory: CHUNK x rows booleans per class)."""


def f1_from_counts(truth: np.ndarray, predicted: np.ndarray, label: str) -> np.ndarray:
    """F1 of ``label`` along the last axis (one value per row of a 2-d array of resampled labels); 0 where the
    class is neither true nor predicted, as scikit-learn's ``zero_division=0``."""
    is_true, is_predicted = truth == label, predicted == label
    tp = (is_true & is_predicted).sum(-1)
    wrong = (is_true ^ is_predicted).sum(-1)
    denominator = 2 * tp + wrong
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)


def _runs(predictions: Sequence[str] | Sequence[Sequence[str]]) -> np.ndarray:
    """(runs, rows) labels: one run's predictions, or several runs' (training seeds) on the same rows."""
    array = np.asarray(predictions, dtype=object)
    return (array[None, :] if array.ndim == 1 else array).astype(str)


def paired_bootstrap(
    truth: Sequence[str],
    without: Sequence[str] | Sequence[Sequence[str]],
    with_synthetic: Sequence[str] | Sequence[Sequence[str]],
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    arms: tuple[str, str] = ("without", "with"),
) -> pd.DataFrame:
    """One row per class present in ``truth`` plus ``macro``: support, F1 without and with, their change, and
    percentile intervals of each from ``resamples`` paired resamples of the rows. Each arm may be several runs
    (training seeds) on the same rows: an arm's F1 is then the mean over its runs, on every resample alike.
    ``arms`` names the two in the columns (``f1 <arm>``, ``<arm> low``, ``<arm> high``)."""
    t = np.asarray(truth, dtype=object).astype(str)
    runs_a, runs_b = _runs(without), _runs(with_synthetic)
    if not (len(t) == runs_a.shape[1] == runs_b.shape[1]) or not len(t):
        raise ValueError("truth and both arms' predictions must be equally long and not empty")
    labels = sorted(set(t), key=lambda c: (CLASSES.index(c) if c in CLASSES else len(CLASSES), c))
    rng = np.random.default_rng(seed)
    draws = {label: ([], []) for label in labels}
    for start in range(0, resamples, CHUNK):
        index = rng.integers(0, len(t), size=(min(CHUNK, resamples - start), len(t)))
        rt = t[index]
        for label in labels:
            draws[label][0].append(np.mean([f1_from_counts(rt, a[index], label) for a in runs_a], 0))
            draws[label][1].append(np.mean([f1_from_counts(rt, b[index], label) for b in runs_b], 0))
    tail = (1 - confidence) / 2 * 100
    rows = []
    stacked = {label: (np.concatenate(x), np.concatenate(y)) for label, (x, y) in draws.items()}
    macro = (np.mean([v[0] for v in stacked.values()], 0), np.mean([v[1] for v in stacked.values()], 0))
    for label, (fa, fb) in [*stacked.items(), ("macro", macro)]:
        if label == "macro":
            point_a = float(np.mean([_mean_f1(t, runs_a, x) for x in labels]))
            point_b = float(np.mean([_mean_f1(t, runs_b, x) for x in labels]))
            support = len(t)
        else:
            point_a, point_b = _mean_f1(t, runs_a, label), _mean_f1(t, runs_b, label)
            support = int((t == label).sum())
        low_a, high_a = np.percentile(fa, [tail, 100 - tail])
        low_b, high_b = np.percentile(fb, [tail, 100 - tail])
        low_d, high_d = np.percentile(fb - fa, [tail, 100 - tail])
        rows.append(
            {
                "class": label,
                "support": support,
                f"f1 {arms[0]}": point_a,
                f"{arms[0]} low": low_a,
                f"{arms[0]} high": high_a,
                f"f1 {arms[1]}": point_b,
                f"{arms[1]} low": low_b,
                f"{arms[1]} high": high_b,
                "change": point_b - point_a,
                "change low": low_d,
                "change high": high_d,
            }
        )
    return pd.DataFrame(rows)


def _mean_f1(truth: np.ndarray, runs: np.ndarray, label: str) -> float:
    return float(np.mean([f1_from_counts(truth, run, label) for run in runs]))


def per_run(truth: Sequence[str], without: Sequence[Sequence[str]], with_synthetic: Sequence[Sequence[str]],
            label: str) -> pd.DataFrame:  # fmt: skip
    """Per training seed: ``label``'s F1 and the macro-F1 of both arms, and the change: training noise, seen."""
    t = np.asarray(truth, dtype=object).astype(str)
    labels = sorted(set(t))
    rows = []
    for k, (a, b) in enumerate(zip(_runs(without), _runs(with_synthetic), strict=True)):
        macro_a = float(np.mean([f1_from_counts(t, a, x) for x in labels]))
        macro_b = float(np.mean([f1_from_counts(t, b, x) for x in labels]))
        fa, fb = float(f1_from_counts(t, a, label)), float(f1_from_counts(t, b, label))
        rows.append({"run": k, f"{label} without": fa, f"{label} with": fb, "change": fb - fa,
                     "macro without": macro_a, "macro with": macro_b, "macro change": macro_b - macro_a})  # fmt: skip
    return pd.DataFrame(rows)


def verdict(row: pd.Series, run_changes: Sequence[float] | None = None) -> str:
    """``helped`` or ``hurt`` when the interval of the change excludes zero and every training run moved the same
    way; ``seeds disagree`` when the interval excludes zero but some run moved the other way (training noise is as
    large as the effect); else ``no detectable change``."""
    if row["change low"] <= 0 <= row["change high"]:
        return "no detectable change"
    sign = 1 if row["change low"] > 0 else -1
    if run_changes is not None and any(sign * change <= 0 for change in run_changes):
        return "seeds disagree"
    return "helped" if sign > 0 else "hurt"


@dataclass(frozen=True)
class Difference:
    """The macro-F1 change from ``first`` to ``second`` on the same images, and its paired bootstrap interval."""

    first: str
    second: str
    change: float
    low: float
    high: float
    images: int
    resamples: int
    confidence: float

    @classmethod
    def from_table(cls, table: pd.DataFrame, arms: tuple[str, str], resamples: int, confidence: float) -> Difference:
        """The ``macro`` row of :func:`paired_bootstrap`'s table."""
        macro = table.set_index("class").loc["macro"]
        return cls(arms[0], arms[1], float(macro["change"]), float(macro["change low"]), float(macro["change high"]),
                   int(macro["support"]), resamples, confidence)  # fmt: skip

    @property
    def shown(self) -> bool:
        """The interval excludes 0: these images show which model is better."""
        return self.low > 0 or self.high < 0

    def describe(self) -> str:
        """One line for the terminal and the report."""
        if self.shown:
            verdict = f"{self.second if self.low > 0 else self.first} is better on these images"
        else:
            verdict = "the interval holds 0: these images do not show which model is better"
        return (
            f"macro-F1 {self.second} - {self.first}: {self.change:+.3f} ({self.confidence:.0%} paired bootstrap "
            f"interval {self.low:+.3f} to {self.high:+.3f} over {self.resamples:,} redraws of the {self.images:,} "
            f"images): {verdict}"
        )

    def short(self) -> str:
        """A few words for a one-line summary (the demo's step line)."""
        holds = "" if self.shown else ", which holds 0"
        return (f"{self.second} - {self.first} {self.change:+.3f}, {self.confidence:.0%} interval {self.low:+.3f} to "
                f"{self.high:+.3f}{holds}")  # fmt: skip

    def as_dict(self) -> dict[str, float | int | str | bool]:
        return {"first": self.first, "second": self.second, "change": self.change, "low": self.low,
                "high": self.high, "images": self.images, "resamples": self.resamples,
                "confidence": self.confidence, "shown": self.shown}  # fmt: skip
