"""The training cache: every row decoded once, letterboxed to the recipe's size, kept as uint8 pixels on disk.

Training reads the same few thousand images every epoch; decoding a JPEG/PNG and resizing it in PIL each time costs
far more than the model on a GPU (and competes with it on a CPU). The cache decodes each row once through the one
pixel loader and the same :class:`~wbc_data.train.augment.Letterbox` that evaluation uses (real and synthetic rows
alike: the same framing and aspect-preserving padding), and stores the result as ``(n, size, size, 3)`` uint8 ``.npy``
chunks under ``<workspace>/cache/train/<size>px-<interpolation>-<fill>/``, one folder per image spec. Entries are
keyed by the row's ``pixel_hash`` (what ingest hashed), so a row whose pixels change is a new key and is decoded
again, and a row that moves on disk keeps its entry. Augmentation then runs on tensors (torchvision v2): in the
DataLoader workers on a CPU, on the device when there is a GPU.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from wbc_data.io.pixels import box_framed
from wbc_data.train.augment import letterbox
from wbc_data.train.recipe import ImageSpec

KEYS = "keys.parquet"
MIX = 0x9E3779B97F4A7C15


def cache_folder(workspace_root: Path, image: ImageSpec) -> Path:
    fill = "".join(f"{v:02x}" for v in image.fill())
    centre = f"-centre{image.centre:g}" if image.centre < 1.0 else ""
    name = f"{image.size}px-{image.interpolation or 'bilinear'}-{fill}{centre}"
    return Path(workspace_root) / "cache" / "train" / name


def row_keys(frame: pd.DataFrame, boxes_apart: bool = False) -> list[str]:
    """The cache key of each row: its pixel hash, else (rows ingested without one) its sample id. With
    ``boxes_apart`` (a spec that frames box crops and whole images differently, ``image.centre`` < 1), the key of a
    row framed as a box (:func:`~wbc_data.io.pixels.box_framed`) says so: the same pixels as a whole file are cached
    framed the other way."""
    hashes = frame["pixel_hash"] if "pixel_hash" in frame.columns else pd.Series([None] * len(frame))
    keys = [
        h if isinstance(h, str) and h else f"sample:{s}"
        for h, s in zip(hashes.tolist(), frame["sample_id"].tolist(), strict=True)
    ]
    if boxes_apart:
        none = [None] * len(frame)
        boxes = frame["crop_box"].tolist() if "crop_box" in frame.columns else none
        extras = frame["extra"].tolist() if "extra" in frame.columns else none
        boxed = [box_framed(box, extra) for box, extra in zip(boxes, extras, strict=True)]
        keys = [f"{k}#box" if b else k for k, b in zip(keys, boxed, strict=True)]
    return keys


class _Letterboxed(Dataset):
    """Rows through the pixel loader and the letterbox, as uint8 HWC arrays (for building the cache)."""

    def __init__(self, frame: pd.DataFrame, loader: Any, image: ImageSpec) -> None:
        from wbc_data.train.dataset import ManifestDataset

        self.rows = ManifestDataset(frame, loader)
        self.box = letterbox(image)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> np.ndarray:
        return np.asarray(self.box(self.rows[index][0]), dtype=np.uint8)


def _stack(items: list[np.ndarray]) -> np.ndarray:
    return np.stack(items)


class PixelCache:
    """One image spec's cache folder: ``chunk-*.npy`` arrays and their ``chunk-*.keys.parquet`` key lists."""

    def __init__(self, folder: Path, image: ImageSpec) -> None:
        self.folder = Path(folder)
        self.image = image

    @classmethod
    def for_workspace(cls, workspace_root: Path, image: ImageSpec) -> PixelCache:
        return cls(cache_folder(workspace_root, image), image)

    def entries(self) -> dict[str, tuple[str, int]]:
        """key -> (chunk file name, position), over every complete chunk (a chunk counts once its keys exist)."""
        found: dict[str, tuple[str, int]] = {}
        for keys_file in sorted(self.folder.glob(f"chunk-*.{KEYS}")):
            array = keys_file.name[: -len(KEYS) - 1] + ".npy"
            if not (self.folder / array).is_file():
                continue
            try:
                keys = pd.read_parquet(keys_file)["key"].tolist()
            except (OSError, ValueError, KeyError):
                continue  # a damaged keys file: its rows are decoded again
            for position, key in enumerate(keys):
                found.setdefault(key, (array, position))
        return found

    def build(
        self,
        frame: pd.DataFrame,
        loader: Any,
        workers: int = 0,
        progress: Callable[[int, int], None] | None = None,
    ) -> CachedImages:
        """Make sure every row of ``frame`` is cached (decoding only the missing ones); its images, in row order."""
        keys = row_keys(frame, boxes_apart=self.image.centre < 1.0)
        have = self.entries()
        missing = sorted({k for k in keys if k not in have})
        if missing:
            first = {}
            for position, key in enumerate(keys):
                first.setdefault(key, position)
            todo = frame.iloc[[first[k] for k in missing]].reset_index(drop=True)
            name = self._write_chunk(todo, missing, loader, workers, progress)
            have.update({k: (name, i) for i, k in enumerate(missing)})
        files = sorted({have[k][0] for k in keys})
        number = {f: i for i, f in enumerate(files)}
        chunk = np.array([number[have[k][0]] for k in keys], dtype=np.int32)
        position = np.array([have[k][1] for k in keys], dtype=np.int64)
        return CachedImages([str(self.folder / f) for f in files], chunk, position)

    def _write_chunk(
        self,
        frame: pd.DataFrame,
        keys: Sequence[str],
        loader: Any,
        workers: int,
        progress: Callable[[int, int], None] | None,
    ) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        stem = f"chunk-{time.time_ns():x}-{os.getpid()}"
        size = self.image.size
        tmp = self.folder / f"{stem}.npy.tmp"
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(frame), size, size, 3))
        batches = DataLoader(
            _Letterboxed(frame, loader, self.image), batch_size=64, num_workers=workers, collate_fn=_stack
        )
        done = 0
        for batch in batches:
            array[done : done + len(batch)] = batch
            done += len(batch)
            if progress is not None:
                progress(done, len(frame))
        array.flush()
        del array
        os.replace(tmp, self.folder / f"{stem}.npy")
        keys_tmp = self.folder / f"{stem}.{KEYS}.tmp"
        pd.DataFrame({"key": list(keys)}).to_parquet(keys_tmp, index=False)
        os.replace(keys_tmp, self.folder / f"{stem}.{KEYS}")
        return f"{stem}.npy"


