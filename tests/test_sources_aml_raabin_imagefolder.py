"""The other issue-2 adapters: AML-LMU (real annotation table + generated RGBA TIFFs), Raabin (both layouts,
generated), imagefolder (the real Kaggle mix)."""

from __future__ import annotations

import collections
import json
import os
import shutil

import pytest
from PIL import Image

from tests.conftest import shared_path
from wbc_data.core.labelmap import LabelMap
from wbc_data.ingest.engine import IngestOptions, ingest
from wbc_data.sources.definition import SourceError

# ------------------------------------------------------------------ AML-LMU

AML_MAP = {"NGS": "SNE", "NGB": "BNE", "LYT": "LY", "LYA": "VLY", "MON": "MO", "EOS": "EO", "BAS": "BA", "MYO": "BL",
           "MOB": "BL", "MYB": "MY", "MMZ": "MMY", "PMO": "PMY", "PMB": "PMY"}  # fmt: skip


def _aml_rows(path):
    rows = []
    for line in path.read_text().splitlines():
        source_path, orig, re1, re2 = line.split()
        rows.append((source_path, orig, re1, re2))
    return rows


def _expected_status(orig, re1, re2):
    """The rule from the issue, written independently: re-annotations kept; disagreement or UNC -> conflict."""
    labels = [orig] + [r for r in (re1, re2) if r != "nan"]
    if len(labels) > 1 and len(set(labels)) > 1:
        return "conflict"
    if orig in ("EBO", "KSC"):
        return "not-leukocyte"
    return "exact"


@pytest.fixture
def aml_tree(tmp_path):
    table = shared_path("aml_lmu", "annotations.dat")
    rows = _aml_rows(table)
    # every re-annotated row of five classes plus a few plain ones: a realistic, small subset
    chosen = [r for r in rows if r[2] != "nan" and r[1] in {"BAS", "EOS", "MYB", "PMO", "LYA", "EBO"}]
    chosen += [r for r in rows if r[2] == "nan"][:15]
    root = tmp_path / "AML-Cytomorphology_LMU"
    for source_path, *_ in chosen:
        (root / source_path).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGBA", (40, 40), (180, 90, 160, 255)).save(root / source_path, "TIFF")
    shutil.copy(table, root / "annotations.dat")
    shutil.copy(shared_path("aml_lmu", "abbreviations.txt"), root / "abbreviations.txt")
    (root / "BAS" / "BAS_9999.tiff").parent.mkdir(exist_ok=True)
    Image.new("RGBA", (40, 40)).save(root / "BAS" / "BAS_9999.tiff", "TIFF")  # not in the table
    return tmp_path, chosen, rows


def test_aml_lmu_annotators_and_conflicts(aml_tree, workspace):
    parent, chosen, rows = aml_tree
    result = ingest("aml-lmu", parent, workspace, IngestOptions(workers=1))
    frame = result.frame.set_index("source_path")
    assert len(frame) == len(chosen) + 3  # images + annotations.dat + abbreviations.txt + the unlisted image
    assert frame.loc["annotations.dat", "status"] == "auxiliary"
    for source_path, orig, re1, re2 in chosen:
        row = frame.loc[source_path]
        assert row.status == "ok" and row["mode"] == "RGBA"
        assert row.label_status == _expected_status(orig, re1, re2), source_path
        if re1 != "nan":
            assert list(row.annotator_labels) == [orig, re1, re2]
        if row.label_status == "exact":
            assert row.label == AML_MAP[orig]
    statuses = collections.Counter(frame.loc[[r[0] for r in chosen], "label_status"])
    assert statuses["conflict"] == sum(_expected_status(*r[1:]) == "conflict" for r in chosen) > 0
    unlisted = frame.loc["BAS/BAS_9999.tiff"]
    assert unlisted.label == "BA" and "not listed" in unlisted.label_reason
    assert any(f"{len(rows) - len(chosen):,} of {len(rows):,} rows" in note for note in result.notes)


def test_aml_lmu_annotations_given_but_missing_is_an_error(aml_tree, workspace):
    parent, _, _ = aml_tree
    with pytest.raises(SourceError, match=r"nowhere\.dat: no such annotation table"):
        ingest(
            "aml-lmu",
            parent,
            workspace,
            IngestOptions(workers=1, adapter_options={"annotations": parent / "nowhere.dat"}),
        )


def test_aml_lmu_myb_is_myelocyte_and_myo_blast():
    from wbc_data.sources.definition import get_definition

    label_map = get_definition("aml-lmu").label_map
    assert label_map.lookup("MYB").label == "MY"
    assert label_map.lookup("MYO").label == "BL"


