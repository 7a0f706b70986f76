"""The train stage's parts on their own: metrics equal scikit-learn's on a hand-made case, soft voting and its
fitted weights, degradations, recipes, staged unfreezing, local weight files, classifier folders, a lazy CLI."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from tests.train_helpers import one_thread  # noqa: F401  (autouse)
from wbc_data.core.taxonomy import CLASSES
from wbc_data.train.ensemble import fit_weights, soft_vote
from wbc_data.train.errors import ModelFolderError, RecipeError, WeightsError
from wbc_data.train.evaluate import per_source
from wbc_data.train.metrics import classification_metrics
from wbc_data.train.recipe import load_recipe

# ------------------------------------------------------------------ metrics


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_metrics_equal_scikit_learn_on_a_hand_made_case():
    from sklearn.metrics import (
        accuracy_score,
        balanced_accuracy_score,
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
    )

    # 3 true classes (SNE=0, LY=2, PMY=12); one prediction of a class absent from the truth (MO=5)
    y_true = [0, 0, 0, 0, 2, 2, 2, 12, 12, 12]
    y_pred = [0, 0, 2, 5, 2, 2, 0, 12, 2, 12]
    m = classification_metrics(y_true, y_pred)
    labels = [0, 2, 12]
    assert m.macro_f1 == pytest.approx(f1_score(y_true, y_pred, labels=labels, average="macro"))
    assert m.balanced_accuracy == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    assert m.accuracy == pytest.approx(accuracy_score(y_true, y_pred)) == pytest.approx(0.6)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    table = m.per_class.set_index("class")
    assert table.index.tolist() == ["SNE", "LY", "PMY"]
    assert np.allclose(table["precision"], p) and np.allclose(table["recall"], r) and np.allclose(table["f1"], f)
    assert table["support"].tolist() == s.tolist() == [4, 3, 3]
    # by hand: SNE precision 2/3, recall 2/4; LY 2/4, 2/3; PMY 2/2, 2/3
    assert table.loc["SNE", "precision"] == pytest.approx(2 / 3) and table.loc["PMY", "recall"] == pytest.approx(2 / 3)
    assert table.loc["SNE", "accuracy"] == pytest.approx(7 / 10)  # one-vs-rest: TP 2 + TN 5 of 10
    assert m.confusion.columns.tolist() == ["SNE", "LY", "MO", "PMY"]  # the stray MO prediction has a column
    assert m.confusion.to_numpy().tolist() == confusion_matrix(y_true, y_pred, labels=[0, 2, 5, 12])[[0, 1, 3]].tolist()


def test_coarse_figures_fold_neutrophils_and_immature_granulocytes():
    """A BNE called SNE or an MY called PMY is right at PBC's granularity (neutrophil, IG), still wrong at 13."""
    from sklearn.metrics import f1_score

    from wbc_data.train.metrics import coarse_summary

    i = {c: CLASSES.index(c) for c in ("SNE", "BNE", "LY", "MY", "MMY", "PMY")}
    y_true = np.array([i["SNE"], i["BNE"], i["BNE"], i["MY"], i["MMY"], i["PMY"], i["LY"], i["LY"]])
    y_pred = np.array([i["BNE"], i["SNE"], i["BNE"], i["PMY"], i["MY"], i["PMY"], i["LY"], i["MY"]])
    folded = {"SNE": "n", "BNE": "n", "MY": "ig", "MMY": "ig", "PMY": "ig", "LY": "ly"}
    names = {v: k for k, v in i.items()}
    t = [folded[names[x]] for x in y_true]
    p = [folded[names[x]] for x in y_pred]
    figures = coarse_summary(y_true, y_pred)
    assert figures["accuracy coarse"] == pytest.approx(7 / 8)  # only the LY called MY is wrong
    assert figures["macro_f1 coarse"] == pytest.approx(f1_score(t, p, average="macro"))
    assert classification_metrics(y_true, y_pred).accuracy == pytest.approx(3 / 8)


