"""Dedup on real data: the Kaggle re-upload's PBC copies, ground-truth variants, leakage, CLI; and the split of the
same deduplicated real workspace (its session fixture is built once, in one test process)."""

from __future__ import annotations

import hashlib
import io
import itertools
import random
import shutil
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image, ImageEnhance
from typer.testing import CliRunner

from tests.conftest import REAL_DEDUP_PBC_FOLDERS, shared_path
from tests.test_split import _never_straddles
from wbc_data.cli import app
from wbc_data.core.stages import load_view
from wbc_data.core.taxonomy import CLASSES
from wbc_data.dedup.run import DedupOptions, dedup
from wbc_data.ingest.engine import IngestOptions, ingest
from wbc_data.manifest.merge import merge
from wbc_data.split import SplitOptions, run_split

TRANSPOSES = [None, *Image.Transpose.__members__.values()][:8]


@pytest.mark.slow
def test_kaggle_pbc_copies_all_found(real_deduped):
    workspace, result = real_deduped  # four PBC folders + Kaggle + BCCD, deduplicated (defaults but field windows)
    pbc_parent, kaggle = shared_path("pbc"), shared_path("kaggle_cancer_mix")
    pbc_root = pbc_parent / "PBC_dataset_normal_DIB"
    # ground truth straight from disk: Kaggle files whose PBC namesake has the same bytes
    expected = set()
    for folder in ("basophil", "erythroblast", "monocyte"):
        for path in (kaggle / "val" / folder).iterdir():
            twins = list(pbc_root.glob(f"*/{path.name}"))
            if twins and hashlib.sha256(twins[0].read_bytes()).digest() == hashlib.sha256(path.read_bytes()).digest():
                expected.add((f"kaggle-cancer-mix:val/{folder}/{path.name}", f"pbc:{twins[0].relative_to(pbc_root)}"))
    assert len(expected) > 250
    frame = result.frame.set_index("sample_id")
    for kaggle_id, pbc_id in expected:
        assert frame.loc[kaggle_id, "dup_cluster"] == frame.loc[pbc_id, "dup_cluster"], kaggle_id
        # original over derivative: the kept member is a PBC row (a PBC near-twin may win over pbc_id)
        assert not frame.loc[kaggle_id, "dup_keep"]
        assert frame.loc[kaggle_id, "dup_decision"].startswith("drop: duplicate of pbc:")
    file_pairs = result.pairs[result.pairs.kind == "file"]
    in_file_pairs = set(file_pairs.sample_id_a) | set(file_pairs.sample_id_b)
    assert {k for k, _ in expected} | {p for _, p in expected} <= in_file_pairs
    # every row of the unified manifest is still there, with the dedup columns (its own stage file) joined for
    # usable rows; the manifest itself was not rewritten
    from wbc_data.core import manifest
    from wbc_data.core.stages import load_view

    assert "dup_keep" not in manifest.read(workspace.unified_manifest).column_names
    written = load_view(workspace).frame
    pbc_files = sum(1 for folder in REAL_DEDUP_PBC_FOLDERS for _ in (pbc_root / folder).iterdir())
    assert written["source"].value_counts()[["pbc", "kaggle-cancer-mix"]].tolist() == [pbc_files, 1000]
    assert written.loc[written.status == "ok", "dup_keep"].notna().all()
    assert written.loc[written.status != "ok", "dup_keep"].isna().all()
    assert (workspace.reports_dir / "dedup.html").is_file() and (workspace.reports_dir / "dedup_largest.png").is_file()


def crop_box(w: int, h: int, rng: random.Random, most: float = 0.10) -> tuple[int, int, int, int]:
    """Crop up to 10%: a fraction drawn uniformly from [0, 10%] of the width is removed, split at a uniformly
    drawn point between the left and the right side; independently the same for the height (top and bottom)."""
    dx, dy = w * rng.uniform(0, most), h * rng.uniform(0, most)
    left, top = dx * rng.random(), dy * rng.random()
    return round(left), round(top), w - round(dx - left), h - round(dy - top)


