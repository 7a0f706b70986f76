"""Training throughput: wbc-data's Accelerate loop against a plain timm training loop on the same model, batch and
precision in the same run, and the data loader (decode + augmentation) on the CPU alone.

Run: ``uv run python benchmarks/train.py [--models tf_efficientnetv2_b0 convnext_tiny] [--size 224] [--batch 32]
[--steps 20] [--warmup 3] [--loader-images 512] [--workers 2]``

Model throughput: both loops train every parameter (the recipe's optional full stage) on the same random batches
already on the device, so only the step is timed: wbc-data's ``train_epoch`` (Accelerate-prepared model and
optimizer, the recipe's CutMix, channels_last and mixed precision, loss read back every few steps) against
``model(x) -> cross-entropy -> backward -> AdamW step`` under the same autocast and memory format. Contenders
alternate, best of ``--repeat``. Target: wbc-data >= 90% of the plain loop.

Loader throughput: the same real PBC cells through the PIL path (``ManifestDataset``: decode + letterbox + the
recipe's training transform in PIL, as before the training cache) and through the training cache (decoded and
letterboxed once, then the same augmentations on uint8 tensors, per-sample seeds), each in a ``DataLoader`` with
``--workers`` persistent workers over two passes (an epoch after the first). Each of ``--repeat`` rounds runs every
contender back to back; the table gives the median rate and the ratio to the PIL path of the same strength within
each round (median, lowest, highest). Target: the cache >= 5x the PIL path. The one-off cost of building the cache
is printed too. Both run as training runs them, with freed memory kept for reuse (``--default-heap``: as glibc
leaves it).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

DEFAULT_PBC = REPO.parent / "shared" / "data" / "pbc" / "PBC_dataset_normal_DIB"


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return (
        f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads)"
    )


def batches(n: int, batch: int, size: int, device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    return [
        (torch.randn(batch, 3, size, size, generator=generator).to(device),
         torch.randint(0, 13, (batch,), generator=generator).to(device))
        for _ in range(n)
    ]  # fmt: skip


def plain_timm(model_name: str, data: list, precision: str, channels_last: bool, device: torch.device) -> float:
    """The textbook loop: images/s over ``data`` (after a warm-up pass over its first batches)."""
    import timm

    torch.manual_seed(0)
    model = timm.create_model(model_name, num_classes=13).to(device).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    scaler = torch.amp.GradScaler(enabled=precision == "fp16")

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = F.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    return _timed(step, data)


def wbc_data_loop(model_name: str, data: list, recipe, accelerator) -> float:
    """wbc-data's own epoch function on an Accelerate-prepared model and optimizer."""
    from timm.optim import create_optimizer_v2
    from torchvision.transforms import v2

    from wbc_data.core.progress import NullProgress
    from wbc_data.core.taxonomy import CLASSES
    from wbc_data.train.loop import train_epoch
    from wbc_data.train.models import create_model
    from wbc_data.train.recipe import MemberSpec

    torch.manual_seed(0)
    model = create_model(MemberSpec("bench", model_name))
    model = model.to(accelerator.device)
    if recipe.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = create_optimizer_v2(model, "adamw", lr=1e-4, weight_decay=recipe.train.weight_decay)
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()
    cutmix = v2.CutMix(alpha=recipe.augment.cutmix.alpha, num_classes=len(CLASSES))

    def epoch(part: list) -> None:
        train_epoch(accelerator, recipe, model, optimizer, part, cutmix, NullProgress(), lambda: False)

    return _timed(epoch, data, whole=True)


def _timed(step, data: list, whole: bool = False, warmup: int = 3) -> float:
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    if whole:
        step(data[:warmup])
        sync()
        start = time.perf_counter()
        step(data[warmup:])
    else:
        for x, y in data[:warmup]:
            step(x, y)
        sync()
        start = time.perf_counter()
        for x, y in data[warmup:]:
            step(x, y)
    sync()
    n = sum(x.shape[0] for x, _ in data[warmup:])
    return n / (time.perf_counter() - start)


