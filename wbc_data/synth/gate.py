"""The fidelity gate: a sample is kept only if it is a plausible member of its class, judged in an embedding that
was not trained on these images (:mod:`.embedding`, ImageNet features).

Rule: a sample is "not a plausible <CLASS>" when it lies farther from its nearest real cell of the class than real
cells of the class lie from their nearest other real cell. Concretely, the radius is the ``quantile`` (default 0.95,
``SynthOptions.fidelity_quantile``) of the leave-one-out nearest-neighbour distances among the class's real training
cells, and a sample whose nearest real cell is farther than that radius is rejected.

Why this quantile: a held-out real cell of the class is, like the training cells, at a leave-one-out-like distance
from the rest, so about ``1 - quantile`` of genuine cells would be refused (5% at the default); a lower quantile
rejects more good samples, the maximum lets through whatever the loneliest real cell allows. Coloured noise, blank
images and blurred blobs lie far outside (on real PBC promyelocytes at 64 px: radius about 11, noise about 18,
blank about 16, held-out real cells 6.5-10; ``tests/test_synth_fidelity.py``).

A class with fewer than ``MIN_REAL`` real training cells has no distance to calibrate on: the gate is not applied to
it (the run says so).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

MIN_REAL = 2

Embed = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class GateCalibration:
    n_real: int
    quantile: float
    radius: float
    real_median: float  # median leave-one-out nearest-neighbour distance among the real cells
    real_max: float
    real_distances: tuple[float, ...] = ()  # all of them (for the report's figure)

    def describe(self, label: str) -> str:
        return (
            f"not a plausible {label} beyond {self.radius:.2f} from every real {label} in the ImageNet embedding "
            f"(the {self.quantile:.0%} quantile of real cells' distances to their nearest other real cell, median "
            f"{self.real_median:.2f}, {self.n_real:,} cells)"
        )


@dataclass(frozen=True)
class GateVerdict:
    plausible: bool
    distance: float  # to the nearest real cell of the class, in the embedding
    nearest_id: str
    reason: str | None = None


class FidelityGate:
    """Judges samples of one class against the embedded real cells of that class."""

    def __init__(self, label: str, features: np.ndarray, ids: Sequence[str], radius: float, embed: Embed) -> None:
        from sklearn.neighbors import NearestNeighbors

        self.label = label
        self.ids = list(ids)
        self.radius = float(radius)
        self.embed = embed
        self.index = NearestNeighbors(n_neighbors=1).fit(np.asarray(features, np.float32))

    @classmethod
    def calibrated(
        cls, label: str, reals: np.ndarray, ids: Sequence[str], embed: Embed, quantile: float
    ) -> tuple[FidelityGate, GateCalibration]:
        """A gate whose radius is the ``quantile`` of the real cells' leave-one-out nearest-neighbour distances."""
        from sklearn.neighbors import NearestNeighbors

        if len(reals) < MIN_REAL:
            raise ValueError(f"the fidelity gate needs at least {MIN_REAL} real images of {label}, got {len(reals)}")
        if not 0.0 < quantile <= 1.0:
            raise ValueError(f"fidelity quantile {quantile}: use a value in (0, 1]")
        features = embed(reals)
        distances, _ = NearestNeighbors(n_neighbors=2).fit(features).kneighbors(features)
        loo = distances[:, 1]  # column 0 is the cell itself
        radius = float(np.quantile(loo, quantile))
        calibration = GateCalibration(len(reals), quantile, radius, float(np.median(loo)), float(loo.max()),
                                      tuple(float(d) for d in loo))  # fmt: skip
        return cls(label, features, ids, radius, embed), calibration

    def check(self, samples: np.ndarray) -> tuple[list[GateVerdict], np.ndarray]:
        """One verdict per (m, h, w, 3) uint8 sample, and the samples' features."""
        features = self.embed(samples)
        if not len(features):
            return [], features
        distances, index = self.index.kneighbors(features)
        verdicts = []
        for d, i in zip(distances[:, 0], index[:, 0], strict=True):
            plausible = bool(d <= self.radius)
            reason = None
            if not plausible:
                reason = (
                    f"not a plausible {self.label}: {d:.2f} from the nearest real {self.label} ({self.ids[i]}) in the "
                    f"ImageNet embedding, beyond the radius {self.radius:.2f}"
                )
            verdicts.append(GateVerdict(plausible, float(d), self.ids[i], reason))
        return verdicts, features
