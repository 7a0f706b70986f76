"""segpc: a generated TCIA_SegPC_dataset tree (64x48 fields, 0/20/40 instance masks in 1 and 3 channels, a
re-upload nested one level deeper) with every bad input: image without masks, mask without image, duplicate
image and mask IDs, an empty mask, a mask of the wrong size, a garbled mask, a badly named mask."""

from __future__ import annotations

import collections
import math

import numpy as np
import pytest
from PIL import Image

from wbc_data.ingest.engine import IngestOptions, ingest

W, H = 64, 48


def _field(path, shade=120):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(shade)
    Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(path, "BMP")


def _mask(path, box, channels=1, size=(W, H)):
    """A cell: cytoplasm (20) filling ``box`` (x0, y0, x1, y1 exclusive) and a nucleus (40) inside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.zeros((size[1], size[0]), dtype=np.uint8)
    if box:
        x0, y0, x1, y1 = box
        array[y0:y1, x0:x1] = 20
        array[y0 + 1 : y1 - 1, x0 + 1 : x1 - 1] = 40
    if channels == 3:
        array = np.stack([array, array, array], axis=-1)
    Image.fromarray(array).save(path, "BMP")


def _expected_box(box, margin):
    x0, y0, x1, y1 = box
    dx, dy = (x1 - x0) * margin, (y1 - y0) * margin
    return [
        max(0, math.floor(x0 - dx)),
        max(0, math.floor(y0 - dy)),
        min(W, math.ceil(x1 + dx)),
        min(H, math.ceil(y1 + dy)),
    ]


GOOD = {  # crop rel -> (image rel, mask box, split)
    "train/x/1.bmp#cell1": ("train/x/1.bmp", (10, 8, 30, 20), "train"),
    "train/x/1.bmp#cell2": ("train/x/1.bmp", (50, 30, 64, 48), "train"),  # touches the edge: clamped
    "train/x/2.bmp#cell1": ("train/x/2.bmp", (0, 0, 12, 10), "train"),
    "validation/validation/x/5.bmp#cell1": ("validation/validation/x/5.bmp", (20, 20, 40, 40), "validation"),
    "validation/validation/x/5.bmp#cell3": ("validation/validation/x/5.bmp", (3, 30, 13, 44), "validation"),
}


@pytest.fixture
def segpc_tree(tmp_path):
    root = tmp_path / "TCIA_SegPC_dataset"
    _field(root / "train/x/1.bmp", 1)
    _mask(root / "train/y/1_1.bmp", GOOD["train/x/1.bmp#cell1"][1])
    _mask(root / "train/y/1_2.bmp", GOOD["train/x/1.bmp#cell2"][1], channels=3)
    _mask(root / "train/y/1_4.bmp", None)  # empty mask
    _field(root / "train/x/2.bmp", 2)
    _mask(root / "train/y/2_1.bmp", GOOD["train/x/2.bmp#cell1"][1], channels=3)
    _mask(root / "train/y/2_2.bmp", (0, 0, 10, 10), size=(32, 24))  # wrong size
    (root / "train/y/2_3.bmp").write_bytes(b"BM garbled")  # garbled mask
    _field(root / "train/x/3.bmp", 3)  # duplicate image ID 3 (bmp + png)
    Image.new("RGB", (W, H)).save(root / "train/x/3.png")
    _mask(root / "train/y/3_1.bmp", (5, 5, 15, 15))
    _mask(root / "train/y/7_1.bmp", (5, 5, 15, 15))  # mask without an image
    _mask(root / "train/y/readme.bmp", (5, 5, 15, 15))  # not <id>_<k>
    (root / "train/README.txt").write_text("SegPC")
    # a re-upload nesting the split one level deeper
    _field(root / "validation/validation/x/5.bmp", 5)
    _mask(root / "validation/validation/y/5_1.bmp", GOOD["validation/validation/x/5.bmp#cell1"][1])
    _mask(root / "validation/validation/y/5_3.bmp", GOOD["validation/validation/x/5.bmp#cell3"][1], channels=3)
    _field(root / "validation/validation/x/6.bmp", 6)
    _mask(root / "validation/validation/y/6_1.bmp", (1, 1, 5, 5))  # duplicate mask ID 6_1 ...
    _mask(root / "validation/validation/y/6_01.bmp", (2, 2, 6, 6))  # ... written as 6_01
    _field(root / "test/x/9.bmp", 9)  # image without masks
    return tmp_path


def test_segpc_crops_and_bad_inputs(segpc_tree, workspace):
    result = ingest("segpc", segpc_tree, workspace, IngestOptions(workers=1))
    frame = result.frame.set_index("sample_id")
    files = [p for p in (segpc_tree / "TCIA_SegPC_dataset").rglob("*") if p.is_file()]
    crops = frame[frame.parent_id.notna()]
    assert len(frame) == len(files) + len(crops)
    assert len(crops) == 5 + 3  # good crops + empty mask, wrong-size mask, garbled mask
    for key, (image_rel, box, split) in GOOD.items():
        row = frame.loc[f"segpc:{key}"]
        assert row.status == "ok", (key, row.reason)
        assert (row.label, row.label_status, row.source_split) == ("PC", "exact", split)
        assert list(row.crop_box) == _expected_box(box, 0.2)
        assert row.parent_id == f"segpc:{image_rel}" and row.group_id == row.parent_id
        x0, y0, x1, y1 = row.crop_box
        assert (row.width, row.height) == (x1 - x0, y1 - y0)
    assert "mask is empty" in frame.loc["segpc:train/x/1.bmp#cell4", "reason"]
    assert "32x24 but the image is 64x48" in frame.loc["segpc:train/x/2.bmp#cell2", "reason"]
    assert "unreadable" in frame.loc["segpc:train/x/2.bmp#cell3", "reason"]
    by_path = frame[frame.parent_id.isna()].set_index("source_path")
    assert by_path.loc["train/x/1.bmp", "status"] == "auxiliary"  # the field itself
    assert by_path.loc["train/y/1_1.bmp", "status"] == "auxiliary"
    assert "no instance mask" in by_path.loc["test/x/9.bmp", "reason"]
    assert "mask without an image" in by_path.loc["train/y/7_1.bmp", "reason"]
    for source_path in ("train/x/3.bmp", "train/x/3.png"):
        assert "duplicate image ID 3" in by_path.loc[source_path, "reason"]
    assert "image is ambiguous" in by_path.loc["train/y/3_1.bmp", "reason"]
    for source_path in ("validation/validation/y/6_1.bmp", "validation/validation/y/6_01.bmp"):
        assert "duplicate mask ID 6_1" in by_path.loc[source_path, "reason"]
    assert "not <id>_<k>" in by_path.loc["train/y/readme.bmp", "reason"]
    assert "not in an x/" in by_path.loc["train/README.txt", "reason"]
    statuses = collections.Counter(frame.status)
    # auxiliary: 4 fields + 8 masks that made a crop row; rejected: 3 crops + 9 files listed above
    assert statuses == {"ok": 5, "auxiliary": 4 + 8, "rejected": 3 + 9}


def test_segpc_margin_option(segpc_tree, workspace):
    result = ingest("segpc", segpc_tree, workspace, IngestOptions(workers=1, adapter_options={"margin": 0.0}))
    frame = result.frame.set_index("sample_id")
    for key, (_, box, _) in GOOD.items():
        assert list(frame.loc[f"segpc:{key}", "crop_box"]) == list(box)  # no margin: the mask's own box
