"""The seed recipes exactly: stages freeze the parameter groups they name on the real architectures, stage 3 runs
only while validation still improves, early stopping can watch the loss, and the decision rules beside the argmax."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.train_helpers import one_thread  # noqa: F401
from wbc_data.core.progress import NullProgress
from wbc_data.core.taxonomy import CLASSES
from wbc_data.train.recipe import load_recipe


def _trainable(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def _share(model) -> float:
    total = sum(p.numel() for p in model.parameters())
    return sum(p.numel() for p in model.parameters() if p.requires_grad) / total


@pytest.mark.parametrize("member_index", [0, 1])
def test_seed_ensemble_stages_freeze_what_they_name(member_index):
    import dataclasses

    from wbc_data.train.models import apply_stage, create_model

    recipe = load_recipe("wbcbench-ensemble")
    member = dataclasses.replace(recipe.members[member_index], pretrained=False)
    model = create_model(member)
    head_name = model.pretrained_cfg["classifier"]
    stages = {s.name: s for s in member.stages}
    apply_stage(model, stages["head"])
    head = _trainable(model)  # the classifier (and ConvNeXt's head norm, part of timm's head group)
    assert {f"{head_name}.weight", f"{head_name}.bias"} <= head
    assert all(n.startswith(head_name.split(".")[0]) for n in head) and _share(model) < 0.01
    apply_stage(model, stages["top-blocks"])
    trained = _trainable(model)
    share = _share(model)
    assert 0.1 < share < 0.4, share  # the top blocks only, not 90% of the weights as whole top stages were
    assert f"{head_name}.weight" in trained and not any(n.startswith("stem") for n in trained)
    names = [n for n, _ in model.named_parameters()]
    assert names[-1] in trained and names[0] not in trained  # from the top down
    frozen_norms = [m for m in model.modules() if type(m).__name__.startswith("Frozen")]
    if model.__class__.__name__ == "EfficientNet":  # frozen blocks keep their batch-norm statistics
        assert frozen_norms
    apply_stage(model, stages["full"])
    assert _share(model) == 1.0 and stages["full"].when == "improving"


def test_resnet34_twophase_is_the_papers_recipe():
    import dataclasses

    from wbc_data.train.models import apply_stage, create_model

    recipe = load_recipe("resnet34-twophase")
    (member,) = recipe.members
    frozen, unfrozen = member.stages
    assert (frozen.train, frozen.lr, frozen.epochs) == ("head", 1e-3, 30) and (unfrozen.train, unfrozen.lr) == (
        "all",
        1e-5,
    )
    assert recipe.train.monitor == "loss" and recipe.train.patience == 8 and recipe.seed == 42
    assert (recipe.augment.normal.perspective, recipe.augment.normal.perspective_p) == (0.2, 0.5)
    model = create_model(dataclasses.replace(member, pretrained=False))
    apply_stage(model, frozen)
    assert _trainable(model) == {"fc.weight", "fc.bias"}
    apply_stage(model, unfrozen)
    assert _share(model) == 1.0


def test_lite0_cpu_freezes_the_stem_and_first_two_block_groups():
    """The CPU recipe trains at 192 px above its first two block groups: those (and the stem) stay frozen, with their
    batch-norm statistics, and every later block and the head train."""
    import dataclasses

    from wbc_data.train.models import apply_stage, create_model

    (member,) = load_recipe("lite0-cpu").members
    model = create_model(dataclasses.replace(member, pretrained=False))
    (stage,) = member.stages
    apply_stage(model, stage)
    trained = _trainable(model)
    frozen = {n for n, _ in model.named_parameters()} - trained
    assert frozen and all(n.startswith(("conv_stem", "bn1", "blocks.0.", "blocks.1.")) for n in frozen), frozen
    assert any(n.startswith("conv_stem") for n in frozen) and any(n.startswith("blocks.1.") for n in frozen)
    assert all(n.startswith(("blocks.", "conv_head", "bn2", "classifier")) for n in trained)
    assert any(n.startswith("blocks.2.") for n in trained) and {"classifier.weight", "conv_head.weight"} <= trained
    assert any(type(m).__name__.startswith("Frozen") for m in model.blocks[1].modules())


class _Scripted:
    """Stands in for validation: the loss and macro-F1 of each successive epoch."""

    def __init__(self, losses, f1s):
        self.values = list(zip(losses, f1s, strict=True))
        self.calls = 0

    def __call__(self, accelerator, runner, loader, normalize=None):
        loss, f1 = self.values[min(self.calls, len(self.values) - 1)]
        self.calls += 1
        return loss, f1, f1


def _tiny_run(tmp_path, monkeypatch, overrides, losses, f1s, progress=None, scripted=None):
    from accelerate import Accelerator
    from torch.utils.data import TensorDataset

    from wbc_data.train import loop

    recipe = load_recipe(
        "tiny-cpu",
        ["members.0.stages.0.epochs=6", "train.patience=2", "data.batch_size=4", "augment.cutmix.p=0", *overrides],
    )
    member = recipe.members[0]
    images = torch.randn(8, 3, 32, 32)
    labels = torch.tensor([0, 1] * 4)
    data = loop.MemberData(
        TensorDataset(images, labels),
        TensorDataset(images, labels),
        labels.numpy(),
        np.zeros(8, dtype=bool),
        labels.numpy(),
        0.0,
        0,
    )
    scripted = scripted or _Scripted(losses, f1s)
    monkeypatch.setattr(loop, "_validate", scripted)
    result = loop.train_member(
        Accelerator(cpu=True), recipe, member, data, tmp_path / "ckpt", progress or NullProgress()
    )
    return result, scripted


def test_early_stopping_can_watch_the_validation_loss(tmp_path, monkeypatch):
    losses = [1.0, 0.8, 0.9, 0.95, 0.97, 0.99]  # best loss at epoch 2, then worse
    f1s = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]  # macro-F1 keeps rising
    by_loss, calls = _tiny_run(tmp_path / "a", monkeypatch, ["train.monitor=loss"], losses, f1s)
    assert calls.calls == 4  # epochs 3 and 4 did not beat epoch 2's loss: patience 2 stops it
    assert [h["improved"] for h in by_loss.history] == [True, True, False, False]
    assert by_loss.best_f1 == 0.2  # the kept weights are the best-loss epoch's
    by_f1, calls = _tiny_run(tmp_path / "b", monkeypatch, [], losses, f1s)
    assert calls.calls == 6 and by_f1.best_f1 == 0.6


class _Recorded:
    """A core Progress that keeps what the loop told it."""

    def __init__(self):
        self.events = []

    def phase(self, name, total=None):
        self.events.append(("phase", name, total))

    def advance(self, done, total=None, **stats):
        self.events.append(("advance", done, total, stats))

    def note(self, text):
        self.events.append(("note", text))


def test_the_loop_reports_through_the_one_progress_protocol(tmp_path, monkeypatch):
    """A phase per epoch (its batches as total), advances with loss, lr and img/s ending at the total, a note per
    finished epoch."""
    progress = _Recorded()
    result, _ = _tiny_run(tmp_path, monkeypatch, ["members.0.stages.0.epochs=2"], [1.0, 0.9], [0.1, 0.2], progress)
    phases = [e for e in progress.events if e[0] == "phase"]
    member, stage = result.history[0]["member"], result.history[0]["stage"]
    assert [e[1:] for e in phases] == [(f"{member} {stage} epoch 1", 2), (f"{member} {stage} epoch 2", 2)]
    advances = [e for e in progress.events if e[0] == "advance"]
    assert [e[1:3] for e in advances] == [(2, 2), (2, 2)]  # 8 images in batches of 4; reported at the epoch's end
    for _, _, _, stats in advances:
        assert set(stats) == {"loss", "lr", "img_per_s"} and stats["loss"] > 0 and 0 < stats["lr"] < 1
    epoch_notes = [e[1] for e in progress.events if e[0] == "note" and " epoch " in e[1]]
    assert len(epoch_notes) == 2 and epoch_notes[0].startswith(f"{member} {stage} epoch 1: loss ")
    assert "val macro-F1 0.1000" in epoch_notes[0] and epoch_notes[1].endswith(" best")


class _Weights(_Scripted):
    """Validation stand-in that also keeps a copy of the weights it was asked to judge."""

    def __init__(self, losses, f1s):
        super().__init__(losses, f1s)
        self.judged = []

    def __call__(self, accelerator, runner, loader, normalize=None):
        self.judged.append({k: v.detach().clone() for k, v in runner.state_dict().items() if v.is_floating_point()})
        return super().__call__(accelerator, runner, loader, normalize)


def _moved(before, after) -> float:
    return max(float((after[k] - before[k]).abs().max()) for k in before)


def test_model_ema_is_what_validation_judges_and_what_is_kept(tmp_path, monkeypatch):
    """With ``train.ema`` validation sees timm's EMA copy and the best checkpoint holds it: at a decay near 1 it
    hardly moves between epochs while the trained weights do; without EMA the judged weights are the trained ones."""
    from wbc_data.train import checkpoint

    runs = {}
    for name, overrides in {"plain": [], "ema": ["train.ema=0.999999"]}.items():
        scripted = _Weights([1.0, 0.9, 0.8], [0.1, 0.2, 0.3])
        overrides = [*overrides, "members.0.stages.0.epochs=3", "members.0.stages.0.lr=0.05"]
        _tiny_run(tmp_path / name, monkeypatch, overrides, [], [], scripted=scripted)
        runs[name] = scripted.judged
    plain, ema = runs["plain"], runs["ema"]
    assert len(plain) == len(ema) == 3
    assert _moved(plain[0], plain[2]) > 1e-2  # training moves the weights
    assert _moved(ema[0], ema[2]) < 1e-3 * _moved(plain[0], plain[2])  # the EMA at decay ~1 barely follows
    best = checkpoint.load_best(tmp_path / "ema" / "ckpt")
    assert _moved(ema[2], {k: best[k] for k in ema[2]}) < 1e-6  # the kept weights are the EMA's (last = best)


def test_learning_rate_scales_with_the_global_batch(tmp_path, monkeypatch):
    """Stage lrs are for ``train.lr_base_batch``: the optimizer runs at lr x global batch / base batch."""
    from wbc_data.train import loop

    recipe = load_recipe("tiny-cpu", ["data.batch_size=32", "train.lr_base_batch=128"])
    assert loop.lr_scale(recipe, 1) == 0.25 and loop.lr_scale(recipe, 8) == 2.0
    assert loop.lr_scale(load_recipe("tiny-cpu", ["data.batch_size=32"]), 4) == 4.0  # default base: one process

    seen = {}
    original = loop.train_epoch

    def recording(accelerator, recipe, runner, optimizer, *args, **kwargs):
        seen.setdefault(recipe.train.lr_base_batch, []).append(optimizer.param_groups[0]["lr"])
        return original(accelerator, recipe, runner, optimizer, *args, **kwargs)

    monkeypatch.setattr(loop, "train_epoch", recording)
    common = ["members.0.stages.0.epochs=2", "train.warmup_epochs=0", "train.schedule=constant"]
    _tiny_run(tmp_path / "a", monkeypatch, common, [1.0, 0.9], [0.1, 0.2])
    _tiny_run(tmp_path / "b", monkeypatch, [*common, "train.lr_base_batch=16"], [1.0, 0.9], [0.1, 0.2])
    stage_lr = load_recipe("tiny-cpu").members[0].stages[0].lr
    assert seen[None] == pytest.approx([stage_lr, stage_lr])  # batch 4 on one process, base 4
    assert seen[16] == pytest.approx([stage_lr / 4, stage_lr / 4])  # batch 4 against a base of 16


def test_a_stage_when_improving_runs_only_if_the_last_one_was_still_improving(tmp_path, monkeypatch):
    stage3 = ['members.0.stages=[{name: a, train: all, lr: 0.003, epochs: 4}, {name: b, train: all, lr: 0.001, '
              'epochs: 1, when: improving}]']  # fmt: skip
    plateau, _ = _tiny_run(tmp_path / "a", monkeypatch, stage3, [1.0] * 6, [0.5, 0.4, 0.4, 0.4, 0.4, 0.4])
    assert {h["stage"] for h in plateau.history} == {"a"}  # stopped early: stage b skipped
    rising, _ = _tiny_run(tmp_path / "b", monkeypatch, stage3, [1.0] * 6, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    assert [h["stage"] for h in rising.history] == ["a"] * 4 + ["b"]


def test_prior_correction_and_thresholds_beside_the_argmax():
    from wbc_data.train.metrics import decide, fit_class_offsets, macro_f1, prior_weights

    rng = np.random.default_rng(0)
    a, b = CLASSES.index("SNE"), CLASSES.index("BA")
    train = np.array([a] * 900 + [b] * 100)  # real prior 0.9 / 0.1; balanced sampling showed 0.5 / 0.5
    weights = prior_weights(train, "balanced")
    assert weights[a] == pytest.approx(1.8) and weights[b] == pytest.approx(0.2) and weights[0 if a else 1] >= 0
    assert np.allclose(prior_weights(train, "natural")[[a, b]], 1.0)
    # a model that learned under balanced sampling over-calls BA on ambiguous cells of a 90/10 test set
    truth = np.array([a] * 900 + [b] * 100)
    p_b = np.clip(np.where(truth == b, 0.75, 0.35) + rng.normal(0, 0.15, len(truth)), 0.01, 0.99)
    probabilities = np.zeros((len(truth), len(CLASSES)))
    probabilities[:, a], probabilities[:, b] = 1 - p_b, p_b
    plain = macro_f1(truth, decide(probabilities, "argmax", None))
    decision = {"prior_weights": weights.tolist(), "offsets": fit_class_offsets(probabilities, truth).tolist()}
    fitted = macro_f1(truth, decide(probabilities, "thresholds", decision))
    assert fitted > plain + 0.02  # thresholds fitted on these rows beat the argmax
    assert macro_f1(truth, decide(probabilities, "prior", decision)) != pytest.approx(plain)
    with pytest.raises(ValueError, match="decision rule"):
        decide(probabilities, "median", decision)


@pytest.mark.slow
def test_two_cpu_processes_augment_differently_and_agree_on_metrics(tmp_path):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    out = tmp_path / "two.json"
    import socket

    with socket.socket() as probe:  # a free port for the gloo rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # torchrun's two CPU processes: Accelerate sees WORLD_SIZE 2 and runs MULTI_CPU over gloo
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
               str(repo / "tests" / "scripts" / "two_ranks.py"), str(out)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo)}
    done = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["processes"] == 2 and result["ranks_differ"] and result["rank0_repeatable"]
    assert np.allclose(result["distributed"], result["single"], atol=1e-5)
