"""`wbc-data train / evaluate / predict` end to end on real PBC cells (tiny recipe, CPU): the loss falls and macro-F1
beats chance, the ensemble averages its members, the saved folder is a `Classifier`, evaluate reports what
scikit-learn says (per source too, adding up), --compare scores two models on the same rows, predict writes a valid
WBCBench submission."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from tests.conftest import shared_path
from tests.train_helpers import one_thread, real_workspace  # noqa: F401  (one_thread: autouse)
from wbc_data.cli import app
from wbc_data.core.rows import select_rows
from wbc_data.core.stages import load_view
from wbc_data.core.taxonomy import CLASSES
from wbc_data.io.pixels import PixelLoader

runner = CliRunner()
LONGER = ["members.0.stages.0.epochs=12", "members.1.stages.1.epochs=11"]  # enough steps to learn 4 classes at 32 px


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A real 4-class PBC workspace (60 cells per class) and the tiny recipe's 2-member ensemble trained on it."""
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("train")
    ws = real_workspace(tmp, per_class=60)
    out = tmp / "model"
    sets = [arg for item in LONGER for arg in ("--set", item)]
    result = runner.invoke(app, ["train", "-r", "tiny-cpu", "-w", str(ws.root), "-o", str(out), *sets])
    assert result.exit_code == 0, result.output
    return ws, out, result.output


@pytest.mark.slow
def test_loss_falls_and_macro_f1_beats_chance(trained):
    _ws, out, output = trained
    assert "ensemble on validation: macro-F1" in output
    for member in ("tiny-effnet", "tiny-resnet"):
        history = pd.read_csv(out / "members" / member / "history.csv")
        assert len(history) == 12
        assert history["train_loss"].iloc[-3:].mean() < 0.75 * history["train_loss"].iloc[0]
    result = runner.invoke(app, ["evaluate", "-m", str(out)])  # the workspace recorded at training
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "evaluation" / "test" / "metrics.json").read_text())
    scores = metrics["models"]["model"]
    chance = 1 / 4  # four balanced classes
    assert scores["n"] == 4 * 12 and scores["macro_f1"] > chance + 0.15, scores


@pytest.mark.slow
def test_saved_folder_is_a_classifier_and_the_ensemble_averages_its_members(trained):
    from wbc_data.train.classifier import Classifier, load_classifier

    ws, out, _ = trained
    ensemble = load_classifier(out)
    members = [load_classifier(out / "members" / name) for name in ("tiny-effnet", "tiny-resnet")]
    assert isinstance(ensemble, Classifier) and all(isinstance(m, Classifier) for m in members)
    assert ensemble.classes == CLASSES
    rows = select_rows(load_view(ws).frame, ["test"]).head(10)
    loader = PixelLoader.for_workspace(ws)
    images = [loader.open(r) for r in rows.to_dict("records")]
    images.append(images[0].resize((120, 90)))  # any size, any aspect
    p = ensemble.predict_proba(images)
    assert p.shape == (11, 13) and np.allclose(p.sum(1), 1, atol=1e-5)
    weights = [m["weight"] for m in json.loads((out / "classifier.json").read_text())["members"]]
    expected = weights[0] * members[0].predict_proba(images) + weights[1] * members[1].predict_proba(images)
    assert np.allclose(p, expected / sum(weights), atol=1e-6)
    assert not np.allclose(members[0].predict_proba(images), members[1].predict_proba(images), atol=1e-3)
    features = ensemble.embed(images)
    widths = [m.embed(images[:2]).shape[1] for m in members]
    assert features.shape == (11, sum(widths)) and np.isfinite(features).all()
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: timm") and "tiny-effnet" in card and "Images per class" in card


