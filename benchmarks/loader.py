"""Training-loader throughput: wbc-data's ``ManifestDataset`` against ``torchvision.datasets.ImageFolder`` on the
same PBC files, same transform, same ``DataLoader`` settings, in the same run.

Run: ``uv run python benchmarks/loader.py [--root PATH] [--workers 2] [--size 224] [--repeat 3] [--limit N]``

Both read the real PBC folder (``ImageFolder`` skips the one non-image, ``.DS_169665.jpg``, which it could not
open); the transform is ``Resize((size, size))`` + ``PILToTensor`` on the decoded RGB image; each epoch is a full
pass with ``batch_size=64``. The page cache is warmed first and contenders run round-robin; each figure is the best
of ``--repeat`` epochs. Target: ManifestDataset / ImageFolder >= 0.9 (the loader must not be the bottleneck).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402
from torchvision.datasets import ImageFolder  # noqa: E402
from torchvision.transforms import v2  # noqa: E402

from wbc_data import manifest  # noqa: E402
from wbc_data.core.workspace import Workspace  # noqa: E402
from wbc_data.ingest.engine import IngestOptions, ingest  # noqa: E402
from wbc_data.io.pixels import PixelLoader  # noqa: E402
from wbc_data.manifest.merge import merge  # noqa: E402
from wbc_data.train.dataset import ManifestDataset  # noqa: E402

DEFAULT_ROOT = REPO.parent / "shared" / "data" / "pbc" / "PBC_dataset_normal_DIB"
TARGET = 0.9


def epoch(dataset: Dataset, workers: int) -> tuple[float, int]:
    loader = DataLoader(dataset, batch_size=64, num_workers=workers, shuffle=False, persistent_workers=False)
    start = time.perf_counter()
    n = 0
    for batch in loader:
        n += batch[0].shape[0]
    return time.perf_counter() - start, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--limit", type=int, default=0, help="use only the first N images (0: all)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    transform = v2.Compose([v2.Resize((args.size, args.size), antialias=True), v2.PILToTensor()])

    with tempfile.TemporaryDirectory(prefix="wbc-bench-loader-") as tmp:
        ws = Workspace(Path(tmp))
        ingest("pbc", args.root, ws, IngestOptions(workers=args.workers))
        merge(ws)
        frame = manifest.read_frame(ws.unified_manifest)
        frame = frame[frame["status"] == "ok"].sort_values("source_path").reset_index(drop=True)
        folder = ImageFolder(os.fspath(args.root), transform=transform,
                             is_valid_file=lambda p: not os.path.basename(p).startswith(".DS_"))  # fmt: skip
        if args.limit:
            frame = frame.head(args.limit)
            folder.samples = folder.samples[: args.limit]
        ours = ManifestDataset(frame, PixelLoader.for_workspace(ws), transform=transform)
        assert len(ours) == len(folder), (len(ours), len(folder))
        for path in frame["source_path"]:  # warm the page cache
            (args.root / path).read_bytes()

        contenders = {"wbc-data ManifestDataset": ours, "torchvision ImageFolder": folder}
        best: dict[str, float] = {}
        for _ in range(args.repeat):
            for name, dataset in contenders.items():
                seconds, n = epoch(dataset, args.workers)
                assert n == len(dataset)
                best[name] = max(best.get(name, 0.0), n / seconds)

    print(f"{len(ours):,} PBC images, {args.size}px, batch 64, {args.workers} DataLoader workers, "
          f"best of {args.repeat} epochs, torch {torch.__version__}, {os.cpu_count()} CPUs")  # fmt: skip
    print(f"| {'loader':<28} | {'images/s':>9} |")
    print(f"|{'-' * 30}|{'-' * 11}|")
    for name, rate in best.items():
        print(f"| {name:<28} | {rate:>9,.0f} |")
    ratio = best["wbc-data ManifestDataset"] / best["torchvision ImageFolder"]
    print(f"ratio ManifestDataset / ImageFolder: {ratio:.2f}x (target >= {TARGET})")


if __name__ == "__main__":
    main()
