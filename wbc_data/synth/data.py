"""What the generator learns from: the train split's real, exact-label, kept rows, their pixels cached once at the
recipe's resolution, and batches drawn class-balanced, step by step, from a seed.

Batches depend only on (seed, step), never on an iterator's state, so a run resumed from a checkpoint draws exactly
the batches the uninterrupted run would have drawn, on any number of processes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from PIL import Image, ImageOps

from wbc_data.core.errors import UserError
from wbc_data.core.progress import Progress
from wbc_data.core.rows import label_indices, select_rows
from wbc_data.core.taxonomy import CLASSES
from wbc_data.core.workspace import Workspace
from wbc_data.io.atomic import atomic_write
from wbc_data.io.pixels import PixelLoader
from wbc_data.synth import SynthError

if TYPE_CHECKING:
    import torch

View = Callable[[Image.Image], Image.Image]
"""How a decoded cell becomes the generator's square image (centre crop, or the classifier's letterbox)."""

NULL_CLASS = len(CLASSES)
"""Index of the null class (13): the "any class" label that classifier-free guidance contrasts with."""


def to_resolution(image: Image.Image, size: int) -> Image.Image:
    """A cell image as the generator sees it: the centred square of its shorter side, resized to ``size`` (LANCZOS).
    Training images, guard references and grids all go through this one function."""
    return ImageOps.fit(image.convert("RGB"), (size, size), method=Image.Resampling.LANCZOS)


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers (run seed, step, process...), independent for every combination."""
    state = np.random.SeedSequence([int(p) & 0xFFFF_FFFF_FFFF_FFFF for p in parts]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & 0x7FFF_FFFF_FFFF_FFFF


@dataclass
class TrainingSet:
    """The rows a generator trains on, with their class and domain indices."""

    frame: pd.DataFrame
    labels: np.ndarray  # class index in taxonomy.CLASSES order
    domains: np.ndarray  # index into domain_names, or -1 without a domain condition
    domain_names: list[str]

    def __len__(self) -> int:
        return len(self.frame)

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=len(CLASSES))
        return {c: int(n) for c, n in zip(CLASSES, counts, strict=True)}

    def fingerprint(self) -> str:
        """Changes when any training row (or its pixels) changes: a checkpoint or pixel cache of other data is stale."""
        digest = hashlib.sha256()
        for sample_id, pixels in zip(self.frame["sample_id"], self.frame["pixel_hash"].fillna(""), strict=True):
            digest.update(f"{sample_id}\x1f{pixels}\x1e".encode())
        digest.update(",".join(self.domain_names).encode())
        return digest.hexdigest()[:16]

    def sources(self) -> list[dict[str, object]]:
        """Each source the generator learns from, with its licence, citation and row count (provenance of samples)."""
        out = []
        for source, part in self.frame.groupby("source", sort=True):
            out.append(
                {
                    "name": str(source),
                    "licence": _first(part["licence"]),
                    "citation": _first(part["citation"]),
                    "rows": len(part),
                }
            )
        return out


def _first(values: pd.Series) -> str | None:
    found = values.dropna()
    return str(found.iloc[0]) if len(found) else None


def training_set(
    workspace: Workspace, domain_condition: bool = False, only: frozenset[str] | None = None
) -> TrainingSet:
    """The train split's real, exact-label, kept rows (a missing or stale split is one clear line); ``only``: just
    these of them (by sample_id), e.g. the rows a classifier run trained on, so that both learn from the same cells."""
    from wbc_data.core.stages import load_view

    view = load_view(workspace)
    view.require("split", "synth train")
    frame = select_rows(view.frame, ["train"], exact_only=True, kept_only=True, synthetic=False)
    if frame.empty:
        raise SynthError(f"{view.path}: no real, exact-label rows in the train split to train a generator on")
    if only is not None:
        frame = frame[frame["sample_id"].isin(only)]
        if frame.empty:
            raise SynthError(f"{view.path}: none of the {len(only):,} rows asked for is a usable train row")
    frame = frame.sort_values("sample_id", kind="stable").reset_index(drop=True)
    labels = label_indices(frame["label"])
    names = sorted(frame["source"].astype(str).unique()) if domain_condition else []
    domains = (
        pd.Categorical(frame["source"].astype(str), categories=names).codes.astype(np.int64)
        if domain_condition
        else np.full(len(frame), -1, dtype=np.int64)
    )
    return TrainingSet(frame, labels.astype(np.int64), domains, names)


# --------------------------------------------------------------------------- pixels at the recipe's resolution


