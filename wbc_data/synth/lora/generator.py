"""A LoRA generator on disk: diffusers' LoRA file plus what rebuilds the pipeline, so that plain diffusers loads it::

    <generator>/
      pytorch_lora_weights.safetensors  UNet (and text-encoder) adapters, EMA weights, in diffusers' LoRA format
      lora.json                         the base (Hub id or folder, Hub revision), resolution, the prompt of every
                                        class and the phrase of every source
      README.md                         how to load it with diffusers alone
      base/                             the base pipeline itself, when the recipe says save_base: true
      wbc_generator.json                as for every generator: classes, sources, recipe, steps, content hash
      training_rows.parquet             sample_id, source, label, pixel_hash of every training image

    pipe = StableDiffusionPipeline.from_pretrained(base); pipe.load_lora_weights(folder)

:class:`LoraCellPipeline` puts class codes in and images out, with the call that ``wbc-data synth`` makes of the
pixel pipeline (labels, domain, guidance, steps, scheduler, one generator per image), so sampling, its guards and its
rows are the same for both kinds.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from wbc_data.core.taxonomy import CLASSES
from wbc_data.synth import SynthError
from wbc_data.synth.folders import remove_stale, replace_dir, staging_dir
from wbc_data.synth.generator import INFO_FILE, ROWS_FILE, GeneratorInfo, check_files, content_hash

LORA_FILE = "pytorch_lora_weights.safetensors"
LORA_INFO = "lora.json"
BASE_DIR = "base"
HASHED_FILES = (LORA_FILE, LORA_INFO)

README = """# {name}: LoRA adapters for {base}

Trained by `wbc-data synth train --recipe {recipe}` on {images} white-blood-cell images ({classes}).
Licence of the training data: {licence}.

```python
from diffusers import StableDiffusionPipeline

pipe = StableDiffusionPipeline.from_pretrained("{base_for_code}", safety_checker=None)
pipe.load_lora_weights("{folder}")
image = pipe("{example}", height={resolution}, width={resolution}, guidance_scale={guidance}).images[0]
```

The prompt of every class is in `lora.json` (`prompts`); `wbc-data synth --generator {folder} --cls PMY --n 100`
samples them with the copy guard.
"""


def lora_layers(model: Any) -> dict[str, Any]:
    """A peft-adapted model's LoRA weights in diffusers' format (what ``load_lora_weights`` reads)."""
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    return convert_state_dict_to_diffusers(get_peft_model_state_dict(model))


def save_lora_file(folder: Path, unet: Any, text_encoder: Any = None) -> None:
    """``pytorch_lora_weights.safetensors`` with the adapters' configs (rank and alpha travel with the weights)."""
    from diffusers import StableDiffusionPipeline

    extra: dict[str, Any] = {}
    if text_encoder is not None:
        extra = {
            "text_encoder_lora_layers": lora_layers(text_encoder),
            "text_encoder_lora_adapter_metadata": text_encoder.peft_config["default"].to_dict(),
        }
    StableDiffusionPipeline.save_lora_weights(
        folder,
        unet_lora_layers=lora_layers(unet),
        unet_lora_adapter_metadata=unet.peft_config["default"].to_dict(),
        safe_serialization=True,
        **extra,
    )


