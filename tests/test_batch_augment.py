"""The batched augmentation is torchvision's, proven on real cells: every shipped recipe's transforms give, batch
by batch, the images torchvision's own per-image transforms give with the same draws; an image's augmentation does
not depend on the other images of its batch; the caller's RNG is left alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from tests.conftest import shared_path
from tests.train_helpers import one_thread  # noqa: F401
from wbc_data.train.augment import tensor_transform
from wbc_data.train.batch_augment import BatchAugment, stage_seed, without_final_scaling
from wbc_data.train.recipe import ImageSpec, load_recipe

SPEC = ImageSpec(size=48, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation="bilinear")
RECIPES = ["lite0-cpu", "wbcbench-ensemble", "resnet34-twophase", "tiny-cpu"]


@pytest.fixture(scope="module")
def cells() -> torch.Tensor:
    """12 real PBC cells of six classes at 48 px, uint8 CHW."""
    root = shared_path("pbc", "PBC_dataset_normal_DIB")
    files = [f for folder in sorted(root.iterdir()) if folder.is_dir() for f in sorted(folder.glob("*.jpg"))[:2]][:12]
    pictures = [np.asarray(Image.open(f).convert("RGB").resize((48, 48), Image.Resampling.BILINEAR)) for f in files]
    return torch.from_numpy(np.stack(pictures)).permute(0, 3, 1, 2).contiguous()


def torchvision_per_image(augment: BatchAugment, image: torch.Tensor, seed: int) -> torch.Tensor:
    """The reference: torchvision's transforms called on one image, each stage seeded as the batch seeds it."""
    for number, stage in enumerate(augment.stages):
        torch.default_generator.manual_seed(stage_seed(seed, number))
        for step in stage.steps:
            image = step(image)
    return image


def reference(augment: BatchAugment, images: torch.Tensor, seeds: list[int]) -> torch.Tensor:
    return torch.stack([torchvision_per_image(augment, i, s) for i, s in zip(images, seeds, strict=True)])


@pytest.mark.parametrize("recipe_name", RECIPES)
@pytest.mark.parametrize("strength", ["normal", "rare"])
def test_each_recipe_batched_equals_torchvision_per_image(cells, recipe_name, strength):
    augment = load_recipe(recipe_name).augment
    chosen = augment.normal if strength == "normal" else augment.rare_strength()
    transform = tensor_transform(SPEC, chosen, augment.degrade)
    batched = BatchAugment(transform)
    seeds = [1000 + 37 * i for i in range(len(cells))]
    got = batched(cells, seeds)
    expected = reference(batched, cells, seeds)
    assert got.dtype == expected.dtype == torch.float32 and got.shape == expected.shape
    difference = (got - expected).abs()
    # torchvision blends with one fused multiply-add (a scalar ratio), the batch with one ratio per image: a pixel on
    # a rounding step may land one level apart, which a later hue shift can widen to a few; rarely (with lite0-cpu's
    # stain-scale jitter, one rare-strength image of the twelve lands one level apart on 2.8% of its pixels)
    assert float(difference.max()) <= 4.0 / 255 + 1e-6
    assert float((difference > 1e-6).float().mean()) < 4e-3
    # and the augmentation did something: not the identity (every shipped strength warps or recolours)
    assert float((got - cells.float() / 255).abs().mean()) > 0.01


def test_geometry_and_colour_stages_match_torchvision_exactly(cells):
    """Rotation with fill, shift, zoom, shear, flips before and after the warp, and every colour adjustment,
    bilinear and nearest: the batched stages give torchvision's uint8 images."""
    fill = [200, 150, 170]
    cases = [
        (v2.InterpolationMode.BILINEAR, 0.05),
        (v2.InterpolationMode.NEAREST, 0.05),
        (v2.InterpolationMode.BILINEAR, 0.0),
    ]  # fmt: skip  (with and without hue: the compiled colour kernel on a CPU takes both)
    for interpolation, hue in cases:
        transform = v2.Compose(
            [
                v2.RandomVerticalFlip(),
                v2.RandomAffine(
                    180, translate=(0.1, 0.1), scale=(0.8, 1.2), shear=10, interpolation=interpolation, fill=fill
                ),
                v2.RandomHorizontalFlip(),
                v2.ColorJitter(0.3, 0.3, 0.3, hue),
            ]
        )
        batched = BatchAugment(transform)
        assert [s.batched for s in batched.stages] == [True, True]  # one warp with its flips, then colour
        seeds = list(range(len(cells)))
        got = batched(cells, seeds)
        expected = reference(batched, cells, seeds)
        assert got.dtype == torch.uint8
        difference = (got.int() - expected.int()).abs()
        assert int(difference.max()) <= 1 and float((difference > 0).float().mean()) < 1e-3, (interpolation, hue)


