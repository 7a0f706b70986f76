"""The contract between ``wbc-data train`` (which saves classifiers) and the stages that use one: synth's
agreement check (does the classifier call samples what they were drawn as), evaluate and predict.

A classifier folder written by ``wbc-data train`` loads with :func:`load_classifier`; anything with the same three
members (a test double, another framework's model) can stand in wherever a :class:`Classifier` is expected.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image


@runtime_checkable
class Classifier(Protocol):
    classes: tuple[str, ...]
    """The label of each output column, in ``wbc_data.core.taxonomy.CLASSES`` order for wbc-data's own models."""

    def predict_proba(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(n, len(classes)) class probabilities (rows sum to 1) for RGB images of any size."""
        ...

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(n, d) features (the input of the classification head), e.g. for retrieval or distances between sets."""
        ...


def load_classifier(path: Path | str) -> Classifier:
    """A classifier saved by ``wbc-data train`` (one member or the ensemble); one clear line when it cannot load."""
    from wbc_data.train.model_io import load_classifier as load  # the train stage owns the format

    return load(Path(path))
