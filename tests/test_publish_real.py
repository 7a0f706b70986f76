"""Publish a manifest built from real ../shared/data images (a slice of the PBC half, 80 BCCD fields with their
crops, the Kaggle re-upload's copies of those PBC files and its AML-LMU cells) to a folder, and load it back with
`datasets.load_dataset(folder)`: rows per split, labels, ClassLabel names, provenance, pixel-identical images."""

from __future__ import annotations

import hashlib
import io
import shutil

import numpy as np
import pytest
from PIL import Image

from benchmarks.region import bccd_subset
from tests.conftest import shared_path
from wbc_data.core.stages import load_view
from wbc_data.core.taxonomy import CLASSES
from wbc_data.core.workspace import Workspace
from wbc_data.dedup.run import DedupOptions, dedup
from wbc_data.imaging.decode import decode_rgb
from wbc_data.imaging.signatures import pixel_hash
from wbc_data.ingest.engine import IngestOptions, ingest
from wbc_data.io.pixels import PixelLoader, row_ref
from wbc_data.manifest.merge import merge
from wbc_data.publish import PublishOptions, publish
from wbc_data.publish.rows import choose_rows
from wbc_data.split import SplitOptions, run_split

PER_FOLDER = 8  # PBC files per class folder (plus the twins of the Kaggle files taken)
BCCD_FIELDS = 80  # real BCCD fields, each with its WBC crops
KAGGLE = {"basophil": 4, "monocyte": 4, "erythroblast": 2, "myeloblast": 6, "seg_neutrophil": 6}


def real_slice(tmp):
    """Copies in the original layouts: PBC folders, Kaggle val folders whose PBC twins are in the PBC copy."""
    pbc = shared_path("pbc", "PBC_dataset_normal_DIB")
    kaggle = shared_path("kaggle_cancer_mix", "val")
    pbc_copy, kaggle_copy = tmp / "pbc" / "PBC_dataset_normal_DIB", tmp / "kaggle" / "val"
    for folder in sorted(p for p in pbc.iterdir() if p.is_dir()):
        (pbc_copy / folder.name).mkdir(parents=True)
        for path in sorted(folder.glob("*.jpg"))[:PER_FOLDER]:
            shutil.copy2(path, pbc_copy / folder.name / path.name)
    for folder, count in KAGGLE.items():
        (kaggle_copy / folder).mkdir(parents=True)
        taken = 0
        for path in sorted((kaggle / folder).iterdir()):
            twin = pbc / folder / path.name
            if folder in ("myeloblast", "seg_neutrophil") or twin.is_file():
                shutil.copy2(path, kaggle_copy / folder / path.name)
                if twin.is_file():
                    shutil.copy2(twin, pbc_copy / folder / twin.name)
                taken += 1
            if taken == count:
                break
    return tmp / "pbc", tmp / "kaggle"


@pytest.mark.slow
def test_real_images_publish_and_load_back_pixel_identical(tmp_path):
    import datasets

    pbc, kaggle = real_slice(tmp_path)
    ws = Workspace(tmp_path / "ws")
    ingest("pbc", pbc, ws, IngestOptions(workers=2))
    bccd = shared_path("bccd")
    fields = sorted(p.stem for p in (bccd / "BCCD" / "JPEGImages").glob("*.jpg"))[:BCCD_FIELDS]
    ingest("bccd", bccd_subset(bccd, tmp_path / "bccd", fields), ws, IngestOptions(workers=2))
    ingest("kaggle-cancer-mix", kaggle, ws, IngestOptions(workers=2))
    merge(ws)
    dedup(ws, DedupOptions(workers=2, reports=False))
    run_split(ws, SplitOptions(val=0.15, test=0.15, seed=0))
    out = tmp_path / "published"
    result = publish(ws, PublishOptions("my-lab/wbc-real", dry_run=True, out=out))
    assert result.plan.decision.licence_id == "cc-by-4.0"  # PBC CC BY 4.0, BCCD MIT, the Kaggle mix attribution-only

    datasets.disable_progress_bars()
    dd = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf-cache"))
    view = load_view(ws)
    expected = choose_rows(view, include_synthetic=False)
    assert list(dd) == ["train", "validation", "test"]
    for split in dd:
        want = expected.split(split)
        assert dd[split].num_rows == len(want) > 0
        assert dd[split]["sample_id"] == want["sample_id"].tolist()
        assert dd[split]["label"] == [CLASSES.index(c) for c in want["label"]]
        assert dd[split].features["label"].names == list(CLASSES)
    published = {s: set(dd[s]["source"]) for s in dd}
    assert set().union(*published.values()) == {"pbc", "bccd", "kaggle-cancer-mix"}
    # dedup dropped the Kaggle copies of PBC files: only its AML-LMU cells (blasts, segmented neutrophils) remain
    kaggle_rows = [r for s in dd for r in dd[s].select_columns(["source", "source_path", "licence"])
                   if r["source"] == "kaggle-cancer-mix"]  # fmt: skip
    assert kaggle_rows and all(r["source_path"].split("/")[1] in ("myeloblast", "seg_neutrophil") for r in kaggle_rows)
    kaggle_licence = set(view.frame.loc[view.frame.source == "kaggle-cancer-mix", "licence"])
    assert {r["licence"] for r in kaggle_rows} == kaggle_licence

    frame = view.frame.set_index("sample_id")
    loader = PixelLoader.for_workspace(ws)
    crops = files = 0
    for split in dd:
        raw = dd[split].cast_column("image", datasets.Image(decode=False))
        for i, row in enumerate(raw):
            m = frame.loc[row["sample_id"]]
            assert row["source_label"] == m["source_label"] and row["citation"] == m["citation"]
            assert row["group_id"] == m["group_id"] and row["label_status"] == "exact" and not row["is_synthetic"]
            data = row["image"]["bytes"]
            assert pixel_hash(decode_rgb(data).rgb) == m["pixel_hash"], row["sample_id"]
            want = np.asarray(loader.open(row_ref(m.to_dict() | {"sample_id": row["sample_id"]})))
            assert np.array_equal(np.asarray(dd[split][i]["image"].convert("RGB")), want), row["sample_id"]
            if m["crop_box"] is None:
                files += 1
                assert hashlib.sha256(data).hexdigest() == m["sha256"]  # the JPEG as published by its authors
            else:
                crops += 1
                assert Image.open(io.BytesIO(data)).format == "PNG" and row["parent_id"] == m["parent_id"]
    assert crops > 20 and files > 50
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "Shenggan. BCCD Dataset" in card and "Acevedo A." in card and "Matek C." in card
