"""Generator speed on the device it runs on: sampling images/s at 64 and 128 px for DDPM, DDIM and DPM-Solver++ step
counts (with classifier-free guidance: two UNet passes per step), and training images/s, for the models of the
shipped recipes (pbc-64 at 64 px, wbc-128 at 128 px; random weights: speed does not depend on them).

Run: ``uv run python benchmarks/synth.py [--device cuda|cpu] [--batch 128] [--train-batch 64] [--n 500]``

Sampling goes through ``WbcCellPipeline`` exactly as ``wbc-data synth`` calls it (bf16 on a GPU that has it, else
fp16; float32 on CPU). Each figure is the best of ``--repeat`` timed batches after a warm-up batch. On CPU the big
models take minutes per image, so a schedule is timed at ``--cpu-steps`` steps and scaled linearly to its step count
(sampling time is linear in steps: one or two UNet passes each); the table says so. The issue's target: on one H100,
500 images of 128 px in under 60 s with 50 DDIM steps.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from wbc_data.core.taxonomy import CLASSES  # noqa: E402
from wbc_data.synth.model import build_unet, noise_scheduler  # noqa: E402
from wbc_data.synth.pipeline import WbcCellPipeline, condition_rows  # noqa: E402
from wbc_data.synth.recipe import load_recipe  # noqa: E402

SCHEDULES = (("ddpm", 50), ("ddim", 50), ("ddim", 20), ("dpm", 20), ("dpm", 10))


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def sampling(recipe_name: str, device: str, dtype: torch.dtype, batch: int, repeat: int, cpu_steps: int) -> list[dict]:
    recipe = load_recipe(recipe_name)
    torch.manual_seed(0)
    unet = build_unet(recipe, condition_rows(len(CLASSES), 0)).to(device)
    if dtype != torch.float32:
        unet = unet.to(dtype)  # half precision for sampling on a GPU, as `wbc-data synth` loads it
    pipe = WbcCellPipeline(unet, noise_scheduler(recipe), list(CLASSES), [])
    pipe.set_progress_bar_config(disable=True)
    labels = [CLASSES[i % 9] for i in range(batch)]
    rows = []
    for scheduler, steps in SCHEDULES:
        timed = steps if device != "cpu" else min(steps, cpu_steps)
        gens = [torch.Generator().manual_seed(i) for i in range(batch)]
        warm = timed if device != "cpu" else 1
        pipe(labels, num_inference_steps=warm, scheduler=scheduler, generator=gens, output_type="pt")  # warm-up
        best = float("inf")
        for _ in range(repeat):
            sync(device)
            start = time.perf_counter()
            pipe(labels, num_inference_steps=timed, scheduler=scheduler, generator=gens, output_type="pt")
            sync(device)
            best = min(best, time.perf_counter() - start)
        seconds = best * steps / timed
        rows.append(
            {
                "size": recipe.resolution,
                "scheduler": scheduler,
                "steps": steps,
                "batch": batch,
                "precision": str(dtype).replace("torch.", ""),
                "timed steps": timed,
                "s/batch": seconds,
                "images/s": batch / seconds,
            }
        )
    return rows


def training(recipe_name: str, device: str, precision: str, batch: int, steps: int) -> dict:
    recipe = load_recipe(recipe_name)
    torch.manual_seed(0)
    unet = build_unet(recipe, condition_rows(len(CLASSES), 0)).to(device)
    scheduler = noise_scheduler(recipe)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    size = recipe.resolution
    clean = torch.rand(batch, 3, size, size, device=device) * 2 - 1
    labels = torch.randint(0, 14, (batch,), device=device)
    autocast = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    scaler = torch.amp.GradScaler(enabled=precision == "fp16")

    def step() -> None:
        noise = torch.randn_like(clean)
        t = torch.randint(0, 1000, (batch,), device=device)
        with torch.autocast(device.split(":")[0], dtype=autocast, enabled=autocast is not None):
            pred = unet(scheduler.add_noise(clean, noise, t), t, class_labels=labels).sample
        loss = torch.nn.functional.mse_loss(pred.float(), noise)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

    step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    seconds = time.perf_counter() - start
    return {"size": size, "batch": batch, "precision": precision, "steps": steps, "images/s": batch * steps / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=0, help="sampling batch (default: 128 on GPU, 2 on CPU)")
    parser.add_argument("--train-batch", type=int, default=0, help="training batch (default: 64 on GPU, 2 on CPU)")
    parser.add_argument("--train-steps", type=int, default=0, help="timed training steps (default: 20 GPU, 2 CPU)")
    parser.add_argument("--repeat", type=int, default=0, help="timed batches per figure (default: 3 GPU, 1 CPU)")
    parser.add_argument("--cpu-steps", type=int, default=1, help="steps timed on CPU (scaled to the schedule)")
    parser.add_argument("--n", type=int, default=500, help="images for the 'time for n' column")
    parser.add_argument("--sizes", default="64,128", help="which recipes: 64 (pbc-64), 128 (wbc-128)")
    args = parser.parse_args()
    gpu = args.device.startswith("cuda")
    batch = args.batch or (128 if gpu else 2)
    train_batch = args.train_batch or (64 if gpu else 2)
    train_steps = args.train_steps or (20 if gpu else 2)
    repeat = args.repeat or (3 if gpu else 1)
    if gpu:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        precision = "bf16" if dtype == torch.bfloat16 else "fp16"
    else:
        dtype, precision = torch.float32, "no"
    recipes = {"64": "pbc-64", "128": "wbc-128"}
    print(f"device: {args.device} ({device_name(args.device)}); torch {torch.__version__}")
    print(
        f"\nSampling with guidance 3 (2 UNet passes per step), batch {batch}"
        + ("" if gpu else f"; CPU: timed at {args.cpu_steps} steps, scaled linearly to the step count")
    )
    print(f"| size | scheduler | steps | batch | precision | s/batch | images/s | {args.n} images |")
    print("|---:|---|---:|---:|---|---:|---:|---:|")
    for size in args.sizes.split(","):
        for row in sampling(recipes[size], args.device, dtype, batch, repeat, args.cpu_steps):
            print(
                f"| {row['size']} | {row['scheduler']} | {row['steps']} | {row['batch']} | {row['precision']} "
                f"| {row['s/batch']:.2f} | {row['images/s']:.2f} | {args.n / row['images/s']:.1f} s |"
            )
    print(f"\nTraining (forward + backward + AdamW, mixed precision {precision}), {train_steps} timed steps")
    print("| size | batch | precision | images/s |")
    print("|---:|---:|---|---:|")
    for size in args.sizes.split(","):
        row = training(recipes[size], args.device, precision, train_batch, train_steps)
        print(f"| {row['size']} | {row['batch']} | {row['precision']} | {row['images/s']:.2f} |")


if __name__ == "__main__":
    main()
