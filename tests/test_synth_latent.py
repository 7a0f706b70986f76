"""Latent diffusion (``autoencoder:`` in a recipe) on real cells (the shipped PBC sample) with the tiny latent
recipe: the autoencoder is learnt and really reconstructs cells, latents are unit-variance, the saved generator
(unet + vae) samples images at the recipe's resolution with plain diffusers, a resumed run continues exactly,
and a run started from a latent generator keeps its autoencoder."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from tests.synth_fixtures import one_thread, split_workspace
from wbc_data.core.progress import NullProgress
from wbc_data.io.resources import sample_dir
from wbc_data.synth import SynthError, TrainInterrupted
from wbc_data.synth.autoencoder import build_autoencoder, reconstruction_error
from wbc_data.synth.data import pixel_cache, training_set
from wbc_data.synth.generator import load_generator
from wbc_data.synth.model import resolve_init
from wbc_data.synth.recipe import load_recipe
from wbc_data.synth.train import TRAIN_PHASE, train


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    yield from one_thread()


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return split_workspace(tmp_path_factory.mktemp("synth-latent"))


def latent(**train_fields):
    recipe = load_recipe("tiny-latent")
    return dataclasses.replace(recipe, train=dataclasses.replace(recipe.train, **train_fields))


def test_shipped_latent_recipes_load():
    for name in ("tiny-latent", "pbc-latent-32"):
        recipe = load_recipe(name)
        assert recipe.autoencoder is not None and recipe.channels == recipe.autoencoder.latent_channels
    assert load_recipe("pbc-latent-32").latent_side == 8


def test_the_latent_road_learns_its_autoencoder_and_samples_decoded_cells(ws, tmp_path):
    recipe = latent()
    result = train(ws, recipe, tmp_path / "run")
    folder = result.generator_dir
    assert (folder / "vae" / "config.json").is_file() and (folder / "unet" / "config.json").is_file()

    # the autoencoder learnt: it rebuilds the training cells better than the same architecture untrained
    data = training_set(ws)
    from wbc_data.io.pixels import PixelLoader

    cache = pixel_cache(data.frame, PixelLoader.for_workspace(ws), 16, tmp_path / "px", data.fingerprint())
    pipe, _ = load_generator(folder)
    torch.manual_seed(123)
    untrained = build_autoencoder(recipe.autoencoder, 16)
    assert reconstruction_error(pipe.vae, cache) < 0.8 * reconstruction_error(untrained, cache)
    scale = float(pipe.vae.config.scaling_factor)
    assert scale > 0 and abs(scale - 0.18215) > 1e-6  # measured on these latents, not SD's constant

    # plain diffusers loads it (custom pipeline code shipped in the folder) and decodes to RGB at 16 px
    from diffusers import DiffusionPipeline

    plain = DiffusionPipeline.from_pretrained(
        folder, custom_pipeline=str(folder), trust_remote_code=True, local_files_only=True
    )
    images = plain(["PMY", "EO"], num_inference_steps=3, scheduler="ddpm", output_type="np").images
    assert images.shape == (2, 16, 16, 3) and images.min() >= 0.0 and images.max() <= 1.0
    assert images.std() > 0.01  # decoded pixels, not a constant


def test_a_resumed_latent_run_continues_exactly_and_reuses_its_autoencoder(ws, tmp_path):
    recipe = latent(steps=20, checkpoint_every=10, grid_per_class=0)
    whole = train(ws, recipe, tmp_path / "whole")
    with pytest.raises(TrainInterrupted):
        train(ws, recipe, tmp_path / "half", progress=_StopAt(10))
    resumed = train(ws, recipe, tmp_path / "half", resume=True)
    assert resumed.steps == 20
    a, _ = load_generator(whole.generator_dir)
    b, _ = load_generator(resumed.generator_dir)
    for (name, x), (_, y) in zip(a.unet.state_dict().items(), b.unet.state_dict().items(), strict=True):
        assert torch.equal(x, y), name
    for x, y in zip(a.vae.state_dict().values(), b.vae.state_dict().values(), strict=True):
        assert torch.equal(x, y)


def test_starting_from_a_latent_generator_keeps_its_autoencoder(ws, tmp_path):
    first = train(ws, latent(grid_per_class=0), tmp_path / "first")
    second_recipe = dataclasses.replace(latent(steps=5, grid_per_class=0), init_from=str(first.generator_dir))
    second = train(ws, second_recipe, tmp_path / "second")
    a, _ = load_generator(first.generator_dir)
    b, _ = load_generator(second.generator_dir)
    for x, y in zip(a.vae.state_dict().values(), b.vae.state_dict().values(), strict=True):
        assert torch.equal(x, y)
    assert a.vae.config.scaling_factor == b.vae.config.scaling_factor
    assert any(not torch.equal(x, y) for x, y in zip(a.unet.parameters(), b.unet.parameters(), strict=True))


def _nucleus_share(images: np.ndarray) -> np.ndarray:
    """Share of each image's pixels that look like a stained nucleus: dark and blue-violet."""
    rgb = images.astype(np.float64) / 255.0
    return ((rgb.mean(-1) < 0.45) & (rgb[..., 2] > rgb[..., 1] + 0.1)).mean(axis=(1, 2))


def test_the_shipped_generator_draws_each_class_as_real_cells_of_it_look():
    """The shipped PBC generator (the demo's start) makes cells, not noise, and its class condition matters: the
    smear's colours of the real cells, and per class a nucleus of the real cells' size (a promyelocyte's nucleus
    covers about twice a lymphocyte's; a label-blind or untrained generator fails one of these)."""
    pipe, info = load_generator(resolve_init("pretrained:pbc-latent-32"))
    assert info.sources[0]["licence"].startswith("CC BY 4.0") and pipe.vae is not None
    assert (resolve_init("pretrained:pbc-latent-32") / "ATTRIBUTION.md").is_file()
    root = sample_dir() / "pbc"
    shares = {}
    for label in ("LY", "PMY", "SNE"):
        seeds = [torch.Generator().manual_seed(k) for k in range(8)]
        drawn = pipe([label] * 8, num_inference_steps=20, scheduler="ddpm", generator=seeds, output_type="uint8")
        synthetic = drawn.images
        real = np.stack(
            [
                np.asarray(Image.open(path).convert("RGB").resize((32, 32), Image.Resampling.LANCZOS))
                for path in sorted(root.rglob(f"{label}_*.jpg"))
            ]
        )
        colour_gap = np.abs(synthetic.reshape(-1, 3).mean(0) - real.reshape(-1, 3).mean(0))
        assert colour_gap.max() < 12, (label, colour_gap)  # the pink smear and violet stain of the real cells
        shares[label] = float(_nucleus_share(synthetic).mean())
        real_share = float(_nucleus_share(real).mean())
        assert 0.5 < shares[label] / real_share < 2.0, (label, shares[label], real_share)
    assert shares["PMY"] > 1.6 * shares["LY"], shares


def test_an_unknown_shipped_generator_is_one_line():
    with pytest.raises(SynthError) as caught:
        resolve_init("pretrained:no-such-generator")
    assert "no shipped generator" in str(caught.value) and "\n" not in str(caught.value)


class _StopAt(NullProgress):
    """Progress that presses Ctrl-C once the training phase reaches ``step``."""

    def __init__(self, step: int) -> None:
        self.step = step
        self.current: str | None = None

    def phase(self, name, total=None):
        self.current = name

    def advance(self, done, total=None, **stats):
        if self.current == TRAIN_PHASE and done == self.step:
            raise KeyboardInterrupt
