"""Training state on disk, written atomically after every epoch so a kill or Ctrl-C loses at most one epoch.

``last.pt`` holds where training stands (member stage, epoch, early-stopping counters, history), the model and the
optimizer; ``best.pt`` the best weights of the current stage (early stopping restores them). Each epoch's draw and
augmentations are seeded from the recipe seed and the epoch number, so resuming from ``last.pt`` reproduces the
uninterrupted run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from wbc_data.io.atomic import atomic_write
from wbc_data.train.errors import TrainError

LAST = "last.pt"
BEST = "best.pt"


@dataclass
class LoopState:
    """Where a member's training stands after a finished epoch."""

    stage: int = 0  # index into the member's enabled stages
    stage_epoch: int = 0  # epochs finished in this stage
    epoch: int = 0  # epochs finished over all stages (seeds each epoch's draw)
    best_f1: float = -1.0  # validation macro-F1 of the best epoch in this stage
    best_score: float = float("-inf")  # what train.monitor maximises (macro-F1, or minus the loss)
    last_stopped_early: bool = False  # whether the previous stage stopped early (``when: improving`` stages)
    best_epoch: int = -1
    bad_epochs: int = 0  # epochs since the best, for patience
    history: list[dict[str, Any]] = field(default_factory=list)


def save(folder: Path, state: LoopState, model_state: dict[str, Any], optimizer_state: dict[str, Any]) -> None:
    import torch

    payload = {"loop": asdict(state), "model": model_state, "optimizer": optimizer_state}
    atomic_write(folder / LAST, lambda tmp: torch.save(payload, tmp))


def save_best(folder: Path, model_state: dict[str, Any]) -> None:
    import torch

    atomic_write(folder / BEST, lambda tmp: torch.save(model_state, tmp))


def load(folder: Path) -> tuple[LoopState, dict[str, Any], dict[str, Any]] | None:
    """The last checkpoint, or None when there is none; a damaged file is one clear line."""
    path = folder / LAST
    if not path.is_file():
        return None
    payload = _read(path)
    try:
        return LoopState(**payload["loop"]), payload["model"], payload["optimizer"]
    except (KeyError, TypeError):
        raise TrainError(f"{path}: not a wbc-data training checkpoint") from None


def load_best(folder: Path) -> dict[str, Any] | None:
    path = folder / BEST
    return _read(path) if path.is_file() else None


def _read(path: Path) -> Any:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        raise TrainError(
            f"{path}: unreadable checkpoint ({' '.join(str(exc).split())[:160]}); delete it to restart"
        ) from None
