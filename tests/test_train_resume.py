"""Checkpoints and resume: a run killed mid-epoch (after a stage change) and resumed ends with exactly the weights
and history of the uninterrupted run for the same seed; a run folder is never mixed with another run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.train_helpers import one_thread, real_workspace  # noqa: F401  (one_thread: autouse)
from wbc_data.train.errors import TrainError, TrainingInterrupted
from wbc_data.train.recipe import load_recipe
from wbc_data.train.run import TrainOptions, train

# member 0 trains one epoch; member 1 one head epoch, then two full ones: a kill in its 3rd epoch lands after a
# finished member and a stage change, inside an epoch
SHORT = ["members.0.stages.0.epochs=1", "members.1.stages.0.epochs=1", "members.1.stages.1.epochs=2"]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "members" / "tiny-resnet" / "model.safetensors"))


class StopAfter:
    """Stands in for Ctrl-C: interrupts the loop after ``steps`` training steps."""

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.calls = 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.calls >= self.steps


@pytest.mark.slow
def test_resume_after_a_kill_equals_the_uninterrupted_run(tmp_path):
    ws = real_workspace(tmp_path, per_class=16)
    recipe = load_recipe("tiny-cpu", SHORT)
    whole = train(ws, recipe, TrainOptions(out=tmp_path / "whole"))

    killed = tmp_path / "killed"
    steps_per_epoch = -(-len(whole.data.train) // recipe.data.batch_size)
    stop = StopAfter(steps_per_epoch * 3 + 2)  # member 0: 1 epoch; member 1: 2 epochs, then 2 steps into the 3rd
    with pytest.raises(TrainingInterrupted, match="re-run with --resume"):
        train(ws, recipe, TrainOptions(out=killed), should_stop=stop)
    assert (killed / "checkpoints" / "tiny-resnet" / "last.pt").is_file()
    assert (killed / "members" / "tiny-effnet" / "classifier.json").is_file()  # the finished member is kept
    assert not (killed / "classifier.json").exists()
    with pytest.raises(TrainError, match="pass --resume"):
        train(ws, recipe, TrainOptions(out=killed))
    other = load_recipe("tiny-cpu", [*SHORT, "seed=1"])
    with pytest.raises(TrainError, match="different recipe"):
        train(ws, other, TrainOptions(out=killed, resume=True))

    resumed = train(ws, recipe, TrainOptions(out=killed, resume=True))
    a, b = _weights(tmp_path / "whole"), _weights(killed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run"
    history_a = pd.read_csv(tmp_path / "whole" / "members" / "tiny-resnet" / "history.csv")
    history_b = pd.read_csv(killed / "members" / "tiny-resnet" / "history.csv")
    columns = ["epoch", "stage", "train_loss", "val_loss", "val_macro_f1"]
    pd.testing.assert_frame_equal(history_a[columns], history_b[columns])
    assert list(history_b["stage"]) == ["head", "full", "full"]
    assert resumed.weights == pytest.approx(whole.weights)
    assert not (killed / "checkpoints").exists()  # removed once the run finished
    with pytest.raises(TrainError, match="already holds a trained model"):
        train(ws, recipe, TrainOptions(out=killed, resume=True))
