"""LoRA fine-tuning of a pretrained latent diffusion model, after diffusers' ``train_text_to_image_lora.py``: the
base frozen (in bf16/fp16 under mixed precision), peft LoRA adapters on the UNet's attention projections (optionally
the text encoder's) kept in float32, one Accelerate loop.

Per step, as the pixel recipe: a class-balanced batch drawn from ``(seed, step)`` (:class:`BalancedBatches`), the 8
flips/rotations, then the VAE's latents (sampled with the step's generator), DDPM noise at a random timestep, MSE on
the base's prediction target, AdamW on the adapters, EMA of the adapters. Every ``checkpoint_every`` steps: a
checkpoint (optimiser, schedule, EMA, RNGs; the adapters in diffusers' LoRA format, not the frozen base), the
generator exported with the EMA adapters, and a per-class grid. Ctrl-C and ``max_minutes`` stop with a checkpoint;
a resumed run continues bit for bit.

Cells are letterboxed exactly as the classifier sees them (:class:`wbc_data.train.augment.Letterbox`, the recipe's
fill and interpolation), not centre-cropped: nothing at the edge of a cell is lost, and the padding the generator
learns is the padding the classifier is trained with.

Prior preservation: the adapters are shared by all classes and every batch is drawn class-balanced from all of them,
so learning a class of 13 images never moves the model unopposed: each step also fits the other classes, which is
what keeps them (the role of DreamBooth's prior loss when one subject is learnt alone). DreamBooth's other half,
a loss on base-model images of the class prompt, is left out on purpose: the base has no useful prior for
"a promyelocyte" to keep, and rendering hundreds of base images costs more than the fine-tuning itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from wbc_data.core.device import mixed_precision
from wbc_data.core.heap import retain_freed_memory
from wbc_data.core.progress import NullProgress, Progress
from wbc_data.core.taxonomy import CLASSES
from wbc_data.core.workspace import Workspace
from wbc_data.io.atomic import atomic_write_text
from wbc_data.synth import SynthError
from wbc_data.synth import checkpoints as ckpt
from wbc_data.synth.data import BalancedBatches, TrainingSet, cache_folder, derive_seed, dihedral, drop_labels
from wbc_data.synth.generator import INFO_FILE, GeneratorInfo, read_info
from wbc_data.synth.lora.generator import LoraCellPipeline, save_lora_generator
from wbc_data.synth.lora.recipe import LoraRecipe
from wbc_data.synth.recipe import dump_recipe
from wbc_data.synth.train import CACHE_PHASE, TrainResult, _append_log, _target, finished, resumable, run_steps

DTYPES = {"fp16": "float16", "bf16": "bfloat16"}


def row_prompts(recipe: LoraRecipe, data: TrainingSet) -> tuple[list[str], np.ndarray]:
    """The distinct prompts of the training rows (the empty, unconditional prompt last) and each row's index."""
    spec = recipe.prompts
    texts = [
        spec.for_domain(spec.for_class(CLASSES[label]), data.domain_names[domain] if domain >= 0 else None)
        for label, domain in zip(data.labels.tolist(), data.domains.tolist(), strict=True)
    ]
    unique = sorted(set(texts))
    index = {text: i for i, text in enumerate(unique)}
    return [*unique, ""], np.array([index[t] for t in texts], dtype=np.int64)


