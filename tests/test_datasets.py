"""The manifest as a training set: a PyTorch Dataset (DataLoader workers, transforms, labels in the fixed
13-class order) and a datasets.Dataset (Image + ClassLabel, original bytes kept, pixel-identical)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from tests.fixtures import mini_bccd
from wbc_data.core.rows import select_rows
from wbc_data.core.stages import StaleStageError, load_view
from wbc_data.core.taxonomy import CLASSES
from wbc_data.core.workspace import Workspace
from wbc_data.dedup.run import DedupOptions, dedup
from wbc_data.imaging.signatures import pixel_hash
from wbc_data.ingest.engine import IngestOptions, ingest
from wbc_data.io.pixels import PixelLoader
from wbc_data.io.resources import sample_dir
from wbc_data.manifest.merge import merge
from wbc_data.split import SplitOptions, run_split


@pytest.fixture(scope="module")
def split_ws(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("data")
    ws = Workspace(tmp / "ws")
    ingest("pbc", sample_dir() / "pbc", ws, IngestOptions(workers=1))
    ingest("bccd", mini_bccd(tmp / "bccd", fields=6), ws, IngestOptions(workers=1))
    merge(ws)
    dedup(ws, DedupOptions(workers=1, reports=False))
    run_split(ws, SplitOptions(val=0.2, test=0.2, seed=0))
    return ws


def test_torch_dataset_with_workers_and_transform(split_ws):
    import torch
    from torch.utils.data import DataLoader
    from torchvision.transforms import v2

    from wbc_data.train.dataset import ManifestDataset

    transform = v2.Compose([v2.PILToTensor(), v2.Resize((32, 32), antialias=True), v2.ToDtype(torch.float32)])
    dataset = ManifestDataset.from_workspace(split_ws, ["train"], transform=transform, return_meta=True)
    view = load_view(split_ws)
    expected = select_rows(view.frame, ["train"])
    assert len(dataset) == len(expected) >= 16
    loader = DataLoader(dataset, batch_size=8, num_workers=2, shuffle=False)
    seen, labels = [], []
    for images, label, meta in loader:
        assert images.shape[1:] == (3, 32, 32) and images.dtype == torch.float32
        seen += list(meta["sample_id"])
        labels += label.tolist()
    assert seen == expected["sample_id"].tolist()
    assert labels == [CLASSES.index(c) for c in expected["label"]]  # the fixed 13-class order


def test_torch_dataset_pixels_match_the_manifest(split_ws):
    from wbc_data.train.dataset import ManifestDataset

    dataset = ManifestDataset.from_workspace(split_ws, ["val", "test"], exact_only=False)
    frame = select_rows(load_view(split_ws).frame, ["val", "test"], exact_only=False)
    assert len(dataset) == len(frame)
    for i in range(len(dataset)):
        image, _label = dataset[i]
        assert pixel_hash(image) == frame["pixel_hash"].iloc[i]


def test_dataset_of_splits_needs_a_fresh_split(tmp_path):
    from wbc_data.train.dataset import ManifestDataset

    ws = Workspace(tmp_path / "ws")
    ingest("pbc", sample_dir() / "pbc", ws, IngestOptions(workers=1))
    merge(ws)
    with pytest.raises(StaleStageError, match="needs `wbc-data split` to have run first"):
        ManifestDataset.from_workspace(ws, ["train"])
    exact = {"SNE", "BNE", "LY", "MO", "EO", "BA", "MY", "MMY", "PMY"}  # PBC prefixes that name one class
    on_disk = [p for p in (sample_dir() / "pbc").rglob("*.jpg") if p.name.split("_")[0] in exact]
    assert len(ManifestDataset.from_workspace(ws)) == len(on_disk) > 100


def test_hf_dataset_keeps_original_bytes_and_pixels(split_ws, tmp_path):
    import datasets

    from wbc_data.publish.hfdata import to_hf_dataset

    frame = load_view(split_ws).frame
    frame = frame[frame["status"] == "ok"].reset_index(drop=True)
    hf = to_hf_dataset(frame, PixelLoader.for_workspace(split_ws), cache_dir=tmp_path / "cache")
    assert len(hf) == len(frame)
    assert isinstance(hf.features["image"], datasets.Image)
    assert hf.features["label"].names == list(CLASSES)
    raw = hf.cast_column("image", datasets.Image(decode=False))
    for i in range(len(hf)):
        row = frame.iloc[i]
        assert hf[i]["sample_id"] == row["sample_id"] and hf[i]["split"] == row["split"]
        expected = CLASSES.index(row["label"]) if isinstance(row["label"], str) else -1
        assert hf[i]["label"] == expected
        assert pixel_hash(hf[i]["image"].convert("RGB")) == row["pixel_hash"]
        if row["crop_box"] is None:  # a whole file: the very bytes of the source
            assert hashlib.sha256(raw[i]["image"]["bytes"]).hexdigest() == row["sha256"]
    assert np.all([c not in hf.column_names for c in ("source_root", "thumb")])  # no paths, no thumbnails
