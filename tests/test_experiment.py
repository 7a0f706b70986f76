"""`wbc-data experiment` on a small real split (PBC cells of four classes, LY kept rare): the generator learns from
exactly the classifier's real training rows, the samples reach the second arm only, the user's workspace is left as
it was, both arms are scored on the same real test rows with paired bootstrap intervals that match scikit-learn, and
a re-run redoes nothing. The bootstrap itself is checked against scikit-learn on hand-made predictions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from tests.train_helpers import one_thread, real_workspace  # noqa: F401  (one_thread: autouse)
from wbc_data.core.stages import load_view
from wbc_data.core.workspace import Workspace
from wbc_data.experiment.run import ExperimentError, ExperimentOptions, run_experiment
from wbc_data.train.bootstrap import Difference, paired_bootstrap, verdict


def _hand_made(n: int = 400, seed: int = 0):
    rng = np.random.default_rng(seed)
    truth = rng.choice(["SNE", "LY", "PMY"], size=n, p=[0.5, 0.3, 0.2])
    without = np.where(rng.random(n) < 0.6, truth, rng.choice(["SNE", "LY", "PMY"], size=n))
    better = np.where(rng.random(n) < 0.9, truth, rng.choice(["SNE", "LY", "PMY"], size=n))
    return truth, without, better


def test_paired_bootstrap_matches_scikit_learn_and_says_what_changed():
    truth, without, better = _hand_made()
    table = paired_bootstrap(truth, without, better, resamples=500).set_index("class")
    for label in ("SNE", "LY", "PMY"):
        expected = f1_score(truth, without, labels=[label], average="macro", zero_division=0)
        assert table.loc[label, "f1 without"] == pytest.approx(expected)
        assert table.loc[label, "f1 with"] == pytest.approx(f1_score(truth, better, labels=[label], average="macro"))
        assert table.loc[label, "support"] == int((truth == label).sum())
        for arm in ("without", "with"):
            assert table.loc[label, f"{arm} low"] <= table.loc[label, f"f1 {arm}"] <= table.loc[label, f"{arm} high"]
    assert table.loc["macro", "f1 without"] == pytest.approx(f1_score(truth, without, average="macro"))
    assert verdict(table.loc["PMY"]) == "helped" and table.loc["PMY", "change low"] > 0
    reverse = paired_bootstrap(truth, better, without, resamples=500).set_index("class")
    assert verdict(reverse.loc["PMY"]) == "hurt"
    same = paired_bootstrap(truth, without, without, resamples=200).set_index("class")
    assert (same["change low"] == 0).all() and (same["change high"] == 0).all()
    assert verdict(same.loc["LY"]) == "no detectable change"
    assert verdict(table.loc["PMY"], [0.2, 0.3]) == "helped"
    assert verdict(table.loc["PMY"], [0.2, -0.1]) == "seeds disagree"  # one training run moved the other way
    wide = paired_bootstrap(truth[:40], without[:40], better[:40], resamples=500).set_index("class")
    narrow = table
    assert (wide.loc["PMY", "change high"] - wide.loc["PMY", "change low"]) > (
        narrow.loc["PMY", "change high"] - narrow.loc["PMY", "change low"]
    )  # ten times fewer test rows, a wider interval


def test_the_macro_difference_says_whether_the_images_tell_two_models_apart():
    truth, without, better = _hand_made()
    arms = ("model-a", "model-b")
    table = paired_bootstrap(truth, without, better, resamples=500, arms=arms)
    assert {"f1 model-a", "model-a low", "f1 model-b", "model-b high"} <= set(table.columns)  # named arms
    clear = Difference.from_table(table, arms, 500, 0.95)
    macro = table.set_index("class").loc["macro"]
    assert clear.change == pytest.approx(macro["f1 model-b"] - macro["f1 model-a"]) and clear.images == len(truth)
    assert clear.shown and clear.low > 0 and "model-b is better on these images" in clear.describe()
    reverse = Difference.from_table(paired_bootstrap(truth, better, without, resamples=500, arms=arms), arms, 500, 0.95)
    assert reverse.shown and reverse.high < 0 and "model-a is better" in reverse.describe()
    rng = np.random.default_rng(5)  # as good as ``without``, wrong on other rows: 25 rows cannot tell them apart
    other = np.where(rng.random(len(truth)) < 0.6, truth, rng.choice(["SNE", "LY", "PMY"], size=len(truth)))
    few = Difference.from_table(paired_bootstrap(truth[:25], without[:25], other[:25], resamples=500, arms=arms),
                                arms, 500, 0.95)  # fmt: skip
    assert few.low < 0 < few.high and not few.shown, few
    assert "do not show which model is better" in few.describe() and "which holds 0" in few.short()
    assert few.as_dict()["shown"] is False and clear.as_dict()["change"] == clear.change


def test_options_refuse_what_cannot_run():
    with pytest.raises(ExperimentError, match="--hold-rare"):
        ExperimentOptions()
    with pytest.raises(ExperimentError, match="not a class"):
        ExperimentOptions(hold_rare={"XYZ": 3})
    with pytest.raises(ExperimentError, match="synthetic-ratio"):
        ExperimentOptions(hold_rare={"LY": 3}, synthetic_ratio=1.5)


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("experiment")
    ws = real_workspace(tmp, per_class=30)
    before = sorted(p.name for p in ws.sources_dir.iterdir())
    options = ExperimentOptions(
        hold_rare={"LY": 4},
        n=6,
        classifier="tiny-cpu",
        classifier_overrides=["members.0.stages.0.epochs=2", "members.1.stages.0.epochs=1",
                              "members.1.stages.1.epochs=1"],
        generator="tiny-latent",
        generator_steps=10,
        sample_steps=3,
        fidelity_gate=False,  # a generator of 10 steps draws no plausible cell; the gate is tested in test_synth_*
        seeds=2,
        resamples=300,
        out=tmp / "exp",
    )  # fmt: skip
    result = run_experiment(ws, options)
    return ws, options, result, before


@pytest.mark.slow
def test_generator_learns_from_the_classifiers_own_rows_and_the_user_workspace_is_untouched(experiment):
    ws, _options, result, before = experiment
    out = result.out
    from wbc_data.synth.generator import training_rows
    from wbc_data.train.run import read_roles

    roles = read_roles(out / "without")
    trained = set(roles.loc[roles["role"] == "train", "sample_id"])
    generator_rows = training_rows(out / "generator" / "generator")
    assert set(generator_rows["sample_id"]) == trained
    assert (generator_rows["label"] == "LY").sum() == 4  # held rare for both
    assert sorted(p.name for p in ws.sources_dir.iterdir()) == before  # no synthetic source in the user's workspace
    frame = load_view(ws).frame
    assert "is_synthetic" not in frame.columns or not frame["is_synthetic"].fillna(False).astype(bool).any()
    forked = load_view(Workspace(out / "workspace")).frame
    synthetic = forked[forked["is_synthetic"].fillna(False).astype(bool)]
    assert len(synthetic) == result.synthetic["accepted"] == 6 and set(synthetic["label"]) == {"LY"}
    with_roles = read_roles(out / "with")
    assert set(synthetic["sample_id"]) <= set(with_roles.loc[with_roles["role"] == "train", "sample_id"])
    assert not set(synthetic["sample_id"]) & set(roles["sample_id"])  # the arm without never saw them


@pytest.mark.slow
def test_both_arms_on_the_same_real_test_rows_with_intervals(experiment):
    _ws, _options, result, _ = experiment
    out = result.out
    predictions = pd.read_parquet(out / "evaluation" / "predictions.parquet")
    assert len(predictions) == result.test_rows and not predictions["sample_id"].duplicated().any()
    table = result.table.set_index("class")
    ly = predictions["label"] == "LY"
    assert table.loc["LY", "support"] == int(ly.sum()) > 4  # the held-out LY are tested
    for arm, column in (("without", "predicted"), ("with", "predicted with")):  # run 0's report: evaluation/
        expected = f1_score(predictions["label"], predictions[column], labels=["LY"], average="macro", zero_division=0)
        assert result.runs.loc[0, f"LY {arm}"] == pytest.approx(expected)
    assert result.verdict == verdict(table.loc["LY"], result.runs["change"].tolist())
    saved = json.loads((out / "result.json").read_text())
    assert saved["verdict"] == result.verdict and saved["rare"] == "LY"
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64") >= 2  # the change per class and the samples' grid
    opening = {"helped": "Synthetic LY cells helped", "hurt": "Synthetic LY cells hurt",
               "no detectable change": "Synthetic LY cells did not help detectably",
               "seeds disagree": "Synthetic LY cells did not change LY F1 consistently"}[result.verdict]  # fmt: skip
    assert saved["answer"].startswith(opening)


@pytest.mark.slow
def test_a_rerun_redoes_nothing(experiment):
    ws, options, result, _ = experiment
    state = json.loads((result.out / "experiment.json").read_text())
    assert state["done"] == ["workspace", "classifier without", "generator", "samples", "classifier with",
                             "classifier without-seed1", "classifier with-seed1"]  # fmt: skip
    stamps = {p: p.stat().st_mtime_ns for p in (result.out / "without").rglob("*.json")}
    again = run_experiment(ws, options)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # the trained arm was not retrained
    assert again.table.equals(result.table)


@pytest.mark.slow
def test_a_second_training_seed_keeps_the_rows_and_is_averaged(experiment):
    """``seeds=2``: the second run of each arm trains on the same rows with another seed; an arm's F1 is the mean
    of its runs, and the per-run table shows each."""
    from wbc_data.train.recipe import load_recipe
    from wbc_data.train.run import read_roles

    _ws, _options, result, _ = experiment
    out = result.out
    first, second = read_roles(out / "without"), read_roles(out / "without-seed1")
    assert set(first.loc[first["role"] == "train", "sample_id"]) == set(second.loc[second["role"] == "train",
                                                                                    "sample_id"])  # fmt: skip
    assert (
        load_recipe(out / "without-seed1" / "recipe.yaml").seed == load_recipe(out / "without" / "recipe.yaml").seed + 1
    )
    runs = result.runs
    assert len(runs) == 2
    table = result.table.set_index("class")
    assert table.loc["LY", "f1 without"] == pytest.approx(runs["LY without"].mean())
    assert table.loc["LY", "f1 with"] == pytest.approx(runs["LY with"].mean())
    assert table.loc["macro", "f1 with"] == pytest.approx(runs["macro with"].mean())
    assert "Per training seed" in (out / "report.md").read_text()


def test_other_options_start_afresh_and_more_seeds_do_not(tmp_path):
    from wbc_data.experiment.run import STATE, _state

    old = ExperimentOptions(hold_rare={"PMY": 13}, n=100)
    (tmp_path / "without-seed1").mkdir()
    (tmp_path / "report.html").write_text("old")
    (tmp_path / STATE).write_text(json.dumps({"key": old.key(), "done": ["workspace"], "seconds": {}}))
    assert _state(tmp_path, ExperimentOptions(hold_rare={"PMY": 13}, n=100, seeds=3))["done"] == ["workspace"]
    assert (tmp_path / "without-seed1").is_dir()
    assert _state(tmp_path, ExperimentOptions(hold_rare={"PMY": 13}, n=200))["done"] == []
    assert not (tmp_path / "without-seed1").exists() and not (tmp_path / "report.html").exists()


def test_the_fork_leaves_the_users_synthetic_rows_behind(tmp_path):
    """An experiment compares real rows with real rows plus its own samples: a workspace that already holds
    synthetic rows is forked without them, its stage results still fresh, and the original is untouched."""
    from wbc_data.core.rows import is_synthetic
    from wbc_data.experiment.run import fork_workspace

    ws = real_workspace(tmp_path, per_class=8, synthetic=5)
    before = load_view(ws).frame
    assert is_synthetic(before).sum() == 5
    forked = fork_workspace(ws, tmp_path / "fork")
    view = load_view(forked)
    assert not is_synthetic(view.frame).any() and len(view.frame) == len(before) - 5
    view.require("split", "the experiment")  # fresh for every real row
    assert sorted(p.name for p in forked.sources_dir.iterdir()) == ["pbc.parquet"]
    assert is_synthetic(load_view(ws).frame).sum() == 5
