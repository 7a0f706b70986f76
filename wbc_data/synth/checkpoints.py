"""Training checkpoints: Accelerate's full state (model, optimiser, learning-rate schedule, EMA weights, RNGs) plus
our step counter, each in ``checkpoints/checkpoint-<step>/``, written under a staging name and renamed when complete,
so a kill mid-save never leaves a checkpoint that looks whole. The newest ``keep`` are kept."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wbc_data.synth import SynthError

if TYPE_CHECKING:
    from accelerate import Accelerator

PREFIX = "checkpoint-"
STATE_FILE = "trainer_state.json"


def checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints under ``folder``, oldest first."""
    found = []
    for path in Path(folder).glob(f"{PREFIX}*"):
        step = path.name[len(PREFIX) :]
        if path.is_dir() and step.isdigit() and (path / STATE_FILE).is_file():
            found.append((int(step), path))
    return sorted(found)


def latest(folder: Path) -> tuple[int, Path] | None:
    found = checkpoints(folder)
    return found[-1] if found else None


def read_state(path: Path) -> dict[str, Any]:
    try:
        return json.loads((Path(path) / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SynthError(f"{path}: unreadable checkpoint ({exc})") from None


def save(accelerator: Accelerator, folder: Path, step: int, state: dict[str, Any], keep: int) -> Path:
    """Save on every process (Accelerate writes each process's RNG state), swap in on the main one, prune."""
    folder = Path(folder)
    final = folder / f"{PREFIX}{step:07d}"
    staged = folder / f".{final.name}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(staged, ignore_errors=True)
        staged.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(staged))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (staged / STATE_FILE).write_text(json.dumps({**state, "step": step}, indent=2) + "\n", encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        os.replace(staged, final)
        for _, old in checkpoints(folder)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final