def test_the_torch_colour_path_gpus_take_matches_torchvision_on_the_cpu(cells, monkeypatch):
    """A GPU batch takes the colour stage in torch operations (hue for every image in one pass, with torchvision's own
    HSV conversions), a CPU batch the compiled kernel: the torch path, forced here on the CPU, gives torchvision's
    per-image images too, on whole levels and on floats, and the kernel's within a level."""
    from wbc_data.train import batch_augment

    def colour(hue: float, on_floats: bool) -> BatchAugment:
        to_float = [v2.ToDtype(torch.float32, scale=True)] if on_floats else []  # the jitter then runs on [0, 1]
        steps = [v2.RandomAffine(30, interpolation=v2.InterpolationMode.BILINEAR, fill=[200, 150, 170]),
                 *to_float, v2.ColorJitter(0.3, 0.3, 0.3, hue)]  # fmt: skip
        return BatchAugment(v2.Compose(steps))

    seeds = list(range(len(cells)))
    for hue, on_floats in ((0.05, False), (0.1, True), (0.0, False)):
        kernel = colour(hue, on_floats)(cells, seeds)
        with monkeypatch.context() as patched:
            patched.setattr(batch_augment, "_colour_jitter_kernel", batch_augment._colour_jitter_torch)
            augment = colour(hue, on_floats)
            got = augment(cells, seeds)
        expected = reference(augment, cells, seeds)
        scale = 255.0 if on_floats else 1.0
        difference = ((got.float() - expected.float()) * scale).abs()
        # a pixel on a rounding step of the warp or a blend may land a level or two apart (as in the recipe test)
        assert float(difference.max()) <= 2.0 + 1e-4 and float((difference > 1e-4).float().mean()) < 1e-3, hue
        assert float(((kernel.float() - got.float()) * scale).abs().max()) <= 1.0 + 1e-4, hue  # identical here
        assert float(((got.float() - cells.float() / (255.0 if on_floats else 1.0)) * scale).abs().mean()) > 5.0


def test_the_kernels_hue_is_torchvisions_adjust_hue(cells):
    """The compiled kernel's hue alone against ``adjust_hue`` image by image: real cells and random pixels with grey
    pixels and channel ties (the branches of the HSV conversion), factors up to +-0.5, on whole levels and on floats.
    Equal here bit for bit; compared within a level (floats: 1e-6) so that another CPU's rounding cannot fail it."""
    from torchvision.transforms.v2 import functional as TF

    from wbc_data.train.augment_kernels import HUE, colour_jitter

    rng = np.random.default_rng(1)
    noise = rng.random((12, 3, 48, 48), dtype=np.float32)
    noise[:, :, :8] = noise[:, :1, :8]  # grey
    noise[:, 1, 8:16] = noise[:, 0, 8:16]  # red = green
    noise[:, 2, 16:24] = noise[:, 1, 16:24]  # green = blue
    levels_in = np.concatenate([cells.numpy().astype(np.float32), np.floor(noise * 256).clip(0, 255)])
    factors = np.zeros((len(levels_in), 4), np.float32)
    factors[:, HUE] = np.concatenate([rng.uniform(-0.5, 0.5, len(levels_in) - 3), [0.5, -0.5, 0.0]])
    order = np.full((len(levels_in), 4), -1, np.int64)
    order[:, 0] = HUE
    for levels, images in ((True, levels_in), (False, levels_in / 255)):
        got = images.copy()
        colour_jitter(got, order, factors, levels)
        source = torch.from_numpy(images).to(torch.uint8) if levels else torch.from_numpy(images)
        turns = factors[:, HUE].tolist()
        expected = torch.stack([TF.adjust_hue(i, float(f)) for i, f in zip(source, turns, strict=True)])
        difference = np.abs(got - expected.float().numpy())
        assert float(difference.max()) <= (1.0 if levels else 1e-6), levels
        assert float((difference > 0).mean()) < 1e-3, levels
        assert float(np.abs(got - images).mean()) > (5.0 if levels else 0.02)  # the hue did turn


