"""`wbc-data synth train --recipe sd-lora --base <folder>` end to end on CPU, offline: tiny randomly initialised
Stable Diffusion components built here (as diffusers' own tests build them) and saved as a local diffusers folder,
real cells from the shipped PBC sample. Training through the CLI, loading with plain diffusers, sampling through
`wbc-data synth`, the adapters really trained and class-aware, resume bit for bit, a missing base in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tests.synth_fixtures import KillAtStep, one_thread, split_workspace
from wbc_data.cli import app
from wbc_data.core.taxonomy import CLASSES
from wbc_data.synth import SynthError, TrainInterrupted
from wbc_data.synth.checkpoints import checkpoints
from wbc_data.synth.recipe import load_recipe
from wbc_data.synth.train import train

SIZE = 16  # pixels; the tiny VAE halves them once: 8x8 latents
SETTINGS = [
    f"resolution={SIZE}",
    "prompts.template=cell {code}",  # the test tokenizer spells words letter by letter: keep prompts short
    "lora.rank=8",
    "lora.alpha=8",
    "train.learning_rate=1e-2",
    "train.lr_warmup_steps=0",
    "train.batch_size=4",
    "train.ema_decay=0.9",
    "train.workers=0",
    "train.grid_per_class=0",
    "train.gradient_checkpointing=false",
    "sample.steps=3",
]


def _byte_characters() -> list[str]:
    """CLIP's byte-to-unicode alphabet: as the vocabulary (no merges), any text tokenizes letter by letter."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


def build_tiny_base(folder: Path) -> Path:
    """A Stable Diffusion pipeline of tiny random components (UNet2DConditionModel, AutoencoderKL, CLIP text model,
    CLIP tokenizer from a vocabulary written here, DDPM schedule), saved with ``save_pretrained``: nothing is
    downloaded."""
    from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    characters = _byte_characters()
    vocab = ["<|startoftext|>", "<|endoftext|>", *characters, *(c + "</w>" for c in characters)]
    words = folder / "tokenizer-source"
    words.mkdir(parents=True)
    (words / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(vocab)}))
    (words / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(words / "vocab.json"), str(words / "merges.txt"), model_max_length=16)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=SIZE // 2,
        block_out_channels=(8, 16),
        layers_per_block=1,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=4,
        norm_num_groups=4,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 16),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=4,
        sample_size=SIZE,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=0, eos_token_id=1, pad_token_id=1, vocab_size=len(vocab), hidden_size=16,
            intermediate_size=32, num_attention_heads=2, num_hidden_layers=2, max_position_embeddings=16,
        )
    )  # fmt: skip
    scheduler = DDPMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, steps_offset=1
    )
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    pipe.save_pretrained(folder / "sd")
    return folder / "sd"


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    yield from one_thread()


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return build_tiny_base(tmp_path_factory.mktemp("tiny-sd"))


@pytest.fixture(scope="module")
def ws(tmp_path_factory, _one_thread):
    workspace = split_workspace(tmp_path_factory.mktemp("synth-lora"))
    torch.set_num_threads(1)  # building it (dedup) can leave torch on more threads: 10x slower steps when busy
    return workspace


def recipe(base: Path, *settings: str):
    return load_recipe("sd-lora", [*SETTINGS, *settings]).with_base(base)


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def settings_args(*settings: str) -> list[str]:
    return [part for s in [*SETTINGS, *settings] for part in ("--set", s)]


def training_cells(ws) -> tuple[torch.Tensor, list[str]]:
    """The training images letterboxed as the recipe trains on them, in [-1, 1], and their class prompts."""
    from wbc_data.io.pixels import PixelLoader, row_refs
    from wbc_data.synth.data import training_set
    from wbc_data.train.augment import Letterbox

    data = training_set(ws)
    loader = PixelLoader.for_workspace(ws)
    box = Letterbox(SIZE, (128, 128, 128), "bicubic")
    pixels = np.stack([np.asarray(box(loader.open(ref))) for ref in row_refs(data.frame)])
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1
    return images, [f"cell {CLASSES[label]}" for label in data.labels]