def variant(img: Image.Image, kind: str, rng: random.Random) -> Image.Image:
    w, h = img.size
    if kind == "jpeg":
        buffer = io.BytesIO()
        img.save(buffer, "JPEG", quality=rng.randint(50, 95))
        return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    if kind == "resize":
        scale = rng.uniform(0.5, 1.5)
        return img.resize((round(w * scale), round(h * scale)), Image.Resampling.BICUBIC)
    if kind == "crop":
        return img.crop(crop_box(w, h, rng))
    if kind == "colour":
        img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.85, 1.15))
        return ImageEnhance.Contrast(img).enhance(rng.uniform(0.85, 1.15))
    return img.transpose(TRANSPOSES[int(kind[-1])]) if kind[-1] != "0" else img.copy()


def test_accuracy_on_known_variants(workspace, tmp_path):
    """Real PBC cells (8 per class: distinct look-alikes) and known copies of each: the original, a crop of up to
    10% (every base) and 3 other kinds drawn at random; precision and recall of the found pairs >= 0.99."""
    root = shared_path("pbc", "PBC_dataset_normal_DIB")
    rng = random.Random(7)
    folder = tmp_path / "variants"
    truth: dict[str, int] = {}
    bases = [p for cls in ("neutrophil", "lymphocyte", "eosinophil", "monocyte", "basophil", "ig")
             for p in sorted((root / cls).glob("[!.]*.jpg"))[:8]]  # fmt: skip
    kinds = ["jpeg", "resize", "colour", "crop", *[f"d{t}" for t in range(1, 8)]]
    for b, path in enumerate(bases):
        img = Image.open(path).convert("RGB")
        (folder / path.parent.name).mkdir(parents=True, exist_ok=True)
        for kind in ["orig", "crop", *rng.sample(kinds, 3)]:
            name = f"{path.parent.name}/{b:03d}_{kind}.png"
            while f"imagefolder:{name}" in truth:  # a second crop of the same base
                name = name.replace(".png", "x.png")
            (img if kind == "orig" else variant(img, kind, rng)).save(folder / name)
            truth[f"imagefolder:{name}"] = b
    ingest("imagefolder", folder, workspace, IngestOptions(workers=1))
    merge(workspace)
    frame = dedup(workspace, DedupOptions(reports=False)).frame
    cluster = dict(zip(frame.sample_id, frame.dup_cluster, strict=True))
    ids = sorted(truth)
    true_pairs = {(a, b) for a, b in itertools.combinations(ids, 2) if truth[a] == truth[b]}
    found = {(a, b) for a, b in itertools.combinations(ids, 2)
             if not pd.isna(cluster[a]) and cluster[a] == cluster[b]}  # fmt: skip
    assert len(true_pairs) == len(bases) * 10
    recall = len(true_pairs & found) / len(true_pairs)
    precision = len(true_pairs & found) / max(1, len(found))
    missed = sorted(true_pairs - found)[:5]
    assert recall >= 0.99 and precision >= 0.99, (recall, precision, missed, sorted(found - true_pairs)[:5])
    # every crop is matched to its own original (not only through a chain of other copies)
    crops = [i for i in ids if "_crop" in i]
    assert len(crops) >= len(bases)
    missed_crops = [i for i in crops if pd.isna(cluster[i])]
    assert len(missed_crops) <= len(crops) // 100, missed_crops
    # the manifest says which crop matched: a crop variant that is not its cluster's keeper names a crop box
    shown = frame.set_index("sample_id").loc[[i for i in crops if not pd.isna(cluster[i])]]
    matched = shown[~shown["dup_keep"].astype(bool)]["dup_transform"]
    assert len(matched) and matched.str.contains(r"~ crop l\d+ r\d+ t\d+ b\d+").mean() > 0.5, matched.head()