class PerImageAugment:
    """The cache path as it was before batching: torchvision's v2 transform called image by image, each seeded
    from its key, with ``torch.manual_seed`` as it was (which also queues lazy seeding of every accelerator backend,
    about 1 ms a call) or with the batched path's CPU-generator seeding (so only batching differs)."""

    def __init__(self, cached, transform, manual_seed: bool = False) -> None:
        self.cached = cached
        self.transform = transform
        self.manual_seed = manual_seed

    def __len__(self) -> int:
        return len(self.cached)

    def __getitem__(self, key):
        from wbc_data.train.batch_augment import seed_rng

        index, seed = key
        image, label = self.cached[index]
        if self.manual_seed:
            torch.manual_seed(seed)
        else:
            seed_rng(seed, image.device)
        return self.transform(image), label, seed


def loader_rates(root: Path, limit: int, workers: int, repeat: int, recipe_name: str) -> list[dict[str, float]]:
    """Images/s of every contender, one dict per round. The contenders of a round run back to back, so a ratio
    within a round compares pipelines under the same machine load (on a shared VM the PIL baseline alone moves by
    a third between rounds)."""
    from torch.utils.data import DataLoader

    from wbc_data.core import manifest
    from wbc_data.core.workspace import Workspace
    from wbc_data.ingest.engine import IngestOptions, ingest
    from wbc_data.io.pixels import PixelLoader
    from wbc_data.manifest.merge import merge
    from wbc_data.train.augment import eval_transform, tensor_transform, train_transform
    from wbc_data.train.cache import AugmentedImages, PixelCache
    from wbc_data.train.dataset import ManifestDataset
    from wbc_data.train.recipe import load_recipe

    recipe = load_recipe(recipe_name)
    image, augment = recipe.image, recipe.augment
    with tempfile.TemporaryDirectory(prefix="wbc-bench-train-") as tmp:
        subset = Path(tmp) / "pbc" / "PBC_dataset_normal_DIB"
        files = sorted(p for p in root.rglob("*.jpg") if not p.name.startswith("."))[:: max(1, 8487 // limit)][:limit]
        for path in files:
            (subset / path.parent.name).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, subset / path.parent.name / path.name)
        ws = Workspace(Path(tmp) / "ws")
        ingest("pbc", subset.parent, ws, IngestOptions(workers=workers))
        merge(ws)
        frame = manifest.read_frame(ws.unified_manifest)
        frame = frame[frame["status"] == "ok"].reset_index(drop=True)
        loader = PixelLoader.for_workspace(ws)
        start = time.perf_counter()
        cached = PixelCache.for_workspace(ws.root, image).build(frame, loader, workers)
        build = len(frame) / (time.perf_counter() - start)
        keys = [(i, 1000 + i) for i in range(len(frame))]

        def cache_set(strength, batched: bool = True, manual_seed: bool = False):
            aug = tensor_transform(image, strength, augment.degrade)
            dataset = AugmentedImages(cached, aug, aug, ()) if batched else PerImageAugment(cached, aug, manual_seed)
            return dataset, keys

        contenders = {
            "PIL: decode + letterbox (eval)": (ManifestDataset(frame, loader, eval_transform(image)), None),
            "PIL: decode + training augmentation": (
                ManifestDataset(frame, loader, train_transform(image, augment.normal, augment.degrade)),
                None,
            ),
            "PIL: decode + rare-class augmentation": (
                ManifestDataset(frame, loader, train_transform(image, augment.rare_strength(), augment.degrade)),
                None,
            ),
            "cache: training augmentation, per image, torch.manual_seed (before)": cache_set(
                augment.normal, batched=False, manual_seed=True
            ),
            "cache: training augmentation, per image (torchvision v2)": cache_set(augment.normal, batched=False),
            "cache: rare-class augmentation, per image (torchvision v2)": cache_set(
                augment.rare_strength(), batched=False
            ),
            "cache: training augmentation, batched": cache_set(augment.normal),
            "cache: rare-class augmentation, batched": cache_set(augment.rare_strength()),
        }
        rounds: list[dict[str, float]] = []
        for _ in range(repeat):
            rates = {"cache: one-off build (decode + letterbox)": build}
            for name, (dataset, order) in contenders.items():
                batches = DataLoader(
                    dataset,
                    batch_size=32,
                    sampler=order,
                    num_workers=workers,
                    persistent_workers=workers > 0,
                )
                for _epoch in range(2):  # persistent workers: the second pass is a steady-state epoch
                    start = time.perf_counter()
                    n = sum(len(b[0]) for b in batches)
                    rate = n / (time.perf_counter() - start)
                rates[name] = rate
            rounds.append(rates)
        return rounds


BASELINES = {"rare-class": "PIL: decode + rare-class augmentation"}
BASELINE = "PIL: decode + training augmentation"


def print_loader_table(rounds: list[dict[str, float]]) -> None:
    """Median images/s of each contender, and its ratio to the PIL path of the same strength taken round by round
    (median, with the lowest and highest round), so that the spread of the ratio is shown, not only its best."""
    print(
        "| pipeline | images/s (median) | x PIL, same strength, same round: median | lowest | highest |\n"
        "|---|---:|---:|---:|---:|"
    )
    for name in rounds[0]:
        baseline = next((b for key, b in BASELINES.items() if key in name), BASELINE)
        ratios = [r[name] / r[baseline] for r in rounds]
        rate = statistics.median(r[name] for r in rounds)
        print(f"| {name} | {rate:,.0f} | {statistics.median(ratios):.2f} | {min(ratios):.2f} | {max(ratios):.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tf_efficientnetv2_b0", "convnext_tiny"])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per contender (after --warmup)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--precision", default="auto", help="auto | no | bf16 | fp16")
    parser.add_argument("--pbc", type=Path, default=DEFAULT_PBC)
    parser.add_argument("--loader-images", type=int, default=512, help="0: skip the loader benchmark")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--recipe", default="wbcbench-ensemble", help="the loader's image size and augmentations")
    parser.add_argument("--skip-models", action="store_true", help="the loader benchmark only")
    parser.add_argument("--default-heap", action="store_true",
                        help="glibc's malloc as it is (training keeps freed memory: wbc_data.core.heap)")  # fmt: skip
    args = parser.parse_args()

    from accelerate import Accelerator

    from wbc_data.core.device import mixed_precision as resolve_mixed_precision
    from wbc_data.core.heap import retain_freed_memory
    from wbc_data.train.recipe import load_recipe

    heap = "glibc default" if args.default_heap else f"freed memory kept: {retain_freed_memory()}"

    precision = resolve_mixed_precision(args.precision)
    recipe = load_recipe(args.recipe)
    accelerator = Accelerator(mixed_precision=precision)
    device = accelerator.device
    print(
        f"device: {device_name()}; torch {torch.__version__}; precision {precision}; batch {args.batch}; "
        f"{args.size} px; channels_last {recipe.train.channels_last}; CutMix p {recipe.augment.cutmix.p}; heap: {heap}"
    )
    data = batches(args.warmup + args.steps, args.batch, args.size, device)
    print("| model | plain timm loop img/s | wbc-data loop img/s | ratio |\n|---|---:|---:|---:|")
    for name in [] if args.skip_models else args.models:
        best = {"plain": 0.0, "ours": 0.0}
        for _ in range(args.repeat):
            best["plain"] = max(best["plain"], plain_timm(name, data, precision, recipe.train.channels_last, device))
            best["ours"] = max(best["ours"], wbc_data_loop(name, data, recipe, accelerator))
            accelerator.free_memory()
        print(f"| {name} | {best['plain']:,.1f} | {best['ours']:,.1f} | {best['ours'] / best['plain']:.2f} |",
              flush=True)  # fmt: skip
    if args.loader_images and args.pbc.is_dir():
        rounds = loader_rates(args.pbc, args.loader_images, args.workers, args.repeat, args.recipe)
        print(
            f"\nloader: {args.loader_images} real PBC images, {args.workers} workers, batch 32, recipe {args.recipe} "
            f"({recipe.image.size} px), CPU only, {len(rounds)} rounds"
        )
        print_loader_table(rounds)


if __name__ == "__main__":
    main()