def denoising_loss(pipe, images: torch.Tensor, prompts: list[str], seeds: range = range(4)) -> float:
    """The training objective on fixed noise and timesteps: lower means the model fits these cells and prompts."""
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    with torch.no_grad():
        latents = pipe.vae.encode(images).latent_dist.mean * pipe.vae.config.scaling_factor
        ids = pipe.tokenizer(
            prompts, padding="max_length", max_length=pipe.tokenizer.model_max_length, truncation=True,
            return_tensors="pt",
        ).input_ids  # fmt: skip
        context = pipe.text_encoder(ids)[0]
        losses = []
        for seed in seeds:
            gen = torch.Generator().manual_seed(seed)
            noise = torch.randn(latents.shape, generator=gen)
            steps = torch.randint(0, 1000, (len(latents),), generator=gen)
            pred = pipe.unet(scheduler.add_noise(latents, noise, steps), steps, encoder_hidden_states=context).sample
            losses.append(float(((pred - noise) ** 2).mean()))
    return float(np.mean(losses))


def test_shipped_recipe_names_each_class_in_words_and_checks_its_keys(tmp_path):
    shipped = load_recipe("sd-lora")
    assert shipped.kind == "sd-lora" and shipped.resolution == 256 and not shipped.train.train_text_encoder
    assert shipped.prompts.for_class("PMY").endswith("photomicrograph of a promyelocyte")
    assert shipped.letterbox.fill == (128, 128, 128) and shipped.expected_h100
    assert shipped.with_base("org/model").base == "org/model"
    assert shipped.fingerprint() == shipped.with_overrides(steps=5, checkpoint_every=2).fingerprint()
    assert shipped.fingerprint() != load_recipe("sd-lora", ["lora.rank=8"]).fingerprint()
    bad = tmp_path / "bad.yaml"
    for text, expected in (
        ("name: x\nkind: sd-lora\nlora: {rnak: 4}\n", "unknown key lora.rnak"),
        ("name: x\nkind: sd-lora\nprompts: {classes: {XYZ: a cell}}\n", "unknown class 'XYZ'"),
        ("name: x\nkind: sd-lora\nresolution: 100\n", "resolution 100"),
        ("name: x\nkind: latent\n", "kind 'latent'"),
    ):
        bad.write_text(text)
        with pytest.raises(SynthError) as caught:
            load_recipe(bad)
        assert str(bad) in str(caught.value) and expected in str(caught.value) and "\n" not in str(caught.value)


def test_prompts_that_truncate_to_the_same_tokens_are_refused(base):
    from transformers import CLIPTokenizer

    from wbc_data.synth.lora.train import check_prompts

    tokenizer = CLIPTokenizer.from_pretrained(base, subfolder="tokenizer")
    check_prompts(tokenizer, {"PMY": "cell PMY", "LY": "cell LY"})
    with pytest.raises(SynthError, match="prompts of PMY and LY are the same after tokenisation"):
        check_prompts(tokenizer, {"PMY": "a long stained smear PMY", "LY": "a long stained smear LY"})


def test_train_with_the_cli_load_with_plain_diffusers_and_sample(ws, base, tmp_path):
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import load_file

    from wbc_data.synth.generator import read_info
    from wbc_data.synth.sample import SynthOptions, run_synth

    out = tmp_path / "run"
    code, output = cli(
        "synth", "train", "--recipe", "sd-lora", "--base", str(base), "--steps", "40", "--checkpoint-every", "40",
        "--out", str(out), "-w", str(ws.root), *settings_args(),
    )  # fmt: skip
    assert code == 0, output
    generator = out / "generator"
    assert f"generator: {generator}" in output
    info = read_info(generator)
    assert info.kind == "sd-lora" and info.init_from == str(base.resolve()) and info.trained_steps == 40
    assert (generator / "pytorch_lora_weights.safetensors").is_file() and "load_lora_weights" in (
        generator / "README.md"
    ).read_text()
    weights = load_file(generator / "pytorch_lora_weights.safetensors")
    up = [v for k, v in weights.items() if "lora.up" in k or "lora_B" in k]
    assert up and all(k.startswith("unet.") for k in weights)
    assert all(float(v.abs().sum()) > 0 for v in up)  # B starts at zero: every adapter moved

    # a diffusers user, without wbc-data: the base, then the adapters
    images, prompts = training_cells(ws)
    pipe = StableDiffusionPipeline.from_pretrained(base, safety_checker=None)
    pipe.set_progress_bar_config(disable=True)
    two = [f"cell {c}" for c in info.trained_classes()[:2]]

    def draw() -> np.ndarray:
        seeds = [torch.Generator().manual_seed(7) for _ in two]
        return pipe(two, height=SIZE, width=SIZE, num_inference_steps=3, generator=seeds, output_type="np").images

    before, plain = denoising_loss(pipe, images, prompts), draw()
    pipe.load_lora_weights(str(generator))
    after, adapted = denoising_loss(pipe, images, prompts), draw()
    assert after < 0.98 * before, (before, after)  # the adapters learnt these cells
    assert np.abs(adapted - plain).mean() > 1e-3  # and change what the base draws
    assert np.abs(adapted[0] - adapted[1]).mean() > 1e-3  # two class prompts, one seed: two different images

    # `wbc-data synth` samples the class prompts through it, with the copy guard, into a synthetic source (the
    # fidelity gate is off: a tiny random base draws no cells, and this checks the bookkeeping of a LoRA generator)
    label = info.trained_classes()[0]
    options = SynthOptions(counts={label: 2}, steps=3, device="cpu", name="lora-test", fidelity_gate=False)
    result = run_synth(ws, generator, options)
    (outcome,) = result.outcomes
    assert outcome.attempts >= 2 and outcome.accepted + outcome.rejected == outcome.attempts
    assert result.manifest_path.is_file() and result.generator.id == info.id
    lines = (result.folder / "samples.jsonl").read_text().splitlines()
    assert len(lines) == outcome.attempts and json.loads(lines[0])["label"] == label


