"""BCCD: the real VOC + labels.csv set (counts computed here with plain Python) and generated bad inputs."""

from __future__ import annotations

import collections
import csv
import shutil
import xml.etree.ElementTree as ET

import pytest
from PIL import Image

from tests.conftest import shared_path
from wbc_data.ingest.engine import IngestOptions, ingest
from wbc_data.sources.definition import SourceError

MAPPED = {"NEUTROPHIL": ("coarse", None), "EOSINOPHIL": ("exact", "EO"), "LYMPHOCYTE": ("exact", "LY"),
          "MONOCYTE": ("exact", "MO"), "BASOPHIL": ("exact", "BA")}  # fmt: skip


def _expected(bccd_dir):
    """Status/label per WBC box from the documented rule, written independently of the adapter."""
    categories = {}
    with open(bccd_dir / "labels.csv", newline="") as handle:
        for row in list(csv.reader(handle))[1:]:
            categories[int(row[1])] = row[2]
    statuses, labels, splits = collections.Counter(), collections.Counter(), collections.Counter()
    split_of = {}
    for name in ("train", "val", "test"):
        for stem in (bccd_dir / "BCCD/ImageSets/Main" / f"{name}.txt").read_text().split():
            split_of[stem] = name
    boxes = 0
    for xml in sorted((bccd_dir / "BCCD/Annotations").glob("*.xml")):
        root = ET.parse(xml).getroot()
        n = sum(1 for obj in root.iter("object") if obj.findtext("name") == "WBC")
        cat = categories.get(int(xml.stem.split("_")[1]))
        tokens = [t.strip() for t in (cat or "").split(",") if t.strip()]
        for _ in range(n):
            boxes += 1
            splits[split_of.get(xml.stem)] += 1
            if not tokens:
                statuses["unlabelled"] += 1
            elif len(tokens) < n or len(set(tokens)) > 1:
                statuses["conflict"] += 1
            else:
                status, label = MAPPED[tokens[0]]
                statuses[status] += 1
                if label:
                    labels[label] += 1
    images = {p.stem for p in (bccd_dir / "BCCD/JPEGImages").glob("*.jpg")}
    orphans = {n for n in categories if f"BloodImage_{n:05d}" not in images}
    return boxes, statuses, labels, splits, orphans, len(images)


def test_real_bccd_counts(workspace):
    bccd_dir = shared_path("bccd")
    boxes, statuses, labels, splits, orphans, n_images = _expected(bccd_dir)
    result = ingest("bccd", bccd_dir, workspace, IngestOptions(workers=2, use_cache=False))
    frame = result.frame
    crops = frame[frame["parent_id"].notna()]
    assert len(crops) == boxes
    assert (crops["status"] == "ok").all()
    assert crops["label_status"].value_counts().to_dict() == dict(statuses)
    assert crops["label"].value_counts().to_dict() == dict(labels)
    assert crops["source_split"].value_counts().to_dict() == {k: v for k, v in splits.items() if k}
    # every crop lies inside its 640x480 field and is grouped with it
    assert all(0 <= b[0] < b[2] <= 640 and 0 <= b[1] < b[3] <= 480 for b in crops["crop_box"])
    assert (crops["group_id"] == crops["parent_id"]).all()
    # fields, XMLs, 4 split lists and labels.csv are auxiliary; nothing rejected
    assert (frame["status"] == "auxiliary").sum() == 2 * n_images + 4 + 1
    assert (frame["status"] == "rejected").sum() == 0
    assert any(f"{len(orphans)} of" in note and "name no annotated image" in note for note in result.notes)


def _voc(objects, filename="x.jpg", size=(64, 48)):
    objs = "".join(
        f"<object><name>{name}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax>"
        f"<ymax>{b[3]}</ymax></bndbox></object>"
        for name, b in objects
    )
    return (
        f"<annotation><filename>{filename}</filename><size><width>{size[0]}</width><height>{size[1]}</height>"
        f"</size>{objs}</annotation>"
    )


