"""Running a trained model: the device, mixed precision, batching, and test-time augmentation over the 8
flips/rotations of the square (cells have no orientation, so each view is as valid as the original)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch

from wbc_data.core.progress import Progress, or_null


def best_device() -> torch.device:
    """The first CUDA device when there is one, else the CPU (see :mod:`wbc_data.core.device`)."""
    from wbc_data.core import device

    return torch.device(device.best_device())


def autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 (or fp16) autocast on GPUs; full precision on the CPU, where it is the fastest and exact."""
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


def dihedral_views(x: torch.Tensor) -> Iterator[torch.Tensor]:
    """The 8 symmetries of the square: 4 rotations of the image and of its mirror."""
    for mirrored in (x, x.flip(-1)):
        for k in range(4):
            yield torch.rot90(mirrored, k, dims=(-2, -1))


@torch.inference_mode()
def probabilities(model: Any, x: torch.Tensor, tta: bool = False) -> torch.Tensor:
    """Softmax probabilities (float32, on the CPU) for a batch already transformed; ``tta`` averages the 8 views."""
    device = next(model.parameters()).device
    x = x.to(device, non_blocking=True)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    views = list(dihedral_views(x)) if tta else [x]
    total = None
    with autocast(device):
        for view in views:
            p = torch.softmax(model(view).float(), dim=-1)
            total = p if total is None else total + p
    assert total is not None
    return (total / len(views)).cpu()


@torch.inference_mode()
def features(model: Any, x: torch.Tensor, embed: Callable[[Any, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    device = next(model.parameters()).device
    with autocast(device):
        return embed(model, x.to(device)).float().cpu()


def default_workers() -> int:
    """DataLoader workers: the cores this process may use, one left for the main process, at most 8."""
    import os

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(0, min(8, cores - 1))


def predict_dataset(
    classifier: Any,
    dataset: Any,
    tta: bool = False,
    batch_size: int = 64,
    workers: int | None = None,
    progress: Progress | None = None,
) -> Any:
    """``(n, classes)`` probabilities (numpy) of a dataset yielding ``(tensor, label)`` in the classifier's
    transform, in order; images done are reported as ``progress.advance`` within the caller's phase."""
    import numpy as np
    from torch.utils.data import DataLoader

    from wbc_data.train.errors import one_line_worker_errors

    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=default_workers() if workers is None else workers
    )
    progress = or_null(progress)
    out, done = [], 0
    with one_line_worker_errors():
        for batch in loader:
            out.append(classifier.tensor_proba(batch[0], tta).numpy())
            done += len(batch[0])
            progress.advance(done, len(dataset))
    return np.concatenate(out) if out else np.zeros((0, len(classifier.classes)), dtype=np.float32)
