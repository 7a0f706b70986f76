"""The denoiser: a diffusers ``UNet2DModel`` whose class-embedding table holds the 13 classes, the null class and
(optionally) the domains, built from a recipe or started from a diffusers model saved at a local path."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from wbc_data.io.resources import pretrained_dir
from wbc_data.synth import SynthError
from wbc_data.synth.recipe import Recipe

if TYPE_CHECKING:
    from diffusers import DDPMScheduler, UNet2DModel


def build_unet(recipe: Recipe, condition_rows: int) -> UNet2DModel:
    """A fresh UNet of the recipe's size, conditioned through ``condition_rows`` class-embedding rows."""
    from diffusers import UNet2DModel

    m = recipe.model
    return UNet2DModel(
        sample_size=recipe.latent_side,
        in_channels=recipe.channels,
        out_channels=recipe.channels,
        block_out_channels=tuple(m.block_out_channels),
        layers_per_block=m.layers_per_block,
        down_block_types=tuple(m.down_block_types),
        up_block_types=tuple(m.up_block_types),
        attention_head_dim=m.attention_head_dim,
        norm_num_groups=m.norm_num_groups,
        dropout=m.dropout,
        num_class_embeds=condition_rows,
    )


def noise_scheduler(recipe: Recipe) -> DDPMScheduler:
    """The DDPM training schedule (saved with the generator; sampling schedulers are built from its config)."""
    from diffusers import DDPMScheduler

    s = recipe.schedule
    return DDPMScheduler(
        num_train_timesteps=s.num_train_timesteps, beta_schedule=s.beta_schedule, prediction_type=s.prediction_type
    )


def unet_from_local(path: str | Path, recipe: Recipe, condition_rows: int) -> tuple[UNet2DModel, list[str]]:
    """Start from a diffusers UNet saved at ``path`` (a model folder, or a pipeline folder with ``unet/``): its
    architecture and weights, at the recipe's resolution, with a class-embedding table of ``condition_rows`` rows.

    A table of the right shape (e.g. one of our own generators) is kept; otherwise the new table starts at zero,
    so the first steps behave exactly like the model it started from. Nothing is ever downloaded."""
    import torch
    from diffusers import UNet2DModel

    folder = resolve_init(path)
    if not folder.is_dir():
        raise SynthError(
            f"{folder}: no diffusers model folder here (init_from needs a local path; nothing is downloaded)"
        )
    subfolder = "unet" if (folder / "unet" / "config.json").is_file() else None
    if subfolder is None and not (folder / "config.json").is_file():
        raise SynthError(f"{folder}: not a diffusers UNet folder (no config.json, nor unet/config.json)")
    try:
        source = UNet2DModel.from_pretrained(folder, subfolder=subfolder, local_files_only=True)
    except Exception as exc:  # diffusers raises OSError, ValueError, EnvironmentError or safetensors errors
        raise SynthError(f"{folder}: cannot load a UNet2DModel ({type(exc).__name__}: {_first_line(exc)})") from None
    config = {k: v for k, v in source.config.items() if not k.startswith("_")}
    if config.get("in_channels") != recipe.channels or config.get("out_channels") != recipe.channels:
        kind = "RGB" if recipe.autoencoder is None else "the recipe's latents"
        raise SynthError(
            f"{folder}: the model works on {config.get('in_channels')} channels; {kind} need {recipe.channels}"
        )
    config.update(sample_size=recipe.latent_side, num_class_embeds=condition_rows, class_embed_type=None)
    model = UNet2DModel(**config)
    state = source.state_dict()
    notes = [f"started from {folder}"]
    table = state.get("class_embedding.weight")
    if table is not None and tuple(table.shape) != tuple(model.class_embedding.weight.shape):
        del state["class_embedding.weight"]
        table = None
    if table is None:
        with torch.no_grad():
            model.class_embedding.weight.zero_()
        notes.append("its class embedding is new (zero at start)")
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if k != "class_embedding.weight"]
    if missing or unexpected:
        raise SynthError(
            f"{folder}: weights do not fit the model ({len(missing)} missing, {len(unexpected)} unexpected)"
        )
    if source.config.sample_size != recipe.latent_side:
        notes.append(f"trained at side {source.config.sample_size}, continued at {recipe.latent_side}")
    return model, notes


PRETRAINED_PREFIX = "pretrained:"


def resolve_init(path: str | Path) -> Path:
    """A local folder, or ``pretrained:<name>``: a generator shipped inside the package (``pretrained/<name>``)."""
    text = str(path)
    if text.startswith(PRETRAINED_PREFIX):
        name = text[len(PRETRAINED_PREFIX) :]
        folder = pretrained_dir() / name
        if not folder.is_dir():
            known = sorted(p.name for p in pretrained_dir().glob("*") if p.is_dir())
            raise SynthError(f"{text}: no shipped generator of that name (shipped: {', '.join(known) or 'none'})")
        return folder
    return Path(path).expanduser()


def autoencoder_from(folder: Path, subfolder: str = "vae") -> Any:
    """The ``vae/`` of a generator folder (latent generators), or None when it has none."""
    from diffusers import AutoencoderKL

    if not (folder / subfolder / "config.json").is_file():
        return None
    try:
        vae = AutoencoderKL.from_pretrained(folder, subfolder=subfolder, local_files_only=True)
        return vae.float()  # shipped generators store float16 weights
    except Exception as exc:  # diffusers raises OSError, ValueError or safetensors errors
        raise SynthError(f"{folder}: cannot load its autoencoder ({type(exc).__name__}: {_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else "no detail"


def denoising_loss(unet: UNet2DModel, scheduler: DDPMScheduler, clean: Any, conditions: Any, seed: int = 0) -> float:
    """The training objective (epsilon MSE) on fixed noise and timesteps drawn from ``seed``: comparable between
    two models, so "did training lower the loss" has an answer free of sampling noise."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(clean.shape, generator=gen)
    steps = torch.randint(0, scheduler.config.num_train_timesteps, (clean.shape[0],), generator=gen)
    with torch.no_grad():
        pred = unet(scheduler.add_noise(clean, noise, steps), steps, class_labels=conditions).sample
    return float(torch.nn.functional.mse_loss(pred.float(), noise))