class _CentreCrop:
    """The pixel recipe's view (:func:`to_resolution`), picklable for DataLoader workers."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, image: Image.Image) -> Image.Image:
        return to_resolution(image, self.size)


class _Resized:
    """Rows through the one pixel loader, resized; a row that cannot be opened comes back as its error message
    (DataLoader workers would otherwise wrap it in a multi-line traceback)."""

    def __init__(self, frame: pd.DataFrame, loader: PixelLoader, view: View) -> None:
        from wbc_data.train.dataset import ManifestDataset

        self.dataset = ManifestDataset(frame, loader, transform=lambda im: np.asarray(view(im)))

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[int, np.ndarray | None, str]:
        try:
            return index, self.dataset[index][0], ""
        except UserError as exc:
            return index, None, str(exc)


def _collate(items: list[tuple[int, np.ndarray | None, str]]) -> list[tuple[int, np.ndarray | None, str]]:
    return items


def pixel_cache(
    frame: pd.DataFrame,
    loader: PixelLoader,
    size: int,
    folder: Path,
    fingerprint: str,
    workers: int = 0,
    progress: Progress | None = None,
    view: View | None = None,
    prefix: str = "pixels",
) -> np.ndarray:
    """``(n, size, size, 3)`` uint8 pixels of ``frame``'s rows, decoded once into ``folder/<prefix>-<size>-<fp>.npy``
    (memory-mapped: memory stays flat whatever the number of rows) and reused by later runs and resumes. ``view``
    turns a cell into its square (default: :func:`to_resolution`; the LoRA recipe passes the classifier's
    letterbox, with its own ``prefix``)."""
    view = view or _CentreCrop(size)
    path = Path(folder) / f"{prefix}-{size}-{fingerprint}.npy"
    if path.is_file():
        try:
            cached = np.load(path, mmap_mode="r")
            if cached.shape == (len(frame), size, size, 3):
                return cached
        except (OSError, ValueError):
            pass  # a damaged cache is rebuilt

    def build(tmp: str) -> None:
        from torch.utils.data import DataLoader

        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(frame), size, size, 3))
        batches = DataLoader(_Resized(frame, loader, view), batch_size=32, num_workers=workers, collate_fn=_collate)
        done = 0
        for batch in batches:
            for index, pixels, error in batch:
                if pixels is None:
                    raise SynthError(f"cannot open a training image: {error}")
                out[index] = pixels
            done += len(batch)
            if progress:
                progress.advance(done, len(frame))
        out.flush()
        del out

    atomic_write(path, build)
    for old in Path(folder).glob(f"{prefix}-{size}-*.npy"):
        if old != path:
            old.unlink(missing_ok=True)
    return np.load(path, mmap_mode="r")


# --------------------------------------------------------------------------- batches


class BalancedBatches:
    """Batch ``step`` of process ``rank``: rows drawn with replacement, each with probability proportional to
    ``count(its class) ** -balance`` (1: every class equally often; 0: as the data come), from ``(seed, step)``."""

    def __init__(self, labels: np.ndarray, balance: float, batch_size: int, seed: int, processes: int = 1) -> None:
        counts = np.bincount(labels, minlength=len(CLASSES)).astype(np.float64)
        weights = counts[labels] ** -float(balance)
        self.p = weights / weights.sum()
        self.n = len(labels)
        self.batch_size = batch_size
        self.seed = seed
        self.processes = processes

    def indices(self, step: int, rank: int = 0, micro: int = 0) -> np.ndarray:
        rng = np.random.default_rng(derive_seed(self.seed, step, micro))
        chosen = rng.choice(self.n, size=self.batch_size * self.processes, replace=True, p=self.p)
        return np.sort(chosen[rank * self.batch_size : (rank + 1) * self.batch_size])

    def class_shares(self, labels: np.ndarray) -> dict[str, float]:
        """The share of draws each class gets (for the log)."""
        shares = np.bincount(labels, weights=self.p, minlength=len(CLASSES))
        return {c: float(s) for c, s in zip(CLASSES, shares, strict=True) if s > 0}


def dihedral(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image of a (b, c, h, w) batch under one of the 8 flips/rotations, drawn from ``generator``."""
    import torch

    choice = torch.randint(0, 8, (batch.shape[0],), generator=generator, device=generator.device).to(batch.device)
    out = batch.clone()
    for t in range(8):
        sel = (choice == t).nonzero(as_tuple=True)[0]
        if len(sel):
            moved = torch.rot90(batch[sel], t % 4, dims=(2, 3))
            out[sel] = torch.flip(moved, dims=(3,)) if t >= 4 else moved
    return out


def drop_labels(labels: torch.Tensor, share: float, null: int, generator: torch.Generator) -> torch.Tensor:
    """Replace ``share`` of the labels by ``null`` (classifier-free guidance learns the unconditional model too)."""
    import torch

    drop = torch.rand(labels.shape, generator=generator, device=generator.device).to(labels.device) < share
    return torch.where(drop, torch.full_like(labels, null), labels)


def cache_folder(out_dir: Path) -> Path:
    folder = Path(out_dir) / "cache"
    os.makedirs(folder, exist_ok=True)
    return folder
