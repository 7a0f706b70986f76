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

from wbc_data.core.taxonomy import CLASSES


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
