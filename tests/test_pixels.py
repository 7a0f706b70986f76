"""The one loader: every row kind reopens to exactly the pixels ingest hashed (real files, crops, odd modes,
non-UTF-8 names, Hub rows, WBCBench parquet rows), and failures are one clear line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import shared_path
from tests.fixtures import hub_folder, mini_bccd, noise, odd_images, sample_copy, wbcbench_parquet
from wbc_data.core import manifest
from wbc_data.core.labelmap import LabelMap
from wbc_data.core.roots import RootsError
from wbc_data.core.workspace import Workspace
from wbc_data.imaging.signatures import pixel_hash
from wbc_data.ingest.engine import IngestOptions, ingest
from wbc_data.io.pixels import PixelLoader, PixelMismatch, PixelMissing, row_refs
from wbc_data.manifest.merge import merge

ODD_MAP = LabelMap.from_dict({"lymphocyte": "LY", "monocyte": "MO"})


def _ok_rows(ws: Workspace):
    frame = manifest.read_frame(ws.unified_manifest)
    return frame[frame["status"] == "ok"].reset_index(drop=True)


def _all_verify(ws: Workspace, expected_rows: int | None = None) -> int:
    """Open every usable row with the hash check; return how many."""
    frame = _ok_rows(ws)
    loader = PixelLoader.for_workspace(ws)
    for ref in row_refs(frame):
        image = loader.open(ref, verify=True)
        assert image.mode == "RGB"
        assert pixel_hash(image) == ref.pixel_hash  # the same check, spelled out
    if expected_rows is not None:
        assert len(frame) == expected_rows
    return len(frame)


def test_every_generated_row_kind_reopens_exactly(tmp_path):
    ws = Workspace(tmp_path / "ws")
    options = IngestOptions(workers=1, use_cache=False)
    ingest("imagefolder", odd_images(tmp_path / "odd"), ws,
           IngestOptions(workers=1, label_map=ODD_MAP, name="odd"))  # fmt: skip
    ingest("bccd", mini_bccd(tmp_path / "bccd"), ws, options)
    ingest("hub", hub_folder(tmp_path / "hub"), ws,
           IngestOptions(workers=1, label_map=LabelMap.from_dict({"lymphocyte": "LY", "blast": "BL"})))  # fmt: skip
    ingest("wbcbench", wbcbench_parquet(tmp_path / "bench"), ws, options)
    merge(ws)
    frame = _ok_rows(ws)
    kinds = {
        "non-UTF-8 name": frame["extra"].fillna("").str.contains("source_path_bytes_hex").sum(),
        "RGBA": (frame["mode"] == "RGBA").sum(),
        "16-bit": frame["mode"].str.startswith("I").sum(),
        "CMYK": (frame["mode"] == "CMYK").sum(),
        "crop": frame["crop_box"].notna().sum(),
        "hub row": (frame["source"] == "hub").sum(),
        "parquet row": frame["source_path"].str.contains(".parquet/").sum(),
    }
    assert all(count > 0 for count in kinds.values()), kinds
    assert _all_verify(ws) == len(frame)


def test_sample_and_kaggle_copies_reopen(tmp_path):
    from wbc_data.io.resources import sample_dir

    ws = Workspace(tmp_path / "ws")
    ingest("pbc", sample_dir() / "pbc", ws, IngestOptions(workers=1))
    ingest("kaggle-cancer-mix", sample_dir() / "kaggle_cancer_mix", ws, IngestOptions(workers=1))
    merge(ws)
    on_disk = [p for p in sample_dir().joinpath("pbc").rglob("*.jpg") if not p.name.startswith(".DS_")]
    assert _all_verify(ws) == len(on_disk) + 6  # every PBC cell (the .DS_ file is rejected) + 6 Kaggle copies


@pytest.mark.slow
def test_real_bccd_crops_and_kaggle_reopen(tmp_path):
    ws = Workspace(tmp_path / "ws")
    ingest("bccd", shared_path("bccd"), ws, IngestOptions(workers=2))
    ingest("kaggle-cancer-mix", shared_path("kaggle_cancer_mix"), ws, IngestOptions(workers=2))
    merge(ws)
    frame = _ok_rows(ws)
    assert frame["crop_box"].notna().sum() == 372  # every real WBC box of BCCD
    assert _all_verify(ws) == len(frame) == 372 + 1000


def test_crops_of_one_field_decode_it_once(tmp_path, monkeypatch):
    from wbc_data.io import pixels

    ws = Workspace(tmp_path / "ws")
    ingest("bccd", mini_bccd(tmp_path / "bccd", fields=4), ws, IngestOptions(workers=1))
    merge(ws)
    frame = _ok_rows(ws)
    calls = []
    real = pixels.decode_rgb
    monkeypatch.setattr(pixels, "decode_rgb", lambda data, max_pixels: calls.append(1) or real(data, max_pixels))
    loader = PixelLoader.for_workspace(ws)
    for ref in row_refs(frame):
        loader.open(ref, verify=True)
    assert len(frame) == 6 and len(calls) == 4  # 6 crops of 4 fields
    # the cache of parents is bounded by pixel count
    small = PixelLoader.for_workspace(ws, None)
    small.parent_cache_pixels = 1
    for ref in row_refs(frame):
        small.open(ref)
    assert len(small._parents) == 1


def test_a_caller_changing_an_opened_field_leaves_its_crops_intact(tmp_path):
    """The dedup report thumbnails every image it shows in place; a field opened after one of its crops used to
    be the loader's cached parent itself, so the field's later crops came out of a 160 px thumbnail (black)."""
    ws = Workspace(tmp_path / "ws")
    ingest("bccd", mini_bccd(tmp_path / "bccd", fields=1), ws, IngestOptions(workers=1))
    merge(ws)
    frame = manifest.read_frame(ws.unified_manifest)
    crop = row_refs(frame[frame["crop_box"].notna()].head(1))[0]
    field = row_refs(frame[frame["sample_id"] == frame.loc[frame["crop_box"].notna(), "parent_id"].iloc[0]])[0]
    loader = PixelLoader.for_workspace(ws)
    before = np.asarray(loader.open(crop, verify=True))
    loader.open(field).thumbnail((16, 16))
    assert np.array_equal(np.asarray(loader.open(crop, verify=True)), before)


def test_missing_changed_and_unknown_are_one_line(tmp_path):
    data = sample_copy(tmp_path / "pbc")
    ws = Workspace(tmp_path / "ws")
    ingest("pbc", data, ws, IngestOptions(workers=1))
    merge(ws)
    frame = _ok_rows(ws)
    refs = {r.source_path: r for r in row_refs(frame)}
    loader = PixelLoader.for_workspace(ws)
    source_path = sorted(refs)[0]
    path = data / "PBC_dataset_normal_DIB" / source_path
    # a different image under the same name: opens, but not with verify
    noise(Image.open(path).size, 9).save(path, "JPEG")
    loader.open(refs[source_path])
    with pytest.raises(PixelMismatch, match=r"pixels differ from those ingested") as err:
        loader.open(refs[source_path], verify=True)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    path.unlink()
    with pytest.raises(PixelMissing, match="file not found") as err:
        loader.open(refs[source_path])
    assert str(path) in str(err.value)
    from wbc_data.io.pixels import RowRef

    with pytest.raises(RootsError, match="source root 'elsewhere' is unknown here"):
        loader.open(RowRef("x", "elsewhere", "a.jpg"))


def test_loader_pickles_without_open_readers(tmp_path):
    import pickle

    ws = Workspace(tmp_path / "ws")
    ingest("hub", hub_folder(tmp_path / "hub"), ws,
           IngestOptions(workers=1, label_map=LabelMap.from_dict({"lymphocyte": "LY", "blast": "BL"})))  # fmt: skip
    merge(ws)
    loader = PixelLoader.for_workspace(ws)
    ref = row_refs(_ok_rows(ws))[0]
    first = loader.open(ref, verify=True)
    clone = pickle.loads(pickle.dumps(loader))
    assert not clone._readers and clone.open(ref, verify=True).tobytes() == first.tobytes()


def test_manifest_alone_reopens_with_its_metadata(tmp_path):
    from wbc_data.io.resources import sample_dir

    ws = Workspace(tmp_path / "ws")
    ingest("pbc", sample_dir() / "pbc", ws, IngestOptions(workers=1))
    merge(ws)
    # the unified manifest carries each root in its metadata: no workspace needed
    loader = PixelLoader.for_manifest(ws.unified_manifest)
    ref = row_refs(_ok_rows(ws))[0]
    assert loader.open(ref, verify=True).size[0] > 0
    assert Path(loader.roots.location("pbc")).name == "PBC_dataset_normal_DIB"
