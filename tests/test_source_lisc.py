"""lisc: a generated 'LISC Database' tree (64x48 fields, expert masks) with every bad input: image without a mask,
mask without an image, empty/garbled/wrong-size masks, duplicate image IDs, two masks for one image."""

from __future__ import annotations

import collections
import math

import numpy as np
import pytest
from PIL import Image

from wbc_data.ingest.engine import IngestOptions, ingest

W, H = 64, 48
MAIN, GT = "Main Dataset", "Ground Truth Segmentation"


def _field(path, fmt="BMP", seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (H, W, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, fmt)


def _mask(path, box, channels=1, size=(W, H)):
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.zeros((size[1], size[0]), dtype=np.uint8)
    if box:
        x0, y0, x1, y1 = box
        array[y0:y1, x0:x1] = 128  # cytoplasm
        array[y0 + 2 : y1 - 2, x0 + 2 : x1 - 2] = 255  # nucleus
    if channels == 3:
        array = np.stack([array] * 3, axis=-1)
    Image.fromarray(array).save(path, "BMP")


def _expected(box, margin=0.2):
    x0, y0, x1, y1 = box
    dx, dy = (x1 - x0) * margin, (y1 - y0) * margin
    grown = (math.floor(x0 - dx), math.floor(y0 - dy), math.ceil(x1 + dx), math.ceil(y1 + dy))
    return [max(0, grown[0]), max(0, grown[1]), min(W, grown[2]), min(H, grown[3])]


GOOD = {  # image -> (mask box, expected label status, label or candidates)
    f"{MAIN}/Baso/1.bmp": ((10, 10, 30, 30), "exact", "BA"),
    f"{MAIN}/eosi/1.bmp": ((40, 5, 60, 25), "exact", "EO"),
    f"{MAIN}/neut/2.bmp": ((0, 20, 20, 48), "coarse", ["SNE", "BNE"]),
    f"{MAIN}/mixt/5.bmp": ((5, 5, 50, 40), "excluded", None),
}


@pytest.fixture
def lisc_tree(tmp_path):
    root = tmp_path / "LISC Database"
    for i, source_path in enumerate(GOOD):
        _field(root / source_path, seed=i)
    _mask(root / GT / "Baso/areaforexpert1/1_expert.bmp", GOOD[f"{MAIN}/Baso/1.bmp"][0])
    _mask(root / GT / "EOSI/areaforexpert1/1_expert.bmp", GOOD[f"{MAIN}/eosi/1.bmp"][0])  # class case differs
    _mask(root / GT / "eosi/areaforexpert2/1_expert.bmp", (0, 0, 5, 5))  # second expert: kept, not used
    _mask(root / GT / "neut/areaforexpert1/2_expert.bmp", GOOD[f"{MAIN}/neut/2.bmp"][0], channels=3)
    _mask(root / GT / "mixt/areaforexpert1/5_expert.bmp", GOOD[f"{MAIN}/mixt/5.bmp"][0])
    _field(root / MAIN / "lymp/3.bmp")  # no mask
    _mask(root / GT / "mono/areaforexpert1/9_expert.bmp", (1, 1, 9, 9))  # no image
    _field(root / MAIN / "mono/4.bmp")  # empty mask
    _mask(root / GT / "mono/areaforexpert1/4_expert.bmp", None)
    _field(root / MAIN / "lymp/6.bmp")  # duplicate image ID 6
    _field(root / MAIN / "lymp/6.png", "PNG")
    _mask(root / GT / "lymp/areaforexpert1/6_expert.bmp", (1, 1, 9, 9))
    _field(root / MAIN / "mono/7.bmp")  # two masks in one expert folder
    _mask(root / GT / "mono/areaforexpert1/7_expert.bmp", (1, 1, 9, 9))
    _mask(root / GT / "mono/areaforexpert1/7.bmp", (2, 2, 9, 9))
    _field(root / MAIN / "Baso/8.bmp")  # mask of the wrong size
    _mask(root / GT / "Baso/areaforexpert1/8_expert.bmp", (1, 1, 9, 9), size=(32, 24))
    _field(root / MAIN / "Baso/10.bmp")  # garbled mask
    (root / GT / "Baso/areaforexpert1/10_expert.bmp").write_bytes(b"BM not really")
    _field(root / "More Dataset without Ground Truth/alll/1.bmp")
    (root / MAIN / "Baso/Thumbs.db").write_bytes(b"\0")
    return tmp_path


def test_lisc_crops_and_bad_inputs(lisc_tree, workspace):
    result = ingest("lisc", lisc_tree, workspace, IngestOptions(workers=1))
    frame = result.frame
    crops = frame[frame.parent_id.notna()].set_index("source_path")
    files = frame[frame.parent_id.isna()].set_index("source_path")
    assert len(files) == sum(1 for p in (lisc_tree / "LISC Database").rglob("*") if p.is_file()) == 25
    for source_path, (box, status, label) in GOOD.items():
        row = crops.loc[source_path]
        assert row.status == "ok" and row.label_status == status, source_path
        assert list(row.crop_box) == _expected(box)
        assert row.group_id == row.parent_id == f"lisc:{source_path}"
        if status == "exact":
            assert row.label == label
        elif status == "coarse":
            assert list(row.label_candidates) == label
        assert files.loc[source_path, "status"] == "auxiliary"
    assert "not used" in files.loc[f"{GT}/eosi/areaforexpert2/1_expert.bmp", "reason"]
    assert "no expert mask" in files.loc[f"{MAIN}/lymp/3.bmp", "reason"]
    assert "without an image" in files.loc[f"{GT}/mono/areaforexpert1/9_expert.bmp", "reason"]
    assert "mask is empty" in crops.loc[f"{MAIN}/mono/4.bmp", "reason"]
    for source_path in (f"{MAIN}/lymp/6.bmp", f"{MAIN}/lymp/6.png"):
        assert "duplicate image ID 6" in files.loc[source_path, "reason"]
    assert "ambiguous" in files.loc[f"{GT}/lymp/areaforexpert1/6_expert.bmp", "reason"]
    assert "several masks" in files.loc[f"{MAIN}/mono/7.bmp", "reason"]
    assert "32x24 but the image is 64x48" in crops.loc[f"{MAIN}/Baso/8.bmp", "reason"]
    assert "unreadable" in crops.loc[f"{MAIN}/Baso/10.bmp", "reason"]
    assert "without ground truth" in files.loc["More Dataset without Ground Truth/alll/1.bmp", "reason"]
    assert "not an image file" in files.loc[f"{MAIN}/Baso/Thumbs.db", "reason"]
    # auxiliary: 4 + 3 fields (mono/4, Baso/8, Baso/10) and their 7 masks, + the second expert's mask
    # rejected: 3 crops + lymp/3, mono/9 mask, 6.bmp, 6.png, 6 mask, mono/7 + 2 masks, alll/1, Thumbs.db
    assert collections.Counter(frame.status) == {"ok": 4, "auxiliary": 7 + 7 + 1, "rejected": 3 + 10}
