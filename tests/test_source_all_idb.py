"""all-idb: generated ALL_IDB1 (64x48 fields + .xyc centroids) and ALL_IDB2 (crops) trees with every bad input:
field without .xyc, .xyc without field, empty and garbled .xyc, a centroid outside the field, duplicate numbers."""

from __future__ import annotations

import collections

import pytest
from PIL import Image

from wbc_data.ingest.engine import IngestOptions, ingest
from wbc_data.sources.all_idb import parse_xyc

W, H, SIZE = 64, 48, 16


def _img(path, fmt="JPEG", size=(W, H), shade=100):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (shade, 60, 170)).save(path, fmt)


def _box(x, y, size=SIZE):
    half = size / 2
    return [max(0, int(x - half)), max(0, int(y - half)), min(W, int(x + half)), min(H, int(y + half))]


CENTROIDS = {  # field -> centroids written to its .xyc (all inside the field)
    "ALL_IDB1/im/Im001_1.jpg": [(20, 10), (40, 30)],
    "ALL_IDB1/im/Im009_1.jpg": [(10, 12), (60, 44)],  # comma / tab separated; the second is clamped
}


@pytest.fixture
def idb_tree(tmp_path):
    root = tmp_path / "ALL_IDB"
    one = root / "ALL_IDB1"
    (one / "xyc").mkdir(parents=True)
    for n, (field, points) in enumerate(CENTROIDS.items()):
        _img(root / field, shade=n * 40)
        sep = "," if n == 0 else "\t"
        lines = [f"{x}{sep}{y}" for x, y in points]
        (one / "xyc" / (field.rsplit("/", 1)[-1][:-4] + ".xyc")).write_text("\n".join(lines) + "\n\n")
    _img(one / "im/Im002_0.jpg")  # healthy field, empty .xyc
    (one / "xyc/Im002_0.xyc").write_text("")
    _img(one / "im/Im003_1.jpg")  # one centroid inside, one outside the field
    (one / "xyc/Im003_1.xyc").write_text("5 5\n300 200\n")
    _img(one / "im/Im004_1.jpg")  # garbled .xyc
    (one / "xyc/Im004_1.xyc").write_text("x y\nabc def\n")
    _img(one / "im/Im005_1.jpg")  # no .xyc
    (one / "xyc/Im006_1.xyc").write_text("1 1\n")  # .xyc without image
    _img(one / "im/Im007_0.jpg")  # duplicate image number 007
    _img(one / "im/Im007_1.jpg")
    (one / "xyc/Im007_1.xyc").write_text("3 3\n")
    _img(one / "im/Im008_1.jpg")  # ALL patient, but no blast listed
    (one / "xyc/Im008_1.xyc").write_text("\n")
    two = root / "ALL_IDB2" / "img"
    for name in ("Im001_1", "Im002_1", "Im131_0", "Im132_0", "Im133_0"):
        _img(two / f"{name}.tif", "TIFF", size=(32, 32))
    _img(two / "Im003_0.tif", "TIFF", size=(32, 32))  # duplicate number 003 with different Y
    _img(two / "Im003_1.tif", "TIFF", size=(32, 32))
    _img(two / "blast.tif", "TIFF", size=(32, 32))  # not ImNNN_Y
    (root / "ALL_IDB2" / "readme.txt").write_text("ALL-IDB2")
    return tmp_path