def test_aml_lmu_annotations_elsewhere_and_malformed(tmp_path, workspace):
    root = tmp_path / "imgs"
    (root / "MON").mkdir(parents=True)
    Image.new("RGBA", (10, 10)).save(root / "MON" / "MON_0001.tiff", "TIFF")
    table = tmp_path / "table.dat"
    table.write_text("MON/MON_0001.tiff MON LYT LYT\nbroken line\nMON/MON_0001.tiff MON nan nan\n")
    result = ingest("aml-lmu", root, workspace, IngestOptions(workers=1, adapter_options={"annotations": table}))
    row = result.frame.set_index("source_path").loc["MON/MON_0001.tiff"]
    assert row.label_status == "conflict" and list(row.label_candidates) == ["LY", "MO"]
    assert any("expected 4 fields" in n for n in result.notes)
    assert any("different labels" in n for n in result.notes)


# ------------------------------------------------------------------ Raabin


def _jpg(path, size=(64, 48), color=(120, 60, 140)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, "JPEG")


def test_raabin_cropped_layout(tmp_path, workspace):
    root = tmp_path / "Raabin-WBC"
    counts = {("Train", "Neutrophil"): 3, ("Train", "Basophil"): 2, ("TestA", "Lymphocyte"): 2,
              ("TestB", "Monocyte"): 1}  # fmt: skip
    for (split, cls), n in counts.items():
        for i in range(n):
            _jpg(root / split / cls / f"95-8-27-1_{i}_6.jpg", color=(i * 40, 30, 90))
    (root / "readme.txt").write_text("x")
    result = ingest("raabin", root, workspace, IngestOptions(workers=1))
    ok = result.frame[result.frame.status == "ok"]
    assert len(ok) == sum(counts.values())
    assert collections.Counter(ok.source_split) == {"Train": 5, "TestA": 2, "TestB": 1}
    neut = ok[ok.source_label == "Neutrophil"]
    assert (neut.label_status == "coarse").all() and list(neut.label_candidates.iloc[0]) == ["SNE", "BNE"]
    assert set(ok[ok.label_status == "exact"].label) == {"BA", "LY", "MO"}
    assert result.frame.set_index("source_path").loc["readme.txt", "status"] == "rejected"


def test_raabin_field_json_layout(tmp_path, workspace):
    root = tmp_path / "fields"
    _jpg(root / "img1.jpg", size=(100, 80))
    cells = {
        "Cell Numbers": 4,
        "Cell_0": {"Label1": "Band", "Label2": "Band", "x1": "10", "x2": "30", "y1": "5", "y2": "25", "Cell_ID": "a"},
        "Cell_1": {"Label1": "Neutrophil", "Label2": "Band", "x1": "50", "x2": "70", "y1": "5", "y2": "30"},
        "Cell_2": {"Label1": "Meta", "Label2": "Meta", "x1": "90", "x2": "120", "y1": "60", "y2": "90"},
        "Cell_3": {"Label1": "Small Lymph", "Label2": "Small Lymph", "x1": "200", "x2": "220", "y1": "5", "y2": "9"},
    }
    (root / "img1.json").write_text(json.dumps(cells))
    (root / "orphan.json").write_text(json.dumps({"Cell Numbers": 0}))
    _jpg(root / "img2.jpg")
    (root / "img2.json").write_text("{not json")
    result = ingest("raabin", root, workspace, IngestOptions(workers=1))
    frame = result.frame.set_index("sample_id")
    field = frame.loc["raabin:img1.jpg"]
    assert field.status == "auxiliary" and field.width == 100
    band = frame.loc["raabin:img1.jpg#Cell_0"]
    assert band.label == "BNE" and list(band.crop_box) == [10, 5, 30, 25] and band.width == 20
    assert band.parent_id == "raabin:img1.jpg" and band.group_id == "raabin:img1.jpg"
    disagree = frame.loc["raabin:img1.jpg#Cell_1"]
    assert disagree.label_status == "conflict" and list(disagree.annotator_labels) == ["Neutrophil", "Band"]
    clamped = frame.loc["raabin:img1.jpg#Cell_2"]
    assert clamped.label == "MMY" and list(clamped.crop_box) == [90, 60, 100, 80]
    outside = frame.loc["raabin:img1.jpg#Cell_3"]
    assert outside.status == "rejected" and "outside the 100x80 image" in outside.reason
    assert frame.loc["raabin:orphan.json"].reason.startswith("annotation without an image")
    assert frame.loc["raabin:img2.json"].reason.startswith("unreadable annotation")
    assert frame.loc["raabin:img2.jpg"].status == "rejected"  # no class folder, annotation unreadable


