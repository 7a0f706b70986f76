"""Soft voting: the ensemble's probabilities are a weighted mean of its members'. Weights are uniform, or fitted on
validation by minimising the log-loss of the mixture (a smooth objective, so a handful of rare-class validation images
cannot swing the weights the way a search on macro-F1's steps would)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def soft_vote(probabilities: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    """Weighted mean of ``(n, classes)`` probability arrays (weights normalised; None: uniform)."""
    stack = np.stack([np.asarray(p, dtype=np.float64) for p in probabilities])
    w = np.ones(len(stack)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    return np.tensordot(w, stack, axes=1)


def fit_weights(probabilities: Sequence[np.ndarray], labels: np.ndarray) -> list[float]:
    """Member weights on the simplex minimising the mixture's negative log-likelihood of ``labels``."""
    from scipy.optimize import minimize

    k = len(probabilities)
    if k == 1:
        return [1.0]
    rows = np.arange(len(labels))
    picked = np.stack([np.asarray(p, dtype=np.float64)[rows, labels] for p in probabilities], axis=1)  # (n, k)

    def loss(z: np.ndarray) -> float:
        w = np.exp(z - z.max())
        w /= w.sum()
        return float(-np.log(np.clip(picked @ w, 1e-12, None)).mean())

    result = minimize(loss, np.zeros(k), method="Nelder-Mead", options={"xatol": 1e-4, "fatol": 1e-7})
    w = np.exp(result.x - result.x.max())
    return (w / w.sum()).tolist()
