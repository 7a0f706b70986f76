"""Which training rows each batch holds: class-balanced draws, with an exact share of synthetic rows.

Every batch holds ``round(ratio x batch)`` synthetic rows on average (spread exactly over the epoch), the rest real;
within each pool, rows are drawn with replacement, weighted so that classes come equally often (``balanced``), by
the square root of their count (``sqrt``) or as they are (``natural``). The draw depends only on the seed and the
epoch, so every process of a multi-GPU run sees the same batches (Accelerate then shards them) and a resumed run
draws what the uninterrupted one would have.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler


def class_weights(labels: np.ndarray, mode: str) -> np.ndarray:
    """Per-row draw probabilities over ``labels`` (class indices): balanced, sqrt or natural."""
    if not len(labels):
        return np.zeros(0)
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    power = {"balanced": 1.0, "sqrt": 0.5, "natural": 0.0}[mode]
    weights = counts[inverse].astype(np.float64) ** -power
    return weights / weights.sum()


class EpochClock:
    """The epoch the draw depends on (Accelerate's ``set_epoch`` reaches it through ``batch_sampler.sampler``)."""

    def __init__(self) -> None:
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)


class MixedBatchSampler(Sampler[list[int]]):
    """Batches of indices into the training rows: ``synthetic_ratio`` of them synthetic, classes weighted by
    ``mode`` within real and within synthetic rows."""

    def __init__(
        self,
        labels: Sequence[int],
        is_synthetic: Sequence[bool],
        batch_size: int,
        batches: int,
        synthetic_ratio: float = 0.0,
        mode: str = "balanced",
        seed: int = 0,
        with_seeds: bool = False,
    ) -> None:
        labels_arr = np.asarray(labels, dtype=np.int64)
        synth = np.asarray(is_synthetic, dtype=bool)
        self.real = np.flatnonzero(~synth)
        self.synthetic = np.flatnonzero(synth)
        if not len(self.real):
            raise ValueError("no real training rows to draw from")
        if synthetic_ratio > 0 and not len(self.synthetic):
            raise ValueError("a synthetic share was asked for, but there are no synthetic rows")
        self.real_p = class_weights(labels_arr[self.real], mode)
        self.synthetic_p = class_weights(labels_arr[self.synthetic], mode)
        self.batch_size = batch_size
        self.batches = batches
        self.ratio = synthetic_ratio
        self.seed = seed
        self.with_seeds = with_seeds  # yield (index, augmentation seed) pairs, the seeds drawn apart from the rows
        self.sampler = EpochClock()

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def synthetic_counts(self) -> np.ndarray:
        """Synthetic rows in each batch: floor steps of ratio x batch, so the epoch total is exact."""
        edges = np.floor(self.ratio * self.batch_size * np.arange(self.batches + 1) + 1e-9).astype(np.int64)
        return np.diff(edges)

    def __len__(self) -> int:
        return self.batches

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.sampler.epoch])
        counts = self.synthetic_counts()
        n_synth = int(counts.sum())
        n_real = self.batches * self.batch_size - n_synth
        real = rng.choice(self.real, size=n_real, p=self.real_p)
        synth = rng.choice(self.synthetic, size=n_synth, p=self.synthetic_p) if n_synth else real[:0]
        seeds = np.random.default_rng([self.seed, self.sampler.epoch, 1]).integers(
            0, 2**62, size=(self.batches, self.batch_size)
        )
        r = s = 0
        for b, k in enumerate(counts):
            batch = np.concatenate([real[r : r + self.batch_size - k], synth[s : s + k]])
            r += self.batch_size - k
            s += k
            indices = torch.from_numpy(rng.permutation(batch)).tolist()
            yield list(zip(indices, seeds[b].tolist(), strict=True)) if self.with_seeds else indices