def test_the_colour_kernel_takes_any_memory_layout(cells):
    """Every adjustment in one order on a strided view and on a Fortran-ordered copy gives what it gives on a
    C-contiguous batch, and writes only the viewed pixels (the kernel walks rows, never reshapes)."""
    from wbc_data.train.augment_kernels import colour_jitter

    images = cells.numpy().astype(np.float32)[:4]
    order = np.array([[3, 2, 1, 0]] * len(images), np.int64)
    factors = np.array([[1.2, 0.8, 1.3, 0.1]] * len(images), np.float32)
    expected = images.copy()
    colour_jitter(expected, order, factors, True)
    assert float(np.abs(expected - images).mean()) > 1.0
    fortran = np.asfortranarray(images)
    colour_jitter(fortran, order, factors, True)
    assert np.array_equal(fortran, expected)
    wide = np.full((*images.shape[:3], 2 * images.shape[3]), -1.0, np.float32)
    wide[..., ::2] = images
    colour_jitter(wide[..., ::2], order, factors, True)
    assert np.array_equal(wide[..., ::2], expected)
    assert np.all(wide[..., 1::2] == -1.0)


def test_sampling_grid_equals_torchvisions_affine_grid():
    """The batch's sampling grid (broadcast multiply-adds) is torchvision's ``_affine_grid`` (a (h*w, 3) @ (3, 2)
    product) for each sample: the same values to float rounding, for rotations, scales, shears, shifts and flips."""
    from torchvision.transforms.v2.functional._geometry import _affine_grid

    from wbc_data.train.batch_augment import _sampling_grid

    generator = torch.Generator().manual_seed(0)
    theta = torch.tensor([[1.0, 0, 0], [0, 1, 0]]) + torch.randn(16, 2, 3, generator=generator) * torch.tensor(
        [[0.4, 0.4, 9.0], [0.4, 0.4, 9.0]]
    )
    theta[::3, :, :2] *= -1  # flips
    for h, w in ((128, 128), (96, 160)):
        ours = _sampling_grid(theta, h, w)
        for k in range(len(theta)):
            reference = _affine_grid(theta[k : k + 1].clone(), w, h, w, h)[0]
            torch.testing.assert_close(ours[k], reference, rtol=0, atol=1e-6)


