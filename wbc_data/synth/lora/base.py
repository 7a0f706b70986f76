"""The pretrained pipeline a LoRA generator adapts: a local diffusers folder, or a Hub id fetched through diffusers'
own ``download`` (the Hugging Face cache, ``HF_HUB_OFFLINE`` and ``HF_HUB_CACHE`` honoured; the safety checker is
never fetched). Whatever goes wrong is one line naming the base, where it was looked for and how to provide it."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wbc_data.synth import SynthError

COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")


@dataclass
class Base:
    """The base pipeline's components and where they came from."""

    pipe: Any  # a diffusers StableDiffusionPipeline (no safety checker)
    name: str  # as the user gave it
    folder: Path  # the local folder read (the given folder, or the Hub cache's snapshot)
    revision: str | None  # the Hub commit, when read from the Hub cache

    @property
    def resolution(self) -> int:
        """The base's own image size: the UNet's latent size times the VAE's downscaling."""
        size = self.pipe.unet.config.sample_size
        size = size if isinstance(size, int) else int(size[0])
        return int(size * self.pipe.vae_scale_factor)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def locate(name: str | None) -> tuple[Path, str | None]:
    """The local folder holding the base (downloaded into the Hub cache first when online) and its Hub revision."""
    if not name:
        raise SynthError("no base model: pass --base <Hub id or local diffusers folder> (e.g. a Stable Diffusion 1.5)")
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise SynthError(f"{path}: not a diffusers pipeline folder (no model_index.json; save one with "
                             "`pipe.save_pretrained(folder)`)")  # fmt: skip
        return path.resolve(), None
    looks_like_path = path.is_absolute() or name.startswith((".", "~")) or name.count("/") > 1
    if looks_like_path or not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", name):
        raise SynthError(f"--base {name}: no such folder (give a local diffusers folder or a Hub id like org/model)")
    from diffusers import StableDiffusionPipeline
    from huggingface_hub import constants

    offline = _offline()
    try:
        folder = StableDiffusionPipeline.download(
            name, safety_checker=None, feature_extractor=None, local_files_only=offline
        )
    except Exception as exc:  # huggingface_hub and diffusers raise many types; the user needs the one line
        how = (
            "offline and not in the Hugging Face cache"
            if offline
            else f"could not be fetched ({type(exc).__name__}: {first_line(exc)})"
        )
        raise SynthError(
            f"--base {name}: no such local folder, and {how} (looked in {constants.HF_HUB_CACHE}); fetch it once "
            f"on a connected machine with `hf download {name}` (and copy the cache, or set HF_HUB_CACHE), "
            "or pass --base <local diffusers folder>"
        ) from None
    folder = Path(folder)
    revision = folder.name if folder.parent.name == "snapshots" else None
    return folder, revision


def load_base(name: str | None, dtype: Any = None) -> Base:
    """The base's components (weights in ``dtype``, float32 by default); anything unreadable is one line."""
    folder, revision = locate(name)
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.disable_progress_bar()
    extra = {"torch_dtype": dtype} if dtype is not None else {}
    try:
        pipe = StableDiffusionPipeline.from_pretrained(
            folder, safety_checker=None, feature_extractor=None, requires_safety_checker=False,
            local_files_only=True, **extra,
        )  # fmt: skip
    except Exception as exc:  # diffusers/transformers/safetensors raise many types
        raise SynthError(
            f"--base {name}: {folder} cannot be loaded as a Stable-Diffusion-style pipeline "
            f"({type(exc).__name__}: {first_line(exc)})"
        ) from None
    missing = [c for c in COMPONENTS if getattr(pipe, c, None) is None]
    if missing:
        raise SynthError(f"--base {name}: {folder} has no {', '.join(missing)}")
    pipe.set_progress_bar_config(disable=True)
    return Base(pipe, str(name), folder, revision)
