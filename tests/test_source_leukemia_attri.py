"""LeukemiaAttri / LLD: generated fixtures in the COCO and the YOLO-with-attributes forms, with bad inputs."""

from __future__ import annotations

import json

from PIL import Image

from wbc_data.ingest.engine import IngestOptions, ingest

W, H = 80, 60


def _image(path, shade=100):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (W, H), (shade, 80, 170)).save(path)


def _coco(root):
    subset = root / "H_100x_C1"
    for name in ("f1.jpg", "f2.jpg", "f3.jpg"):
        _image(subset / "Images" / "train" / name)
    _image(subset / "Images" / "train" / "stray.jpg")  # on disk, in no JSON
    train = {
        "images": [{"id": 1, "file_name": "f1.jpg", "width": W, "height": H},
                   {"id": 2, "file_name": "f2.jpg", "width": W, "height": H},
                   {"id": 3, "file_name": "f3.jpg", "width": W, "height": H},
                   {"id": 4, "file_name": "gone.jpg", "width": W, "height": H}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 1, "bbox": [5, 5, 20, 20], "attributes": [1, 0, 2, 1, 0, 1]},
            {"id": 11, "image_id": 1, "category_id": 4, "bbox": [40, 10, 20, 20]},
            {"id": 12, "image_id": 2, "category_id": 3, "bbox": [200, 200, 10, 10]},  # outside the image
            {"id": 13, "image_id": 2, "category_id": 5, "bbox": [0, 0, 10, 10]},
            {"id": 14, "image_id": 9, "category_id": 7, "bbox": [0, 0, 10, 10]},  # image not listed
            {"id": 15, "image_id": 2, "category_id": 42, "bbox": [0, 0, 10, 10]},  # unknown category
        ],
        "categories": [{"id": i, "name": n} for i, n in enumerate(
            ["None", "Myeloblast", "Lymphoblast", "Neutrophil", "Atypical lymphocyte", "Promonocyte"])],
    }  # fmt: skip
    (subset / "Annotations").mkdir()
    (subset / "Annotations" / "train.json").write_text(json.dumps(train))
    (subset / "Annotations" / "test.json").write_text("{not json")
    return subset


def test_coco_form(tmp_path, workspace):
    root = tmp_path / "LeukemiaAttri"
    _coco(root)
    result = ingest("leukemia-attri", root, workspace, IngestOptions(workers=1, use_cache=False))
    frame = result.frame.set_index("sample_id")
    crop = "leukemia-attri:H_100x_C1/Images/train/{}#ann{}".format
    first = frame.loc[crop("f1.jpg", 10)]
    assert (first["label"], first["label_status"], first["source_split"]) == ("BL", "exact", "train")
    assert first["crop_box"].tolist() == [5, 5, 25, 25]
    extra = json.loads(first["extra"])
    assert (extra["microscope"], extra["magnification"], extra["camera"]) == ("HCM (high-cost)", "100x", "C1")
    assert extra["attributes"] == [1, 0, 2, 1, 0, 1]
    assert frame.loc[crop("f1.jpg", 11), "label"] == "VLY"
    outside = frame.loc[crop("f2.jpg", 12)]
    assert outside["status"] == "rejected" and "outside the 80x60 image" in outside["reason"]
    assert frame.loc[crop("f2.jpg", 13), "label_status"] == "excluded"  # Promonocyte: no WBCBench class
    assert frame.loc[crop("f2.jpg", 15), "label_status"] == "unmapped"
    assert frame.loc["leukemia-attri:H_100x_C1/Images/train/f3.jpg", "reason"] == "field with no box"
    assert frame.loc["leukemia-attri:H_100x_C1/Images/train/f1.jpg", "group_id"] == first["group_id"]
    assert "named by no COCO" in frame.loc["leukemia-attri:H_100x_C1/Images/train/stray.jpg", "reason"]
    assert "not valid JSON" in frame.loc["leukemia-attri:H_100x_C1/Annotations/test.json", "reason"]
    assert "H_100x_C1/Annotations/train.json: 1 of 4 listed images are not on disk" in result.notes
    assert "H_100x_C1/Annotations/train.json: 1 annotation(s) point at an image that is not on disk" in result.notes
    crops = frame[frame["parent_id"].notna()]
    assert len(crops) == 5 and (crops["status"] == "ok").sum() == 4


def test_yolo_form(tmp_path, workspace):
    root = tmp_path / "L_40x_C2"
    _image(root / "images" / "test" / "a.jpg")
    _image(root / "images" / "test" / "b.jpg")  # no label file: a field without cells
    (root / "labels" / "test").mkdir(parents=True)
    (root / "labels" / "test" / "a.txt").write_text(
        "3 0.25 0.5 0.25 0.5 1 2 0 1 1 0\n"  # neutrophil, 20x30 box centred at (20, 30)
        "13 0.75 0.5 0.1 0.2 0 0 0 0 0 0\n"  # basophil
        "9 0.5 0.5 0.2 0.2 1 1\n"  # promyelocyte with only 2 attributes
        "oops\n"
        "\n"
        "20 0.5 0.5 0.1 0.1 0 0 0 0 0 0\n"  # class out of range
    )
    (root / "labels" / "test" / "c.txt").write_text("1 0.5 0.5 0.1 0.1 0 0 0 0 0 0\n")  # no image
    result = ingest("leukemia-attri", root, workspace, IngestOptions(workers=1, use_cache=False))
    frame = result.frame.set_index("sample_id")
    row = "leukemia-attri:images/test/a.jpg#line{}".format
    neutrophil = frame.loc[row(1)]
    assert neutrophil["label_status"] == "coarse" and list(neutrophil["label_candidates"]) == ["SNE", "BNE"]
    assert neutrophil["crop_box"].tolist() == [10, 15, 30, 45] and neutrophil["source_split"] == "test"
    extra = json.loads(neutrophil["extra"])
    assert extra["attributes"] == ["1", "2", "0", "1", "1", "0"] and extra["magnification"] == "40x"
    assert extra["microscope"] == "LCM (low-cost)" and extra["class_index"] == 3
    assert frame.loc[row(2), "label"] == "BA"
    assert (
        frame.loc[row(3), "label"] == "PMY" and frame.loc[row(3), "label_reason"] == "2 attribute value(s) instead of 6"
    )
    assert frame.loc[row(4), "status"] == "rejected" and "expected 'cls cx cy w h" in frame.loc[row(4), "reason"]
    assert frame.loc[row(6), "label_status"] == "unmapped" and frame.loc[row(6), "source_label"] == "class 20"
    assert "no YOLO label file" in frame.loc["leukemia-attri:images/test/b.jpg", "reason"]
    assert "label file without an image" in frame.loc["leukemia-attri:labels/test/c.txt", "reason"]
    assert frame.loc["leukemia-attri:labels/test/a.txt", "status"] == "auxiliary"
    assert len(frame[frame["parent_id"].notna()]) == 5
