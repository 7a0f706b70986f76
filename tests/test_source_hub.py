"""The hub source: tiny datasets built with ``datasets`` in tmp_path (parquet, imagefolder, save_to_disk),
the CLI options, and the offline failure for an uncached repo id. No network is used."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys

import pytest
from PIL import Image

from wbc_data.core.labelmap import LabelMap
from wbc_data.ingest.engine import IngestOptions, ingest
from wbc_data.sources.definition import SourceError

NAMES = ["neutrophil", "lymphocyte", "blast", "junk"]
LABEL_MAP = LabelMap.from_dict({"neutrophil": "neutrophil", "lymphocyte": "LY", "blast": "BL", "junk": "not-leukocyte"})


def _png(shade: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (24, 22), (shade, 100, 180)).save(buffer, "PNG")
    return buffer.getvalue()


def _dataset(n_train=5, n_test=2):
    import datasets

    features = datasets.Features(
        image=datasets.Image(),
        cell=datasets.ClassLabel(names=NAMES),
        patient_hash=datasets.Value("string"),
        stain=datasets.Value("string"),
    )

    def part(n, offset):
        return datasets.Dataset.from_dict(
            {
                "image": [{"bytes": _png(10 * (i + offset)), "path": None} for i in range(n)],
                "cell": [(i + offset) % len(NAMES) for i in range(n)],
                "patient_hash": [f"p{(i + offset) // 2}" for i in range(n)],
                "stain": ["MGG"] * n,
            },
            features=features,
        )

    return datasets.DatasetDict(train=part(n_train, 0), test=part(n_test, n_train))


def _check(frame, dd, splits=("train", "test")):
    ok = frame[frame["status"] == "ok"]
    assert len(ok) == sum(dd[s].num_rows for s in splits)
    for split in splits:
        for index, row in enumerate(dd[split].cast_column("image", __import__("datasets").Image(decode=False))):
            got = ok[ok["source_path"] == f"{split}/{index}"].iloc[0]
            assert got["sha256"] == hashlib.sha256(row["image"]["bytes"]).hexdigest()
            assert got["source_label"] == NAMES[row["cell"]] and got["source_split"] == split
            assert got["patient_id"] == row["patient_hash"] and got["group_id"] == f"hub:patient:{row['patient_hash']}"
            assert json.loads(got["extra"]) == {"stain": "MGG"}
    expected = {"neutrophil": "coarse", "lymphocyte": "exact", "blast": "exact", "junk": "not-leukocyte"}
    assert all(expected[s] == st for s, st in zip(ok["source_label"], ok["label_status"], strict=True))


def test_parquet_folder(tmp_path, workspace):
    dd = _dataset()
    folder = tmp_path / "parquet_copy" / "data"
    folder.mkdir(parents=True)
    for split, part in dd.items():
        part.to_parquet(folder / f"{split}-00000-of-00001.parquet")
    options = IngestOptions(workers=1, label_map=LABEL_MAP, adapter_options={"label_column": "cell"})
    result = ingest("hub", tmp_path / "parquet_copy", workspace, options)
    _check(result.frame, dd)
    assert (result.frame["status"] != "ok").sum() == 0


def test_save_to_disk_and_split(tmp_path, workspace):
    dd = _dataset()
    dd.save_to_disk(tmp_path / "saved")
    options = IngestOptions(workers=1, label_map=LABEL_MAP, adapter_options={"label_column": "cell", "split": "test"})
    frame = ingest("hub", tmp_path / "saved", workspace, options).frame
    _check(frame, dd, splits=("test",))
    bad = IngestOptions(workers=1, label_map=LABEL_MAP, adapter_options={"label_column": "cell", "split": "nope"})
    with pytest.raises(SourceError, match=r"no split 'nope' \(available: train, test\)"):
        ingest("hub", tmp_path / "saved", workspace, bad)
    with pytest.raises(SourceError, match="name the label column with --label-column"):
        ingest("hub", tmp_path / "saved", workspace, IngestOptions(workers=1))


def test_imagefolder_copy(tmp_path, workspace):
    root = tmp_path / "imgs"
    for split, n in (("train", 3), ("test", 2)):
        for i in range(n):
            label = ("BL", "LY")[i % 2]
            (root / split / label).mkdir(parents=True, exist_ok=True)
            (root / split / label / f"{i}.png").write_bytes(_png(i * 30 + n))
    frame = ingest("hub", root, workspace, IngestOptions(workers=1)).frame
    assert (frame["status"] == "ok").all() and (frame["label_status"] == "exact").all()
    assert sorted(zip(frame["source_split"], frame["label"], strict=True)) == sorted(
        [("train", "BL"), ("train", "LY"), ("train", "BL"), ("test", "BL"), ("test", "LY")]
    )


OFFLINE_SCRIPT = """
import sys
from typer.testing import CliRunner
from wbc_data.cli import app
result = CliRunner().invoke(app, ["ingest", "hub", "nobody-xyz/not-cached-wbc-set", "-w", sys.argv[1],
                                  "--label-column", "label", "--split", "train"])
print("EXIT", result.exit_code)
print(result.output)
"""


def test_offline_uncached_repo_is_one_clear_line(tmp_path):
    env = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "PATH": "/usr/bin"}
    done = subprocess.run(
        [sys.executable, "-c", OFFLINE_SCRIPT, str(tmp_path / "ws")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    out = done.stdout
    assert "EXIT 2" in out, out + done.stderr
    assert "Traceback" not in out
    message = out.split("EXIT 2", 1)[1].strip()
    assert message.startswith("error: nobody-xyz/not-cached-wbc-set: cannot load the dataset (offline")
    assert len(message.splitlines()) <= 3  # one line, possibly wrapped by the terminal width


def test_engine_reads_rows_hook(tmp_path, workspace):
    """Only adapters that declare ``reads_rows`` skip the path checks and the walk; others still need a folder."""
    from wbc_data.ingest.engine import adapter_reads_rows
    from wbc_data.sources.base import load_adapter
    from wbc_data.sources.definition import get_definition

    assert adapter_reads_rows(load_adapter(get_definition("hub")))
    assert not adapter_reads_rows(load_adapter(get_definition("pbc")))
    with pytest.raises(SourceError, match="no such folder"):
        ingest("pbc", tmp_path / "missing", workspace)
    # a hub folder is loaded by datasets, not walked: a stray file in it is not a manifest row
    dd = _dataset(n_train=2, n_test=1)
    dd.save_to_disk(tmp_path / "saved")
    (tmp_path / "saved" / "README.md").write_text("card")
    options = IngestOptions(workers=1, label_map=LABEL_MAP, adapter_options={"label_column": "cell"})
    frame = ingest("hub", tmp_path / "saved", workspace, options).frame
    assert sorted(frame["source_path"]) == ["test/0", "train/0", "train/1"]
