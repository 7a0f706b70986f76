"""Stages keep each other's work: dedup and split results survive re-merging, are dropped only for rows that
changed (and say which command to re-run), and no stage rewrites another's file."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.fixtures import noise, sample_copy
from wbc_data.cli import app
from wbc_data.core import manifest
from wbc_data.core.manifest import ManifestError
from wbc_data.core.stages import load_view, read_stage, write_stage
from wbc_data.core.workspace import Workspace
from wbc_data.dedup.run import DedupOptions, dedup
from wbc_data.ingest.engine import IngestOptions, ingest
from wbc_data.io.resources import sample_dir
from wbc_data.manifest.merge import merge
from wbc_data.split import SplitOptions, run_split

runner = CliRunner()
USABLE = sum(1 for p in sample_dir().joinpath("pbc").rglob("*.jpg") if not p.name.startswith(".DS_")) + 6
"""Usable rows of the staged workspace: the sample's PBC cells and the six Kaggle copies of them."""


@pytest.fixture
def staged(tmp_path):
    """PBC sample (writable copy) + the Kaggle copies: merged, deduplicated, split."""
    data = sample_copy(tmp_path / "pbc")
    ws = Workspace(tmp_path / "ws")
    ingest("pbc", data, ws, IngestOptions(workers=1))
    ingest("kaggle-cancer-mix", sample_dir() / "kaggle_cancer_mix", ws, IngestOptions(workers=1))
    merge(ws)
    dedup(ws, DedupOptions(workers=1, reports=False))
    run_split(ws, SplitOptions(seed=3))
    return ws, data / "PBC_dataset_normal_DIB"


def _ok(frame):
    return frame[frame["status"] == "ok"].set_index("sample_id")


def test_dedup_never_rewrites_the_manifest_and_remerge_keeps_results(staged):
    ws, _ = staged
    before = _ok(load_view(ws).frame)
    assert before["dup_keep"].notna().all() and before["split"].notna().all()
    assert (~before["dup_keep"].astype(bool)).sum() == 6  # the six Kaggle copies
    raw = ws.unified_manifest.read_bytes()
    dedup(ws, DedupOptions(workers=1, reports=False))
    assert ws.unified_manifest.read_bytes() == raw  # dedup wrote only its own stage file
    assert set(manifest.read(ws.unified_manifest).column_names).isdisjoint({"dup_keep", "split"})

    merge(ws)  # re-merge: nothing changed
    view = load_view(ws)
    after = _ok(view.frame)
    assert view.status("dedup").fresh is True
    assert view.status("split").fresh is True  # dedup re-ran after split, and decided the same for every row
    pd.testing.assert_series_equal(after["dup_keep"], before["dup_keep"])
    pd.testing.assert_series_equal(after["split"], before["split"])

    # a dedup run that decides otherwise (one copy kept) leaves split stale, and says why
    stage = read_stage(ws.stage_path("dedup"))
    results = stage.table.drop(columns=["input_digest"]).copy()
    flipped = results.index[~results["dup_keep"].astype(bool)][0]
    results.loc[flipped, "dup_keep"] = True
    inputs = manifest.read_frame(ws.unified_manifest)
    inputs = inputs[inputs["sample_id"].isin(results["sample_id"])]
    write_stage(ws, "dedup", results, inputs, command="wbc-data dedup")
    status = load_view(ws).status("split")
    assert status.upstream_changed == ["dedup"] and "dedup re-ran since, with other results" in status.message()


