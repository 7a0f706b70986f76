"""`wbc-data synth --cls ... --n ...` with a tiny generator trained on real cells (the shipped PBC sample): same seed
same images, the saved pipeline loading by both routes with identical samples, synthetic rows that are right and
merge into train only, --plan, rejected samples replaced up to a cap, the fidelity gate rejecting what the barely
trained generator draws (coloured blobs, no cells), and one clear line for every bad request.

The tests of rows, plans and the copy cap are about bookkeeping, so they switch the fidelity gate off
(``--no-fidelity-gate``): a generator trained for 20 steps draws no cell the gate would accept."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from tests.fixtures import mini_bccd
from tests.synth_fixtures import TinyClassifier, one_thread, split_workspace
from wbc_data.cli import app
from wbc_data.core import manifest
from wbc_data.core.rows import select_rows
from wbc_data.core.stages import load_view
from wbc_data.core.taxonomy import CLASSES
from wbc_data.core.workspace import Workspace
from wbc_data.gap.plan import make_plan, write_plan
from wbc_data.imaging.signatures import pixel_hash
from wbc_data.ingest.engine import IngestOptions, ingest
from wbc_data.io.pixels import PixelLoader
from wbc_data.manifest.merge import merge
from wbc_data.synth import SynthError
from wbc_data.synth.generator import load_generator, read_info, training_rows
from wbc_data.synth.sample import SynthOptions, run_synth, sample_seed

runner = CliRunner()


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    yield from one_thread()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A split workspace and a tiny generator trained on it through the CLI."""
    ws = split_workspace(tmp_path_factory.mktemp("synth-sample"))
    result = runner.invoke(app, ["synth", "train", "--recipe", "tiny-cpu", "--steps", "20", "-w", str(ws.root)])
    assert result.exit_code == 0, result.output
    return ws, ws.root / "generators" / "tiny-cpu" / "generator"


def _draw(pipe, seeds, scheduler="dpm", label="PMY"):
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    return pipe(
        [label] * len(seeds), num_inference_steps=3, scheduler=scheduler, generator=gens, output_type="uint8"
    ).images


@pytest.mark.parametrize("scheduler", ["ddpm", "ddim", "dpm"])
def test_same_seed_same_images_alone_or_in_any_batch(trained, scheduler):
    _, folder = trained
    pipe, _ = load_generator(folder)
    batch = _draw(pipe, [11, 12, 13], scheduler)
    assert np.array_equal(batch, _draw(pipe, [11, 12, 13], scheduler))
    alone = _draw(pipe, [12], scheduler)[0]  # a sample depends on its own seed only: in another batch size it
    assert np.abs(batch[1].astype(int) - alone).max() <= 1  # differs by float rounding at most (kernels per size)
    assert not np.array_equal(batch[0], batch[1])
    assert not np.array_equal(batch[0], _draw(pipe, [11], scheduler, label="BA")[0])  # the class matters


def test_round_trip_by_both_loading_routes_gives_identical_samples(trained, tmp_path):
    from diffusers import DiffusionPipeline

    from wbc_data.synth.pipeline import WbcCellPipeline

    _, folder = trained
    moved = tmp_path / "elsewhere" / "gen"
    shutil.copytree(folder, moved)  # a generator folder is self-contained: it works wherever it is copied
    ours = WbcCellPipeline.from_pretrained(moved)
    plain = DiffusionPipeline.from_pretrained(moved, custom_pipeline=str(moved), trust_remote_code=True)
    assert type(plain).__name__ == "WbcCellPipeline" and type(plain) is not WbcCellPipeline  # loaded from the folder
    assert list(plain.config.class_names) == list(CLASSES)
    for pipe in (ours, plain):
        pipe.set_progress_bar_config(disable=True)
    for scheduler in ("ddpm", "ddim", "dpm"):
        a = _draw(ours, [1, 2], scheduler)
        b = _draw(plain, [1, 2], scheduler)
        c = _draw(load_generator(folder)[0], [1, 2], scheduler)
        assert np.array_equal(a, b) and np.array_equal(a, c), scheduler
    guided = ours(
        ["PMY"],
        guidance_scale=1.0,
        num_inference_steps=3,
        generator=[torch.Generator().manual_seed(1)],
        output_type="uint8",
    ).images
    assert not np.array_equal(guided, _draw(ours, [1], "dpm"))  # guidance 3 (default) differs from none


