"""Which rows train, validate and test: synthetic rows only ever in training (at the asked share of each batch),
a class kept rare is tested on the rest of it, and an empty split, a class absent from train or a missing weight
file is one clear line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.train_helpers import one_thread, real_workspace  # noqa: F401  (one_thread: autouse)
from wbc_data.cli import app
from wbc_data.core.stages import load_view
from wbc_data.train.data import select_training_data
from wbc_data.train.errors import TrainError
from wbc_data.train.evaluate import evaluation_rows
from wbc_data.train.sampling import MixedBatchSampler

runner = CliRunner()


def _frame(rows: list[tuple[str, str, str, bool]]) -> pd.DataFrame:
    """A joined manifest view: (sample_id, label, split, is_synthetic) rows, all usable and exact."""
    return pd.DataFrame(
        {
            "sample_id": [r[0] for r in rows],
            "source": ["synth" if r[3] else "real" for r in rows],
            "status": "ok",
            "label": [r[1] for r in rows],
            "label_status": "exact",
            "split": [r[2] for r in rows],
            "is_synthetic": [r[3] for r in rows],
        }
    )


def _rows(label: str, split: str, n: int, synthetic: bool = False, start: int = 0) -> list[tuple[str, str, str, bool]]:
    tag = "s" if synthetic else "r"
    return [(f"{tag}:{label}:{split}:{i}", label, split, synthetic) for i in range(start, start + n)]


def test_synthetic_rows_never_validate_even_when_a_split_file_says_so(tmp_path):
    rows = _rows("LY", "train", 10) + _rows("MO", "train", 10) + _rows("LY", "val", 3) + _rows("MO", "val", 3)
    rows += _rows("LY", "train", 6, synthetic=True) + _rows("MO", "val", 2, synthetic=True)  # a forged val row
    rows += _rows("LY", "test", 2, synthetic=True)
    frame = _frame(rows)
    data = select_training_data(frame, "m.parquet", synthetic_ratio=0.25)
    assert not data.val["is_synthetic"].any() and len(data.val) == 6
    assert data.train["is_synthetic"].sum() == 6  # only synthetic rows of the train split
    roles = data.roles()
    assert set(roles.loc[roles["is_synthetic"], "role"]) == {"train"}
    without = select_training_data(frame, "m.parquet")
    assert not without.train["is_synthetic"].any() and "not used (--synthetic-ratio 0)" in without.notes[-1]
    test_rows, _ = evaluation_rows(frame, tmp_path, "test")  # a folder without a run: no held-out rows
    assert test_rows.empty  # the two synthetic test rows are never scored


def test_each_batch_holds_the_synthetic_share():
    labels = np.array([0] * 50 + [1] * 5 + [2] * 20)  # 20 synthetic rows of class 2
    synthetic = np.array([False] * 55 + [True] * 20)
    sampler = MixedBatchSampler(labels, synthetic, batch_size=10, batches=40, synthetic_ratio=0.25, seed=3)
    batches = list(sampler)
    assert len(batches) == 40 and all(len(b) == 10 for b in batches)
    per_batch = [int(synthetic[b].sum()) for b in batches]
    assert sum(per_batch) == 100 and set(per_batch) <= {2, 3}  # 2.5 per batch, spread exactly
    real = np.concatenate([[i for i in b if not synthetic[i]] for b in batches])
    counts = np.bincount(labels[real], minlength=2)
    assert abs(counts[0] - counts[1]) < 0.2 * counts.sum()  # balanced: the 5-image class as often as the 50
    sampler.set_epoch(1)
    assert list(sampler) != batches
    sampler.set_epoch(0)
    assert list(sampler) == batches  # the draw depends on seed and epoch only


def test_hold_rare_keeps_n_and_tests_the_rest():
    rows = _rows("PMY", "train", 40) + _rows("PMY", "val", 8) + _rows("PMY", "test", 8)
    rows += _rows("MY", "train", 40) + _rows("MY", "val", 8) + _rows("MY", "test", 8)
    frame = _frame(rows)
    data = select_training_data(frame, "m.parquet", hold_rare={"PMY": 13}, seed=0)
    assert (data.train["label"] == "PMY").sum() == 13 and (data.train["label"] == "MY").sum() == 40
    assert (data.val["label"] == "PMY").sum() == 3  # as rare in validation as in train (13 x 8/40)
    assert len(data.heldout) == 27 + 5 and set(data.heldout["label"]) == {"PMY"}
    again = select_training_data(frame, "m.parquet", hold_rare={"PMY": 13}, seed=0)
    assert again.train["sample_id"].tolist() == data.train["sample_id"].tolist()


def test_empty_split_and_class_absent_from_train_are_one_line():
    frame = _frame(_rows("LY", "train", 5) + _rows("MO", "train", 5))
    with pytest.raises(TrainError, match=r"^m.parquet: the val split is empty"):
        select_training_data(frame, "m.parquet")
    frame = _frame(_rows("LY", "train", 5) + _rows("LY", "val", 2) + _rows("PC", "val", 2))
    with pytest.raises(TrainError, match=r"class\(es\) PC \(2 val\) absent from train"):
        select_training_data(frame, "m.parquet")
    frame = _frame(_rows("LY", "val", 2) + _rows("LY", "train", 3, synthetic=True))
    with pytest.raises(TrainError, match="the train split has no usable real rows"):
        select_training_data(frame, "m.parquet", synthetic_ratio=0.5)
    frame = _frame(_rows("LY", "train", 3) + _rows("LY", "val", 2))
    with pytest.raises(TrainError, match="no synthetic rows"):
        select_training_data(frame, "m.parquet", synthetic_ratio=0.5)
    with pytest.raises(TrainError, match="--sources nope: not in the manifest"):
        select_training_data(frame, "m.parquet", sources=["nope"])


@pytest.mark.slow
def test_real_workspace_with_synthetic_rows_trains_and_keeps_them_out_of_val_and_test(tmp_path):
    ws = real_workspace(tmp_path, per_class=12, synthetic=10)
    view = load_view(ws)
    synth_ids = set(view.frame.loc[view.frame["is_synthetic"].fillna(False).astype(bool), "sample_id"])
    assert len(synth_ids) == 10
    out = tmp_path / "model"
    result = runner.invoke(app, ["train", "-r", "tiny-cpu", "-w", str(ws.root), "-o", str(out),
                                 "--synthetic-ratio", "0.25", "--set", "members.0.stages.0.epochs=1",
                                 "--set", "members.1.stages.1.enabled=false"])  # fmt: skip
    assert result.exit_code == 0, result.output
    roles = pd.read_parquet(out / "data.parquet")
    used = roles[roles["sample_id"].isin(synth_ids)]
    assert len(used) == 10 and set(used["role"]) == {"train"} and used["is_synthetic"].all()
    assert not roles.loc[roles["role"] != "train", "is_synthetic"].any()
    for split in ("val", "test"):
        rows, _ = evaluation_rows(view.frame, out, split)
        assert len(rows) and not set(rows["sample_id"]) & synth_ids
    card = (out / "card.json").read_text()
    assert '"synthetic_ratio": 0.25' in card and '"train (synthetic)": 10' in card


@pytest.mark.slow
def test_cli_errors_are_one_line(tmp_path):
    ws = real_workspace(tmp_path, per_class=6, val=0.0, test=0.2)

    def one_line(args: list[str], *needles: str) -> None:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output, result.output
        for needle in needles:
            assert needle in result.output, result.output

    base = ["train", "-w", str(ws.root), "-o", str(tmp_path / "m")]
    one_line([*base, "-r", "tiny-cpu"], "the val split is empty")
    missing = tmp_path / "nowhere" / "effnet.safetensors"
    one_line([*base, "-r", "tiny-cpu", "--set", "members.0.pretrained=true", "--set", f"members.0.weights={missing}"],
             str(missing), "weights file not found")  # fmt: skip
    one_line([*base, "-r", "tiny-cpu", "--set", "augment.rotat=3"], "unknown key augment.rotat")
    one_line([*base, "-r", "no-such-recipe"], "no such recipe file")
    one_line([*base, "-r", "tiny-cpu", "--hold-rare", "PMY"], "use CLASS=N")
    one_line(["evaluate", "-m", str(tmp_path), "-w", str(ws.root)], "not a wbc-data classifier folder")
    one_line(["predict", str(tmp_path), "-m", str(tmp_path / "none")], "no such model folder")
