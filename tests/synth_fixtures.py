"""Shared helpers of the synth tests: a split workspace of real cells (the shipped PBC sample, optionally with a
second source for domains), tiny recipes, and a classifier double that implements
``wbc_data.train.classifier.Classifier``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tests.fixtures import mini_bccd
from wbc_data.core.progress import NullProgress
from wbc_data.core.taxonomy import CLASSES
from wbc_data.core.workspace import Workspace
from wbc_data.dedup.run import DedupOptions, dedup
from wbc_data.ingest.engine import IngestOptions, ingest
from wbc_data.io.resources import sample_dir
from wbc_data.manifest.merge import merge
from wbc_data.split import SplitOptions, run_split
from wbc_data.synth.recipe import Recipe, load_recipe


def one_thread():
    """Tiny models on a shared 2-core machine run several times faster on one thread (no contention); restore after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def split_workspace(root: Path, second_source: bool = False) -> Workspace:
    """The shipped real PBC sample (9 exact classes, 2-3 train images each), deduplicated and split."""
    ws = Workspace(root / "ws")
    ingest("pbc", sample_dir() / "pbc", ws, IngestOptions(workers=1))
    if second_source:
        ingest("bccd", mini_bccd(root / "bccd", fields=6), ws, IngestOptions(workers=1))
    merge(ws)
    dedup(ws, DedupOptions(workers=1, reports=False))
    run_split(ws, SplitOptions(val=0.2, test=0.2, seed=0))
    return ws


def tiny(**train: Any) -> Recipe:
    """The shipped tiny-cpu recipe with some ``train`` fields changed."""
    recipe = load_recipe("tiny-cpu")
    return dataclasses.replace(recipe, train=dataclasses.replace(recipe.train, **train)) if train else recipe


class TinyClassifier:
    """A test double for ``wbc_data.train.classifier.Classifier``: a small random CNN (fixed seed) over 16x16 inputs."""

    classes = tuple(CLASSES)

    def __init__(self, seed: int = 0) -> None:
        import torch

        torch.manual_seed(seed)
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten()
        )
        self.head = torch.nn.Linear(32, len(CLASSES))

    def _tensor(self, images: list[Image.Image]) -> Any:
        import torch

        arrays = [np.asarray(im.convert("RGB").resize((16, 16)), dtype=np.float32) / 255.0 for im in images]
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)

    def embed(self, images: list[Image.Image]) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.features(self._tensor(images)).numpy()

    def predict_proba(self, images: list[Image.Image]) -> np.ndarray:
        import torch

        with torch.no_grad():
            return torch.softmax(self.head(self.features(self._tensor(images))), dim=1).numpy()


class RednessClassifier:
    """A test double whose answer is known: PMY for reddish images, LY otherwise; embedding = mean colour."""

    classes = tuple(CLASSES)

    def embed(self, images: list[Image.Image]) -> np.ndarray:
        return np.stack([np.asarray(im.convert("RGB"), dtype=np.float64).mean(axis=(0, 1)) for im in images])

    def predict_proba(self, images: list[Image.Image]) -> np.ndarray:
        out = np.zeros((len(images), len(CLASSES)))
        for i, colour in enumerate(self.embed(images)):
            out[i, CLASSES.index("PMY" if colour[0] > colour[2] else "LY")] = 1.0
        return out


class KillAtStep(NullProgress):
    """Raises KeyboardInterrupt (what Ctrl-C does between steps) when the training phase reaches ``step``."""

    def __init__(self, step: int) -> None:
        self.step = step
        self.name = ""

    def phase(self, name: str, total: int | None = None) -> None:
        self.name = name

    def advance(self, done: int, total: int | None = None, **stats: Any) -> None:
        from wbc_data.synth.train import TRAIN_PHASE

        if self.name == TRAIN_PHASE and done == self.step:
            raise KeyboardInterrupt
