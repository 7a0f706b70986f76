"""Issue 9: dedup on augmented re-uploads. Ground truth is generated from real images (PBC cells and BCCD fields
in ../shared/data, or the BCCD fields of the built-in sample): copies at any angle with filled corners, shifted,
zoomed, mirrored, recompressed and downscaled (``benchmarks/augment.py``), mixed with distinct real images of the
same class. Small on purpose: each test runs in seconds."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from benchmarks.augment import ACCURACY_LABEL_MAP, Augmentation, augment, augmented_set, load_rgb, pair_scores
from tests.conftest import shared_path
from wbc_data.core.labelmap import LabelMap
from wbc_data.core.workspace import Workspace
from wbc_data.dedup.confirm import RESULT_FIELDS
from wbc_data.dedup.linkage import COPY, NONE, OVERLAP, PairTable, copy_relation, copy_sets
from wbc_data.dedup.run import DedupOptions, dedup
from wbc_data.ingest.engine import IngestOptions, ingest
from wbc_data.io.resources import sample_dir
from wbc_data.manifest.merge import merge


def run_imagefolder(root: Path, ws: Workspace, label_map: dict | None = None, **options) -> pd.DataFrame:
    """Ingest ``root`` as an imagefolder, merge, dedup; the participating rows keyed by their relative path."""
    opts = IngestOptions(workers=1, label_map=LabelMap.from_dict(label_map) if label_map else None)
    ingest("imagefolder", root, ws, opts)
    merge(ws)
    frame = dedup(ws, DedupOptions(reports=False, workers=1, **options)).frame
    return frame.set_index(frame["sample_id"].str.split(":", n=1).str[1])


def test_augmented_copies_of_real_cells_and_fields(tmp_path, workspace):
    """PBC cells of six classes and BCCD fields, each with 4 augmented copies, among distinct cells of the same
    classes and distinct fields: pair recall >= 0.95, precision >= 0.99, no cluster holds two originals."""
    pbc = shared_path("pbc", "PBC_dataset_normal_DIB")
    bccd = shared_path("bccd", "BCCD", "JPEGImages")
    truth = augmented_set(tmp_path / "set", pbc, bccd, cells_per_class=2, fields=3, copies=4, distinct_per_class=3,
                          distinct_fields=4, seed=11)  # fmt: skip
    frame = run_imagefolder(tmp_path / "set", workspace, ACCURACY_LABEL_MAP)
    scores = pair_scores(truth, frame["dup_cluster"].to_dict())
    assert scores["true pairs"] == 15 * 10  # 15 originals, each with 4 copies: 10 pairs
    assert scores["recall"] >= 0.95 and scores["precision"] >= 0.99, scores
    assert scores["mixed clusters"] == 0, scores
    # every copy is dropped in favour of its original's set (one kept row per original)
    for original in {o for o in truth.values() if o}:
        rows = frame.loc[[name for name, o in truth.items() if o == original]]
        assert rows["dup_keep"].sum() == 1, rows[["dup_cluster", "dup_decision"]]


def test_dense_smear_fields_do_not_collapse(tmp_path, workspace):
    """30 real BCCD fields (one kind of smear, same stain and scale: look-alikes) with one augmented copy each:
    30 clusters of two, each copy with its own field, never one big cluster."""
    images = shared_path("bccd", "BCCD", "JPEGImages")
    rng = np.random.default_rng(5)
    files = sorted(images.glob("*.jpg"))
    picked = [files[k] for k in rng.choice(len(files), 30, replace=False)]
    root = tmp_path / "fields" / "smear"
    root.mkdir(parents=True)
    for path in picked:
        shutil.copy(path, root / path.name)
        (root / f"{path.stem}_copy.jpg").write_bytes(augment(load_rgb(path), Augmentation.draw(rng)))
    frame = run_imagefolder(tmp_path / "fields", workspace)
    cluster = frame["dup_cluster"]
    for path in picked:
        a, b = cluster[f"smear/{path.name}"], cluster[f"smear/{path.stem}_copy.jpg"]
        assert not pd.isna(a) and a == b, path.name
    sizes = cluster.dropna().value_counts()
    assert sizes.max() == 2 and len(sizes) == 30, sizes.head()


def test_crop_and_rotated_copy_of_its_parent_field_are_linked(tmp_path, workspace):
    """BCCD (the built-in sample: 11 real fields, one WBC crop each) and, from another source, a copy of one field
    rotated by 143 degrees, zoomed 0.9x and halved: the copy and the field's WBC crop share a cluster and both
    name the field in ``dup_derived_from``; the field is marked as a field, never kept or dropped."""
    bccd = sample_dir() / "bccd"
    ingest("bccd", bccd, workspace, IngestOptions(workers=1))
    field_path = bccd / "BCCD" / "JPEGImages" / "BloodImage_00017.jpg"
    aug = Augmentation(angle=143.0, zoom=0.9, shift=(0.04, -0.06), fill=(0, 0, 0), mirror=True, downscale=0.5,
                       quality=80)  # fmt: skip
    (tmp_path / "up" / "cells").mkdir(parents=True)
    (tmp_path / "up" / "cells" / "copy.jpg").write_bytes(augment(load_rgb(field_path), aug))
    ingest("imagefolder", tmp_path / "up", workspace, IngestOptions(workers=1))
    merge(workspace)
    frame = dedup(workspace, DedupOptions(reports=False, workers=1)).frame.set_index("sample_id")
    fields = frame[frame["status"] == "auxiliary"]
    field_id = fields.index[fields["source_path"].str.endswith("BloodImage_00017.jpg")][0]
    crops = frame.index[(frame["parent_id"] == field_id) & (frame["status"] == "ok")]
    copy = frame.loc["imagefolder:cells/copy.jpg"]
    assert len(crops) >= 1
    assert not pd.isna(copy["dup_cluster"]) and copy["dup_derived_from"] == field_id
    for crop in crops:
        assert frame.loc[crop, "dup_cluster"] == copy["dup_cluster"]
        assert frame.loc[crop, "dup_derived_from"] == field_id
    assert pd.isna(frame.loc[field_id, "dup_keep"]) and frame.loc[field_id, "dup_decision"].startswith("field image")
    # the other ten fields stay apart from the copy
    assert (frame.loc[fields.index, "dup_cluster"] == copy["dup_cluster"]).sum() == 1


class RecordedProgress:
    """A Progress that keeps what it was told: [(phase, [(done, total), ...]), ...]."""

    def __init__(self) -> None:
        self.phases: list[tuple[str, list[tuple[int, int | None]]]] = []

    def phase(self, name: str, total: int | None = None) -> None:
        self.phases.append((name, []))

    def advance(self, done: int, total: int | None = None, **stats: float) -> None:
        self.phases[-1][1].append((done, total))

    def note(self, text: str) -> None:
        pass


def test_dedup_reports_its_phases_through_the_one_progress_protocol(workspace):
    """dedup takes a core Progress: its phases in order, and inside the counted ones (signatures, registration,
    field windows) absolute counts that end at the phase's total."""
    ingest("bccd", sample_dir() / "bccd", workspace, IngestOptions(workers=1))
    merge(workspace)
    progress = RecordedProgress()
    dedup(workspace, DedupOptions(reports=False, workers=1), progress)
    names = [name for name, _ in progress.phases]
    expected = ["read", "signatures", "hash search", "word neighbours", "verify", "copy sets", "field windows",
                "cluster"]  # fmt: skip
    assert [n for n in names if n in expected] == [n for n in expected for m in names if m == n]
    assert set(expected) <= set(names) and names[0] == "read" and names[-1] == "cluster"
    counted = [(name, ticks) for name, ticks in progress.phases if ticks]
    assert {"signatures", "field windows"} <= {name for name, _ in counted}
    for name, ticks in counted:
        done = [d for d, _ in ticks]
        assert done == sorted(done) and done[-1] == ticks[-1][1] > 0, (name, ticks)


