"""`wbc-data synth train` on real cells (the shipped PBC sample) with the tiny CPU recipe: recipes, class-balanced
batches and augmentation, the loss falling, resume after a kill continuing exactly, starting from a local
diffusers model, and the domain condition."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.synth_fixtures import KillAtStep, one_thread, split_workspace, tiny
from wbc_data.core.taxonomy import CLASSES
from wbc_data.synth import SynthError, TrainInterrupted
from wbc_data.synth.checkpoints import checkpoints
from wbc_data.synth.data import BalancedBatches, dihedral, training_set
from wbc_data.synth.generator import load_generator
from wbc_data.synth.model import build_unet, denoising_loss, noise_scheduler, unet_from_local
from wbc_data.synth.pipeline import condition_rows
from wbc_data.synth.recipe import load_recipe
from wbc_data.synth.train import train

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    yield from one_thread()


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return split_workspace(tmp_path_factory.mktemp("synth-train"))


def test_shipped_recipes_load_and_ship_in_the_wheel():
    for name in ("tiny-cpu", "cpu-32", "pbc-64", "wbc-128"):
        recipe = load_recipe(name)
        assert recipe.name == name and recipe.expected_h100
        unet = build_unet(recipe, condition_rows(len(CLASSES), 0))
        assert unet.config.sample_size == recipe.resolution and unet.config.num_class_embeds == 14
    assert load_recipe("pbc-64").resolution == 64 and load_recipe("wbc-128").resolution == 128
    pyproject = (REPO / "pyproject.toml").read_text()  # the wheel bundles the recipes as it bundles manifests/
    assert '"generators" = "wbc_data/_bundled/generators"' in pyproject.split("force-include]")[1]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: x\nresolution: 16\ntrain: {stpes: 3}\n", "unknown key train.stpes"),
        ("name: x\nresolution: 16\ntrain: {steps: three}\n", "train.steps must be a whole number"),
        ("name: x\nresolution: 20\n", "resolution 20"),
        ("name: x\nresolution: 64\nsample: {scheduler: euler}\n", "sample.scheduler 'euler'"),
        ("[not, a, mapping]\n", "must be a YAML mapping"),
        (
            "name: x\nresolution: 16\nmodel: {block_out_channels: [16, 30], norm_num_groups: 8,\n"
            "  down_block_types: [DownBlock2D, DownBlock2D], up_block_types: [UpBlock2D, UpBlock2D]}\n",
            "multiple of norm_num_groups",
        ),
    ],
)
def test_a_bad_recipe_is_one_line_naming_the_file(tmp_path, text, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SynthError) as caught:
        load_recipe(path)
    message = str(caught.value)
    assert str(path) in message and expected in message and "\n" not in message


def test_class_balanced_batches_and_dihedral_augmentation():
    labels = np.array([0] * 90 + [12] * 10)
    batches = BalancedBatches(labels, balance=1.0, batch_size=400, seed=3)
    drawn = labels[batches.indices(step=5)]
    assert 0.4 < (drawn == 12).mean() < 0.6  # the rare class is drawn as often as the common one
    assert np.array_equal(batches.indices(5), batches.indices(5))  # a step's batch depends on (seed, step) only
    assert not np.array_equal(batches.indices(5), batches.indices(6))
    unbalanced = BalancedBatches(labels, balance=0.0, batch_size=400, seed=3)
    assert (labels[unbalanced.indices(5)] == 12).mean() < 0.2
    two = BalancedBatches(labels, balance=1.0, batch_size=8, seed=3, processes=2)
    first, second = two.indices(1, rank=0), two.indices(1, rank=1)
    assert len(first) == len(second) == 8

    image = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    out = dihedral(image.repeat(16, 1, 1, 1), torch.Generator().manual_seed(0))
    variants = set()
    for k in range(8):
        variants.add(
            tuple(torch.flip(torch.rot90(image[0], k % 4, (1, 2)), (2,)).flatten().tolist())
            if k >= 4
            else tuple(torch.rot90(image[0], k % 4, (1, 2)).flatten().tolist())
        )
    assert all(tuple(o.flatten().tolist()) in variants for o in out[0::2])  # every output is a flip/rotation
    assert len({tuple(o.flatten().tolist()) for o in out[0::2]}) > 3  # and they vary


def test_training_lowers_the_loss_and_exports_a_generator(ws, tmp_path):
    recipe = tiny(steps=30, checkpoint_every=30, grid_per_class=1)
    data = training_set(ws)
    result = train(ws, recipe, tmp_path / "run")
    assert result.steps == 30 and result.info.trained_steps == 30
    assert result.info.class_counts == data.class_counts() and sum(result.info.class_counts.values()) == len(data)
    assert result.info.sources[0]["name"] == "pbc" and "CC BY 4.0" in result.info.licence()
    assert (tmp_path / "run" / "samples" / "step-0000030.png").is_file()

    torch.manual_seed(recipe.train.seed)
    start = build_unet(recipe, condition_rows(len(CLASSES), 0))  # the model training started from
    pipe, _ = load_generator(result.generator_dir)
    from wbc_data.io.pixels import PixelLoader
    from wbc_data.synth.data import to_resolution

    loader = PixelLoader.for_workspace(ws)
    frame = data.frame
    clean = (
        torch.stack(
            [
                torch.from_numpy(np.array(to_resolution(loader.open(r), 16))).permute(2, 0, 1)
                for _, r in frame.iterrows()
            ]
        )
        .float()
        .div(127.5)
        .sub(1)
    )
    labels = torch.from_numpy(data.labels)
    scheduler = noise_scheduler(recipe)
    before = np.mean([denoising_loss(start, scheduler, clean, labels, seed) for seed in range(4)])
    after = np.mean([denoising_loss(pipe.unet, scheduler, clean, labels, seed) for seed in range(4)])
    assert after < 0.7 * before, (before, after)


def test_resume_after_a_kill_continues_exactly(ws, tmp_path):
    recipe = tiny(steps=6, checkpoint_every=3, grid_per_class=0)
    whole = train(ws, recipe, tmp_path / "whole")

    with pytest.raises(TrainInterrupted, match="re-run with --resume"):
        train(ws, recipe, tmp_path / "killed", progress=KillAtStep(3))
    assert [step for step, _ in checkpoints(tmp_path / "killed" / "checkpoints")] == [3]
    with pytest.raises(SynthError, match="pass --resume"):
        train(ws, recipe, tmp_path / "killed")
    other = dataclasses.replace(recipe, train=dataclasses.replace(recipe.train, learning_rate=5e-4))
    with pytest.raises(SynthError, match="another recipe"):
        train(ws, other, tmp_path / "killed", resume=True)
    resumed = train(ws, recipe, tmp_path / "killed", resume=True)
    assert resumed.steps == 6
    for name in ("model.safetensors",):
        from safetensors.torch import load_file

        a = load_file(tmp_path / "whole" / "checkpoints" / "checkpoint-0000006" / name)
        b = load_file(tmp_path / "killed" / "checkpoints" / "checkpoint-0000006" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ema_a = load_generator(whole.generator_dir)[0].unet.state_dict()
    ema_b = load_generator(resumed.generator_dir)[0].unet.state_dict()
    assert all(torch.equal(ema_a[k], ema_b[k]) for k in ema_a)
    with pytest.raises(SynthError, match="no checkpoint to resume"):
        train(ws, recipe, tmp_path / "fresh", resume=True)


def test_start_from_a_diffusers_model_saved_at_a_local_path(ws, tmp_path):
    from diffusers import UNet2DModel

    torch.manual_seed(1)
    plain = UNet2DModel(
        sample_size=16,
        block_out_channels=(16, 32),
        layers_per_block=1,
        norm_num_groups=8,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
    )
    plain.save_pretrained(tmp_path / "local-model")  # an unconditional model, saved offline (no Hub)
    model, notes = unet_from_local(tmp_path / "local-model", tiny(), condition_rows(len(CLASSES), 0))
    saved = plain.state_dict()
    for key, value in model.state_dict().items():
        if key == "class_embedding.weight":
            assert value.shape == (14, 64) and not value.any()  # new, zero: starts as the model it came from
        else:
            assert torch.equal(value, saved[key])
    assert any("zero at start" in note for note in notes)
    from typer.testing import CliRunner

    from wbc_data.cli import app
    from wbc_data.synth.generator import read_info

    local = str(tmp_path / "local-model")
    args = [
        "synth",
        "train",
        "--recipe",
        "tiny-cpu",
        "--steps",
        "2",
        "--init-from",
        local,
        "--out",
        str(tmp_path / "run"),
    ]
    result = CliRunner().invoke(app, [*args, "-w", str(ws.root)])
    assert result.exit_code == 0, result.output
    assert read_info(tmp_path / "run" / "generator").init_from == local
    with pytest.raises(SynthError, match="no diffusers model folder here"):
        unet_from_local(tmp_path / "nowhere", tiny(), 14)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SynthError, match="not a diffusers UNet folder"):
        unet_from_local(tmp_path / "empty", tiny(), 14)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    with pytest.raises(SynthError, match="cannot load a UNet2DModel"):
        unet_from_local(tmp_path / "broken", tiny(), 14)


def test_domain_condition_renders_a_class_in_each_source_look(tmp_path):
    ws = split_workspace(tmp_path, second_source=True)
    recipe = dataclasses.replace(tiny(steps=4, checkpoint_every=4, grid_per_class=0), domain_condition=True)
    result = train(ws, recipe, tmp_path / "run")
    assert result.info.domains == ["bccd", "pbc"]
    pipe, _ = load_generator(result.generator_dir)
    assert pipe.unet.config.num_class_embeds == 14 + 3  # classes + null, 2 domains + "no domain"

    def draw(domain):
        gens = [torch.Generator().manual_seed(s) for s in range(3)]
        return pipe(["LY"] * 3, domain=domain, num_inference_steps=3, generator=gens, output_type="np").images

    assert not np.allclose(draw("pbc"), draw("bccd")) and not np.allclose(draw("pbc"), draw(None))
    with pytest.raises(ValueError, match="unknown domain"):
        draw("raabin")


def test_samples_in_a_box_crop_sources_style_are_framed_as_its_crops(tmp_path):
    """Synthetic cells drawn in BCCD's style imitate its box crops, which the classifier keeps whole; drawn in PBC's
    style they imitate whole files, whose centre it keeps. Each sampled row carries that framing through ingest to
    the pixel loader's mark, the letterbox and the training cache's keys: without it every synthetic cell would be
    centre-cut, and the BCCD-style ones would reach the classifier zoomed in where their real counterparts are not."""
    from wbc_data.core import manifest
    from wbc_data.core.stages import load_view
    from wbc_data.io.pixels import BOX_CROP, PixelLoader, row_refs
    from wbc_data.manifest.merge import merge
    from wbc_data.synth.framing import sample_framing
    from wbc_data.synth.generator import training_rows
    from wbc_data.synth.sample import SynthOptions, run_synth
    from wbc_data.train.augment import Letterbox
    from wbc_data.train.cache import row_keys

    ws = split_workspace(tmp_path, second_source=True)
    recipe = dataclasses.replace(tiny(steps=2, checkpoint_every=2, grid_per_class=0), domain_condition=True)
    folder = train(ws, recipe, tmp_path / "run").generator_dir
    frame = load_view(ws).frame
    training = training_rows(folder)
    by_source = training.merge(frame[["sample_id", "crop_box"]], on="sample_id").groupby("source")["crop_box"]
    assert by_source.apply(lambda boxes: boxes.notna().all()).to_dict() == {"bccd": True, "pbc": False}
    labels = {source: set(training.loc[training["source"] == source, "label"]) for source in ("bccd", "pbc")}
    shared = sorted(labels["bccd"] & labels["pbc"])[0]  # a class both sources have: the domain decides
    only_pbc = sorted(labels["pbc"] - labels["bccd"])[0]
    assert sample_framing(training, frame, shared, "bccd") == "box"
    assert sample_framing(training, frame, shared, "pbc") == "whole"
    assert sample_framing(training, frame, only_pbc, None) == "whole"
    assert sample_framing(training, frame, only_pbc, "bccd") == "box"  # the domain's look, whatever the class

    rng = np.random.default_rng(0)

    def draw(label, seeds):  # distinct textured squares: no memorisation-guard match
        return rng.integers(0, 256, (len(seeds), 16, 16, 3), dtype=np.uint8)

    for domain in ("bccd", "pbc"):
        options = SynthOptions(counts={shared: 2}, domain=domain, name=f"in-{domain}", fidelity_gate=False)
        run_synth(ws, folder, options, draw=draw)
    merge(ws)
    rows = manifest.read_frame(ws.unified_manifest)
    rows = rows[rows["is_synthetic"].fillna(False).astype(bool) & (rows["status"] == "ok")].sort_values("source")
    assert rows["source"].tolist() == ["synth-in-bccd"] * 2 + ["synth-in-pbc"] * 2
    opened = [PixelLoader.for_workspace(ws).open(ref) for ref in row_refs(rows)]
    assert [im.info[BOX_CROP] for im in opened] == [True, True, False, False]
    centred = Letterbox(16, (0, 0, 0), centre=0.5)
    assert [np.asarray(centred(im)).std() > 0 and np.array_equal(np.asarray(centred(im)), np.asarray(im))
            for im in opened] == [True, True, False, False]  # fmt: skip
    keys = row_keys(rows.reset_index(drop=True), boxes_apart=True)
    assert [k.endswith("#box") for k in keys] == [True, True, False, False]