@pytest.mark.slow
def test_evaluate_by_source_adds_up_and_draws_the_confusion_matrix_and_the_mistakes(trained, tmp_path):
    from wbc_data.train.evaluate import EvalOptions, evaluate

    class Recorded:  # a core Progress that keeps what evaluate told it
        def __init__(self):
            self.phases, self.done = [], []

        def phase(self, name, total=None):
            self.phases.append((name, total))

        def advance(self, done, total=None, **stats):
            self.done.append((done, total))

        def note(self, text):
            pass

    ws, out, _ = trained
    progress = Recorded()
    result = evaluate(ws, out, EvalOptions(by_source=True, out=tmp_path / "eval"), progress)
    assert progress.phases == [(f"predict {out.name}", len(result.rows))]
    assert progress.done[-1] == (len(result.rows), len(result.rows))
    score = result.scores[0]
    by_source = score.by_source.set_index("source")
    parts = by_source.drop(index="all")
    assert parts["n"].sum() == by_source.loc["all", "n"] == len(result.rows) == score.metrics.n
    assert parts["correct"].sum() == by_source.loc["all", "correct"]
    assert by_source.loc["all", "macro_f1"] == pytest.approx(score.metrics.macro_f1)
    per_class = score.by_source_classes
    summed = per_class[per_class["source"] != "all"].groupby("class")["support"].sum()
    assert summed.to_dict() == score.metrics.per_class.set_index("class")["support"].to_dict()
    png = tmp_path / "eval" / "confusion.png"
    with Image.open(png) as image:
        assert image.format == "PNG" and image.width > 200
    predictions = pd.read_parquet(tmp_path / "eval" / "predictions.parquet")
    assert set(predictions["predicted"]) <= set(CLASSES) and len(predictions) == score.metrics.n
    # the sheet of mistakes: the most frequent confusions of the confusion matrix, the most confident of each
    shown = pd.read_csv(tmp_path / "eval" / "mistakes.csv")
    wrong = predictions[predictions["label"] != predictions["predicted"]]
    assert len(wrong) > 0 and (shown["label"] != shown["predicted"]).all()
    confusion = score.metrics.confusion
    pairs = shown.drop_duplicates(["label", "predicted"])
    for pair in pairs.itertuples():
        assert pair.count == confusion.loc[pair.label, pair.predicted]
        of_pair = wrong[(wrong["label"] == pair.label) & (wrong["predicted"] == pair.predicted)]
        ids = shown[(shown["label"] == pair.label) & (shown["predicted"] == pair.predicted)]["sample_id"]
        expected = of_pair.sort_values(["confidence", "sample_id"], ascending=[False, True])["sample_id"]
        assert ids.tolist() == expected.head(len(ids)).tolist() and len(ids) == min(6, len(of_pair))
    counts = wrong.groupby(["label", "predicted"]).size()
    assert len(pairs) == min(6, len(counts)) and pairs["count"].tolist() == sorted(counts, reverse=True)[: len(pairs)]
    with Image.open(tmp_path / "eval" / "mistakes.png") as image:
        assert image.format == "PNG" and image.height > 160
    assert (tmp_path / "eval" / "report.html").read_text().count("data:image/png;base64") == 2  # confusion, mistakes


@pytest.mark.slow
def test_compare_scores_two_models_on_the_same_rows(trained, tmp_path):
    ws, out, _ = trained
    member = out / "members" / "tiny-resnet"
    result = runner.invoke(app, ["evaluate", "-m", str(out), "--compare", str(member), "-w", str(ws.root),
                                 "--by", "source", "-o", str(tmp_path / "cmp")])  # fmt: skip
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "cmp" / "compare.csv")
    first = pd.read_csv(tmp_path / "cmp" / "per_class.csv").set_index("class")
    second = pd.read_csv(tmp_path / "cmp" / "per_class-2.csv").set_index("class")
    assert table["class"].tolist() == first.index.tolist() == second.index.tolist()
    assert np.allclose(table["f1 model"], first["f1"], atol=1e-4)
    assert np.allclose(table["f1 model.tiny-resnet"], second["f1"], atol=1e-4)
    assert np.allclose(table["f1 change"], second["f1"] - first["f1"], atol=2e-4)
    assert first["support"].sum() == second["support"].sum()  # the same rows
    with Image.open(tmp_path / "cmp" / "compare.png") as image:
        assert image.format == "PNG"
    difference = json.loads((tmp_path / "cmp" / "metrics.json").read_text())["difference"]  # paired bootstrap
    assert difference["change"] == pytest.approx(second["f1"].mean() - first["f1"].mean(), abs=2e-4)
    assert difference["low"] <= difference["change"] <= difference["high"]
    assert difference["images"] == first["support"].sum() and difference["second"] == "model.tiny-resnet"
    assert (table["change low"] <= table["change high"]).all()  # each class's change has its interval too
    assert "paired bootstrap interval" in " ".join(result.output.split())


