from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from wbc_data.core import manifest
from wbc_data.core.manifest import ManifestError


def _row(i: int, **kw):
    row = manifest.empty_row()
    row.update(sample_id=f"s:{i}", source="s", source_path=f"{i}.jpg", label="SNE", label_status="exact", status="ok")
    row.update(kw)
    return row


def test_roundtrip_and_types(tmp_path):
    rows = [_row(0, phash=2**64 - 1, crop_box=[1, 2, 3, 4], label_candidates=["SNE"]), _row(1)]
    path = manifest.write(rows, tmp_path / "m.parquet", note="x")
    table = manifest.read(path)
    assert table.num_rows == 2
    assert table.column("phash")[0].as_py() == 2**64 - 1
    assert manifest.read_metadata(path)["note"] == "x"


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([_row(0), _row(0)], "duplicate sample_id"),
        ([_row(0, label="XX")], "not one of the 13"),
        ([_row(0, label_status="coarse")], "exactly when"),
        ([_row(0, status="weird")], "unknown value"),
        ([_row(0, status="rejected")], "reason"),
        ([{**_row(0), "colour": 1}], "unknown manifest column"),
    ],
)
def test_invalid_rows_rejected(tmp_path, rows, message):
    with pytest.raises(ManifestError, match=message):
        manifest.write(rows, tmp_path / "m.parquet")
    assert not (tmp_path / "m.parquet").exists()


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    path = manifest.write([_row(0)], tmp_path / "m.parquet")
    before = path.read_bytes()

    def explode(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pq, "write_table", explode)
    with pytest.raises(KeyboardInterrupt):
        manifest.write([_row(0), _row(1)], path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.parquet"], "temporary file left behind"


def test_read_missing_and_garbage(tmp_path):
    with pytest.raises(ManifestError, match="no manifest"):
        manifest.read(tmp_path / "nope.parquet")
    garbage = tmp_path / "g.parquet"
    garbage.write_bytes(b"not parquet")
    with pytest.raises(ManifestError, match=r"g\.parquet"):
        manifest.read(garbage)


def test_stage_columns_are_declared_next_to_the_code_that_writes_them():
    """dedup's and split's stage columns come from their own columns.yaml, the synthetic ones from the sources',
    and the assembled schema holds each once, in the declared block order."""
    from wbc_data.core.columns import PACKAGE_DIR, read_declaration
    from wbc_data.dedup.run import DEDUP_COLUMNS

    owners = {path.parent.name: [f.name for f in read_declaration(path)[1]]
              for path in PACKAGE_DIR.glob("*/columns.yaml")}  # fmt: skip
    assert set(owners) == {"dedup", "split", "sources"}
    assert set(DEDUP_COLUMNS) == set(owners["dedup"])
    assert owners["split"] == ["split", "fold", "split_unit", "split_note"]
    assert {"is_synthetic", "generator_id", "synth_nearest"} <= set(owners["sources"])
    assert [f.name for f in manifest.OPTIONAL_FIELDS] == owners["dedup"] + owners["sources"] + owners["split"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("order: 5\ncolumns:\n  x_col: {type: integer64}\n", "unknown type 'integer64'"),
        ("columns:\n  x_col: {type: string}\n", "expected 'order: <int>'"),
        ("order: 5\ncolumns:\n  split: {type: string}\n", "'split' is already declared"),
        ("order: 5\ncolumns:\n  sample_id: {type: string}\n", "already declared in the required schema"),
    ],
)
def test_a_bad_column_declaration_is_one_line_naming_its_file(tmp_path, text, message):
    import shutil

    from wbc_data.core.columns import PACKAGE_DIR, ColumnDeclarationError, declared_fields

    shutil.copytree(PACKAGE_DIR / "split", tmp_path / "split", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    (tmp_path / "extra").mkdir()
    (tmp_path / "extra" / "columns.yaml").write_text(text)
    with pytest.raises(ColumnDeclarationError, match=message) as raised:
        declared_fields(tmp_path, taken={f.name for f in manifest.REQUIRED_FIELDS})
    assert "extra/columns.yaml" in str(raised.value) and "\n" not in str(raised.value)
