"""A recipe's torchvision v2 augmentations applied to a whole batch, each sample drawn from its own seed.

torchvision's v2 transforms work one image at a time. On a CPU a 128 px image costs far more in per-call Python and
small-tensor overhead than in arithmetic (``RandomAffine`` and ``ColorJitter`` were 8 of the 9 ms an image took in
the loader), so the training cache's loader ran at 1.5x the PIL path. Here the same ``Compose`` runs on a batch:

- the steps are cut into **stages**: a run of steps that have a batched form here (one ``RandomAffine`` with the
  flips around it, ``ColorJitter``, ``ToDtype``), or a single step without one (crop, perspective, blur, noise,
  degradation), which runs image by image;
- at the start of each stage every sample's RNG is seeded from its own seed and the stage's number, and
  torchvision's own ``make_params`` (and the ``p`` draw of a random-apply step) draws its parameters, so the draws
  are torchvision's and never depend on which other samples share the batch (persistent workers and resumed runs see
  the same images);
- the geometry of the whole batch is then one warp (each sample's inverse affine matrix, flips folded in as sign
  changes, torchvision's fill): one ``grid_sample`` on a GPU, a compiled per-pixel kernel on a CPU
  (:mod:`~wbc_data.train.augment_kernels`, which also holds the colour kernel), and the colour steps follow
  torchvision's kernels step for step (uint8 in, uint8 out, truncation where torchvision truncates).

``tests/test_batch_augment.py`` proves each batched stage against torchvision's per-image transforms with the same
draws on real cells; ``benchmarks/train.py`` measures the gain.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms.v2 import functional as TF

STAGE_MIX = 0xBF58476D1CE4E5B9
GEOMETRY = (v2.RandomAffine, v2.RandomHorizontalFlip, v2.RandomVerticalFlip)
BATCHED = (*GEOMETRY, v2.ColorJitter, v2.ToDtype)


def stage_seed(seed: int, stage: int) -> int:
    """The RNG seed of one sample in one stage: the sample's seed mixed with the stage's number."""
    return (int(seed) + (stage + 1) * STAGE_MIX) & (2**63 - 1)


def seed_rng(seed: int, device: torch.device) -> None:
    """Seed the RNGs a step on ``device`` draws from. ``torch.manual_seed`` would also queue lazy seeding of every
    accelerator backend, recording a stack trace each time (about 1 ms per call on a CPU machine, more than the
    augmentation of a 128 px image); the CPU generator, plus the device's own, is all a step uses."""
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        torch.cuda.manual_seed(seed)


def without_final_scaling(transform: Callable[[Any], Any]) -> v2.Compose | None:
    """The transform without its last step when that step only scales uint8 to float [0, 1] (``ToDtype(float32,
    scale=True)``), for callers that scale on the device; ``None`` when it ends otherwise."""
    steps = list(transform.transforms) if isinstance(transform, v2.Compose) else [transform]
    last = steps[-1] if steps else None
    if isinstance(last, v2.ToDtype) and last.dtype == torch.float32 and last.scale:
        return v2.Compose(steps[:-1] or [v2.Identity()])
    return None


def _draw(step: Any, image: torch.Tensor) -> dict[str, Any] | None:
    """One step's parameters for one image, drawn as the step's own ``forward`` draws them; ``None``: not applied."""
    flip = isinstance(step, (v2.RandomHorizontalFlip, v2.RandomVerticalFlip))
    if flip and torch.rand(1) >= step.p:
        return None
    return step.make_params([image])


@dataclass
class _Stage:
    steps: list[Any]
    batched: bool


def stages_of(transform: Callable[[Any], Any]) -> list[_Stage]:
    """Cut a ``v2.Compose`` (or a single step) into stages; one stage holds at most one interpolating warp."""
    steps = list(transform.transforms) if isinstance(transform, v2.Compose) else [transform]
    stages: list[_Stage] = []
    for step in steps:
        if isinstance(step, v2.Identity):
            continue
        if not isinstance(step, BATCHED):
            stages.append(_Stage([step], batched=False))
            continue
        last = stages[-1] if stages and stages[-1].batched else None
        kinds = [type(s) for s in last.steps] if last else []
        starts_new = (
            last is None
            or (isinstance(step, v2.RandomAffine) and v2.RandomAffine in kinds)
            or isinstance(step, GEOMETRY) != all(k in GEOMETRY for k in kinds)  # geometry and colour apart
        )
        if starts_new:
            stages.append(_Stage([step], batched=True))
        else:
            last.steps.append(step)
    return stages