def _results(corr: float, texture: float = 0.95, shift: float = 0.0) -> np.ndarray:
    row = dict.fromkeys(RESULT_FIELDS, 0.0) | {"correlation": corr, "texture": texture, "overlap": 1.0,
                                                "scale": 1.0, "dx": shift}  # fmt: skip
    return np.array([[row[name] for name in RESULT_FIELDS]], np.float32)


def test_a_chain_of_copies_does_not_merge_its_ends():
    """Rows 0-1 and 1-2 are verified copies, 0-2 is not (a chain A~B~C): 2 does not join 0's set."""
    pairs = np.array([[0, 1], [1, 2]])
    table = PairTable.build(3, pairs, np.array([COPY, COPY]), np.concatenate([_results(0.97), _results(0.95)]))
    asked = []

    def register(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        asked.extend(map(tuple, p.tolist()))
        return np.full(len(p), NONE, np.int8), np.concatenate([_results(0.5)] * len(p))

    sets = copy_sets(np.array([0, 1, 2]), table, register)
    assert asked == [(0, 2)]  # 2 was verified against the leader, not accepted through 1
    assert sets.leader.tolist() == [0, 0, 2]


def test_copies_reach_their_original_through_sibling_copies():
    """Many copies of one image: a copy's verified candidates may be other copies only (0 is the original; 1-2,
    2-3 and 3-0 were verified). Copy 1 still finds 0 through them, and is registered against 0 itself."""
    pairs = np.array([[1, 2], [2, 3], [0, 3]])
    table = PairTable.build(4, pairs, np.full(3, COPY), np.concatenate([_results(0.95)] * 3))
    asked = []

    def register(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        asked.extend(map(tuple, p.tolist()))
        return np.full(len(p), COPY, np.int8), np.concatenate([_results(0.96)] * len(p))

    sets = copy_sets(np.array([0, 1, 2, 3]), table, register)
    assert sets.leader.tolist() == [0, 0, 0, 0]
    assert {(0, 1), (0, 2)} <= set(asked)


def test_deferred_pairs_are_registered_only_when_their_rows_end_in_different_sets():
    """Candidates left unregistered because copies already linked their rows (:mod:`spanning`): (1, 2) stays
    unregistered, 1 and 2 both joined 0; (2, 3) is registered after all, since 3 leads a set of its own (0-3 and
    2-3 are not copies), and what it says is kept."""
    pairs = np.array([[0, 1], [0, 2], [1, 3]])
    table = PairTable.build(4, pairs, np.array([COPY, COPY, COPY]), np.concatenate([_results(0.97)] * 3))
    asked = []

    def register(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        asked.extend(map(tuple, p.tolist()))
        return np.full(len(p), NONE, np.int8), np.concatenate([_results(0.5)] * len(p))

    sets = copy_sets(np.array([0, 1, 2, 3]), table, register, deferred=np.array([[2, 1], [3, 2]]))
    assert sets.leader.tolist() == [0, 0, 0, 3]
    assert (2, 3) in asked and (1, 2) not in asked
    assert sets.table.find(np.array([2, 1]), np.array([3, 2])).tolist()[1] == -1 and sets.unregistered == 1
    assert sets.table.find(np.array([2]), np.array([3]))[0] >= 0


def test_a_spanning_forest_is_registered_first_and_linked_pairs_are_deferred():
    """Three copies of one image and a distinct look-alike: the forest (best similarity first) registers 2 of the
    3 sibling pairs, the third is deferred; the look-alike's pair is registered once the forest leaves it apart."""
    from wbc_data.dedup.spanning import verify_candidates

    pairs = np.array([[0, 1], [1, 2], [0, 2], [2, 3], [0, 3]])
    weight = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    copies = {(0, 1), (1, 2), (0, 2)}
    asked = []

    def register(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        asked.append([tuple(x) for x in p.tolist()])
        rel = np.array([COPY if tuple(x) in copies else NONE for x in p.tolist()], np.int8)
        return rel, np.concatenate([_results(0.97 if r == COPY else 0.4) for r in rel])

    verified = verify_candidates(4, pairs, weight, register, register)
    assert asked == [[(0, 1), (1, 2), (2, 3)], [(0, 3)]]
    assert verified.deferred.tolist() == [[0, 2]]


def test_deferred_pairs_across_sets_are_registered_when_the_search_gives_up():
    """After ``max_rounds`` the last pass joins verified leaders only; deferred pairs whose rows ended in different
    sets are still registered (what they say, e.g. an overlapping view, links the sets), not left out."""
    pairs = np.array([[0, 1], [0, 2], [1, 3]])
    table = PairTable.build(4, pairs, np.array([COPY, COPY, COPY]), np.concatenate([_results(0.97)] * 3))

    def register(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.full(len(p), NONE, np.int8), np.concatenate([_results(0.5)] * len(p))

    sets = copy_sets(np.array([0, 1, 2, 3]), table, register, max_rounds=1, deferred=np.array([[2, 1], [3, 2]]))
    assert sets.leader.tolist() == [0, 0, 0, 3]
    assert sets.table.find(np.array([2]), np.array([3]))[0] >= 0
    assert sets.deferred_registered >= 1 and sets.unregistered == 1


def test_different_exact_labels_need_a_strict_copy():
    """A match good enough for unlabelled rows is only an overlap when the exact labels differ, unless it is a
    strict copy (correlation >= 0.95, nearly unshifted)."""
    loose, strict = _results(0.92), _results(0.98)
    same = copy_relation(loose, 96, np.array(["EO"]), np.array(["EO"]))
    differ = copy_relation(loose, 96, np.array(["EO"]), np.array(["BA"]))
    strict_differ = copy_relation(strict, 96, np.array(["EO"]), np.array(["BA"]))
    shifted = copy_relation(_results(0.98, shift=20.0), 96, np.array(["EO"]), np.array(["BA"]))
    assert (same[0], differ[0], strict_differ[0], shifted[0]) == (COPY, OVERLAP, COPY, OVERLAP)


def test_repeated_and_blank_images_finish_and_say_so(tmp_path, workspace):
    """200 rows of one image, 30 all-black and 10 all-white images of many sizes, a few real-looking ones: dedup
    finishes, groups the repeats into one cluster, and reports what it found."""
    root = tmp_path / "bad"
    (root / "a").mkdir(parents=True)
    cell = Image.open(sorted((sample_dir() / "pbc").rglob("EO_*.jpg"))[0]).convert("RGB")
    for k in range(200):
        cell.save(root / "a" / f"same_{k:03d}.png")
    for k in range(30):
        Image.new("RGB", (40 + k, 30 + 2 * k)).save(root / "a" / f"black_{k:02d}.png")
    for k in range(10):
        Image.new("RGB", (50 + k, 50), (255, 255, 255)).save(root / "a" / f"white_{k:02d}.png")
    for k, path in enumerate(sorted((sample_dir() / "pbc").rglob("LY_*.jpg"))[:4]):
        shutil.copy(path, root / "a" / f"other_{k}.jpg")
    ingest("imagefolder", root, workspace, IngestOptions(workers=1))
    merge(workspace)
    result = dedup(workspace, DedupOptions(reports=False, workers=1))
    frame = result.frame.set_index(result.frame["sample_id"].str.split(":", n=1).str[1])
    same = frame.loc[[f"a/same_{k:03d}.png" for k in range(200)], "dup_cluster"]
    assert same.nunique() == 1 and not same.isna().any()
    assert frame.loc[[f"a/same_{k:03d}.png" for k in range(200)], "dup_keep"].sum() == 1
    assert result.findings["largest exact group"] == 200
    assert result.findings["blank"] >= 2  # one representative per blank colour and size group
    assert any("blank image" in note for note in result.notes())
    blank = frame[frame.index.str.contains("black_|white_")]
    assert blank["dup_decision"].str.contains("blank image").any()
    # the four distinct lymphocytes are not linked to anything
    assert frame.loc[[f"a/other_{k}.jpg" for k in range(4)], "dup_cluster"].isna().all()


def test_ctrl_c_during_dedup_leaves_the_previous_results(tmp_path, workspace, monkeypatch):
    from wbc_data.core.stages import load_view
    from wbc_data.dedup import run as run_mod

    root = tmp_path / "cells"
    shutil.copytree(sample_dir() / "pbc" / "PBC_dataset_normal_DIB" / "eosinophil", root / "eosinophil")
    first = run_imagefolder(root, workspace)
    stage = workspace.stage_path("dedup")
    before = {p: p.read_bytes() for p in (stage, workspace.unified_manifest)}
    assert len(first) and stage.is_file()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_mod, "find_relations", interrupted)
    with pytest.raises(KeyboardInterrupt):
        dedup(workspace, DedupOptions(reports=False, workers=1, min_correlation=0.5))
    assert {p: p.read_bytes() for p in before} == before
    assert load_view(workspace).frame["dup_decision"].notna().sum() == len(first)