def test_changed_and_new_rows_are_stale_with_the_command_to_run(staged, tmp_path):
    ws, pbc = staged
    victim = sorted((pbc / "eosinophil").glob("*.jpg"))[0]
    noise(Image.open(victim).size, 5).save(victim, "JPEG")  # new pixels under the same name
    extra = tmp_path / "extra" / "lymphocyte"
    extra.mkdir(parents=True)
    noise((60, 60), 6).save(extra / "new.png")
    ingest("pbc", pbc.parent, ws, IngestOptions(workers=1))
    ingest("imagefolder", tmp_path / "extra", ws, IngestOptions(workers=1, name="extra"))
    result = runner.invoke(app, ["manifest", "-w", str(ws.root)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert f"dedup: stale: results kept for {USABLE - 1} unchanged row(s); 1 row(s) changed since it ran" in text
    assert "1 new row(s) have no result: re-run `wbc-data dedup`" in text
    assert "re-run `wbc-data split`" in text

    view = load_view(ws)
    frame = _ok(view.frame)
    changed = f"pbc:eosinophil/{victim.name}"
    assert pd.isna(frame.loc[changed, "dup_keep"]) and pd.isna(frame.loc[changed, "split"])
    assert pd.isna(frame.loc["extra:lymphocyte/new.png", "split"])
    unchanged = frame.drop(index=[changed, "extra:lymphocyte/new.png"])
    assert unchanged["split"].notna().all() and unchanged["dup_keep"].notna().all()
    # commands that need fresh results say so in one line
    split = runner.invoke(app, ["split", "-w", str(ws.root)])
    assert split.exit_code == 2 and "dedup results are stale" in split.output and "Traceback" not in split.output


def test_synthetic_rows_need_no_rerun(staged, tmp_path):
    """Synthetic rows merged after dedup and split take the stages' rules (kept, train) and stale nothing."""
    ws, _ = staged
    table = manifest.read(ws.source_manifest("pbc"))
    rows = manifest.to_frame(table).head(3).copy()
    rows["source"] = "synth-ply"
    rows["sample_id"] = ["synth-ply:" + s for s in rows["sample_id"]]
    rows["source_root"] = "synth-ply"
    rows["is_synthetic"] = True
    manifest.write(rows, ws.source_manifest("synth-ply"), source="synth-ply")
    merge(ws)
    view = load_view(ws)
    assert view.status("dedup").fresh and view.status("split").new == 0
    synth = view.frame[view.frame["source"] == "synth-ply"]
    assert (synth["split"] == "train").all() and synth["dup_keep"].all()
    # dedup re-run on a manifest holding synthetic rows: they are skipped, and keep the rule's values
    result = dedup(ws, DedupOptions(workers=1, reports=False))
    assert not result.frame["sample_id"].str.startswith("synth-ply:").any()
    synth = load_view(ws).frame.query("source == 'synth-ply'")
    assert synth["dup_keep"].all() and synth["dup_decision"].str.startswith("keep: synthetic").all()


def test_corrupt_or_foreign_files_are_one_line(staged, tmp_path):
    ws, _ = staged
    stage = ws.stage_path("split")
    stage.write_bytes(b"not parquet at all")
    with pytest.raises(ManifestError, match="not a readable stage result"):
        load_view(ws)
    result = runner.invoke(app, ["gap-report", "-w", str(ws.root)])
    assert result.exit_code == 2 and "split.parquet" in result.output and "Traceback" not in result.output
    # a foreign parquet file where a stage result should be
    pd.DataFrame({"a": [1]}).to_parquet(stage)
    with pytest.raises(ManifestError, match="not a wbc-data stage result"):
        load_view(ws)
    stage.unlink()
    # a foreign parquet file as the manifest
    shutil.copy(ws.unified_manifest, tmp_path / "keep.parquet")
    pd.DataFrame({"a": [1]}).to_parquet(ws.unified_manifest)
    result = runner.invoke(app, ["split", "-w", str(ws.root)])
    assert result.exit_code == 2 and "missing column" in result.output and "Traceback" not in result.output


def test_stage_files_record_their_inputs(staged):
    ws, _ = staged
    dedup_file = read_stage(ws.stage_path("dedup"))
    split_file = read_stage(ws.stage_path("split"))
    assert dedup_file.meta["command"] == "wbc-data dedup" and split_file.meta["command"] == "wbc-data split"
    assert split_file.json_meta("upstream") == {"dedup": dedup_file.meta["result_digest"]}
    assert set(split_file.columns) == {"split", "fold", "split_unit", "split_note"}
    assert len(dedup_file.table) == USABLE and dedup_file.table["input_digest"].notna().all()


def test_predict_names_an_unknown_split(staged):
    from wbc_data.train.predict import PredictError, _manifest_rows

    ws, _ = staged
    frame, _, notes = _manifest_rows(ws.root, "test")
    assert len(frame) and "rows of the test split only" in notes
    said = r"--split tset: no such split \(the manifest has excluded, test, train, val\)"
    with pytest.raises(PredictError, match=said):
        _manifest_rows(ws.root, "tset")