class BatchAugment:
    """``augment(images, seeds)``: the transform applied to every image of a ``(B, 3, H, W)`` batch with its seed,
    exactly as per image (``augment(images[i:i+1], seeds[i:i+1])`` gives the same image).

    uint8 batches are carried between batched stages as float32 holding whole levels 0-255 (``levels``): each step
    rounds or truncates as torchvision does for uint8, without converting back and forth at every step. A uint8
    batch stays uint8 until a stage needs floats: the compiled warp reads it as it is, saving a pass over the batch."""

    def __init__(self, transform: Callable[[Any], Any]) -> None:
        self.transform = transform
        self.stages = stages_of(transform)

    def __call__(self, images: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
        if len(images) == 0:
            return images
        devices = [images.device] if images.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # the caller's RNG (sampling, CutMix) is left as it was
            levels = images.dtype == torch.uint8
            # floats are copied (stages work in place); uint8 is only ever read: each stage makes a new batch from it
            x = images if levels else images.clone()
            for number, stage in enumerate(self.stages):
                if stage.batched:
                    x, levels = self._batched(stage, number, x, levels, seeds)
                else:
                    x, levels = self._one_by_one(stage.steps[0], number, x, levels, seeds)
            if x is images:
                return images.clone()
            return x.to(torch.uint8) if levels else x

    @staticmethod
    def _one_by_one(
        step: Any, number: int, x: torch.Tensor, levels: bool, seeds: Sequence[int]
    ) -> tuple[torch.Tensor, bool]:
        out = []
        for image, seed in zip(x.to(torch.uint8) if levels else x, seeds, strict=True):
            seed_rng(stage_seed(seed, number), x.device)
            out.append(step(image))
        return _retype(torch.stack(out))

    @staticmethod
    def _batched(
        stage: _Stage, number: int, x: torch.Tensor, levels: bool, seeds: Sequence[int]
    ) -> tuple[torch.Tensor, bool]:
        draws: list[list[dict[str, Any] | None]] = [[] for _ in stage.steps]
        for image, seed in zip(x, seeds, strict=True):
            seed_rng(stage_seed(seed, number), x.device)
            for k, step in enumerate(stage.steps):
                draws[k].append(_draw(step, image))
        if isinstance(stage.steps[0], GEOMETRY):
            return _geometry(x, levels, stage.steps, draws), levels
        x = x.to(torch.float32)  # a uint8 batch becomes float levels here (a new batch: the caller's is untouched)
        for step, params in zip(stage.steps, draws, strict=True):
            if isinstance(step, v2.ColorJitter):
                x = _colour_jitter(x, levels, params)
            elif levels and step.dtype == torch.float32 and step.scale:
                x, levels = x.mul_(1.0 / 255), False  # torchvision's uint8 -> float32 scaling
            else:  # any other ToDtype: torchvision's own, on the batch
                x, levels = _retype(step(x.to(torch.uint8) if levels else x))
        return x, levels


def _retype(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """A step's output in the carried form: uint8 back to float whole levels (``levels`` True), floats as they are."""
    return (x.to(torch.float32), True) if x.dtype == torch.uint8 else (x, False)


# --- geometry -------------------------------------------------------------------------------------------------------


def _inverse_affine(params: dict[str, Any]) -> list[float]:
    """torchvision's inverse matrix for one sample (centre of the image as origin, as ``affine_image`` uses)."""
    from torchvision.transforms.v2.functional._geometry import _get_inverse_affine_matrix

    translate = [float(t) for t in params["translate"]]
    return _get_inverse_affine_matrix([0.0, 0.0], params["angle"], translate, params["scale"], list(params["shear"]))


def _geometry(
    x: torch.Tensor, levels: bool, steps: list[Any], draws: list[list[dict[str, Any] | None]]
) -> torch.Tensor:
    """Flips and one affine warp of the whole batch: flips are sign changes of the output (after the warp) or input
    (before it) coordinates, the warp is torchvision's (its grid, bilinear or nearest sampling, its fill): on a CPU
    the compiled kernel for bilinear, else one ``grid_sample`` for the batch."""
    n = len(x)
    warp = next((s for s in steps if isinstance(s, v2.RandomAffine)), None)
    if warp is None:  # flips only: exact pixel moves
        for step, params in zip(steps, draws, strict=True):
            chosen = torch.tensor([p is not None for p in params], device=x.device)
            if chosen.any():
                dim = -1 if isinstance(step, v2.RandomHorizontalFlip) else -2
                x = torch.where(chosen.view(-1, 1, 1, 1), x.flip(dim), x)
        return x
    position = next(i for i, s in enumerate(steps) if s is warp)
    out_sign = torch.ones(n, 2, dtype=torch.float32)  # flips after the warp: on the output grid
    in_sign = torch.ones(n, 2, dtype=torch.float32)  # flips before it: on the sampled coordinates
    for k, (step, params) in enumerate(zip(steps, draws, strict=True)):
        if step is warp:
            continue
        axis = 0 if isinstance(step, v2.RandomHorizontalFlip) else 1
        for i, p in enumerate(params):
            if p is not None:
                (out_sign if k > position else in_sign)[i, axis] *= -1
    theta = torch.tensor([_inverse_affine(p) for p in draws[position]], dtype=torch.float32).view(n, 2, 3)
    theta[:, :, :2] *= out_sign.view(n, 1, 2)  # M @ diag(out_sign): flip the output coordinates first
    theta *= in_sign.view(n, 2, 1)  # diag(in_sign) @ M: then flip where the input is read
    fill = _fill_of(warp, x)
    mode = InterpolationMode(warp.interpolation).value
    if x.device.type == "cpu" and mode == "bilinear":
        return _warp_compiled(x, theta, fill, levels)
    return _warp_torch(x.to(torch.float32), theta, fill, mode, levels)


def _coefficients(theta: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(n, 3, 2): rows x, y, 1 of each sample's inverse affine, columns the grid's x and y in ``grid_sample``'s
    normalised units."""
    scale = torch.tensor([0.5 * w, 0.5 * h], device=theta.device)
    return theta.transpose(1, 2) / scale


def _warp_torch(
    x: torch.Tensor, theta: torch.Tensor, fill: list[float] | None, mode: str, levels: bool
) -> torch.Tensor:
    """The warp as torchvision computes it (its grid, ``grid_sample``, its fill blend): any device and mode."""
    n, _, h, w = x.shape
    grid = _sampling_grid(theta.to(x.device), h, w)
    if fill is None:
        out = F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)
    else:
        fill_image = torch.tensor(fill, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        if mode == "bilinear":  # torchvision's fill blend, its sampled mask computed from the grid (see below)
            out = F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)
            out = out.sub_(fill_image).mul_(_bilinear_coverage(grid, h, w)).add_(fill_image)
        else:  # nearest: a mask channel sampled with the image, then the fill where it is out, as torchvision does
            ones = torch.ones(n, 1, h, w, dtype=x.dtype, device=x.device)
            sampled = F.grid_sample(torch.cat([x, ones], 1), grid, mode=mode, padding_mode="zeros", align_corners=False)
            out, mask = sampled[:, :-1], sampled[:, -1:]
            out = torch.where(mask < 0.5, fill_image.expand_as(out), out)
    return out.round_().clamp_(0, 255) if levels else out


def _warp_compiled(x: torch.Tensor, theta: torch.Tensor, fill: list[float] | None, levels: bool) -> torch.Tensor:
    """The bilinear warp on a CPU by :func:`~wbc_data.train.augment_kernels.affine_warp`: one pass per output pixel
    for all channels instead of the grid, ``grid_sample``, mask and blend passes (tested against
    :func:`_warp_torch` and torchvision)."""
    from wbc_data.train.augment_kernels import affine_warp

    _, channels, h, w = x.shape
    source = (x if x.dtype == torch.uint8 else x.to(torch.float32)).contiguous()  # the kernel reads uint8 as it is
    out = torch.empty(x.shape, dtype=torch.float32)
    fill_values = np.asarray(fill if fill is not None else [0.0] * channels, np.float32)
    coefficients = _coefficients(theta, h, w).to(torch.float32).contiguous()
    affine_warp(source.numpy(), coefficients.numpy(), fill_values, fill is not None, levels, out.numpy())
    return out if x.dtype == torch.uint8 else out.to(x.dtype)


def _sampling_grid(theta: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """torchvision's sampling grid of each inverse affine ``theta`` ((n, 2, 3), pixel units, centre origin), in
    ``grid_sample``'s normalised coordinates: ``[x, y, 1] @ theta.T / (w/2, h/2)`` for every output pixel, as
    torchvision's ``_affine_grid`` computes it. Written as two broadcast multiply-adds per coordinate instead of a
    batched (h*w, 3) @ (3, 2) product: the same values (tested), a fifth of the time on a CPU, where the product
    cost as much as the sampling itself."""
    n = len(theta)
    ys = torch.linspace((1.0 - h) * 0.5, (h - 1.0) * 0.5, h, device=theta.device).view(1, h, 1)
    xs = torch.linspace((1.0 - w) * 0.5, (w - 1.0) * 0.5, w, device=theta.device).view(1, 1, w)
    m = _coefficients(theta, h, w).view(n, 3, 2, 1, 1)  # rows: x, y, 1; columns: grid x, grid y
    grid = torch.empty(n, h, w, 2, device=theta.device)
    for j in (0, 1):
        torch.add(xs * m[:, 0, j], ys * m[:, 1, j], out=grid[..., j]).add_(m[:, 2, j])
    return grid


def _bilinear_coverage(grid: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """What torchvision's fill mask is, without sampling it: ``grid_sample`` of an all-ones channel (bilinear, zero
    padding, ``align_corners=False``) at each grid point. Per axis, the in-bounds neighbours' weights sum to
    ``clamp(min(i + 1, size - i), 0, 1)`` at the unnormalised coordinate ``i = g * size / 2 + (size - 1) / 2``,
    which is ``clamp((size + 1) / 2 - |g| * size / 2, 0, 1)``; the 2-D mask is the product of the two axes.
    Sampling a fourth channel (and concatenating it to the batch) cost a third of the warp on a CPU; this is three
    element-wise passes (tested against the sampled mask)."""
    half = torch.tensor([0.5 * w, 0.5 * h], dtype=grid.dtype, device=grid.device)
    axes = torch.addcmul(half + 0.5, grid.abs(), half, value=-1.0).clamp_(0.0, 1.0)
    return (axes[..., 0] * axes[..., 1]).unsqueeze_(1)


def _fill_of(warp: v2.RandomAffine, x: torch.Tensor) -> list[float] | None:
    """The warp's fill for plain tensors (torchvision keeps fills per input type, ``"others"`` for the rest)."""
    from torchvision.transforms.v2._utils import _get_fill

    fill = _get_fill(warp._fill, type(x))
    if fill is None:
        return None
    return [float(v) for v in fill] if isinstance(fill, (list, tuple)) else [float(fill)] * x.shape[1]


# --- colour ---------------------------------------------------------------------------------------------------------
# Each adjustment follows torchvision's kernel; on whole levels it clamps and truncates as its ``.to(uint8)`` does.


def _settle(x: torch.Tensor, levels: bool) -> torch.Tensor:
    return x.clamp_(0, 255).floor_() if levels else x.clamp_(0, 1)


def _grey(x: torch.Tensor, levels: bool) -> torch.Tensor:
    grey = TF.rgb_to_grayscale(x, num_output_channels=1)
    return grey.floor_() if levels else grey


def _brightness(x: torch.Tensor, factor: torch.Tensor, levels: bool) -> torch.Tensor:
    return _settle(x.mul(factor), levels)


def _blend(x: torch.Tensor, other: torch.Tensor, ratio: torch.Tensor, levels: bool) -> torch.Tensor:
    return _settle(x.mul(ratio).add_(other * (1.0 - ratio)), levels)


def _contrast(x: torch.Tensor, factor: torch.Tensor, levels: bool) -> torch.Tensor:
    return _blend(x, _grey(x, levels).mean(dim=(-3, -2, -1), keepdim=True), factor, levels)


def _saturation(x: torch.Tensor, factor: torch.Tensor, levels: bool) -> torch.Tensor:
    return _blend(x, _grey(x, levels), factor, levels)


def _hue(x: torch.Tensor, factor: torch.Tensor, levels: bool) -> torch.Tensor:
    """torchvision's ``adjust_hue`` with one factor per image, in one pass over the images given (the samples that
    share an adjustment order), through its own HSV conversions: its public kernel takes one factor, which would mean
    a loop of small kernels per image on a GPU. On whole levels, its uint8 conversions around it. A CPU batch takes
    the compiled kernel instead (:func:`_colour_jitter_kernel`)."""
    from torchvision.transforms.v2.functional._color import _hsv_to_rgb, _rgb_to_hsv

    unit = x.to(torch.uint8).to(torch.float32).mul_(1.0 / 255) if levels else x
    h, s, v = _rgb_to_hsv(unit).unbind(dim=-3)
    h = h.add(factor.reshape(-1, *([1] * (h.dim() - 1)))).remainder_(1.0)
    out = _hsv_to_rgb(torch.stack((h, s, v), dim=-3))
    return out.mul(255.0 + 1.0 - 1e-3).to(torch.uint8).to(torch.float32) if levels else out


ADJUST = ((0, "brightness_factor", _brightness), (1, "contrast_factor", _contrast),
          (2, "saturation_factor", _saturation), (3, "hue_factor", _hue))  # fmt: skip


def _colour_jitter(x: torch.Tensor, levels: bool, draws: list[dict[str, Any] | None]) -> torch.Tensor:
    """``ColorJitter`` on the batch: each sample applies its adjustments in its own drawn order. Samples that share
    an order (of the configured adjustments: at most 24) are adjusted together, one pass per adjustment."""
    configured = [(fn, name, adjust) for fn, name, adjust in ADJUST if draws[0][name] is not None]  # type: ignore[index]
    if not configured:
        return x
    ids = {fn for fn, _, _ in configured}
    # fn_idx is torchvision's permutation tensor: one tolist() per sample instead of a 0-d tensor per element
    orders = [tuple(f for f in _as_list(d["fn_idx"]) if f in ids) for d in draws]  # type: ignore[index]
    if x.device.type == "cpu":  # the compiled kernel, each image in cache
        return _colour_jitter_kernel(x, levels, draws, orders, configured)
    return _colour_jitter_torch(x, levels, draws, orders, configured)


def _as_list(order: Any) -> list[int]:
    return order.tolist() if isinstance(order, torch.Tensor) else [int(f) for f in order]


def _colour_jitter_torch(
    x: torch.Tensor, levels: bool, draws: list[dict[str, Any] | None], orders: list[tuple[int, ...]], configured: list
) -> torch.Tensor:
    """:func:`_colour_jitter` in torch operations (any device): samples with one order are adjusted together."""
    by_fn = {fn: (name, adjust) for fn, name, adjust in configured}
    out = torch.empty_like(x)
    for order in sorted(set(orders)):
        chosen = [i for i, o in enumerate(orders) if o == order]
        part = x[chosen] if len(chosen) < len(x) else x
        for fn in order:
            name, adjust = by_fn[fn]
            factor = torch.tensor([float(draws[i][name]) for i in chosen], device=x.device)  # type: ignore[index]
            part = adjust(part, factor.view(-1, 1, 1, 1), levels)
        out[chosen] = part
    return out


def _colour_jitter_kernel(
    x: torch.Tensor, levels: bool, draws: list[dict[str, Any] | None], orders: list[tuple[int, ...]], configured: list
) -> torch.Tensor:
    """:func:`_colour_jitter` on a CPU batch by :func:`~wbc_data.train.augment_kernels.colour_jitter`."""
    from wbc_data.train.augment_kernels import colour_jitter

    order = np.full((len(x), 4), -1, np.int64)
    factors = np.zeros((len(x), 4), np.float32)
    for i, sample in enumerate(orders):
        order[i, : len(sample)] = sample
        for fn, name, _ in configured:
            factors[i, fn] = float(draws[i][name])  # type: ignore[index]
    out = x.to(torch.float32).contiguous()  # the batch is BatchAugment's own (see __call__): adjusted in place
    colour_jitter(out.numpy(), order, factors, levels)
    return out
