"""Errors of the train stage: every one is a single line naming the file (recipe, model folder, split) and why."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from wbc_data.core.errors import Interrupted, UserError


class TrainError(UserError):
    """Training cannot start or go on: a bad recipe value, an empty split, a class absent from train..."""


class RecipeError(TrainError):
    """A recipe file that cannot be used."""


class ModelFolderError(UserError):
    """A classifier folder that is missing, incomplete or not written by ``wbc-data train``."""


class WeightsError(TrainError):
    """Pretrained weights that were asked for and cannot be found or read here."""


class TrainingInterrupted(TrainError, Interrupted):
    """Ctrl-C (or SIGTERM) during training: the last finished epoch is checkpointed; ``--resume`` continues."""


@contextlib.contextmanager
def one_line_worker_errors() -> Iterator[None]:
    """A :class:`UserError` raised in a DataLoader worker (a missing file, say) comes back with the worker's
    traceback inside its message; re-raise it with its own one-line message only."""
    try:
        yield
    except UserError as exc:
        text = str(exc)
        if "\nOriginal Traceback" not in text:
            raise
        last = [line for line in text.splitlines() if line.strip()][-1]
        _, _, message = last.partition(": ")
        raise type(exc)(message or last) from None
