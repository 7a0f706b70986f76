"""WBCBench 2026: the real label CSVs with generated stand-in images for a few IDs, CSVs given separately,
and the Hub parquet form (written with ``datasets`` and with pyarrow)."""

from __future__ import annotations

import csv
import io
import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from tests.conftest import shared_path
from wbc_data.ingest.engine import IngestOptions, ingest
from wbc_data.sources.definition import SourceError

TABLES = {"phase1_label.csv": "phase1", "phase2_train.csv": "phase2/train", "phase2_eval.csv": "phase2/eval",
          "phase2_test.csv": "phase2/test"}  # fmt: skip
PER_TABLE = 4


def _rows(path):
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    return {r[0]: (r[1], r[2] if len(r) > 2 else None) for r in rows}


def _jpeg(path, shade):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (36, 37), (shade % 256, 90, 160)).save(path)


@pytest.fixture
def bench(tmp_path):
    csv_dir = shared_path("wbcbench2026")
    root = tmp_path / "wbcbench2026"
    chosen = {}
    for n, (table, folder) in enumerate(TABLES.items()):
        rows = _rows(csv_dir / table)
        ids = sorted(rows)[:: max(1, len(rows) // PER_TABLE)][:PER_TABLE]
        for k, image_id in enumerate(ids):
            _jpeg(root / folder / image_id, 10 * n + k)
        chosen[table] = {i: rows[i] for i in ids}
    _jpeg(root / "phase2" / "eval" / "99999999.jpg", 255)  # an image with no CSV row
    (root / "phase1" / "notes.txt").write_text("not an image")
    return root, csv_dir, chosen


def _check(result, csv_dir, chosen):
    frame = result.frame
    ok = frame[frame["status"] == "ok"].set_index("source_path")
    assert len(ok) == PER_TABLE * len(TABLES) + 1
    for table, rows in chosen.items():
        for image_id, (label, split) in rows.items():
            row = ok.loc[f"{TABLES[table]}/{image_id}"]
            if label:
                assert (row["label"], row["label_status"], row["source_split"]) == (label, "exact", split)
            else:
                assert row["label_status"] == "unlabelled" and row["source_split"] == "phase2_test"
        total = len(_rows(csv_dir / table))
        expected = f"{total - len(rows):,} of {total:,} rows in {table} name no image in {TABLES[table]}/"
        assert any(note.startswith(expected) for note in result.notes), (expected, result.notes)
    orphan = ok.loc["phase2/eval/99999999.jpg"]
    assert orphan["label_status"] == "unlabelled" and orphan["label_reason"] == "no row in phase2_eval.csv"
    assert frame.set_index("source_path").loc["phase1/notes.txt", "status"] == "rejected"


def test_real_csvs_in_tree(bench, workspace):
    root, csv_dir, chosen = bench
    for table in TABLES:
        shutil.copy(csv_dir / table, root / table)
    result = ingest("wbcbench", root, workspace, IngestOptions(workers=1, use_cache=False))
    _check(result, csv_dir, chosen)
    aux = result.frame[result.frame["status"] == "auxiliary"]
    assert sorted(aux["source_path"]) == sorted(TABLES)


def test_real_csvs_given_separately(bench, workspace):
    root, csv_dir, chosen = bench
    options = IngestOptions(workers=1, use_cache=False, adapter_options={"annotations": csv_dir})
    result = ingest("wbcbench", root, workspace, options)
    _check(result, csv_dir, chosen)
    one = IngestOptions(workers=1, use_cache=False, adapter_options={"annotations": csv_dir / "phase2_eval.csv"})
    frame = ingest("wbcbench", root, workspace, one).frame.set_index("source_path")
    first = next(iter(chosen["phase1_label.csv"]))
    assert frame.loc[f"phase1/{first}", "label_reason"] == "phase1_label.csv not found: no label"
    with pytest.raises(SourceError, match="no such file or folder"):
        ingest("wbcbench", root, workspace, IngestOptions(adapter_options={"annotations": root / "x.csv"}))
    (root / "other.csv").write_text("ID,labels\n")
    with pytest.raises(SourceError, match="not a WBCBench label table"):
        ingest("wbcbench", root, workspace, IngestOptions(adapter_options={"annotations": root / "other.csv"}))


def test_duplicate_ids_and_empty_labels(tmp_path, workspace):
    root = tmp_path / "wb"
    _jpeg(root / "phase2/train/00000001.jpg", 1)
    _jpeg(root / "phase2/train/00000002.jpg", 2)
    _jpeg(root / "phase2/train/00000003.jpg", 3)
    (root / "phase2_train.csv").write_text(
        "ID,labels,split\n00000001.jpg,SNE,phase2_train\n00000001.jpg,BNE,phase2_train\n"
        "00000002.jpg,,phase2_train\n00000003.jpg,XYZ,phase2_train\n00000009.jpg,LY,phase2_train\n"
    )
    result = ingest("wbcbench", root, workspace, IngestOptions(workers=1, use_cache=False))
    frame = result.frame.set_index("source_path")
    dup = frame.loc["phase2/train/00000001.jpg"]
    assert dup["label_status"] == "conflict" and list(dup["label_candidates"]) == ["SNE", "BNE"]
    assert frame.loc["phase2/train/00000002.jpg", "label_reason"] == "empty label in phase2_train.csv"
    assert frame.loc["phase2/train/00000003.jpg", "label_status"] == "unmapped"
    assert "phase2_train.csv: 1 ID(s) listed more than once (e.g. 00000001.jpg)" in result.notes
    assert any(n.startswith("1 of 4 rows in phase2_train.csv name no image") for n in result.notes)


def _png(shade):
    buffer = io.BytesIO()
    Image.new("RGB", (20, 21), (shade, 40, 200)).save(buffer, "PNG")
    return buffer.getvalue()


def test_hub_parquet_form(tmp_path, workspace):
    import datasets

    root = tmp_path / "hub"
    names = ["SNE", "BNE", "LY", "VLY", "PLY", "MO", "EO", "BA", "BL", "PC", "MY", "MMY", "PMY"]
    features = datasets.Features(
        image=datasets.Image(),
        image_id=datasets.Value("string"),
        label=datasets.ClassLabel(names=names),
        wbcbench_split=datasets.Value("string"),
        severity=datasets.Value("int32"),
        original_image_id=datasets.Value("string"),
        patient_hash=datasets.Value("string"),
    )
    pristine = datasets.Dataset.from_dict(
        {
            "image": [{"bytes": _png(i * 20), "path": None} for i in range(4)],
            "image_id": ["a1", "a2", "a3", "a4"],
            "label": [0, 6, 9, 12],
            "wbcbench_split": ["train", "train", "eval", "eval"],
            "severity": [0, 0, 0, 0],
            "original_image_id": ["a1", "a2", "a3", "a4"],
            "patient_hash": ["p1", "p1", "p2", "p3"],
        },
        features=features,
    )
    (root / "pristine").mkdir(parents=True)
    pristine.to_parquet(root / "pristine" / "train-00000-of-00001.parquet")
    degraded = pa.table(
        {
            "image": [{"bytes": _png(7), "path": "d1.png"}, {"bytes": _png(8), "path": "d2.png"},
                      {"bytes": _png(9), "path": "d2.png"}, {"bytes": b"junk", "path": "d3.png"}],
            "image_id": ["d1", "d2", "d2", "d3"],
            "label": ["EO", None, "LY", "MO"],
            "wbcbench_split": ["train", "test", "test", "train"],
            "severity": [2, 3, 3, 1],
            "original_image_id": ["a2", "a3", "a3", "a4"],
            "patient_hash": ["p1", "p2", "p2", "p3"],
        }
    )  # fmt: skip
    (root / "degraded").mkdir()
    pq.write_table(degraded, root / "degraded" / "test-00000-of-00001.parquet")
    result = ingest("wbcbench", root, workspace, IngestOptions(workers=1, use_cache=False))
    frame = result.frame.set_index("sample_id")
    rows = frame[frame["source_path"].str.contains(".parquet/")]
    assert len(rows) == 8
    ok = rows[rows["status"] == "ok"]
    assert sorted(ok["label"].dropna()) == sorted([names[i] for i in (0, 6, 9, 12)] + ["EO"])
    first = frame.loc["wbcbench:pristine/train-00000-of-00001.parquet/a1"]
    assert (first["label"], first["patient_id"], first["group_id"]) == ("SNE", "p1", "wbcbench:patient:p1")
    assert (first["width"], first["height"]) == (20, 21)
    d1 = frame.loc["wbcbench:degraded/test-00000-of-00001.parquet/d1"]
    extra = json.loads(d1["extra"])
    assert (extra["severity"], extra["original_image_id"], extra["config"]) == (2, "a2", "degraded")
    assert d1["source_split"] == "train"
    assert frame.loc["wbcbench:degraded/test-00000-of-00001.parquet/d2", "label_status"] == "unlabelled"
    dup = frame.loc["wbcbench:degraded/test-00000-of-00001.parquet/d2~row2"]
    assert dup["status"] == "rejected" and "duplicate image_id d2" in dup["reason"]
    assert frame.loc["wbcbench:degraded/test-00000-of-00001.parquet/d3", "status"] == "rejected"
    # the pristine and the degraded copy of one patient share a group
    assert d1["group_id"] == first["group_id"]
    assert (frame["status"] == "auxiliary").sum() == 2