# ------------------------------------------------------------------ imagefolder


def test_imagefolder_real_kaggle_mix(workspace):
    root = shared_path("kaggle_cancer_mix")
    label_map = LabelMap.from_yaml(os.path.join(os.path.dirname(__file__), "..", "manifests", "label-maps",
                                                "kaggle-cancer-mix.yaml"))  # fmt: skip
    result = ingest("imagefolder", root, workspace, IngestOptions(workers=2, label_map=label_map, name="kmix"))
    frame = result.frame
    expected = {d: len(os.listdir(root / "val" / d)) for d in os.listdir(root / "val")}
    assert len(frame) == sum(expected.values()) and (frame.status == "ok").all()
    assert (frame.source_split == "val").all() and (frame.source == "kmix").all()
    exact = frame[frame.label_status == "exact"].label.value_counts().to_dict()
    assert exact == {"BA": expected["basophil"], "MO": expected["monocyte"], "BL": expected["myeloblast"],
                     "SNE": expected["seg_neutrophil"]}  # fmt: skip
    assert (frame[frame.source_label == "erythroblast"].label_status == "not-leukocyte").all()
    # the PBC copies are byte-identical to PBC's files
    pbc = shared_path("pbc", "PBC_dataset_normal_DIB")
    copies = frame[frame.source_label == "basophil"]
    shared = [r for r in copies.itertuples() if (pbc / "basophil" / r.source_path.split("/")[-1]).exists()]
    assert shared, "expected some Kaggle basophils to be PBC files"
    import hashlib

    for r in shared[:10]:
        assert r.sha256 == hashlib.sha256((pbc / "basophil" / r.source_path.split("/")[-1]).read_bytes()).hexdigest()


def test_imagefolder_top_level_images_are_rejected_or_read_unlabelled_on_request(tmp_path, workspace):
    root = tmp_path / "flat"
    (root / "LY").mkdir(parents=True)
    for name in ("00000001.jpg", "00000002.jpg", "LY/a.jpg"):
        Image.new("RGB", (20, 20), (200, 100, 150)).save(root / name)
    frame = ingest("imagefolder", root, workspace, IngestOptions(workers=1, use_cache=False)).frame
    top = frame[~frame.source_path.str.contains("/")]
    assert (top.status == "rejected").all() and top.reason.str.contains("top_level=unlabelled").all()
    flat = IngestOptions(workers=1, use_cache=False, adapter_options={"top_level": "unlabelled"})
    read = ingest("imagefolder", root, workspace, flat).frame
    top = read[~read.source_path.str.contains("/")]
    assert len(top) == 2 and (top.status == "ok").all() and (top.label_status == "unlabelled").all()
    assert read.set_index("source_path").loc["LY/a.jpg", "source_label"] == "LY"
    with pytest.raises(SourceError, match="top_level=everything: use one of reject, unlabelled"):
        ingest("imagefolder", root, workspace, IngestOptions(workers=1, adapter_options={"top_level": "everything"}))
    with pytest.raises(SourceError, match="no option 'margin'"):
        ingest("imagefolder", root, workspace, IngestOptions(workers=1, adapter_options={"margin": 0.1}))


def test_imagefolder_nested_splits_any_case(tmp_path, workspace):
    root = tmp_path / "dataset2-master"
    for split in ("images/TRAIN", "images/TEST_SIMPLE", "images/test"):
        for cls in ("EOSINOPHIL", "Neutrophil", "mystery"):
            _jpg(root / split / cls / "_0_1.jpeg")
    label_map = LabelMap.from_dict({"eosinophil": "EO", "neutrophil": ["SNE", "BNE"]})
    result = ingest("imagefolder", root, workspace, IngestOptions(workers=1, label_map=label_map))
    frame = result.frame
    assert collections.Counter(frame.source_split) == {"TRAIN": 3, "TEST_SIMPLE": 3, "test": 3}
    assert collections.Counter(frame.label_status) == {"exact": 3, "coarse": 3, "unmapped": 3}


def test_adapter_layout_errors(tmp_path, workspace):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="not a PBC folder"):
        ingest("pbc", tmp_path / "empty", workspace)
    with pytest.raises(SourceError, match="no such folder"):
        ingest("pbc", tmp_path / "nope", workspace)
    with pytest.raises(SourceError, match="unknown source 'pbx'"):
        ingest("pbx", tmp_path, workspace)