def tokenize(tokenizer: Any, prompts: list[str]) -> Any:
    return tokenizer(
        prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids


def check_prompts(tokenizer: Any, prompts: dict[str, str]) -> None:
    """Two classes whose prompts are the same tokens (the tokenizer truncates at its length) would be one class."""
    ids = tokenize(tokenizer, list(prompts.values()))
    seen: dict[tuple[int, ...], str] = {}
    for code, row in zip(prompts, ids.tolist(), strict=True):
        other = seen.setdefault(tuple(row), code)
        if other != code:
            raise SynthError(
                f"prompts of {other} and {code} are the same after tokenisation (the tokenizer keeps "
                f"{tokenizer.model_max_length} tokens): put the class name earlier or shorten prompts.template"
            )


def letterboxed(
    data: TrainingSet,
    workspace: Workspace,
    recipe: LoraRecipe,
    size: int,
    out: Path,
    accelerator: Any,
    progress: Progress,
) -> np.ndarray:
    """The training cells letterboxed at ``size`` as the classifier sees them, decoded once (main process)."""
    from wbc_data.io.pixels import PixelLoader
    from wbc_data.synth.data import pixel_cache
    from wbc_data.train.augment import Letterbox

    box = recipe.letterbox
    view = Letterbox(size, tuple(box.fill), box.interpolation)
    prefix = f"letterbox-{''.join(f'{v:02x}' for v in box.fill)}-{box.interpolation}"
    args = (data.frame, PixelLoader.for_workspace(workspace), size, cache_folder(out), data.fingerprint())
    if accelerator.is_main_process:
        progress.phase(CACHE_PHASE)
        cache = pixel_cache(*args, workers=recipe.train.workers, progress=progress, view=view, prefix=prefix)
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        cache = pixel_cache(*args, workers=0, view=view, prefix=prefix)
    return cache


@contextmanager
def ema_weights(params: list[Any], ema: Any) -> Iterator[None]:
    """The adapters hold their EMA weights inside the block, their training weights again after."""
    ema.store(params)
    ema.copy_to(params)
    try:
        yield
    finally:
        ema.restore(params)


def train_lora(
    workspace: Workspace,
    recipe: LoraRecipe,
    out: Path,
    resume: bool,
    max_minutes: float | None,
    progress: Progress,
    only_rows: frozenset[str] | None = None,
) -> TrainResult:
    """Fine-tune ``recipe.base`` with LoRA on the workspace's train split (``only_rows``: just those rows of it);
    see the module docstring."""
    import torch
    import torch.nn.functional as F
    from accelerate import Accelerator
    from diffusers import DDPMScheduler
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel, cast_training_params
    from peft import LoraConfig

    from wbc_data.synth.lora.base import load_base

    say = progress.note
    found = resumable(out, resume)
    t = recipe.train
    retain_freed_memory()
    accelerator = Accelerator(
        mixed_precision=mixed_precision(t.mixed_precision), gradient_accumulation_steps=t.gradient_accumulation_steps
    )
    if not accelerator.is_main_process:
        progress = NullProgress()  # one voice under `accelerate launch`
        say = progress.note
    base = load_base(recipe.base)
    size = recipe.resolution or base.resolution
    factor = int(base.pipe.vae_scale_factor)
    if size % (factor * 2 ** (len(base.pipe.unet.config.block_out_channels) - 1)):
        raise SynthError(f"{recipe.path}: resolution {size} does not fit the base's VAE and UNet (try 256 or 512)")
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "recipe.yaml", dump_recipe(recipe))
    say(f"base {base.name}: {base.folder}" + (f" (revision {base.revision[:12]})" if base.revision else ""))

    data = training_set_for(workspace, recipe, only_rows)
    class_prompts = {c: recipe.prompts.for_class(c) for c in CLASSES}
    check_prompts(base.pipe.tokenizer, class_prompts)
    prompts, prompt_of_row = row_prompts(recipe, data)
    cache = letterboxed(data, workspace, recipe, size, out, accelerator, progress)
    counts = data.class_counts()
    say(f"{len(data):,} training images at {size} px: " + ", ".join(f"{c} {n:,}" for c, n in counts.items() if n))

    device = accelerator.device
    weight_dtype = getattr(torch, DTYPES.get(accelerator.mixed_precision, "float32"))
    pipe = base.pipe
    unet, vae, text_encoder = pipe.unet, pipe.vae, pipe.text_encoder
    for module in (unet, vae, text_encoder):
        module.requires_grad_(False)
        module.to(device, dtype=weight_dtype) if weight_dtype != torch.float32 else module.to(device)
    vae.eval()
    text_encoder.eval()
    torch.manual_seed(t.seed)  # the adapters' A matrices are drawn from it (B starts at zero)
    lora = recipe.lora
    unet.add_adapter(
        LoraConfig(r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout, init_lora_weights="gaussian",
                   target_modules=list(lora.target_modules))
    )  # fmt: skip
    trained = [unet]
    if t.train_text_encoder:
        text_encoder.add_adapter(
            LoraConfig(r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout, init_lora_weights="gaussian",
                       target_modules=list(lora.text_encoder_target_modules))
        )  # fmt: skip
        text_encoder.train()
        trained.append(text_encoder)
    cast_training_params(trained, dtype=torch.float32)  # the adapters train in float32 whatever the base's dtype
    if t.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
        if t.train_text_encoder:
            text_encoder.gradient_checkpointing_enable()
    params = [p for module in trained for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        params, lr=t.learning_rate, betas=(t.adam_beta1, t.adam_beta2),
        weight_decay=t.adam_weight_decay, eps=t.adam_epsilon,
    )  # fmt: skip
    lr_schedule = get_scheduler(
        t.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=t.lr_warmup_steps * accelerator.num_processes,
        num_training_steps=t.steps * accelerator.num_processes,
    )
    _checkpoint_adapters(accelerator, type(unet), trained)
    prepared = accelerator.prepare(*trained, optimizer, lr_schedule)
    unet = prepared[0]
    optimizer, lr_schedule = prepared[-2], prepared[-1]
    models = prepared[: len(trained)]
    ema = EMAModel(params, decay=t.ema_decay, use_ema_warmup=True, inv_gamma=t.ema_inv_gamma, power=t.ema_power)
    ema.to(device)
    accelerator.register_for_checkpointing(ema)

    state = {"recipe": recipe.fingerprint(), "data": data.fingerprint(), "seconds": 0.0, "images": 0, "loss": None}
    start = 0
    if found:
        saved = ckpt.read_state(found[1])
        for key, what in (("recipe", "recipe"), ("data", "training rows")):
            if saved.get(key) != state[key]:
                raise SynthError(
                    f"{found[1]}: was trained with another {what}; resume needs the same (or use --out for a new run)"
                )
        accelerator.load_state(str(found[1]))
        cast_training_params(trained, dtype=torch.float32)
        ema.to(device)
        start = int(saved["step"])
        state.update(
            seconds=float(saved.get("seconds", 0.0)), images=int(saved.get("images", 0)), loss=saved.get("loss")
        )
        say(f"resumed from {found[1]} (step {start:,} of {t.steps:,})")
    if start >= t.steps:
        say(f"already trained {start:,} of {t.steps:,} steps")

    noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    prediction = noise_scheduler.config.prediction_type
    tokens = tokenize(pipe.tokenizer, prompts).to(device)
    embeddings = None
    if not t.train_text_encoder:  # frozen text encoder: every prompt encoded once
        with torch.no_grad():
            embeddings = text_encoder(tokens)[0]
    empty = len(prompts) - 1
    prompt_ids = torch.from_numpy(prompt_of_row)
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    scale = vae.config.scaling_factor
    batches = BalancedBatches(data.labels, t.class_balance, t.batch_size, t.seed, accelerator.num_processes)
    per_step = t.batch_size * accelerator.num_processes * t.gradient_accumulation_steps

    def step_once(step: int) -> float:
        total = 0.0
        for micro in range(t.gradient_accumulation_steps):
            gen = torch.Generator(device=device).manual_seed(
                derive_seed(t.seed, step, micro, accelerator.process_index)
            )
            idx = batches.indices(step, accelerator.process_index, micro)
            pixels = torch.from_numpy(np.ascontiguousarray(cache[idx])).to(device)
            clean = pixels.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
            if t.dihedral:
                clean = dihedral(clean, gen)
            with torch.no_grad():
                latents = vae.encode(clean.to(weight_dtype)).latent_dist.sample(generator=gen).float()
            latents = (latents - shift) * scale
            which = drop_labels(prompt_ids[idx].to(device), recipe.prompts.dropout, empty, gen)
            noise = torch.randn(latents.shape, generator=gen, device=device)
            steps_t = torch.randint(
                0, noise_scheduler.config.num_train_timesteps, (latents.shape[0],), generator=gen, device=device
            )
            noisy = noise_scheduler.add_noise(latents, noise, steps_t)
            target = _target(prediction, noise_scheduler, latents, noise, steps_t)
            with accelerator.accumulate(*models):
                context = embeddings[which] if embeddings is not None else models[1](tokens[which])[0]
                pred = unet(noisy.to(weight_dtype), steps_t, encoder_hidden_states=context).sample
                loss = F.mse_loss(pred.float(), target.float())
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(params, t.max_grad_norm)
                optimizer.step()
                lr_schedule.step()
                optimizer.zero_grad(set_to_none=True)
            total += float(loss.detach())
        ema.step(params)
        return total / t.gradient_accumulation_steps

    exporter = _Exporter(recipe, data, base, size, out, accelerator, class_prompts)
    unwrapped = [accelerator.unwrap_model(m) for m in models]

    def save_all(step: int) -> None:
        ckpt.save(accelerator, out / "checkpoints", step, state, t.keep_checkpoints)
        with ema_weights(params, ema):
            if accelerator.is_main_process:
                exporter.export(unwrapped, step, state)
                with accelerator.autocast():
                    exporter.grid(step)
        accelerator.wait_for_everyone()
        _append_log(out, accelerator, {"step": step, **{k: state[k] for k in ("seconds", "images", "loss")}})
        say(f"step {step:,}: checkpoint, generator and sample grid saved")

    steps_done, stopped = run_steps(
        t.steps, start, t.checkpoint_every, step_once, save_all, state, per_step, max_minutes, out, progress
    )
    if exporter.last_info is None and not (out / "generator" / INFO_FILE).is_file():
        with ema_weights(params, ema):  # nothing trained here: export what was resumed
            if accelerator.is_main_process:
                exporter.export(unwrapped, start, state)
    accelerator.wait_for_everyone()
    info = exporter.last_info or read_info(out / "generator")
    return finished(out, info, steps_done, t.steps, state, stopped, accelerator.is_main_process, exporter.grids)