def test_cli_dedup_against_manifest_excludes_leaks(workspace, tmp_path):
    sample = Path(__file__).resolve().parent.parent / "wbc_data" / "sample"
    ingest("pbc", sample / "pbc", workspace, IngestOptions(workers=1))
    merge(workspace)
    # an evaluation set holding a rotated copy of one training image
    train = sorted((sample / "pbc").rglob("*.jpg"))[0]
    eval_dir = tmp_path / "eval" / "cells"
    eval_dir.mkdir(parents=True)
    Image.open(train).transpose(Image.Transpose.ROTATE_90).save(eval_dir / "x.png")
    other = tmp_path / "ws2"
    from wbc_data.core.workspace import Workspace

    eval_ws = Workspace(other)
    result = ingest("imagefolder", tmp_path / "eval", eval_ws, IngestOptions(workers=1))
    runner = CliRunner()
    out = runner.invoke(app, ["dedup", "-w", str(workspace.root), "--against", str(result.manifest_path),
                              "--exclude-leaks"])  # fmt: skip
    assert out.exit_code == 0, out.output
    from wbc_data.core.stages import load_view

    frame = load_view(workspace).frame.set_index("source_path")
    source_path = train.relative_to(sample / "pbc" / "PBC_dataset_normal_DIB").as_posix()
    assert frame.loc[source_path, "leak_match"] == "imagefolder:cells/x.png"
    assert not frame.loc[source_path, "dup_keep"] and frame.loc[source_path, "dup_decision"].startswith("drop: leak")
    assert frame.leak_match.notna().sum() == 1
    bad = runner.invoke(app, ["dedup", "-w", str(workspace.root), "--against", str(tmp_path / "nope")])
    assert bad.exit_code == 2 and "nope" in bad.output


def test_dedup_against_a_flat_folder_finds_its_copies_and_an_unreadable_one_is_an_error(workspace, tmp_path):
    """An evaluation set is often one flat folder of images (WBCBench's test set): its images are compared, not
    rejected for sitting outside class folders (they were, and the audit reported 0 leaks); a folder with no image
    is an error, not a clean bill."""
    sample = Path(__file__).resolve().parent.parent / "wbc_data" / "sample"
    ingest("pbc", sample / "pbc", workspace, IngestOptions(workers=1))
    merge(workspace)
    cells = sorted((sample / "pbc").rglob("*.jpg"))[:3]
    flat = tmp_path / "test_images"
    flat.mkdir()
    for k, cell in enumerate(cells):
        shutil.copy(cell, flat / f"{k:08d}.jpg")
    runner = CliRunner()
    out = runner.invoke(app, ["dedup", "-w", str(workspace.root), "--against", str(flat), "--no-regions"])
    assert out.exit_code == 0, out.output
    from wbc_data.core.stages import load_view

    frame = load_view(workspace).frame
    assert frame.leak_match.notna().sum() == 3, frame.leak_match.dropna()
    empty = tmp_path / "no_images"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an image")
    bad = runner.invoke(app, ["dedup", "-w", str(workspace.root), "--against", str(empty)])
    assert bad.exit_code == 2 and "no image could be read" in bad.output and "no_images" in bad.output


def test_cli_all_pairs_registers_every_candidate_and_gives_the_same_clusters(workspace, tmp_path, monkeypatch):
    """``--all-pairs`` reaches the stage (every candidate registered, none deferred) and, on the sample's real cells
    with augmented copies, finds the clusters of the default (pairs inside a set of copies deferred)."""
    import shutil

    from tests.test_dedup_fast import sample_cells_with_copies
    from wbc_data.dedup import run as run_module

    sample_cells_with_copies(tmp_path, workspace, cells=16, originals=3, copies=4, seed=3)
    seen = []
    real_dedup = run_module.dedup

    def recording(ws, options, progress=None):
        result = real_dedup(ws, options, progress)
        seen.append((options.all_pairs, result.findings["candidates inside a copy set, not registered"]))
        return result

    monkeypatch.setattr(run_module, "dedup", recording)
    clusters = []
    for flags in (["--all-pairs"], []):
        shutil.rmtree(workspace.root / "cache", ignore_errors=True)
        out = CliRunner().invoke(app, ["dedup", "-w", str(workspace.root), "-j", "1", *flags])
        assert out.exit_code == 0, out.output
        frame = load_view(workspace).frame.dropna(subset=["dup_cluster"])
        clusters.append({frozenset(ids) for _, ids in frame.groupby("dup_cluster")["sample_id"]})
    assert seen[0] == (True, 0) and seen[1][0] is False and seen[1][1] > 0
    assert clusters[0] == clusters[1] and len(clusters[0]) >= 3