def test_fill_coverage_equals_the_sampled_ones_channel():
    """The fill mask computed from the grid is what torchvision samples (an all-ones channel through the same
    bilinear ``grid_sample``): 1 inside, 0 far outside, the fraction along the border, for rotated, scaled, sheared,
    shifted and flipped grids."""
    import torch.nn.functional as F

    from wbc_data.train.batch_augment import _bilinear_coverage, _sampling_grid

    generator = torch.Generator().manual_seed(1)
    theta = torch.tensor([[1.0, 0, 0], [0, 1, 0]]) + torch.randn(16, 2, 3, generator=generator) * torch.tensor(
        [[0.5, 0.5, 12.0], [0.5, 0.5, 12.0]]
    )
    theta[::3, :, :2] *= -1
    for h, w in ((64, 64), (40, 72)):
        grid = _sampling_grid(theta, h, w)
        ones = torch.ones(len(theta), 1, h, w)
        sampled = F.grid_sample(ones, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        coverage = _bilinear_coverage(grid, h, w)
        assert coverage.shape == sampled.shape
        torch.testing.assert_close(coverage, sampled, rtol=0, atol=1e-5)
        partial = (sampled > 0.01) & (sampled < 0.99)
        assert partial.any() and (sampled < 0.01).any()  # the grids do reach the border and beyond


@pytest.mark.parametrize("levels", [True, False])
@pytest.mark.parametrize("fill", [[200.0, 180.0, 220.0], None])
def test_compiled_warp_equals_the_torch_warp(cells, levels, fill):
    """The CPU's compiled warp (one pass per pixel) gives the torch warp's images (torchvision's grid,
    ``grid_sample``, fill blend): on whole levels at most one level apart on a few pixels, in [0, 1] to float
    rounding; rotations, scales, shears, shifts and flips whose corners leave the image."""
    from wbc_data.train.batch_augment import _warp_compiled, _warp_torch

    generator = torch.Generator().manual_seed(2)
    n = len(cells)
    angle = torch.rand(n, generator=generator) * 6.3
    scale = 0.8 + 0.5 * torch.rand(n, generator=generator)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = torch.cos(angle) * scale, -torch.sin(angle) * scale
    theta[:, 1, 0], theta[:, 1, 1] = torch.sin(angle) * scale, torch.cos(angle) * scale
    theta[:, :, :2] += 0.2 * torch.randn(n, 2, 2, generator=generator)  # shear
    theta[:, :, 2] = 6 * torch.randn(n, 2, generator=generator)
    theta[::3, :, :2] *= -1
    x = cells.float() if levels else cells.float() / 255
    if fill is not None and not levels:
        fill = [v / 255 for v in fill]
    compiled = _warp_compiled(x.clone(), theta, fill, levels)
    reference = _warp_torch(x.clone(), theta, fill, "bilinear", levels)
    difference = (compiled - reference).abs()
    if levels:
        assert float(difference.max()) <= 1.0 and float((difference > 0).float().mean()) < 1e-3
        assert torch.equal(compiled, compiled.round())
        assert torch.equal(_warp_compiled(cells.clone(), theta, fill, levels), compiled)  # uint8 read as it is
    else:
        assert float(difference.max()) < 1e-4
    assert float((compiled - x).abs().mean()) > (5.0 if levels else 0.02)  # the images did move
    assert _warp_compiled(x.double(), theta, fill, levels).dtype == torch.float64  # floats keep their type


def test_an_images_augmentation_does_not_depend_on_its_batch(cells):
    transform = tensor_transform(SPEC, load_recipe("wbcbench-ensemble").augment.rare_strength(), load_recipe(
        "wbcbench-ensemble").augment.degrade)  # fmt: skip
    batched = BatchAugment(transform)
    seeds = [5, 6, 7, 8, 9, 10]
    together = batched(cells[:6], seeds)
    alone = torch.stack([batched(cells[i : i + 1], seeds[i : i + 1])[0] for i in range(6)])
    shuffled = batched(cells[[3, 0, 5, 1, 4, 2]], [seeds[i] for i in (3, 0, 5, 1, 4, 2)])
    assert torch.equal(together, alone)
    assert torch.equal(together[[3, 0, 5, 1, 4, 2]], shuffled)
    assert not torch.equal(batched(cells[:1], [5]), batched(cells[:1], [6]))  # the seed matters


def test_callers_rng_is_left_alone_and_final_scaling_can_be_left_to_the_device(cells):
    transform = tensor_transform(
        SPEC, load_recipe("lite0-cpu").augment.normal, load_recipe("lite0-cpu").augment.degrade
    )
    torch.manual_seed(3)
    before = torch.rand(4)
    torch.manual_seed(3)
    given = cells[:4].clone()
    BatchAugment(transform)(given, [1, 2, 3, 4])
    assert torch.equal(torch.rand(4), before)
    assert torch.equal(given, cells[:4])  # the caller's uint8 batch is read, never written
    unchanged = BatchAugment(v2.Compose([v2.RandomHorizontalFlip(p=0.0)]))(given, [1, 2, 3, 4])
    assert torch.equal(unchanged, given) and unchanged.data_ptr() != given.data_ptr()  # a batch of its own
    short = without_final_scaling(transform)
    assert short is not None
    as_uint8 = BatchAugment(short)(cells[:4], [1, 2, 3, 4])
    as_float = BatchAugment(transform)(cells[:4], [1, 2, 3, 4])
    assert as_uint8.dtype == torch.uint8 and torch.allclose(as_uint8.float() / 255, as_float, atol=1e-6)
    noisy = tensor_transform(
        SPEC, load_recipe("tiny-cpu").augment.rare_strength(), load_recipe("tiny-cpu").augment.degrade
    )
    assert without_final_scaling(noisy) is None  # noise comes after the scaling: nothing to leave out


@pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="no CUDA device: the GPU path (torch operations on the device) is checked against the CPU there",
)
def test_on_the_gpu_the_batch_gets_the_cpus_images(cells):
    transform = tensor_transform(
        SPEC, load_recipe("lite0-cpu").augment.normal, load_recipe("lite0-cpu").augment.degrade
    )
    batched = BatchAugment(transform)
    seeds = list(range(len(cells)))
    cpu = batched(cells, seeds)
    gpu = batched(cells.cuda(), seeds).cpu()
    assert float((cpu - gpu).abs().max()) <= 1.0 / 255 + 1e-6