@pytest.mark.slow
def test_predict_writes_a_valid_submission(trained, tmp_path):
    ws, out, _ = trained
    folder = tmp_path / "phase2_test"
    folder.mkdir()
    source = shared_path("pbc", "PBC_dataset_normal_DIB", "neutrophil")
    names = sorted(p.name for p in source.glob("SNE_*.jpg"))[:5]
    for i, name in enumerate(names):
        shutil.copy(source / name, folder / f"{1447013 + i:08d}.jpg")
    shutil.copy(source / ".DS_169665.jpg", folder / ".DS_169665.jpg")  # macOS metadata with a .jpg name: skipped
    result = runner.invoke(app, ["predict", str(folder), "-m", str(out), "--tta", "-o", str(tmp_path / "pred")])
    assert result.exit_code == 0, result.output
    assert "1 file(s) in" in result.output and "skipped" in result.output  # the .DS_ file, said
    lines = (tmp_path / "pred" / "submission.csv").read_text().splitlines()
    assert lines[0] == "ID,labels"
    rows = [line.split(",") for line in lines[1:]]
    assert [r[0] for r in rows] == [f"{1447013 + i:08d}.jpg" for i in range(5)]
    assert all(len(r) == 2 and r[1] in CLASSES for r in rows)
    probabilities = pd.read_csv(tmp_path / "pred" / "probabilities.csv")
    assert np.allclose(probabilities[list(CLASSES)].sum(axis=1), 1, atol=1e-4)
    # a workspace's test split predicts through the manifest, IDs are the file names
    result = runner.invoke(app, ["predict", str(ws.root), "-m", str(out), "--split", "test", "-o", str(tmp_path / "w")])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "w" / "probabilities.csv")
    assert len(table) == len(select_rows(load_view(ws).frame, ["test"], exact_only=False))
    # an image file that is not an image: one line naming it
    (folder / "00000001.jpg").write_bytes(b"not a jpeg")
    result = runner.invoke(app, ["predict", str(folder), "-m", str(out), "-o", str(tmp_path / "bad")])
    assert result.exit_code == 2
    assert "00000001.jpg" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def _apl_aml_subset(dest, per_class: int):
    """Two real APL/AML patients' signed crops, ``per_class`` per class folder, with the study's master.csv."""
    source = shared_path("apl_aml")
    for patient in ("Patient_01", "Patient_07"):
        for folder in sorted((source / patient / "Signed slides").iterdir()):
            target = dest / patient / "Signed slides" / folder.name
            target.mkdir(parents=True)
            for path in sorted(folder.glob("*.jpg"))[:per_class]:
                shutil.copy(path, target / path.name)
    shutil.copy(source / "master.csv", dest / "master.csv")
    return dest


@pytest.mark.slow
def test_test_source_scores_every_unseen_row_of_another_source(trained, tmp_path):
    """Domain shift in one option: every APL/AML crop (any split) of the classes the PBC model learned is scored
    beside the PBC test rows; the classes it never learned are left out and said so."""
    from wbc_data.core.workspace import Workspace
    from wbc_data.dedup.run import DedupOptions, dedup
    from wbc_data.ingest.engine import IngestOptions, ingest
    from wbc_data.manifest.merge import merge
    from wbc_data.split import SplitOptions, run_split
    from wbc_data.train.evaluate import EvalOptions, evaluate

    ws, out, _ = trained
    copy = Workspace(tmp_path / "ws")
    shutil.copytree(ws.root, copy.root)
    ingest("apl-aml", _apl_aml_subset(tmp_path / "apl", per_class=4), copy, IngestOptions(workers=1))
    merge(copy)
    dedup(copy, DedupOptions(workers=1, reports=False))  # a user adds a source the same way: then dedup, split
    run_split(copy, SplitOptions(val=0.2, test=0.2, seed=0))
    apl = select_rows(load_view(copy).frame, None, synthetic=False, sources=["apl-aml"])
    known = {"EO", "BA", "LY", "MO"}  # the four PBC classes the model was trained on
    expected = int(apl["label"].isin(known).sum())
    assert 0 < expected < len(apl)  # the subset holds learned and unlearned classes

    plain = evaluate(copy, out, EvalOptions(by_source=True, out=tmp_path / "plain"))
    shifted = evaluate(copy, out, EvalOptions(by_source=True, test_sources=["apl-aml"], out=tmp_path / "shift"))
    by_source = shifted.scores[0].by_source.set_index("source")
    assert by_source.loc["apl-aml", "n"] == expected
    pbc_test = plain.scores[0].by_source.set_index("source").loc["pbc", "n"]
    assert by_source.loc["pbc", "n"] == pbc_test > 0  # the in-domain test rows are unchanged beside them
    assert set(shifted.rows.loc[shifted.rows["source"] == "apl-aml", "label"]) <= known
    assert any("of classes it never learned left out" in note for note in shifted.notes)
    # the question a user asks after adding a source: did it help there? Both models on the same shifted rows
    member = out / "members" / "tiny-resnet"  # trained on the same rows: every row eligible for one is for both
    compared = evaluate(copy, out, EvalOptions(test_sources=["apl-aml"], compare=member, out=tmp_path / "compare"))
    for s in compared.scores:
        assert s.by_source.set_index("source").loc["apl-aml", "n"] == expected
    assert len(compared.rows) == len(shifted.rows) and compared.comparison is not None
    second = pd.read_csv(tmp_path / "compare" / "mistakes-2.csv")  # the second model's own mistakes
    name = compared.scores[1].name
    wrong = compared.rows[compared.rows["label"] != compared.rows[f"predicted {name}"]]
    counts = wrong.groupby(["label", f"predicted {name}"]).size()
    pairs = second.drop_duplicates(["label", "predicted"])
    assert len(pairs) == min(6, len(counts)) > 0
    assert all(pair.count == counts[(pair.label, pair.predicted)] for pair in pairs.itertuples())