def training_set_for(workspace: Workspace, recipe: LoraRecipe, only_rows: frozenset[str] | None = None) -> TrainingSet:
    from wbc_data.synth.data import training_set

    return training_set(workspace, recipe.prompts.domain_condition, only_rows)


def _checkpoint_adapters(accelerator: Any, unet_type: type, trained: list[Any]) -> None:
    """Checkpoints hold the adapters (diffusers' LoRA file), never a copy of the frozen base (gigabytes)."""
    from diffusers import StableDiffusionPipeline
    from diffusers.training_utils import _set_state_dict_into_text_encoder
    from diffusers.utils import convert_unet_state_dict_to_peft
    from peft.utils import set_peft_model_state_dict

    from wbc_data.synth.lora.generator import save_lora_file

    def save_hook(models: list[Any], weights: list[Any], output_dir: str) -> None:
        if accelerator.is_main_process:
            unet = next(m for m in models if isinstance(m, unet_type))
            text_encoder = next((m for m in models if not isinstance(m, unet_type)), None)
            save_lora_file(Path(output_dir), unet, text_encoder)
            while weights:
                weights.pop()  # the models' full state dicts: not saved again

    def load_hook(models: list[Any], input_dir: str) -> None:
        state, _ = StableDiffusionPipeline.lora_state_dict(input_dir)
        while models:
            model = models.pop()
            if isinstance(model, unet_type):
                own = {k.removeprefix("unet."): v for k, v in state.items() if k.startswith("unet.")}
                result = set_peft_model_state_dict(model, convert_unet_state_dict_to_peft(own), adapter_name="default")
                if getattr(result, "unexpected_keys", None):
                    raise SynthError(f"{input_dir}: adapters that do not fit this model ({result.unexpected_keys[0]})")
            else:
                _set_state_dict_into_text_encoder(state, prefix="text_encoder.", text_encoder=model)

    accelerator.register_save_state_pre_hook(save_hook)
    accelerator.register_load_state_pre_hook(load_hook)