def test_synthetic_rows_are_right_and_merge_into_train_only(trained):
    ws, folder = trained
    info = read_info(folder)
    result = runner.invoke(
        app,
        ["synth", "--cls", "PMY", "--n", "4", "--steps", "2", "--seed", "5", "--name", "t1", "--no-fidelity-gate",
         "-w", str(ws.root)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    path = ws.source_manifest("synth-t1")
    frame = manifest.read_frame(path)
    ok = frame[frame["status"] == "ok"]
    assert len(ok) == 4 and (frame["status"] == "rejected").sum() == 0
    assert ok["is_synthetic"].all() and (ok["label"] == "PMY").all() and (ok["label_status"] == "exact").all()
    assert (ok["generator_id"] == info.id).all() and (ok["generator_hash"] == info.content_hash).all()
    assert (ok["source_split"] == "train").all() and (ok["scheduler"] == "dpm").all()
    assert (ok["sampling_steps"] == 2).all() and np.allclose(ok["guidance"].astype(float), 3.0)
    assert sorted(ok["seed"].astype(int)) == sorted(sample_seed(5, "PMY", k) for k in range(4))
    assert set(ok["synth_nearest"]) <= set(training_rows(folder)["sample_id"])
    assert ok["licence"].str.contains("CC BY 4.0").all() and ok["citation"].str.contains(info.id).all()
    assert (ok["width"] == 16).all() and ok["phash"].notna().all() and ok["thumb"].notna().all()
    meta = manifest.read_metadata(path)
    notes = json.loads(meta["synth_notes"])
    assert notes["classes"]["PMY"]["accepted"] == 4 and notes["classes"]["PMY"]["rejected_near_copies"] == 0

    merged = runner.invoke(app, ["manifest", "-w", str(ws.root)])
    assert merged.exit_code == 0, merged.output
    view = load_view(ws)
    view.require("split", "the test")  # synthetic rows need no re-split: train by rule
    synthetic = view.frame[view.frame["is_synthetic"].fillna(False).astype(bool)]
    assert len(synthetic) == 4 and (synthetic["split"] == "train").all() and synthetic["dup_keep"].all()
    loader = PixelLoader.for_workspace(ws)
    for _, row in synthetic.iterrows():
        image = loader.open(row, verify=True)  # the pixels ingest would hash: the one loader reads them back
        assert pixel_hash(image) == row["pixel_hash"]
    held = view.frame[view.frame["split"].isin(["val", "test"])]
    assert not held["is_synthetic"].fillna(False).astype(bool).any()
    real_train = select_rows(view.frame, ["train"], synthetic=False)
    assert not real_train["is_synthetic"].fillna(False).astype(bool).any()

    again = runner.invoke(
        app,
        ["synth", "--cls", "PMY", "--n", "4", "--steps", "2", "--seed", "5", "--name", "t2", "--no-fidelity-gate",
         "-w", str(ws.root)],
    )  # fmt: skip
    assert again.exit_code == 0
    second = manifest.read_frame(ws.source_manifest("synth-t2"))
    assert sorted(second["sha256"]) == sorted(frame["sha256"])  # same seed, same PNG files
    report = ws.reports_dir / "synth-t1.md"
    assert report.is_file() and "threshold" in report.read_text()
    grid = Image.open(ws.reports_dir / "synth-t1-grid.png")
    assert grid.width > 300 and grid.height > 100


def test_plan_generates_every_class_in_one_go(trained, tmp_path):
    ws, _ = trained
    plan = make_plan({"PMY": 2, "BA": 3}, {"PMY": 5, "BA": 5}, {}, 2.0, "test")  # PMY 3 (5 - 2), BA 2 (5 - 3)
    path = write_plan(plan, tmp_path / "plan.yaml")
    result = runner.invoke(
        app, ["synth", "--plan", str(path), "--steps", "2", "--name", "plan", "--no-fidelity-gate", "-w", str(ws.root)]
    )
    assert result.exit_code == 0, result.output
    frame = manifest.read_frame(ws.source_manifest("synth-plan"))
    assert frame[frame["status"] == "ok"]["label"].value_counts().to_dict() == {"PMY": 3, "BA": 2} == plan.counts()


def test_near_copies_are_rejected_and_replaced_up_to_a_cap(trained):
    ws, folder = trained
    from wbc_data.synth.data import to_resolution

    rows = training_rows(folder)
    frame = load_view(ws).frame.set_index("sample_id")
    loader = PixelLoader.for_workspace(ws)
    ba = rows[rows["label"] == "BA"]["sample_id"].tolist()
    copies = np.stack(
        [np.asarray(to_resolution(loader.open(frame.loc[s].to_dict() | {"sample_id": s}), 16)) for s in ba]
    )
    calls = []

    def copying_then_new(label, seeds):  # a generator that returns its training images on the first draws
        calls.append(len(seeds))
        if len(calls) == 1:
            return np.stack([copies[i % len(copies)][:, ::-1] for i in range(len(seeds))])  # mirrored copies
        rng = np.random.default_rng(seeds[0])
        return rng.integers(0, 256, (len(seeds), 16, 16, 3), dtype=np.uint8)

    options = SynthOptions(counts={"BA": 3}, steps=2, batch_size=3, name="guarded", fidelity_gate=False)
    result = run_synth(ws, folder, options, draw=copying_then_new)
    outcome = result.outcomes[0]
    assert (outcome.accepted, outcome.rejected, outcome.attempts) == (3, 3, 6)
    out = manifest.read_frame(ws.source_manifest("synth-guarded"))
    rejected = out[out["status"] == "rejected"]
    assert len(rejected) == 3 and rejected["reason"].str.startswith("memorisation guard: near-copy").all()
    assert set(rejected["synth_nearest"]) <= set(ba) and (rejected["source_path"].str.startswith("rejected/")).all()
    assert (result.folder / rejected["source_path"].iloc[0]).is_file()  # kept for inspection, never for training

    always = SynthOptions(counts={"BA": 2}, steps=2, batch_size=2, max_attempts=2.0, name="capped", fidelity_gate=False)
    capped = run_synth(ws, folder, always, draw=lambda label, seeds: copies[: len(seeds)])
    assert (capped.outcomes[0].accepted, capped.outcomes[0].attempts) == (0, 4)  # the cap: 2 x 2 draws
    assert "Short: BA 0 of 2" in (ws.reports_dir / "synth-capped.md").read_text()


def test_fidelity_gate_rejects_what_an_untrained_generator_draws(trained):
    """The tiny generator (20 steps) draws coloured blobs: the gate refuses every one, keeps them for inspection with
    the reason, and the run says so plainly instead of failing."""
    ws, _ = trained
    result = runner.invoke(
        app, ["synth", "--cls", "PMY", "--n", "3", "--steps", "2", "--max-attempts", "2", "--name", "gated",
              "-w", str(ws.root)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "no PMY sample passed the guards" in " ".join(result.output.split()), result.output
    frame = manifest.read_frame(ws.source_manifest("synth-gated"))
    frame = frame[frame["status"] != "auxiliary"]  # samples.jsonl and generation.json
    assert (frame["status"] == "ok").sum() == 0 and len(frame) == 6  # the cap: 2 x 3 draws, all rejected
    assert frame["reason"].str.startswith("fidelity gate: not a plausible PMY").all(), frame["reason"].tolist()
    assert frame["source_path"].str.startswith("rejected/PMY/").all()
    notes = json.loads(manifest.read_metadata(ws.source_manifest("synth-gated"))["synth_notes"])["classes"]["PMY"]
    assert notes["rejected_not_plausible"] == 6 and notes["accepted"] == 0 and notes["yield"] == 0
    report = (ws.reports_dir / "synth-gated.md").read_text()
    assert "No sample of PMY passed the guards" in report and "rejected samples" in report
    assert all((ws.reports_dir / f"synth-gated-{part}.png").is_file() for part in ("rejected", "gate"))


def test_fidelity_numbers_and_agreement_through_a_sampling_run(trained):
    ws, folder = trained
    judge = TinyClassifier()
    options = SynthOptions(counts={"PMY": 4}, steps=2, name="judged", classifier=judge, reference_splits=["train"],
                           fidelity_gate=False)  # fmt: skip
    result = run_synth(ws, folder, options)
    outcome = result.outcomes[0]
    view = load_view(ws).frame
    synthetic = view["is_synthetic"] if "is_synthetic" in view.columns else pd.Series(False, index=view.index)
    real = ~synthetic.fillna(False).astype(bool)  # earlier tests of this module may have added synthetic PMY rows
    real_kept = (
        real & (view["status"] == "ok") & (view["label_status"] == "exact") & view["dup_keep"].fillna(True).astype(bool)
    )
    pmy_train = int((real_kept & (view["split"] == "train") & (view["label"] == "PMY")).sum())
    # the reference: real, exact-label PMY train rows that dedup kept (a duplicate would count one cell twice)
    fid = outcome.fidelity
    assert fid is not None and fid.n_reference == pmy_train >= 2 and fid.samples.n_other == 4
    assert fid.samples.kid is not None and fid.floor.n_other == pmy_train // 2  # half B against half A
    assert outcome.gate is None and outcome.gate_note.startswith("off")
    assert outcome.agreement is not None and sum(outcome.agreement.predicted.values()) == 4
    notes = json.loads(manifest.read_metadata(ws.source_manifest("synth-judged"))["synth_notes"])["classes"]["PMY"]
    assert "agreement" in notes and notes["fidelity"]["samples"]["n"] == 4
    assert "KID" in (ws.reports_dir / "synth-judged.md").read_text()


def _one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in result.output, result.output
    return lines[0]


def test_bad_requests_fail_with_one_clear_line(trained, tmp_path):
    ws, folder = trained
    w = ["-w", str(ws.root)]
    assert "unknown class" in _one_error_line(runner.invoke(app, ["synth", "--cls", "XYZ", "--n", "2", *w]))
    line = _one_error_line(runner.invoke(app, ["synth", "--cls", "PLY", "--n", "2", *w]))
    assert "never saw a PLY image" in line and str(folder) in line
    line = _one_error_line(runner.invoke(app, ["synth", "--cls", "PMY", "--generator", str(tmp_path / "nope"), *w]))
    assert "no generator here" in line
    assert "say what to generate" in _one_error_line(runner.invoke(app, ["synth", *w]))
    assert "domain" in _one_error_line(runner.invoke(app, ["synth", "--cls", "PMY", "--domain", "pbc", *w]))

    damaged = tmp_path / "damaged"
    shutil.copytree(folder, damaged)
    weights = damaged / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # a truncated download
    line = _one_error_line(runner.invoke(app, ["synth", "--cls", "PMY", "--generator", str(damaged), *w]))
    assert "damaged generator" in line and str(damaged) in line
    (damaged / "wbc_generator.json").write_text("{ not json")
    line = _one_error_line(runner.invoke(app, ["synth", "--cls", "PMY", "--generator", str(damaged), *w]))
    assert "not a readable generator description" in line
    (damaged / "wbc_generator.json").unlink()
    assert "not a wbc-data generator" in _one_error_line(
        runner.invoke(app, ["synth", "--cls", "PMY", "--generator", str(damaged), *w])
    )
    other = Workspace(tmp_path / "other")  # a workspace without the generator's training images
    ingest("bccd", mini_bccd(tmp_path / "bccd"), other, IngestOptions(workers=1))
    merge(other)
    with pytest.raises(SynthError, match="not in this workspace"):
        run_synth(other, folder, SynthOptions(counts={"PMY": 1}))
