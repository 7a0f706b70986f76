"""Ingest of PBC: the shipped sample (always) and the real half of PBC in ../shared (when present)."""

from __future__ import annotations

import collections
import os

import pytest

from tests.conftest import shared_path
from wbc_data.ingest.engine import IngestOptions, ingest
from wbc_data.io.resources import sample_dir

PREFIX_CLASS = {"SNE": "SNE", "BNE": "BNE", "LY": "LY", "MO": "MO", "EO": "EO", "BA": "BA", "MY": "MY", "MMY": "MMY",
                "PMY": "PMY"}  # fmt: skip


def expected_from_disk(root):
    """Count files per prefix straight from the folder, independently of the tool."""
    per_prefix, files = collections.Counter(), 0
    for folder in os.listdir(root):
        for name in os.listdir(root / folder):
            files += 1
            if name.startswith("."):
                per_prefix["(hidden)"] += 1
            else:
                per_prefix[name.split("_", 1)[0]] += 1
    return per_prefix, files


def check_pbc(result, root):
    frame = result.frame
    per_prefix, files = expected_from_disk(root)
    assert len(frame) == files == result.files_seen, "every file must be a row"
    ok = frame[frame.status == "ok"]
    exact = ok[ok.label_status == "exact"]["label"].value_counts()
    for prefix, cls in PREFIX_CLASS.items():
        assert exact.get(cls, 0) == per_prefix[prefix], prefix
    coarse = ok[ok.label_status == "coarse"]
    assert (coarse.source_label == "NEUTROPHIL").sum() == per_prefix["NEUTROPHIL"]
    assert (coarse.source_label == "IG").sum() == per_prefix["IG"]
    for cands in coarse[coarse.source_label == "IG"].label_candidates:
        assert list(cands) == ["MY", "MMY", "PMY"]
    not_wbc = ok[ok.label_status == "not-leukocyte"]
    assert len(not_wbc) == per_prefix["ERB"] + per_prefix["PLATELET"]
    rejected = frame[frame.status == "rejected"]
    assert list(rejected.source_path) == ["neutrophil/.DS_169665.jpg"]
    assert rejected.reason.iloc[0].startswith("not an image")
    assert ok.sha256.str.len().eq(64).all() and ok.pixel_hash.notna().all() and ok.phash.notna().all()
    assert (frame.licence == "CC BY 4.0").all()


def test_sample_ingest(workspace):
    root = sample_dir() / "pbc" / "PBC_dataset_normal_DIB"
    result = ingest("pbc", sample_dir() / "pbc", workspace, IngestOptions(workers=1))
    assert result.root == root.resolve()
    check_pbc(result, root)


@pytest.mark.slow
def test_real_pbc_counts_exact(workspace):
    parent = shared_path("pbc")
    result = ingest("pbc", parent, workspace, IngestOptions(workers=2))
    root = parent / "PBC_dataset_normal_DIB"
    check_pbc(result, root)
    per_prefix, files = expected_from_disk(root)
    assert files == 8488 and per_prefix["NEUTROPHIL"] == 21 and per_prefix["IG"] == 67
    # a re-run is served from the resume cache and produces the same table
    again = ingest("pbc", root, workspace, IngestOptions(workers=2))
    assert again.decoded == 0 and again.from_cache == files
    assert again.frame.drop(columns="extra").equals(result.frame.drop(columns="extra"))


def test_reingest_is_idempotent(workspace, tmp_path):
    from wbc_data.core import manifest

    first = ingest("pbc", sample_dir() / "pbc", workspace, IngestOptions(workers=1))
    table1 = manifest.read(first.manifest_path)
    second = ingest("pbc", sample_dir() / "pbc", workspace, IngestOptions(workers=1, use_cache=False))
    table2 = manifest.read(second.manifest_path)
    assert table1.equals(table2)