class _Exporter:
    """Exports the generator (EMA adapters) and draws the per-class grid at each checkpoint (main process)."""

    def __init__(
        self,
        recipe: LoraRecipe,
        data: TrainingSet,
        base: Any,
        size: int,
        out: Path,
        accelerator: Any,
        class_prompts: dict[str, str],
    ) -> None:
        self.recipe = recipe
        self.data = data
        self.base = base
        self.size = size
        self.out = out
        self.accelerator = accelerator
        self.grids: list[Path] = []
        self.last_info: GeneratorInfo | None = None
        spec = recipe.prompts
        domains = {d: spec.for_domain("", d).removeprefix(", ") for d in data.domain_names}
        self.meta = {
            "base": base.name if not Path(base.name).expanduser().is_dir() else str(base.folder),
            "base_revision": base.revision,
            "resolution": size,
            "prompts": class_prompts,
            "domains": domains,
            "negative_prompt": "",
            "lora": {"rank": recipe.lora.rank, "alpha": recipe.lora.alpha,
                     "text_encoder": recipe.train.train_text_encoder},
        }  # fmt: skip
        self.pipe = LoraCellPipeline(base.pipe, class_prompts, domains, size)

    def export(self, models: list[Any], step: int, state: dict[str, Any]) -> None:
        seconds = float(state["seconds"])
        info = GeneratorInfo(
            name=self.recipe.name,
            resolution=self.size,
            class_counts=self.data.class_counts(),
            domains=list(self.data.domain_names),
            sources=self.data.sources(),
            recipe=self.recipe.to_dict(),
            trained_steps=step,
            planned_steps=self.recipe.train.steps,
            training_seconds=round(seconds, 2),
            images_per_second=round(state["images"] / seconds, 2) if seconds else 0.0,
            device=f"{self.accelerator.device} x{self.accelerator.num_processes}, "
            f"mixed precision {self.accelerator.mixed_precision}",
            init_from=self.meta["base"],
            created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        text_encoder = models[1] if len(models) > 1 else None
        base_copy = self.base.folder if self.recipe.save_base else None
        self.last_info = save_lora_generator(
            self.out / "generator", models[0], text_encoder, info, self.data.frame, self.meta, base_copy
        )

    def grid(self, step: int) -> None:
        import torch

        from wbc_data.synth.grids import class_grid

        t = self.recipe.train
        if t.grid_per_class <= 0:
            return
        samples = {}
        for index, name in enumerate(CLASSES):
            if not self.data.class_counts()[name]:
                continue
            gens = [torch.Generator().manual_seed(derive_seed(t.seed, index, k)) for k in range(t.grid_per_class)]
            samples[name] = self.pipe(
                [name] * t.grid_per_class,
                guidance_scale=self.recipe.sample.guidance,
                num_inference_steps=t.grid_steps,
                scheduler=self.recipe.sample.scheduler,
                generator=gens,
            ).images
        title = f"{self.recipe.name}: step {step:,} (EMA adapters, {self.recipe.sample.scheduler} {t.grid_steps} steps)"
        self.grids.append(class_grid(samples, self.out / "samples" / f"step-{step:07d}.png", title))