def test_per_source_table_adds_up_to_the_whole():
    rows = pd.DataFrame({"source": ["a"] * 6 + ["b"] * 4, "label": ["SNE"] * 10})
    truth = np.array([0, 0, 2, 2, 12, 12, 0, 2, 2, 12])
    predicted = np.array([0, 2, 2, 2, 12, 0, 0, 0, 2, 12])
    summary, classes = per_source(rows, truth, predicted)
    table = summary.set_index("source")
    assert table.loc[["a", "b"], "n"].sum() == table.loc["all", "n"] == 10
    assert table.loc[["a", "b"], "correct"].sum() == table.loc["all", "correct"] == 7
    whole = classification_metrics(truth, predicted)
    assert table.loc["all", "macro_f1"] == pytest.approx(whole.macro_f1)
    support = classes[classes["source"] != "all"].groupby("class")["support"].sum()
    assert support.to_dict() == whole.per_class.set_index("class")["support"].to_dict()


# ------------------------------------------------------------------ ensemble


def test_soft_vote_is_the_weighted_mean_and_fitted_weights_favour_the_better_member():
    a = np.array([[0.8, 0.2], [0.4, 0.6]])
    b = np.array([[0.2, 0.8], [0.6, 0.4]])
    assert np.allclose(soft_vote([a, b]), [[0.5, 0.5], [0.5, 0.5]])
    assert np.allclose(soft_vote([a, b], [3, 1]), 0.75 * a + 0.25 * b)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 200)
    good = np.full((200, 3), 0.1)
    good[np.arange(200), labels] = 0.8
    noise = rng.dirichlet(np.ones(3), 200)
    weights = fit_weights([noise, good], labels)
    assert weights[1] > 0.8 and sum(weights) == pytest.approx(1.0)


# ------------------------------------------------------------------ degradations


@pytest.mark.parametrize(
    "kind", ["gaussian_noise", "poisson_noise", "motion_blur", "defocus_blur", "jpeg", "illumination"]
)
def test_degradations_grow_with_severity(kind):
    from wbc_data.train.degrade import corrupt

    y, x = torch.meshgrid(torch.arange(224), torch.arange(224), indexing="ij")  # the seed recipe's size
    image = torch.stack([(x * 4) % 256, (y * 4) % 256, ((x + y) * 8) % 256]).to(torch.uint8)  # edges to blur
    changes = []
    for severity in (1, 3, 5):
        torch.manual_seed(0)
        out = corrupt(image, kind, severity)
        assert out.shape == image.shape and out.dtype == torch.uint8
        changes.append((out.float() - image.float()).abs().mean().item())
    assert 0 < changes[0] < changes[1] < changes[2], changes


def test_degradations_are_reproducible_under_a_seed():
    from wbc_data.train.degrade import Degrade
    from wbc_data.train.recipe import DegradeSpec

    image = (torch.rand(3, 32, 32) * 255).to(torch.uint8)
    degrade = Degrade(DegradeSpec(p=1.0, severity=(1, 5)))
    torch.manual_seed(7)
    first = [degrade(image) for _ in range(5)]
    torch.manual_seed(7)
    assert all(torch.equal(a, degrade(image)) for a in first)


# ------------------------------------------------------------------ recipes


def test_shipped_recipes_load_and_say_what_the_issue_asks():
    seed = load_recipe("trainers/wbcbench-ensemble.yaml")
    assert [m.model for m in seed.members] == ["tf_efficientnetv2_b0", "convnext_tiny"]
    assert seed.image.size == 224 and seed.image.mean == (0.485, 0.456, 0.406) and seed.train.patience == 5
    for member in seed.members:
        stages = {s.name: s for s in member.stages}
        assert (stages["head"].train, stages["head"].lr) == ("head", 1e-4)
        assert stages["top-blocks"].lr == 1e-5 and stages["top-blocks"].top_groups() == 2
        assert stages["top-blocks"].fine_blocks()  # the top blocks, not the top block groups (stages)
        assert stages["full"].train == "all" and stages["full"].when == "improving"  # stage 3 only while improving
        assert member.pretrained
    assert seed.data.sampling == "balanced" and seed.augment.cutmix.p > 0 and seed.augment.degrade.p > 0
    assert seed.augment.rare_strength().blur > seed.augment.normal.blur
    resnet = load_recipe("resnet34-twophase")
    (member,) = resnet.members
    assert [(s.train, s.lr) for s in member.stages] == [("head", 1e-3), ("all", 1e-5)] and resnet.train.patience == 8
    strength = resnet.augment.normal
    assert (strength.rotate, strength.crop, strength.perspective, strength.hue) == (180, (0.75, 1.0), 0.2, 0.1)
    assert strength.brightness == strength.contrast == strength.saturation == 0.4
    assert load_recipe("tiny-cpu").image.size <= 64 and load_recipe("cpu-small").members


