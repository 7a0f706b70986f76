"""The paired bootstrap of ``evaluate --compare``: each redraw's macro-F1 equals scikit-learn's on the drawn rows, and
the interval says a difference is shown only where the images can show it."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from wbc_data.train.metrics import macro_f1
from wbc_data.train.significance import draw_counts, paired_bootstrap, weighted_macro_f1


def _predictions(rng: np.random.Generator, n: int, classes: int, accuracy: float) -> tuple[np.ndarray, np.ndarray]:
    truth = rng.integers(0, classes, n)
    wrong = rng.random(n) > accuracy
    predicted = np.where(wrong, rng.integers(0, classes + 2, n), truth)  # some calls of classes never true
    return truth, predicted


def test_each_redraw_scores_as_scikit_learn_does_on_the_drawn_rows():
    rng = np.random.default_rng(0)
    for n, classes in ((27, 9), (200, 13), (12, 5)):
        truth, predicted = _predictions(rng, n, classes, 0.6)
        drawn, counts = draw_counts(rng, n, 40)
        fast = weighted_macro_f1(truth, predicted, counts)
        for k in range(len(drawn)):
            t, p = truth[drawn[k]], predicted[drawn[k]]
            expected = f1_score(t, p, labels=np.unique(t), average="macro", zero_division=0)
            assert fast[k] == pytest.approx(expected, abs=1e-12), (n, k)
        whole = weighted_macro_f1(truth, predicted, np.ones((1, n)))[0]
        assert whole == pytest.approx(macro_f1(truth, predicted), abs=1e-12)


def test_counts_are_how_often_each_image_was_drawn():
    drawn, counts = draw_counts(np.random.default_rng(1), 50, 7)
    assert counts.shape == (7, 50) and (counts.sum(axis=1) == 50).all()
    for k in range(7):
        assert (np.bincount(drawn[k], minlength=50) == counts[k]).all()


def test_a_clear_difference_is_shown_and_a_small_sample_shows_none():
    rng = np.random.default_rng(2)
    truth, weak = _predictions(rng, 600, 9, 0.55)
    strong = np.where(rng.random(600) < 0.6, truth, weak)  # right where the weak one was, and more
    clear = paired_bootstrap(truth, weak, strong, ("weak", "strong"), resamples=500)
    assert clear.difference > 0.15 and clear.shown and clear.low > 0 and clear.second_better > 0.99
    assert "strong is better" in clear.describe()
    reverse = paired_bootstrap(truth, strong, weak, ("strong", "weak"), resamples=500)
    assert reverse.difference == pytest.approx(-clear.difference) and reverse.shown and reverse.high < 0
    equal = np.where(rng.random(600) < 0.55, truth, rng.integers(0, 11, 600))  # as good, wrong on other images
    few = paired_bootstrap(truth[:20], weak[:20], equal[:20], ("weak", "equal"), resamples=500)
    assert few.low < 0 < few.high and not few.shown, few  # 20 images cannot tell these apart
    assert "do not show which model is better" in few.describe()


def test_the_same_predictions_differ_by_nothing_and_the_figures_repeat():
    rng = np.random.default_rng(3)
    truth, predicted = _predictions(rng, 80, 6, 0.7)
    same = paired_bootstrap(truth, predicted, predicted, ("a", "b"), resamples=300)
    assert same.difference == same.low == same.high == 0.0 and not same.shown and same.second_better == 0.0
    other = np.where(rng.random(80) < 0.2, (predicted + 1) % 6, predicted)
    once = paired_bootstrap(truth, predicted, other, ("a", "b"), resamples=300)
    again = paired_bootstrap(truth, predicted, other, ("a", "b"), resamples=300)
    assert once == again  # seeded: a report does not change between runs