def save_lora_generator(
    folder: Path,
    unet: Any,
    text_encoder: Any,
    info: GeneratorInfo,
    rows: pd.DataFrame,
    meta: dict[str, Any],
    base_folder: Path | None = None,
) -> GeneratorInfo:
    """Write the generator folder (staged, then swapped in); ``base_folder``: copy the base pipeline in too (hard
    links from the previous export where possible). Returns ``info`` with its content hash."""
    folder = Path(folder)
    remove_stale(folder.parent, folder.name)
    tmp = staging_dir(folder)
    try:
        save_lora_file(tmp, unet, text_encoder)
        (tmp / LORA_INFO).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        rows[["sample_id", "source", "label", "pixel_hash"]].to_parquet(tmp / ROWS_FILE, index=False)
        if base_folder is not None:
            previous = folder / BASE_DIR
            source = previous if (previous / "model_index.json").is_file() else base_folder
            shutil.copytree(source, tmp / BASE_DIR, copy_function=_link_or_copy)
        info.content_hash = content_hash(tmp, HASHED_FILES)
        (tmp / "README.md").write_text(_readme(info, meta, folder), encoding="utf-8")
        (tmp / INFO_FILE).write_text(json.dumps(asdict(info), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        replace_dir(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(os.path.realpath(src), dst)
    except OSError:
        shutil.copy2(src, dst)


def _readme(info: GeneratorInfo, meta: dict[str, Any], folder: Path) -> str:
    prompts = meta["prompts"]
    example = prompts.get("PMY") or next(iter(prompts.values()))
    sample = info.recipe.get("sample", {})
    return README.format(
        name=info.name,
        base=meta["base"],
        base_for_code=meta["base"],
        recipe=info.recipe.get("name", info.name),
        images=sum(info.class_counts.values()),
        classes=", ".join(f"{c} {n}" for c, n in info.class_counts.items() if n),
        licence=info.licence() or "unknown",
        folder=folder,
        example=example.replace('"', '\\"'),
        resolution=meta["resolution"],
        guidance=sample.get("guidance", 5.0),
    )


class LoraCellPipeline:
    """Class codes in, images out: a ``StableDiffusionPipeline`` (LoRA loaded or being trained) prompted per class,
    called as ``wbc-data synth`` calls the pixel pipeline."""

    def __init__(self, pipe: Any, prompts: dict[str, str], domains: dict[str, str], resolution: int) -> None:
        self.pipe = pipe
        self.prompts = prompts
        self.domains = domains
        self.resolution = resolution
        self._training_config = dict(pipe.scheduler.config)

    def prompt(self, label: str, domain: str | None = None) -> str:
        if label not in self.prompts:
            raise ValueError(f"unknown class {label!r} (known: {', '.join(self.prompts)})")
        if domain is None:
            return self.prompts[label]
        if domain not in self.domains:
            raise ValueError(f"unknown domain {domain!r} (known: {', '.join(self.domains) or 'none'})")
        return f"{self.prompts[label]}, {self.domains[domain]}"

    def scheduler(self, kind: str) -> Any:
        """A sampling scheduler on the base's training schedule (betas, prediction type)."""
        from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

        if kind == "ddpm":
            return DDPMScheduler.from_config(self._training_config)
        if kind == "ddim":
            return DDIMScheduler.from_config(self._training_config)
        if kind == "dpm":
            return DPMSolverMultistepScheduler.from_config(self._training_config, algorithm_type="dpmsolver++")
        raise ValueError(f"unknown scheduler {kind!r}: use ddpm, ddim or dpm")

    def __call__(
        self,
        class_labels: list[str],
        domain: str | None = None,
        guidance_scale: float = 5.0,
        num_inference_steps: int = 25,
        scheduler: str = "dpm",
        generator: Any = None,
        output_type: str = "uint8",
    ) -> SimpleNamespace:
        """One image per label; one ``torch.Generator`` per image makes each depend on its own seed only."""
        import torch

        prompts = [self.prompt(label, domain) for label in class_labels]
        self.pipe.scheduler = self.scheduler(scheduler)
        unet = self.pipe.unet
        training = unet.training
        unet.eval()
        try:
            with torch.no_grad():
                images = self.pipe(
                    prompts,
                    height=self.resolution,
                    width=self.resolution,
                    guidance_scale=guidance_scale,
                    num_inference_steps=num_inference_steps,
                    generator=generator,
                    output_type="np" if output_type in ("np", "uint8") else output_type,
                ).images
        finally:
            unet.train(training)
        if output_type == "uint8":
            images = np.round(np.asarray(images, dtype=np.float32) * 255).astype(np.uint8)
        return SimpleNamespace(images=images)


def read_meta(folder: Path) -> dict[str, Any]:
    path = Path(folder) / LORA_INFO
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SynthError(f"{path}: not a readable LoRA generator description ({type(exc).__name__})") from None
    missing = [key for key in ("base", "prompts", "resolution") if not isinstance(meta, dict) or key not in meta]
    if missing:
        raise SynthError(f"{path}: not a LoRA generator description (no {missing[0]})")
    return meta


def load_lora_generator(
    folder: Path, info: GeneratorInfo, device: str | None = None, dtype: Any = None
) -> tuple[LoraCellPipeline, GeneratorInfo]:
    """The base pipeline (the copy in ``base/`` when there is one) with the adapters loaded, ready to sample."""
    from wbc_data.synth.lora.base import first_line, load_base

    check_files(folder, info, HASHED_FILES)
    meta = read_meta(folder)
    own = folder / BASE_DIR
    base = load_base(str(own) if (own / "model_index.json").is_file() else meta["base"], dtype)
    try:
        base.pipe.load_lora_weights(str(folder), weight_name=LORA_FILE)
    except Exception as exc:  # diffusers/peft raise many types; the user needs the one line
        raise SynthError(
            f"{folder}: its LoRA weights do not fit the base {meta['base']} ({type(exc).__name__}: {first_line(exc)})"
        ) from None
    if device is not None:
        base.pipe.to(device)
    known = {c: p for c, p in meta["prompts"].items() if c in CLASSES}
    return LoraCellPipeline(base.pipe, known, meta.get("domains", {}), int(meta["resolution"])), info
