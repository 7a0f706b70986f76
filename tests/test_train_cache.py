"""The training cache and tensor augmentation: the cache holds exactly the pixels the loader and letterbox give (real
and synthetic rows alike), is rebuilt for a row whose pixels change, and augmentations change images as configured
(checked on the images, not on config values)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from tests.train_helpers import one_thread  # noqa: F401
from wbc_data.core.taxonomy import CLASSES
from wbc_data.train.augment import eval_transform, tensor_transform
from wbc_data.train.cache import AugmentedImages, Normalize, PixelCache
from wbc_data.train.recipe import DegradeSpec, ImageSpec, Strength

SPEC = ImageSpec(size=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation="bicubic")


def cell(width: int, height: int, seed: int) -> Image.Image:
    """An asymmetric test picture: noise plus a bright blob off centre (so rotations and flips show)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 120, (height, width, 3), dtype=np.uint8)
    pixels[: height // 3, : width // 4] = (250, 40, 40)
    return Image.fromarray(pixels)


class StubLoader:
    """Stands in for the pixel loader: images by sample id, and how often each was opened."""

    def __init__(self, images: dict[str, Image.Image]) -> None:
        self.images = images
        self.opened: list[str] = []

    def open(self, ref, verify: bool = False) -> Image.Image:
        self.opened.append(ref.sample_id)
        return self.images[ref.sample_id].copy()


def frame(images: dict[str, Image.Image], hashes: dict[str, str], synthetic: set[str] = frozenset()) -> pd.DataFrame:
    ids = sorted(images)
    return pd.DataFrame(
        {
            "sample_id": ids,
            "source_root": "r",
            "source_path": [f"{i}.png" for i in ids],
            "crop_box": None,
            "pixel_hash": [hashes[i] for i in ids],
            "extra": None,
            "label": "LY",
            "source": ["synth" if i in synthetic else "pbc" for i in ids],
            "is_synthetic": [i in synthetic for i in ids],
        }
    )


def test_cache_holds_the_loaders_letterboxed_pixels_and_rebuilds_a_changed_row(tmp_path):
    images = {"wide": cell(60, 30, 0), "tall": cell(20, 50, 1), "synth-square": cell(48, 48, 2)}
    hashes = {k: f"h-{k}" for k in images}
    loader = StubLoader(images)
    rows = frame(images, hashes, synthetic={"synth-square"})
    cache = PixelCache(tmp_path / "cache", SPEC)
    cached = cache.build(rows, loader)
    reference = eval_transform(SPEC)  # what evaluation and predict see: letterbox, then normalise
    normalize = Normalize(SPEC.mean, SPEC.std)
    for i, sample in enumerate(rows["sample_id"]):
        expected = reference(images[sample])
        got = normalize(cached[i][0][None])[0]
        assert cached[i][0].dtype == torch.uint8 and got.shape == (3, 32, 32)
        assert torch.allclose(got, expected, atol=1e-6), sample
    # letterbox for real and synthetic rows alike: the wide cell is padded top and bottom with the mean colour
    wide = cached.pixels(list(rows["sample_id"]).index("wide"))
    assert (wide[0] == SPEC.fill()).all() and not (wide[16] == SPEC.fill()).all()
    assert len(loader.opened) == 3

    loader.opened.clear()
    again = PixelCache(tmp_path / "cache", SPEC).build(rows, loader)  # nothing new: nothing decoded
    assert loader.opened == [] and np.array_equal(again.pixels(0), cached.pixels(0))

    images["tall"] = cell(20, 50, 99)  # the file changed: ingest re-hashed it
    hashes["tall"] = "h-tall-2"
    changed = frame(images, hashes, synthetic={"synth-square"})
    rebuilt = PixelCache(tmp_path / "cache", SPEC).build(changed, loader)
    assert loader.opened == ["tall"]
    position = list(changed["sample_id"]).index("tall")
    assert torch.allclose(normalize(rebuilt[position][0][None])[0], reference(images["tall"]), atol=1e-6)
    assert not np.array_equal(rebuilt.pixels(position), cached.pixels(position))


def _mean_change(transform, image: torch.Tensor, seeds=range(8)) -> float:
    base = image.float() / 255
    changes = []
    for seed in seeds:
        torch.manual_seed(seed)
        changes.append(float((transform(image) - base).abs().mean()))
    return float(np.mean(changes))


def test_augmentations_change_the_images_as_configured():
    image = torch.from_numpy(np.array(cell(32, 32, 3))).permute(2, 0, 1).contiguous()
    none = tensor_transform(SPEC, Strength(), DegradeSpec())
    assert _mean_change(none, image) < 1e-6  # nothing configured: the image passes unchanged
    rotate = tensor_transform(SPEC, Strength(rotate=180), DegradeSpec())
    assert _mean_change(rotate, image) > 0.05
    torch.manual_seed(0)
    turned = rotate(image)
    assert turned.shape == (3, 32, 32) and float(turned.min()) >= 0.0 and float(turned.max()) <= 1.0
    colour = tensor_transform(SPEC, Strength(brightness=0.4), DegradeSpec())
    assert _mean_change(colour, image) > 0.01
    weak = tensor_transform(SPEC, Strength(brightness=0.05), DegradeSpec())
    assert _mean_change(weak, image) < _mean_change(colour, image)


def test_rare_classes_get_the_stronger_augmentation_and_ranks_differ():
    ly, pmy = CLASSES.index("LY"), CLASSES.index("PMY")
    picture = torch.from_numpy(np.array(cell(32, 32, 4))).permute(2, 0, 1).contiguous()

    class Base:
        labels = (ly, pmy)

        def __len__(self):
            return 2

        def __getitem__(self, i):
            return picture.clone(), self.labels[i]

    normal = tensor_transform(SPEC, Strength(), DegradeSpec())
    rare = tensor_transform(SPEC, Strength(flip=True, rotate=180, brightness=0.4, noise=1.0), DegradeSpec())
    data = AugmentedImages(Base(), normal, rare, rare_labels={pmy})
    base = picture.float() / 255
    normal_change = np.mean([float((data[(0, s)][0] - base).abs().mean()) for s in range(10)])
    rare_change = np.mean([float((data[(1, s)][0] - base).abs().mean()) for s in range(10)])
    assert normal_change < 1e-6 and rare_change > 0.05
    # the same item and seed: the same image on one rank, another image on another rank
    assert torch.equal(data[(1, 5)][0], data[(1, 5)][0])
    other_rank = AugmentedImages(Base(), normal, rare, {pmy}, rank=1)
    assert not torch.equal(data[(1, 5)][0], other_rank[(1, 5)][0])
    # on a GPU the dataset hands over uint8 pixels and the batch is augmented on the device, identically
    on_device = AugmentedImages(Base(), normal, rare, {pmy}, on_device=True)
    raw, label, seed = on_device[(1, 5)]
    assert raw.dtype == torch.uint8
    batch = on_device.augment_batch(raw[None], torch.tensor([label]), torch.tensor([seed]))
    assert torch.equal(batch[0], data[(1, 5)][0])


def test_cutmix_as_configured_mixes_pixels_and_targets():
    from wbc_data.train.loop import apply_cutmix
    from wbc_data.train.recipe import load_recipe

    recipe = load_recipe("tiny-cpu", ["augment.cutmix.p=1.0"])
    images = torch.stack([torch.zeros(3, 32, 32), torch.ones(3, 32, 32)])
    labels = torch.tensor([0, 1])
    torch.manual_seed(0)
    mixed, targets = apply_cutmix(recipe, images, labels)
    assert targets.shape == (2, len(CLASSES)) and torch.allclose(targets.sum(1), torch.ones(2))
    share_of_ones = mixed[0].mean().item()  # image 0 (zeros) now holds a patch of image 1 (ones)
    assert 0.0 < share_of_ones < 1.0 and targets[0, 1].item() == pytest.approx(share_of_ones, abs=1e-6)
    off = load_recipe("tiny-cpu", ["augment.cutmix.p=0.0"])
    same, plain = apply_cutmix(off, images, labels)
    assert torch.equal(same, images) and torch.equal(plain, labels)


def test_centre_crop_is_what_the_cache_evaluation_and_a_saved_model_see(tmp_path):
    """``image.centre`` keeps the middle of each side before the letterbox, in the cache, in evaluation and in a saved
    model's predictions alike (a model that saw centred crops must be given centred crops by ``predict``)."""
    import timm

    from wbc_data.train.cache import cache_folder
    from wbc_data.train.classifier import load_classifier
    from wbc_data.train.model_io import save_member
    from wbc_data.train.recipe import RecipeError

    centred = ImageSpec(size=32, mean=SPEC.mean, std=SPEC.std, interpolation="bicubic", centre=0.5)
    image = cell(60, 40, 5)
    middle = image.crop((15, 10, 45, 30))  # the centred half of each side
    assert torch.allclose(eval_transform(centred)(image), eval_transform(SPEC)(middle), atol=1e-6)
    assert not torch.allclose(eval_transform(centred)(image), eval_transform(SPEC)(image), atol=0.05)

    rows = frame({"a": image}, {"a": "h-a"})
    cached = PixelCache.for_workspace(tmp_path, centred).build(rows, StubLoader({"a": image}))
    assert cache_folder(tmp_path, centred) != cache_folder(tmp_path, SPEC)  # a full-image cache is never reused
    got = Normalize(SPEC.mean, SPEC.std)(cached[0][0][None])[0]
    assert torch.allclose(got, eval_transform(SPEC)(middle), atol=1e-6)

    model = timm.create_model("test_resnet", num_classes=13).eval()
    for name, spec in (("centred", centred), ("whole", SPEC)):
        save_member(tmp_path / name, model, name=name, architecture="test_resnet", image=spec, trained_classes=["LY"])
    via_centre = load_classifier(tmp_path / "centred").predict_proba([image])
    assert np.allclose(via_centre, load_classifier(tmp_path / "whole").predict_proba([middle]), atol=1e-5)
    assert not np.allclose(via_centre, load_classifier(tmp_path / "whole").predict_proba([image]), atol=1e-5)

    with pytest.raises(RecipeError, match=r"image\.centre 0\.1"):
        ImageSpec(centre=0.1).check("recipe.yaml")


def test_box_crops_are_kept_whole_where_whole_images_are_centred(tmp_path):
    """``image.centre`` crops whole images only: a row ingest cut from an annotated box (a BCCD detection) is framed
    on its cell already, and cutting its middle again would cut the cell. The real pixel loader marks each row, and
    the cache, evaluation and a saved model's predictions all follow the mark; the same pixels as a whole file and as
    a box crop are cached apart."""
    import timm

    from tests.fixtures import mini_bccd
    from wbc_data.core import manifest
    from wbc_data.core.workspace import Workspace
    from wbc_data.ingest.engine import IngestOptions, ingest
    from wbc_data.io.pixels import BOX_CROP, PixelLoader, row_refs
    from wbc_data.manifest.merge import merge
    from wbc_data.train.classifier import load_classifier
    from wbc_data.train.model_io import save_member

    centred = ImageSpec(size=32, mean=SPEC.mean, std=SPEC.std, interpolation="bicubic", centre=0.5)
    ws = Workspace(tmp_path / "ws")
    ingest("bccd", mini_bccd(tmp_path / "bccd", fields=1), ws, IngestOptions(workers=1))
    merge(ws)
    rows = manifest.read_frame(ws.unified_manifest)
    rows = rows[rows["width"].notna()].reset_index(drop=True)  # the field itself (auxiliary) and its WBC crop
    is_box = rows["crop_box"].notna().to_numpy()
    assert is_box.sum() == 1 and (~is_box).sum() == 1
    loader = PixelLoader.for_workspace(ws)
    opened = [loader.open(ref) for ref in row_refs(rows)]
    assert [im.info[BOX_CROP] for im in opened] == is_box.tolist()

    def middle(image: Image.Image) -> Image.Image:
        w, h = image.size
        return image.crop(((w - round(w / 2)) // 2, (h - round(h / 2)) // 2,
                           (w - round(w / 2)) // 2 + round(w / 2), (h - round(h / 2)) // 2 + round(h / 2)))  # fmt: skip

    def plain(image: Image.Image) -> Image.Image:
        return Image.fromarray(np.asarray(image))  # the same pixels without the loader's mark

    expected = [
        eval_transform(SPEC)(plain(im) if box else middle(plain(im))) for im, box in zip(opened, is_box, strict=True)
    ]
    for image, want in zip(opened, expected, strict=True):
        assert torch.allclose(eval_transform(centred)(image), want, atol=1e-6)
    crop = opened[int(np.flatnonzero(is_box)[0])]
    assert not torch.allclose(eval_transform(centred)(plain(crop)), eval_transform(SPEC)(plain(crop)), atol=0.05)

    cached = PixelCache.for_workspace(tmp_path, centred).build(rows, loader)
    for i, want in enumerate(expected):
        assert torch.allclose(Normalize(SPEC.mean, SPEC.std)(cached[i][0][None])[0], want, atol=1e-6)

    # the same pixels twice, once as a whole file and once as a box crop: two cache entries, framed each its way
    twin = cell(60, 40, 11)
    boxed = twin.copy()
    boxed.info[BOX_CROP] = True
    pair = frame({"file": twin, "box": boxed}, {"file": "same", "box": "same"})
    pair["crop_box"] = [[0, 0, 60, 40], None]  # rows sorted by id: "box", then "file"
    got = PixelCache.for_workspace(tmp_path / "twin", centred).build(pair, StubLoader({"file": twin, "box": boxed}))
    normalise = Normalize(SPEC.mean, SPEC.std)
    assert torch.allclose(normalise(got[0][0][None])[0], eval_transform(SPEC)(twin), atol=1e-6)
    assert torch.allclose(normalise(got[1][0][None])[0], eval_transform(SPEC)(middle(twin)), atol=1e-6)

    model = timm.create_model("test_resnet", num_classes=13).eval()
    for name, spec in (("centred", centred), ("whole", SPEC)):
        save_member(tmp_path / name, model, name=name, architecture="test_resnet", image=spec, trained_classes=["LY"])
    via_centre = load_classifier(tmp_path / "centred").predict_proba([crop])
    assert np.allclose(via_centre, load_classifier(tmp_path / "whole").predict_proba([plain(crop)]), atol=1e-5)
