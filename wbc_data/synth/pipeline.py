"""The generator as a diffusers pipeline: class labels (13 classes, null class 13 for classifier-free guidance),
an optional domain (the source whose look to render), guidance scale, steps and a scheduler choice.

This file is self-contained (torch and diffusers only): it is copied as ``pipeline.py`` into every saved generator
folder, so anyone with diffusers can load one without wbc-data::

    from diffusers import DiffusionPipeline
    pipe = DiffusionPipeline.from_pretrained(folder, custom_pipeline=folder, trust_remote_code=True)
    images = pipe(["PMY"] * 8, guidance_scale=3.0, num_inference_steps=25, scheduler="dpm").images

How the conditions enter the UNet: a diffusers ``UNet2DModel`` adds one class embedding to its time embedding. Its
embedding table holds one row per class plus the null class (row ``len(class_names)``), and, when the generator is
conditioned on domains, one row per domain plus a "no domain" row after that. Class and domain rows are looked up
together and summed (:class:`SummedEmbedding`: two learned embeddings added to the time embedding), so a domain's
look is learnt from all of its classes and combines with a class seen only in other domains. The table is an
ordinary ``class_embedding.weight`` in the saved UNet; only its lookup sums pairs.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DDPMScheduler,
    DiffusionPipeline,
    DPMSolverMultistepScheduler,
    UNet2DModel,
)
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput
from diffusers.utils.torch_utils import randn_tensor

SCHEDULER_CHOICES = ("ddpm", "ddim", "dpm")


class SummedEmbedding(torch.nn.Embedding):
    """An embedding table whose lookup of a (batch, k) id tensor sums the k rows: class + domain embedding."""

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out = super().forward(ids)
        return out.sum(dim=-2) if ids.dim() == 2 else out


def sum_condition_embeddings(unet: UNet2DModel) -> None:
    """Make ``unet.class_embedding`` sum (class, domain) rows; the weight (and its name) stays the same."""
    table = unet.class_embedding
    if isinstance(table, SummedEmbedding) or table is None:
        return
    summed = SummedEmbedding(table.num_embeddings, table.embedding_dim)
    summed.weight = table.weight
    unet.class_embedding = summed


def condition_rows(n_classes: int, n_domains: int) -> int:
    """Rows of the embedding table: classes + null class (+ domains + no-domain when there are domains)."""
    return n_classes + 1 + (n_domains + 1 if n_domains else 0)


TRAINING_KEYS = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas", "prediction_type")
"""What a sampling scheduler takes from the training schedule; everything else is set here explicitly, so a
scheduler built in memory and one loaded from disk sample the same (diffusers' ``from_config`` otherwise swaps in
its own defaults for keys the training scheduler left at theirs)."""


def make_scheduler(
    kind: str, config: dict, clip: bool = True
) -> DDPMScheduler | DDIMScheduler | DPMSolverMultistepScheduler:
    """A sampling scheduler with the training schedule's betas and prediction type. Timesteps are "trailing"
    (they start at the last training step, which few-step sampling needs); with ``clip``, x0 is clipped to [-1, 1]
    as pixels are (latents, whose range is wider, are not clipped)."""
    base = {key: config[key] for key in TRAINING_KEYS if key in config}
    base["timestep_spacing"] = "trailing"
    if kind == "ddpm":
        return DDPMScheduler(**base, variance_type="fixed_small", clip_sample=clip)
    if kind == "ddim":
        return DDIMScheduler(**base, clip_sample=clip, set_alpha_to_one=False)
    if kind == "dpm":  # DPM-Solver++ (2M); thresholding at 1.0 is plain clipping of its x0 predictions
        return DPMSolverMultistepScheduler(
            **base, algorithm_type="dpmsolver++", solver_order=2, thresholding=clip, sample_max_value=1.0
        )
    raise ValueError(f"unknown scheduler {kind!r}: use one of {', '.join(SCHEDULER_CHOICES)}")


class WbcCellPipeline(DiffusionPipeline):
    """Class-conditional (and optionally domain-conditional) pixel-space diffusion for white-blood-cell images."""

    model_cpu_offload_seq = "unet->vae"
    _optional_components: ClassVar[list[str]] = ["vae"]

    def __init__(
        self,
        unet: UNet2DModel,
        scheduler: DDPMScheduler,
        class_names: Sequence[str] | None = None,
        domain_names: Sequence[str] | None = None,
        vae: AutoencoderKL | None = None,
    ) -> None:
        super().__init__()
        classes, domains = list(class_names or []), list(domain_names or [])
        self.register_modules(unet=unet, scheduler=scheduler, vae=vae)
        self.register_to_config(class_names=classes, domain_names=domains)
        expected = condition_rows(len(classes), len(domains))
        rows = unet.config.num_class_embeds
        if classes and rows != expected:
            raise ValueError(
                f"the UNet has {rows} condition rows; {len(classes)} classes and {len(domains)} domains need {expected}"
            )
        if domains:
            sum_condition_embeddings(unet)

    # ------------------------------------------------------------------ conditions

    @property
    def null_class(self) -> int:
        return len(self.config.class_names)

    def class_ids(self, labels: Sequence[int | str] | torch.Tensor) -> torch.Tensor:
        names = list(self.config.class_names)
        if isinstance(labels, torch.Tensor):
            return labels.long()
        ids = []
        for label in labels:
            if isinstance(label, str):
                if label not in names:
                    raise ValueError(f"unknown class {label!r} (known: {', '.join(names)})")
                label = names.index(label)
            if not 0 <= int(label) <= len(names):
                raise ValueError(f"class id {label} out of range 0..{len(names)}")
            ids.append(int(label))
        return torch.tensor(ids, dtype=torch.long)

    def domain_ids(self, domain: str | int | Sequence[str | int | None] | None, n: int) -> torch.Tensor | None:
        """Embedding rows of the domain(s): ``None`` means "no domain" (the generator's mix of looks)."""
        domains = list(self.config.domain_names)
        if not domains:
            if domain is not None:
                raise ValueError("this generator was trained without a domain condition")
            return None
        offset = len(self.config.class_names) + 1
        values = list(domain) if isinstance(domain, (list, tuple)) else [domain] * n
        rows = []
        for value in values:
            if value is None:
                rows.append(offset + len(domains))
            elif isinstance(value, str):
                if value not in domains:
                    raise ValueError(f"unknown domain {value!r} (known: {', '.join(domains)})")
                rows.append(offset + domains.index(value))
            else:
                rows.append(offset + int(value))
        return torch.tensor(rows, dtype=torch.long)

    def conditions(self, class_ids: torch.Tensor, domain_rows: torch.Tensor | None) -> torch.Tensor:
        """The ``class_labels`` tensor the UNet takes: (batch,) class rows, or (batch, 2) class + domain rows."""
        return class_ids if domain_rows is None else torch.stack([class_ids, domain_rows], dim=1)

    # ------------------------------------------------------------------ sampling

    @torch.no_grad()
    def __call__(
        self,
        class_labels: Sequence[int | str] | torch.Tensor,
        domain: str | int | Sequence[str | int | None] | None = None,
        guidance_scale: float = 3.0,
        num_inference_steps: int = 25,
        scheduler: str = "dpm",
        generator: torch.Generator | list[torch.Generator] | None = None,
        eta: float = 0.0,
        output_type: str = "pil",
        return_dict: bool = True,
    ) -> ImagePipelineOutput | tuple:
        """Sample one image per label. ``generator``: one ``torch.Generator`` per image makes each image depend
        on its own seed only (whatever batch it is drawn in); ``guidance_scale`` 1 switches guidance off."""
        training = self.unet.training
        self.unet.eval()  # a model still in train mode (e.g. mid-training grids) takes other attention kernels
        try:
            return self._sample(
                class_labels,
                domain,
                guidance_scale,
                num_inference_steps,
                scheduler,
                generator,
                eta,
                output_type,
                return_dict,
            )
        finally:
            self.unet.train(training)

    def _sample(
        self,
        class_labels: Sequence[int | str] | torch.Tensor,
        domain: str | int | Sequence[str | int | None] | None,
        guidance_scale: float,
        num_inference_steps: int,
        scheduler: str,
        generator: torch.Generator | list[torch.Generator] | None,
        eta: float,
        output_type: str,
        return_dict: bool,
    ) -> ImagePipelineOutput | tuple:
        device = self._execution_device
        classes = self.class_ids(class_labels)
        n = len(classes)
        domains = self.domain_ids(domain, n)
        cond = self.conditions(classes, domains)
        guided = guidance_scale != 1.0
        if guided:
            null = self.conditions(torch.full_like(classes, self.null_class), domains)
            cond = torch.cat([cond, null])
        cond = cond.to(device)
        sampler = make_scheduler(scheduler, dict(self.scheduler.config), clip=self.vae is None)
        sampler.set_timesteps(num_inference_steps, device=device)
        size = self.unet.config.sample_size
        size = (size, size) if isinstance(size, int) else tuple(size)
        shape = (n, self.unet.config.in_channels, *size)
        image = randn_tensor(shape, generator=generator, device=device, dtype=self.unet.dtype)
        image = image * sampler.init_noise_sigma
        extra = {}
        accepted = set(inspect.signature(sampler.step).parameters)
        if "generator" in accepted:
            extra["generator"] = generator
        if "eta" in accepted:
            extra["eta"] = eta
        if "use_clipped_model_output" in accepted:  # DDIM: noise re-derived from the clipped x0, so the two agree
            extra["use_clipped_model_output"] = True
        for t in self.progress_bar(sampler.timesteps):
            model_in = torch.cat([image, image]) if guided else image
            model_in = sampler.scale_model_input(model_in, t)
            out = self.unet(model_in, t, class_labels=cond).sample
            if guided:
                conditional, unconditional = out.chunk(2)
                out = unconditional + guidance_scale * (conditional - unconditional)
            image = sampler.step(out, t, image, **extra).prev_sample
        if self.vae is not None:  # latent diffusion: decode the latents (scaled to unit variance in training)
            latents = image.to(self.vae.dtype) / self.vae.config.scaling_factor
            image = self.vae.decode(latents).sample
        image = (image.float() / 2 + 0.5).clamp(0, 1)
        if output_type == "pt":
            images = image
        else:
            images = image.cpu().permute(0, 2, 3, 1).numpy()
            if output_type == "pil":
                images = self.numpy_to_pil(images)
            elif output_type == "uint8":
                images = np.round(images * 255).astype(np.uint8)
        if not return_dict:
            return (images,)
        return ImagePipelineOutput(images=images)