def test_recipe_errors_and_overrides(tmp_path):
    recipe = load_recipe("tiny-cpu", ["image.size=48", "members.0.stages.0.lr=0.01", "data.hold_rare={PMY: 13}"])
    assert recipe.image.size == 48 and recipe.members[0].stages[0].lr == 0.01 and recipe.data.hold_rare == {"PMY": 13}
    bad = tmp_path / "bad.yaml"
    cases = {
        "name: x\nmembers: []\n": "members: at least one model",
        "name: x\nmembers: [{name: a, model: m, stages: [{name: s, train: middle}]}]\n": "train 'middle'",
        "name: x\nimage: {size: big}\nmembers: []\n": "image.size must be a whole number, got 'big'",
        "name: x\naugment: {rare_classes: [XX]}\nmembers: [{name: a, model: m, stages: [{name: s}]}]\n": (
            "unknown class"
        ),
        "- a list\n": "a recipe must be a YAML mapping",
        "name: [unclosed\n": "not valid YAML (line 2, column 1: expected ',' or ']'",  # where, not <unicode string>
        "name: x\nmembers: [{name: a, model: m, stages: [{name: s, epochz: 2}]}]\n": (
            "unknown key members.0.stages.0.epochz"  # the item's index, as --set names it
        ),
    }
    for text, message in cases.items():
        bad.write_text(text)
        with pytest.raises(RecipeError, match=message.replace("[", r"\[").replace("(", r"\(")):
            load_recipe(bad)
    with pytest.raises(RecipeError, match=r"--set 'image\.size'"):
        load_recipe("tiny-cpu", ["image.size"])
    from wbc_data.train.recipe import select_members

    assert [m.name for m in select_members(recipe, ["tiny-resnet"]).members] == ["tiny-resnet"]
    with pytest.raises(RecipeError, match="--members nope: not in recipe tiny-cpu"):
        select_members(recipe, ["nope"])


def test_cosine_schedule_is_a_function_of_the_epoch():
    from wbc_data.train.loop import stage_lr

    recipe = load_recipe("tiny-cpu", ["train.schedule=cosine"])
    stage = recipe.members[0].stages[0]
    rates = [stage_lr(recipe, stage, e) for e in range(stage.epochs)]
    assert rates[0] == stage.lr and all(a > b > 0 for a, b in itertools.pairwise(rates))
    assert stage_lr(load_recipe("tiny-cpu"), stage, 2) == stage.lr  # constant by default


# ------------------------------------------------------------------ models and weights


def test_staged_unfreezing_uses_timm_groups():
    import timm

    from wbc_data.train.models import apply_stage
    from wbc_data.train.recipe import StageSpec

    model = timm.create_model("test_resnet", num_classes=13)
    total = sum(p.numel() for p in model.parameters())
    head = apply_stage(model, StageSpec("s", train="head"))
    assert head == sum(p.numel() for p in model.get_classifier().parameters())
    assert not any(p.requires_grad for p in model.layer4.parameters())
    assert type(model.bn1).__name__ == "FrozenBatchNormAct2d" or "Frozen" in type(model.bn1).__name__
    top = apply_stage(model, StageSpec("s", train="top1"))
    assert top == head + sum(p.numel() for p in model.layer4.parameters())
    assert all(p.requires_grad for p in model.layer4.parameters()) and not model.layer3[0].conv1.weight.requires_grad
    assert apply_stage(model, StageSpec("s", train="all")) == total