def test_real_distinct_cells_that_once_matched_through_a_crop_stay_apart(tmp_path):
    """Two distinct real cells reached correlation 0.903-0.906 through a refined crop (found by eye on the
    borderline contact sheet): an eosinophil vs a basophil, a promyelocyte vs an AML-LMU myeloblast."""
    import shutil

    from wbc_data.core.labelmap import LabelMap
    from wbc_data.core.workspace import Workspace
    from wbc_data.dedup.run import DedupOptions, dedup
    from wbc_data.ingest.engine import IngestOptions, ingest
    from wbc_data.manifest.merge import merge

    pairs = [
        (shared_path("pbc", "PBC_dataset_normal_DIB", "eosinophil", "EO_668693.jpg"),
         shared_path("kaggle_cancer_mix", "val", "basophil", "BA_681430.jpg")),
        (shared_path("pbc", "PBC_dataset_normal_DIB", "ig", "PMY_337188.jpg"),
         shared_path("kaggle_cancer_mix", "val", "myeloblast", "MYO_0323.jpg")),
    ]  # fmt: skip
    root = tmp_path / "cells"
    for k, (a, b) in enumerate(pairs):
        (root / f"c{k}").mkdir(parents=True)
        shutil.copy(a, root / f"c{k}" / a.name)
        shutil.copy(b, root / f"c{k}" / b.name)
        with Image.open(a) as image:  # a real 6% crop of the first cell must still be found
            w, h = image.size
            image.crop((int(0.06 * w), 0, w, h)).save(root / f"c{k}" / "crop.png")
    ws = Workspace(tmp_path / "ws")
    ingest("imagefolder", root, ws, IngestOptions(workers=1, label_map=LabelMap.from_dict({"c0": "EO", "c1": "PMY"})))
    merge(ws)
    result = dedup(ws, DedupOptions(reports=False))
    names = {frozenset(p.split("/")[-1] for p in (r.sample_id_a, r.sample_id_b)) for r in result.pairs.itertuples()}
    for a, b in pairs:
        assert frozenset({a.name, b.name}) not in names
        assert frozenset({a.name, "crop.png"}) in names


@pytest.mark.slow
def test_real_pbc_kaggle_bccd_split_never_leaks(real_deduped):
    ws = real_deduped[0]  # four PBC folders + the Kaggle re-upload + BCCD, deduplicated
    result = run_split(ws, SplitOptions(val=0.15, test=0.15, seed=0))
    frame = load_view(ws).frame
    ok = frame[frame["status"] == "ok"]
    for column in ("parent_id", "group_id", "dup_cluster", "split_unit"):
        _never_straddles(ok, column)
    # every Kaggle copy of a PBC file shares its original's split (they are one duplicate cluster)
    kaggle = ok[(ok["source"] == "kaggle-cancer-mix") & ok["dup_cluster"].notna()]
    by_cluster = ok.dropna(subset=["dup_cluster"]).groupby("dup_cluster")["split_unit"].nunique()
    assert len(kaggle) > 250 and (by_cluster == 1).all()
    # validation and test: exact, real, kept rows only
    held = ok[ok["split"].isin(["val", "test"])]
    assert (held["label_status"] == "exact").all() and held["dup_keep"].all()
    assert (ok.loc[ok["label_status"] != "exact", "split"].isin(["train", "excluded"])).all()
    # almost every unit is a single image here: every class within one image of its ideal share
    singles = ok[ok["split_unit"] == ok["sample_id"]]
    assert len(singles) > 3000
    table = result.table
    for cls in CLASSES:
        total = int(table.loc[cls, ["train", "val", "test"]].sum())
        for split, share in (("val", 0.15), ("test", 0.15)):
            assert abs(int(table.loc[cls, split]) - share * total) <= 1.0, (cls, split)
    assert (ws.reports_dir / "split.png").is_file() and (ws.reports_dir / "split.html").is_file()
