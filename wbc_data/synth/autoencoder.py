"""Latent diffusion on a CPU budget: a small diffusers ``AutoencoderKL`` learnt first, so that the denoiser works on
``(latent_channels, size/f, size/f)`` latents instead of pixels.

Why: a pixel-space UNet trained from scratch for the minutes a CPU gives learns colour blobs, not cells (see
``benchmarks/README.md``, ## synth): the denoiser has to spend its capacity on pixel detail. An autoencoder learns that
detail once (a convolutional reconstruction task converges in minutes), and the denoiser then models only the
layout of a cell (nucleus, cytoplasm, red cells around it) in a space 12x smaller, as Stable Diffusion does.

The autoencoder is trained deterministically from ``(seed, step)``; its latents are cached once per training set
for the 8 flips/rotations (cells have no orientation), scaled to unit variance by ``scaling_factor`` as diffusers'
``AutoencoderKL`` records it in its config, so a pipeline decodes ``latents / scaling_factor`` as SD pipelines do.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from wbc_data.core.progress import Progress
from wbc_data.io.atomic import atomic_write
from wbc_data.synth import SynthError
from wbc_data.synth.data import derive_seed
from wbc_data.synth.recipe import AutoencoderSpec

if TYPE_CHECKING:
    import torch
    from diffusers import AutoencoderKL

AUTOENCODER_PHASE = "autoencoder"
DIHEDRAL = 8
KL_WEIGHT = 1e-6
"""As Stable Diffusion's autoencoder: enough to keep the latent distribution tame, too little to blur it."""


def downscale(spec: AutoencoderSpec) -> int:
    """Pixels per latent along each side (2 per down block after the first)."""
    return 2 ** (len(spec.block_out_channels) - 1)


def build_autoencoder(spec: AutoencoderSpec, resolution: int) -> AutoencoderKL:
    from diffusers import AutoencoderKL

    blocks = len(spec.block_out_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * blocks,
        up_block_types=("UpDecoderBlock2D",) * blocks,
        block_out_channels=tuple(spec.block_out_channels),
        layers_per_block=spec.layers_per_block,
        latent_channels=spec.latent_channels,
        norm_num_groups=spec.norm_num_groups,
        sample_size=resolution,
    )


def dihedral_views(batch: torch.Tensor, view: int) -> torch.Tensor:
    """View ``view`` (0-7) of a (b, c, h, w) batch: rotation by ``view % 4`` quarter turns, mirrored from 4 on."""
    import torch

    moved = torch.rot90(batch, view % 4, dims=(2, 3))
    return torch.flip(moved, dims=(3,)) if view >= 4 else moved


def _to_unit(pixels: np.ndarray, device: Any) -> torch.Tensor:
    import torch

    return torch.from_numpy(np.array(pixels)).to(device).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def train_autoencoder(
    cache: np.ndarray,
    spec: AutoencoderSpec,
    resolution: int,
    seed: int,
    device: Any,
    progress: Progress,
) -> AutoencoderKL:
    """Learn to reconstruct the cached training images (L1 + MSE + a tiny KL), ``spec.steps`` batches drawn
    uniformly from ``(seed, step)`` under the 8 flips/rotations."""
    import torch

    torch.manual_seed(seed)
    model = build_autoencoder(spec, resolution).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.learning_rate, weight_decay=0.0)
    warmup = max(1, spec.steps // 20)

    def lr_factor(step: int) -> float:  # warmup, then cosine to a tenth
        if step < warmup:
            return (step + 1) / warmup
        done = (step - warmup) / max(1, spec.steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * done))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    progress.phase(AUTOENCODER_PHASE, spec.steps)
    began, smoothed = time.perf_counter(), float("nan")
    model.train()
    for step in range(spec.steps):
        rng = np.random.default_rng(derive_seed(seed, step, 7))
        idx = np.sort(rng.integers(0, len(cache), size=spec.batch_size))
        clean = dihedral_views(_to_unit(cache[idx], device), int(rng.integers(0, DIHEDRAL)))
        posterior = model.encode(clean).latent_dist
        generator = torch.Generator(device=device).manual_seed(derive_seed(seed, step, 8))
        rebuilt = model.decode(posterior.sample(generator)).sample
        loss = (rebuilt - clean).abs().mean() + ((rebuilt - clean) ** 2).mean() + KL_WEIGHT * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        value = float(loss.detach())
        smoothed = value if math.isnan(smoothed) else 0.95 * smoothed + 0.05 * value
        seconds = time.perf_counter() - began
        progress.advance(step + 1, spec.steps, loss=smoothed, images_per_s=(step + 1) * spec.batch_size / seconds)
    model.eval()
    return model


def reconstruction_error(model: AutoencoderKL, pixels: np.ndarray, batch: int = 64) -> float:
    """Mean absolute error in [0, 1] pixel units of encode -> decode (posterior mode) over ``pixels``."""
    import torch

    device = next(model.parameters()).device
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(pixels), batch):
            clean = _to_unit(pixels[start : start + batch], device)
            rebuilt = model.decode(model.encode(clean).latent_dist.mode()).sample.clamp(-1, 1)
            total += float((rebuilt - clean).abs().sum()) / 2.0
            count += clean.numel()
    return total / max(count, 1)


def latent_cache(model: AutoencoderKL, cache: np.ndarray, path: Path, fit_scale: bool, batch: int = 64) -> np.ndarray:
    """``(n, 8, c, h, w)`` float16 latents (posterior mode x ``scaling_factor``) of every cached image under the 8
    flips/rotations, computed once into ``path`` and reused by resumes. ``fit_scale`` (a freshly trained
    autoencoder): first set its ``scaling_factor`` to 1 / std of the latents (as Stable Diffusion's 0.18215 was
    measured), so the denoiser sees unit variance; otherwise the autoencoder's own factor is kept, as the denoiser
    it came with was trained with it."""
    import torch

    device = next(model.parameters()).device
    if path.is_file() and not fit_scale:
        try:
            cached = np.load(path, mmap_mode="r")
            if cached.shape[0] == len(cache):
                return cached
        except (OSError, ValueError):
            pass  # a damaged cache is rebuilt
    chunks = []
    with torch.no_grad():
        for start in range(0, len(cache), batch):
            clean = _to_unit(cache[start : start + batch], device)
            views = [model.encode(dihedral_views(clean, v)).latent_dist.mode() for v in range(DIHEDRAL)]
            chunks.append(torch.stack(views, dim=1).float().cpu().numpy())
    raw = np.concatenate(chunks)
    if fit_scale:
        std = float(raw.std())
        if not std > 0:
            raise SynthError("the autoencoder's latents are constant: it did not learn (train it longer)")
        model.register_to_config(scaling_factor=1.0 / std)
    scaled = (raw * float(model.config.scaling_factor)).astype(np.float16)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:  # a handle: np.save would append ".npy" to a bare name
            np.save(handle, scaled, allow_pickle=False)

    atomic_write(path, write)
    return np.load(path, mmap_mode="r")