class CachedImages(Dataset):
    """``images[i]`` is ``(uint8 CHW tensor, label)`` straight from the cache (memory-mapped, opened lazily in
    each process, so it pickles cheaply into DataLoader workers)."""

    def __init__(self, files: list[str], chunk: np.ndarray, position: np.ndarray, labels: Sequence[int] = ()) -> None:
        self.files = files
        self.chunk = chunk
        self.position = position
        self.labels = list(labels) if len(labels) else [-1] * len(chunk)
        self._arrays: list[np.ndarray] | None = None

    def with_labels(self, labels: Sequence[int]) -> CachedImages:
        return CachedImages(self.files, self.chunk, self.position, labels)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_arrays": None}

    def __len__(self) -> int:
        return len(self.chunk)

    def pixels(self, index: int) -> np.ndarray:
        """The row's letterboxed pixels, uint8 ``(size, size, 3)``."""
        if self._arrays is None:
            self._arrays = [np.load(f, mmap_mode="r") for f in self.files]
        return self._arrays[self.chunk[index]][self.position[index]]

    def image(self, index: int) -> torch.Tensor:
        return torch.from_numpy(np.array(self.pixels(index))).permute(2, 0, 1)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.image(index), self.labels[index]


def item_seed(seed: int, rank: int) -> int:
    """One sample's augmentation seed on one process: the sampler's draw mixed with the process rank."""
    return (int(seed) ^ ((rank + 1) * MIX)) & (2**63 - 1)


