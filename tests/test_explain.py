"""`wbc-data manifest --explain <source>` and the label-rule lines of the ingest summary, on a generated bone-marrow
tree whose expected counts are written down by hand below."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from wbc_data.cli import app
from wbc_data.core.manifest import ManifestError
from wbc_data.ingest.engine import IngestOptions, ingest
from wbc_data.manifest.explain import RULES, explain_frame, explain_source
from wbc_data.sources.definition import get_definition

# file -> count: 3 NGS, 2 FGC (coarse), 1 EBO (not a leukocyte), 1 ABE (excluded), 1 XYZ (unmapped),
# 1 NGS-named file in the EOS folder (conflict 'EOS' vs 'NGS')
FILES = {"NGS": 3, "FGC": 2, "EBO": 1, "ABE": 1, "XYZ": 1}


@pytest.fixture
def bm_ingested(tmp_path, workspace):
    root = tmp_path / "BM_cytomorphology_data"
    n = 0
    for code, count in FILES.items():
        for _ in range(count):
            n += 1
            path = root / code / f"{code}_{n:05d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (16, 16), (n * 20, 50, 90)).save(path)
    (root / "EOS").mkdir()
    Image.new("RGB", (16, 16)).save(root / "EOS" / "NGS_09999.jpg")
    (root / "EBO" / "EBO_00099.jpg").write_bytes(b"truncated")  # a rejected row that still has a raw label
    result = ingest("bm-lmu", tmp_path, workspace, IngestOptions(workers=1))
    return result, workspace


def _row(table, raw):
    rows = table[table["raw label"] == raw]
    assert len(rows) == 1, (raw, rows)
    return rows.iloc[0]


def test_explain_counts_every_raw_label(bm_ingested):
    _, workspace = bm_ingested
    result = explain_source(workspace, "bm-lmu")
    table = result.table
    assert (_row(table, "NGS")[["status", "label", "rows", "rejected"]].tolist()) == ["exact", "SNE", 3, 0]
    fgc = _row(table, "FGC")
    assert (fgc.status, fgc.candidates, fgc.rows) == ("coarse", "BL, PMY", 2)
    assert (_row(table, "EBO")[["status", "rows", "rejected"]].tolist()) == ["not-leukocyte", 1, 1]
    assert (_row(table, "ABE")[["status", "rows"]].tolist()) == ["excluded", 1]
    assert (_row(table, "XYZ")[["status", "rows"]].tolist()) == ["unmapped", 1]
    conflict = _row(table, "EOS vs NGS")
    assert (conflict.status, conflict.candidates, conflict.rows) == ("conflict", "SNE, EO", 1)
    assert "contradicts" in conflict.note
    # every other code of the YAML is listed with 0 rows, so a user sees what the map would do
    definition = get_definition("bm-lmu")
    listed = {raw.casefold() for raw in table["raw label"]}
    assert set(definition.label_map.keys()) <= listed
    zero = table[table["rows"] + table["rejected"] == 0]
    assert len(zero) == 21 - 4  # 21 codes minus NGS, FGC, EBO, ABE (EOS alone made no row: its file is the conflict)
    assert _row(table, "HAC")[["status", "candidates", "rows"]].tolist() == ["coarse", "LY, VLY", 0]
    assert table["rows"].sum() == 3 + 2 + 1 + 1 + 1 + 1
    assert result.statuses == ["exact", "coarse", "conflict", "not-leukocyte", "excluded", "unmapped"]


def test_explain_frame_without_label_map_only_counts_rows(bm_ingested):
    result, _ = bm_ingested
    table = explain_frame(result.frame)
    assert sorted(table["raw label"]) == sorted(["NGS", "FGC", "EBO", "ABE", "XYZ", "EOS vs NGS"])


def test_explain_unknown_source_is_one_clear_error(workspace):
    with pytest.raises(ManifestError, match="no manifest here"):
        explain_source(workspace, "segpc")
    run = CliRunner().invoke(app, ["manifest", "--explain", "segpc", "-w", str(workspace.root)])
    assert run.exit_code == 2 and "Traceback" not in run.output


def test_cli_explain_and_ingest_summary(tmp_path, bm_ingested):
    _, workspace = bm_ingested
    runner = CliRunner()
    run = runner.invoke(app, ["manifest", "--explain", "bm-lmu", "-w", str(workspace.root)], env={"COLUMNS": "200"})
    assert run.exit_code == 0, run.output
    fgc_line = next(line for line in run.output.splitlines() if " FGC " in line)
    cells = [cell.strip() for cell in re.split(r"[│|]", fgc_line) if cell.strip()]
    assert cells[:5] == ["FGC", "coarse", "BL, PMY", "2", "0"]
    for status in ("coarse", "conflict", "unmapped"):
        assert f"{status}: {RULES[status]}" in run.output
    assert not workspace.unified_manifest.exists()  # --explain does not merge
    ingest_run = runner.invoke(
        app, ["ingest", "bm-lmu", str(tmp_path), "-w", str(tmp_path / "ws2"), "-j", "1"], env={"COLUMNS": "200"}
    )
    assert ingest_run.exit_code == 0, ingest_run.output
    assert "label rule: coarse: 'FGC' -> one of {BL, PMY} (2 row(s))" in ingest_run.output
    assert "label rule: conflict: 'EOS vs NGS' -> one of {SNE, EO} (1 row(s))" in ingest_run.output


def test_cli_option_reaches_the_adapter(tmp_path):
    root = tmp_path / "TCIA_SegPC_dataset" / "train"
    (root / "x").mkdir(parents=True)
    (root / "y").mkdir()
    Image.new("RGB", (40, 30)).save(root / "x" / "1.bmp")
    mask = np.zeros((30, 40), dtype=np.uint8)
    mask[10:20, 10:20] = 40
    Image.fromarray(mask).save(root / "y" / "1_1.bmp")
    ws = tmp_path / "ws"
    runner = CliRunner()
    run = runner.invoke(app, ["ingest", "segpc", str(tmp_path), "-w", str(ws), "-o", "margin=0.5", "-j", "1"])
    assert run.exit_code == 0, run.output
    from wbc_data.core.manifest import read_frame

    frame = read_frame(ws / "sources" / "segpc.parquet")
    assert list(frame.dropna(subset=["parent_id"])["crop_box"].iloc[0]) == [5, 5, 25, 25]
    bad = runner.invoke(app, ["ingest", "segpc", str(tmp_path), "-w", str(ws), "-o", "margin"])
    assert bad.exit_code == 2 and "KEY=VALUE" in bad.output
