"""Classification metrics, all from scikit-learn, over the classes present in the evaluation set.

Macro-F1 is WBCBench 2026's metric. Averages run over the classes that occur in the truth (a 9-class test set is
scored on its 9 classes); predicting a class that is not there still costs recall of the true class.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from wbc_data.core.taxonomy import CLASSES, COARSE_GROUPS


@dataclass
class Metrics:
    n: int
    accuracy: float
    macro_f1: float
    balanced_accuracy: float
    per_class: pd.DataFrame  # class, support, predicted, precision, recall, f1, accuracy (one-vs-rest)
    confusion: pd.DataFrame  # true class (rows) x predicted class (columns), counts

    def summary(self) -> dict[str, float | int]:
        return {
            "n": self.n,
            "macro_f1": self.macro_f1,
            "balanced_accuracy": self.balanced_accuracy,
            "accuracy": self.accuracy,
        }


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Macro-F1 over the classes in ``y_true`` (0 for an empty set)."""
    from sklearn.metrics import f1_score

    if not len(y_true):
        return 0.0
    return float(f1_score(y_true, y_pred, labels=np.unique(y_true), average="macro", zero_division=0))


def _balanced_accuracy(t: np.ndarray, p: np.ndarray) -> float:
    """Mean recall over the true classes; a prediction of a class absent from the truth is an error, not news."""
    from sklearn.metrics import balanced_accuracy_score

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        return float(balanced_accuracy_score(t, p))


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], names: Sequence[str] = CLASSES) -> Metrics:
    """Every figure ``evaluate`` reports, for class indices into ``names``."""
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        multilabel_confusion_matrix,
        precision_recall_fscore_support,
    )

    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    if not len(t):
        raise ValueError("no rows to score")
    labels = np.unique(t)
    precision, recall, f1, support = precision_recall_fscore_support(t, p, labels=labels, zero_division=0)
    one_vs_rest = multilabel_confusion_matrix(t, p, labels=labels)
    per_class = pd.DataFrame(
        {
            "class": [names[i] for i in labels],
            "support": support.astype(int),
            "predicted": [int((p == i).sum()) for i in labels],
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "accuracy": (one_vs_rest[:, 0, 0] + one_vs_rest[:, 1, 1]) / len(t),
        }
    )
    shown = np.union1d(labels, np.unique(p))  # a class predicted but absent from the truth gets a column
    matrix = confusion_matrix(t, p, labels=shown)
    confusion = pd.DataFrame(matrix, index=[names[i] for i in shown], columns=[names[i] for i in shown])
    confusion = confusion.loc[[names[i] for i in labels]]
    confusion.index.name = "true"
    return Metrics(
        n=len(t),
        accuracy=float(accuracy_score(t, p)),
        macro_f1=float(per_class["f1"].mean()),
        balanced_accuracy=_balanced_accuracy(t, p),
        per_class=per_class,
        confusion=confusion,
    )


# --------------------------------------------------------------------------- the literature's granularity

PUBLISHED_GROUPS = ("neutrophil", "IG")
"""Groups that public PBC classifiers report as one class (PBC's folders: neutrophil = SNE + BNE, ig = MY + MMY +
PMY): their 96-99.5% accuracies are at this granularity, not at WBCBench's 13 classes."""


def coarse(indices: np.ndarray, names: Sequence[str] = CLASSES) -> np.ndarray:
    """Class indices with each published group's members folded onto the group's first member."""
    folded = np.arange(len(names))
    for group in PUBLISHED_GROUPS:
        members = [names.index(code) for code in COARSE_GROUPS[group] if code in names]
        folded[members] = min(members)
    return folded[np.asarray(indices, dtype=np.int64)]


def coarse_summary(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Macro-F1 and accuracy with neutrophils and immature granulocytes each one class: the figure to set beside
    published PBC results."""
    t, p = coarse(y_true), coarse(y_pred)
    return {"macro_f1 coarse": macro_f1(t, p), "accuracy coarse": float((t == p).mean()) if len(t) else 0.0}


# --------------------------------------------------------------------------- decision rules beside the argmax


def sampling_prior(train_labels: np.ndarray, mode: str, n_classes: int = len(CLASSES)) -> np.ndarray:
    """The class distribution the batch sampler showed the model (``balanced``: uniform over the training classes;
    ``sqrt``: by the square root of the counts; ``natural``: as counted)."""
    counts = np.bincount(np.asarray(train_labels, dtype=np.int64), minlength=n_classes).astype(np.float64)
    power = {"balanced": 0.0, "sqrt": 0.5, "natural": 1.0}[mode]
    prior = np.where(counts > 0, counts**power, 0.0)
    return prior / prior.sum()


def prior_weights(train_labels: np.ndarray, mode: str, n_classes: int = len(CLASSES)) -> np.ndarray:
    """Per-class factors that move a model trained under the sampler's prior back to the real training prior
    (Bayes' rule: p_real(c|x) is proportional to p_model(c|x) x real(c) / sampled(c)); 1 where there is no data."""
    counts = np.bincount(np.asarray(train_labels, dtype=np.int64), minlength=n_classes).astype(np.float64)
    real = counts / counts.sum()
    sampled = sampling_prior(train_labels, mode, n_classes)
    return np.where(sampled > 0, real / np.where(sampled > 0, sampled, 1.0), 1.0)


def fit_class_offsets(probabilities: np.ndarray, truth: np.ndarray, rounds: int = 3) -> np.ndarray:
    """Per-class log-offsets added to the log-probabilities before the argmax, fitted on validation to maximise
    macro-F1 (coordinate ascent over a grid, class by class; 0 where that helps nothing). Per-class thresholds in
    effect: a class is predicted when its shifted score beats every other's."""
    log_p = np.log(np.clip(probabilities, 1e-12, None))
    offsets = np.zeros(probabilities.shape[1])
    present = np.unique(truth)
    grid = np.linspace(-3.0, 3.0, 25)
    best = macro_f1(truth, (log_p + offsets).argmax(1))
    for _ in range(rounds):
        changed = False
        for c in present:
            keep = offsets[c]
            for value in grid:
                offsets[c] = value
                f1 = macro_f1(truth, (log_p + offsets).argmax(1))
                if f1 > best + 1e-9:
                    best, keep, changed = f1, value, True
            offsets[c] = keep
        if not changed:
            break
    return offsets


def decide(probabilities: np.ndarray, rule: str, decision: dict | None) -> np.ndarray:
    """Class indices under ``rule``: ``argmax``, ``prior`` (prior-corrected argmax) or ``thresholds`` (the offsets
    fitted on validation); ``decision`` holds ``prior_weights`` and ``offsets`` (13 each) saved with the model."""
    if rule == "argmax" or not decision:
        return probabilities.argmax(1)
    if rule == "prior":
        return (probabilities * np.asarray(decision["prior_weights"])).argmax(1)
    if rule == "thresholds":
        return (np.log(np.clip(probabilities, 1e-12, None)) + np.asarray(decision["offsets"])).argmax(1)
    raise ValueError(f"decision rule {rule!r}: argmax, prior or thresholds")