@pytest.fixture
def bad_bccd(tmp_path):
    root = tmp_path / "bccd"
    (root / "BCCD/JPEGImages").mkdir(parents=True)
    (root / "BCCD/Annotations").mkdir()
    (root / "BCCD/ImageSets/Main").mkdir(parents=True)
    for n in range(1, 9):
        Image.new("RGB", (64, 48), (200, 100 + n, 150)).save(root / f"BCCD/JPEGImages/BloodImage_{n:05d}.jpg")
    xml = {
        1: _voc([("WBC", (10, 10, 30, 30)), ("RBC", (0, 0, 5, 5))]),  # fine
        2: "",  # empty XML
        3: _voc([("WBC", (100, 100, 120, 120)), ("WBC", (5, 5, 20, 20))]),  # first box outside the image
        4: _voc([("WBC", (1, 1, 9, 9))]),  # image without a CSV row
        5: _voc([("WBC", (1, 1, 9, 9))]),  # duplicate ids with different categories
        6: _voc([("WBC", (1, 1, 9, 9)), ("WBC", (20, 20, 40, 40))]),  # two boxes, one label
        7: _voc([("Platelets", (1, 1, 9, 9))]),  # no WBC box
        9: _voc([("WBC", (1, 1, 9, 9))]),  # annotation without an image
    }
    for n, text in xml.items():
        (root / f"BCCD/Annotations/BloodImage_{n:05d}.xml").write_text(text)
    # image 8 has no XML
    (root / "BCCD/ImageSets/Main/train.txt").write_text("BloodImage_00001\nBloodImage_00003\n")
    (root / "BCCD/ImageSets/Main/test.txt").write_text("BloodImage_00005\n")
    rows = [(1, "MONOCYTE"), (3, "EOSINOPHIL, EOSINOPHIL"), (5, "NEUTROPHIL"), (5, "LYMPHOCYTE"), (6, "BASOPHIL"),
            (7, "EOSINOPHIL"), (42, "LYMPHOCYTE"), ("x", "MONOCYTE")]  # fmt: skip
    with open(root / "labels.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([("", "Image", "Category"), *(("", i, c) for i, c in rows)])
    return root


def test_bccd_bad_inputs(bad_bccd, workspace):
    result = ingest("bccd", bad_bccd, workspace, IngestOptions(workers=1, use_cache=False))
    frame = result.frame.set_index("sample_id")
    jpg = "bccd:BCCD/JPEGImages/BloodImage_{:05d}.jpg".format
    xml = "bccd:BCCD/Annotations/BloodImage_{:05d}.xml".format
    assert frame.loc[jpg(1) + "#wbc0", ["label", "label_status", "source_split"]].tolist() == ["MO", "exact", "train"]
    assert frame.loc[xml(2), "status"] == "rejected" and "empty XML" in frame.loc[xml(2), "reason"]
    assert frame.loc[jpg(2), "status"] == "rejected"
    outside = frame.loc[jpg(3) + "#wbc0"]
    assert outside["status"] == "rejected" and "outside the 64x48 image" in outside["reason"]
    inside = frame.loc[jpg(3) + "#wbc1"]
    assert inside["status"] == "ok" and inside["label"] == "EO" and inside["crop_box"].tolist() == [5, 5, 20, 20]
    assert frame.loc[jpg(4) + "#wbc0", "label_status"] == "unlabelled"
    assert "no row in labels.csv" in frame.loc[jpg(4) + "#wbc0", "label_reason"]
    dup = frame.loc[jpg(5) + "#wbc0"]
    assert dup["label_status"] == "conflict" and "listed 2 times" in dup["label_reason"]
    assert set(dup["label_candidates"]) == {"SNE", "BNE", "LY"}
    for key in ("#wbc0", "#wbc1"):
        row = frame.loc[jpg(6) + key]
        assert row["label_status"] == "conflict" and list(row["annotator_labels"]) == ["BASOPHIL", "(no label)"]
    assert frame.loc[jpg(7), "status"] == "auxiliary" and "no WBC box" in frame.loc[jpg(7), "reason"]
    assert not frame.index.str.startswith(jpg(7) + "#").any()
    assert "without a VOC annotation" in frame.loc[jpg(8), "reason"]
    assert "without an image" in frame.loc[xml(9), "reason"]
    notes = " | ".join(result.notes)
    assert "1 of 6 image numbers in labels.csv name no annotated image (e.g. 42)" in notes
    assert "line 9: Image 'x' is not an image number" in notes
    assert "BloodImage_00007: labels.csv names EOSINOPHIL but the XML has no WBC box" in notes
    assert "1 image number(s) appear more than once" in notes


def test_bccd_labels_given_separately(bad_bccd, tmp_path, workspace):
    elsewhere = tmp_path / "tables" / "labels.csv"
    elsewhere.parent.mkdir()
    shutil.move(bad_bccd / "labels.csv", elsewhere)
    options = IngestOptions(workers=1, use_cache=False, adapter_options={"annotations": elsewhere})
    frame = ingest("bccd", bad_bccd / "BCCD", workspace, options).frame.set_index("sample_id")
    assert frame.loc["bccd:JPEGImages/BloodImage_00001.jpg#wbc0", "label"] == "MO"
    with pytest.raises(SourceError, match=r"no such labels\.csv"):
        ingest("bccd", bad_bccd, workspace, IngestOptions(adapter_options={"annotations": tmp_path / "nope.csv"}))