class AugmentedImages(Dataset):
    """Training images from the cache with the recipe's tensor augmentations, ``rare`` for rare classes.

    Keys are ``(index, seed)`` pairs from the sampler: each sample's augmentation is drawn from its own seed mixed
    with the process rank, so it does not depend on which worker loads it, which samples share its batch, or when
    (persistent workers, resumed runs), and every process augments differently. A DataLoader fetches a whole batch
    through :meth:`__getitems__`, which augments it in one pass (:class:`~wbc_data.train.batch_augment.BatchAugment`:
    one warp and batched colour for the batch instead of torchvision's per-image calls). With ``on_device`` it returns
    the uint8 images and their seeds, and :meth:`augment_batch` applies the same augmentation on the GPU."""

    def __init__(
        self,
        base: CachedImages,
        normal: Callable[[Any], Any],
        rare: Callable[[Any], Any],
        rare_labels: Collection[int],
        rank: int = 0,
        on_device: bool = False,
    ) -> None:
        from wbc_data.train.batch_augment import BatchAugment, without_final_scaling

        self.base = base
        # both end in uint8 -> [0, 1] scaling: leave it to Normalize, so batches cross processes as uint8 (a quarter
        # of the bytes) and are scaled once on the device
        short = [without_final_scaling(t) for t in (normal, rare)]
        if all(t is not None for t in short):
            normal, rare = short  # type: ignore[assignment]
        self.normal = BatchAugment(normal)
        self.rare = BatchAugment(rare)
        self.rare_labels = frozenset(rare_labels)
        self.rank = rank
        self.on_device = on_device

    def __len__(self) -> int:
        return len(self.base)

    def __getitems__(self, keys: Sequence[int | tuple[int, int]]) -> list[tuple[torch.Tensor, int, int]]:
        pairs = [key if isinstance(key, tuple) else (key, key) for key in keys]
        items = [self.base[index] for index, _ in pairs]
        seeds = [seed for _, seed in pairs]
        labels = [label for _, label in items]
        if self.on_device:
            return [(image, label, seed) for (image, label), seed in zip(items, seeds, strict=True)]
        images = self.augment_batch(torch.stack([image for image, _ in items]), labels, seeds)
        return list(zip(images.unbind(0), labels, seeds, strict=True))

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int, int]:
        return self.__getitems__([key])[0]

    def augment_batch(
        self, images: torch.Tensor, labels: torch.Tensor | Sequence[int], seeds: torch.Tensor | Sequence[int]
    ) -> torch.Tensor:
        """The augmentation of a uint8 batch (one seed per sample; on the CPU or the device): uint8 where the
        recipe's transforms end in plain scaling (:class:`Normalize` scales), else floats in [0, 1]."""
        labels = labels.tolist() if isinstance(labels, torch.Tensor) else list(labels)
        seeds = [item_seed(s, self.rank) for s in (seeds.tolist() if isinstance(seeds, torch.Tensor) else seeds)]
        rare = [i for i, label in enumerate(labels) if label in self.rare_labels]
        if not rare:
            return self.normal(images, seeds)
        normal = [i for i, label in enumerate(labels) if label not in self.rare_labels]
        out: torch.Tensor | None = None
        for augment, chosen in ((self.normal, normal), (self.rare, rare)):
            if not chosen:
                continue
            part = augment(images[chosen], [seeds[i] for i in chosen])
            if out is None:
                out = part.new_empty((len(images), *part.shape[1:]))
            out[chosen] = part
        assert out is not None
        return out


class Normalize:
    """uint8 or [0, 1] float batches to the model's input: scaled, normalised, optionally channels_last."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], channels_last: bool = False) -> None:
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self.channels_last = channels_last

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()
        x = (x - self.mean.to(x.device)) / self.std.to(x.device)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x