def test_pretrained_weights_from_a_local_file_and_a_missing_one(tmp_path):
    import timm
    from safetensors.torch import save_file

    from wbc_data.train.models import create_model
    from wbc_data.train.recipe import MemberSpec

    source = timm.create_model("test_resnet", num_classes=1000)
    weights = tmp_path / "imagenet.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(weights))
    member = MemberSpec("m", "test_resnet", pretrained=True, weights=str(weights))
    model = create_model(member)
    loaded, saved = model.state_dict(), source.state_dict()
    backbone = [k for k in saved if not k.startswith("fc.")]
    assert backbone and all(torch.equal(loaded[k], saved[k]) for k in backbone)  # the backbone came from the file
    assert model.get_classifier().out_features == 13  # a new head for the 13 classes
    with pytest.raises(WeightsError, match=r"nothing\.safetensors: weights file not found"):
        create_model(MemberSpec("m", "test_resnet", pretrained=True, weights=str(tmp_path / "nothing.safetensors")))
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not weights")
    with pytest.raises(WeightsError, match=r"broken\.safetensors: cannot load as test_resnet weights"):
        create_model(MemberSpec("m", "test_resnet", pretrained=True, weights=str(broken)))


def test_classifier_folder_round_trip_and_errors(tmp_path):
    import timm

    from wbc_data.train.classifier import Classifier, load_classifier
    from wbc_data.train.model_io import save_ensemble, save_member
    from wbc_data.train.recipe import ImageSpec

    image = ImageSpec(size=32)
    models = [timm.create_model(name, num_classes=13).eval() for name in ("test_resnet", "test_efficientnet")]
    for name, model in zip(("a", "b"), models, strict=True):
        architecture = model.default_cfg["architecture"]
        save_member(tmp_path / "ens" / "members" / name, model, name=name, architecture=architecture, image=image,
                    trained_classes=["LY", "MO"])  # fmt: skip
    save_ensemble(tmp_path / "ens", ["members/a", "members/b"], [1.0, 3.0], image)
    ensemble = load_classifier(tmp_path / "ens")
    assert isinstance(ensemble, Classifier) and ensemble.weights == [0.25, 0.75]
    from PIL import Image

    images = [Image.new("RGB", (40, 30), (200, 100, 120)), Image.new("RGB", (20, 50), (90, 80, 200))]
    a, b = (load_classifier(tmp_path / "ens" / "members" / n).predict_proba(images) for n in "ab")
    assert np.allclose(ensemble.predict_proba(images), 0.25 * a + 0.75 * b, atol=1e-6)
    tta = ensemble.predict_proba(images, tta=True)
    assert tta.shape == (2, 13) and np.allclose(tta.sum(1), 1, atol=1e-5)

    (tmp_path / "ens" / "members" / "b" / "model.safetensors").unlink()
    with pytest.raises(ModelFolderError, match=r"members/b/model.safetensors: weights file missing"):
        load_classifier(tmp_path / "ens")
    config = json.loads((tmp_path / "ens" / "classifier.json").read_text())
    (tmp_path / "ens" / "classifier.json").write_text(json.dumps({**config, "classes": list(CLASSES[::-1])}))
    with pytest.raises(ModelFolderError, match="classes differ"):
        load_classifier(tmp_path / "ens")
    (tmp_path / "ens" / "classifier.json").write_text("{not json")
    with pytest.raises(ModelFolderError, match="unreadable classifier config"):
        load_classifier(tmp_path / "ens")
    (tmp_path / "ens" / "members" / "a" / "model.safetensors").write_bytes(b"junk")
    with pytest.raises(ModelFolderError, match="unreadable weights"):
        load_classifier(tmp_path / "ens" / "members" / "a")


def test_cli_start_up_stays_free_of_torch():
    code = (
        "import sys, wbc_data.cli; assert not {'torch', 'timm', 'accelerate'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
