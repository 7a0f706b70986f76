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