def test_all_idb_both_parts_and_bad_inputs(idb_tree, workspace):
    result = ingest("all-idb", idb_tree, workspace, IngestOptions(workers=1, adapter_options={"crop_size": SIZE}))
    frame = result.frame
    crops = frame[frame.parent_id.notna()].set_index("sample_id")
    files = frame[frame.parent_id.isna()].set_index("source_path")
    assert len(files) == sum(1 for p in (idb_tree / "ALL_IDB").rglob("*") if p.is_file()) == 17 + 9
    for field, points in CENTROIDS.items():
        assert files.loc[field, "status"] == "auxiliary"
        for i, (x, y) in enumerate(points, start=1):
            row = crops.loc[f"all-idb:{field}#blast{i}"]
            assert (row.status, row.label, row.label_status) == ("ok", "BL", "exact")
            assert list(row.crop_box) == _box(x, y) and row.group_id == f"all-idb:{field}"
    assert list(crops.loc["all-idb:ALL_IDB1/im/Im009_1.jpg#blast2", "crop_box"]) == [52, 36, 64, 48]  # clamped
    inside = crops.loc["all-idb:ALL_IDB1/im/Im003_1.jpg#blast1"]
    outside = crops.loc["all-idb:ALL_IDB1/im/Im003_1.jpg#blast2"]
    assert inside.status == "ok" and list(inside.crop_box) == [0, 0, 13, 13]
    assert outside.status == "rejected" and "outside the 64x48 image" in outside.reason
    assert files.loc["ALL_IDB1/im/Im002_0.jpg", "status"] == "auxiliary"  # healthy: a field with no crop
    assert "unreadable centroid file: line 1" in files.loc["ALL_IDB1/xyc/Im004_1.xyc", "reason"]
    assert "is unreadable" in files.loc["ALL_IDB1/im/Im004_1.jpg", "reason"]
    assert "no centroid file" in files.loc["ALL_IDB1/im/Im005_1.jpg", "reason"]
    assert "without an image" in files.loc["ALL_IDB1/xyc/Im006_1.xyc", "reason"]
    for source_path in (
        "ALL_IDB1/im/Im007_0.jpg",
        "ALL_IDB1/im/Im007_1.jpg",
        "ALL_IDB2/img/Im003_0.tif",
        "ALL_IDB2/img/Im003_1.tif",
    ):
        assert "duplicate image number" in files.loc[source_path, "reason"]
    assert "ambiguous" in files.loc["ALL_IDB1/xyc/Im007_1.xyc", "reason"]
    assert any("Im008_1.jpg: the patient has ALL (Y=1)" in note for note in result.notes)
    assert "not ImNNN_Y" in files.loc["ALL_IDB2/img/blast.tif", "reason"]
    assert files.loc["ALL_IDB2/readme.txt", "status"] == "auxiliary"
    idb2 = files[files.index.str.startswith("ALL_IDB2/img/") & (files.status == "ok")]
    assert collections.Counter(zip(idb2.source_label, idb2.label_status, strict=True)) == {
        ("blast", "exact"): 2,
        ("non-blast", "excluded"): 3,
    }
    assert idb2[idb2.source_label == "non-blast"].label_reason.str.contains("non-blast leukocyte").all()
    ok_crops = crops[crops.status == "ok"]
    assert len(ok_crops) == 4 + 1  # 2 fields x 2 centroids + the inside centroid of Im003_1
    # auxiliary: 5 fields + their 5 .xyc + readme; rejected: 1 crop + the 10 bad files asserted above
    assert collections.Counter(frame.status) == {"ok": 5 + 5, "auxiliary": 5 + 5 + 1, "rejected": 1 + 10}


def test_all_idb_default_crop_size_from_yaml(idb_tree, workspace):
    result = ingest("all-idb", idb_tree / "ALL_IDB" / "ALL_IDB1", workspace, IngestOptions(workers=1))
    crop = result.frame.set_index("sample_id").loc["all-idb:im/Im001_1.jpg#blast1"]
    assert list(crop.crop_box) == [0, 0, W, H]  # 257 px around (20, 10) covers the whole 64x48 field


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", []), ("1 2\n\n3.5\t4\n", [(1.0, 2.0), (3.5, 4.0)]), ("7,8\n", [(7.0, 8.0)])],
)
def test_parse_xyc(tmp_path, text, expected):
    path = tmp_path / "a.xyc"
    path.write_text(text)
    assert parse_xyc(path) == expected


@pytest.mark.parametrize("text", ["1 2 3\n", "one two\n"])
def test_parse_xyc_garbled(tmp_path, text):
    path = tmp_path / "a.xyc"
    path.write_text(text)
    with pytest.raises(ValueError, match="line 1"):
        parse_xyc(path)