def test_resume_after_a_kill_gives_the_same_adapters_bit_for_bit(ws, base, tmp_path):
    """With text-encoder adapters too (their checkpoint hooks are the ones diffusers' scripts need most)."""
    from safetensors.torch import load_file

    chosen = recipe(base, "train.steps=6", "train.checkpoint_every=3", "train.train_text_encoder=true")
    train(ws, chosen, tmp_path / "whole")

    with pytest.raises(TrainInterrupted, match="re-run with --resume"):
        train(ws, chosen, tmp_path / "killed", progress=KillAtStep(3))
    assert [step for step, _ in checkpoints(tmp_path / "killed" / "checkpoints")] == [3]
    assert not list((tmp_path / "killed" / "checkpoints").rglob("model*.safetensors"))  # adapters only, no base
    with pytest.raises(SynthError, match="pass --resume"):
        train(ws, chosen, tmp_path / "killed")
    with pytest.raises(SynthError, match="another recipe"):
        train(ws, recipe(base, "train.steps=6", "lora.rank=2"), tmp_path / "killed", resume=True)
    resumed = train(ws, chosen, tmp_path / "killed", resume=True)
    assert resumed.steps == 6
    for run_file in ("checkpoints/checkpoint-0000006/pytorch_lora_weights.safetensors",
                     "generator/pytorch_lora_weights.safetensors"):  # fmt: skip
        a, b = load_file(tmp_path / "whole" / run_file), load_file(tmp_path / "killed" / run_file)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), run_file
    assert any(k.startswith("text_encoder.") for k in a) and any(k.startswith("unet.") for k in a)
    assert any(float(v.abs().sum()) > 0 for k, v in a.items() if "lora.up" in k or "lora_B" in k)
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(base, safety_checker=None)
    pipe.load_lora_weights(str(tmp_path / "killed" / "generator"))  # text-encoder adapters load in diffusers too
    assert getattr(pipe.text_encoder, "peft_config", None)


def test_a_base_that_is_not_there_is_one_line(ws, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    base_args = ["synth", "train", "--recipe", "sd-lora", "-w", str(ws.root), "--out", str(tmp_path / "run")]
    code, output = cli(*base_args, "--base", "nobody/no-such-diffusion")
    assert code == 2
    line = output.strip()
    assert "\n" not in line and "Traceback" not in line
    for part in ("nobody/no-such-diffusion", "offline", str(tmp_path / "empty-cache"), "hf download", "--base"):
        assert part in line, line
    (tmp_path / "not-a-pipeline").mkdir()
    code, output = cli(*base_args, "--base", str(tmp_path / "not-a-pipeline"))
    assert code == 2 and "no model_index.json" in output
    code, output = cli(*base_args)
    assert code == 2 and "pass --base" in output
    code, output = cli("synth", "train", "--recipe", "tiny-cpu", "--base", "x/y", "-w", str(ws.root))
    assert code == 2 and "use --init-from" in output
