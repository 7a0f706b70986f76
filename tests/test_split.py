"""Splits that never leak: no patient, field, group or duplicate cluster straddles; validation and test hold
real, exact, kept rows only; each source's classes within one image of their ideal share where units are single
images, and a source that comes in patients tested on whole patients; same seed, same split."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.fixtures import mini_bccd
from wbc_data.cli import app
from wbc_data.core import manifest
from wbc_data.core.stages import load_view
from wbc_data.core.taxonomy import CLASSES
from wbc_data.core.workspace import Workspace
from wbc_data.dedup.run import DedupOptions, dedup
from wbc_data.ingest.engine import IngestOptions, ingest
from wbc_data.io.resources import sample_dir
from wbc_data.manifest.merge import merge
from wbc_data.split import SplitOptions, run_split
from wbc_data.split.apportion import apportion_units, fill_slots
from wbc_data.split.units import leak_units

runner = CliRunner()


def _full(rows: list[dict]) -> list[dict]:
    """Rows with every required manifest column (unset ones null)."""
    return [{**manifest.empty_row(), **row} for row in rows]


def _never_straddles(frame: pd.DataFrame, column: str) -> None:
    rows = frame[frame["split"].isin(["train", "val", "test"]) & frame[column].notna()]
    per_key = rows.groupby(column)["split"].nunique()
    assert (per_key == 1).all(), per_key[per_key > 1].head()


def _within_one_of_ideal(frame: pd.DataFrame, shares: dict[str, float]) -> None:
    eligible = frame[frame["split"].isin(["train", "val", "test"]) & (frame["label_status"] == "exact")]
    if "is_synthetic" in eligible.columns:
        eligible = eligible[~eligible["is_synthetic"].fillna(False).astype(bool)]
    for stratum, part in eligible.groupby(["source", "label"]):  # each source's classes
        for split, share in shares.items():
            got = int((part["split"] == split).sum())
            assert abs(got - share * len(part)) <= 1.0, (stratum, split, got, share * len(part))


@pytest.fixture
def sample_ws(tmp_path):
    ws = Workspace(tmp_path / "ws")
    ingest("pbc", sample_dir() / "pbc", ws, IngestOptions(workers=1))
    ingest("kaggle-cancer-mix", sample_dir() / "kaggle_cancer_mix", ws, IngestOptions(workers=1))
    ingest("bccd", mini_bccd(tmp_path / "bccd", fields=8), ws, IngestOptions(workers=1))
    merge(ws)
    dedup(ws, DedupOptions(workers=1, reports=False))
    return ws


def test_sample_split_units_shares_and_seed(sample_ws):
    first = run_split(sample_ws, SplitOptions(seed=1))
    frame = load_view(sample_ws).frame
    ok = frame[frame["status"] == "ok"]
    for column in ("parent_id", "dup_cluster", "split_unit"):
        _never_straddles(ok, column)
    # the two crops of an even-numbered field are one unit
    field = ok[ok["parent_id"] == "bccd:BCCD/JPEGImages/BloodImage_00002.jpg"]
    assert len(field) == 2 and field["split"].nunique() == 1 and field["split_unit"].nunique() == 1
    # a dropped Kaggle copy is excluded, never trained on twice
    dropped = ok[~ok["dup_keep"].astype(bool)]
    assert len(dropped) == 6 and (dropped["split"] == "excluded").all()
    assert (dropped["split_note"] == "duplicate not kept by dedup").all()
    _within_one_of_ideal(ok[ok["parent_id"].isna()], {"val": 0.15, "test": 0.15})
    # same seed, same split; another seed, another split
    again = run_split(sample_ws, SplitOptions(seed=1))
    assert again.frame["split"].tolist() == first.frame["split"].tolist()
    other = run_split(sample_ws, SplitOptions(seed=2))
    assert other.frame["split"].tolist() != first.frame["split"].tolist()


def test_coarse_synthetic_and_patients(tmp_path):
    """A generated manifest: patients with several images, coarse rows inside val/test patients, synthetic rows."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(600):
        cls = CLASSES[i % 5]
        status = "coarse" if i % 17 == 0 else "exact"
        rows.append({
            "sample_id": f"s:{i:04d}", "source": "s", "source_root": "s", "source_path": f"{i}.png",
            "group_id": f"s:patient:{i // 6}", "patient_id": f"{i // 6}", "status": "ok",
            "label": cls if status == "exact" else None, "label_status": status,
            "label_candidates": ["SNE", "BNE"] if status == "coarse" else None,
            "pixel_hash": f"{rng.integers(1 << 62):x}", "is_synthetic": False,
        })  # fmt: skip
    for i in range(40):
        rows.append({"sample_id": f"synth:{i}", "source": "synth", "source_root": "synth",
                     "source_path": f"{i}.png", "status": "ok", "label": "PC", "label_status": "exact",
                     "pixel_hash": f"x{i}", "is_synthetic": True})  # fmt: skip
    ws = Workspace(tmp_path / "ws")
    manifest.write(_full(rows), ws.unified_manifest)
    with pytest.raises(Exception, match="run `wbc-data dedup` first"):
        run_split(ws)
    result = run_split(ws, SplitOptions(without_dedup=True, seed=4))
    frame = result.frame
    _never_straddles(frame, "patient_id")
    assert (frame.loc[frame["is_synthetic"], "split"] == "train").all()
    coarse = frame[frame["label_status"] == "coarse"]
    assert set(coarse["split"]) <= {"train", "excluded"} and (coarse["split"] == "excluded").any()
    assert set(coarse.loc[coarse["split"] == "excluded", "split_note"]) == {"coarse label in a val/test unit"}
    # PC exists only as synthetic rows: train only, counted apart in the report
    assert result.table.loc["PC", "synthetic (train)"] == 40 and result.table.loc["PC", "val"] == 0


def test_keep_source_splits(tmp_path):
    rows = []
    for i in range(300):
        official = ["train", "train", "train", "train", "TestA", "TestB"][i % 6]
        rows.append({"sample_id": f"r:{i}", "source": "raabin", "source_root": "raabin", "source_path": f"{i}.jpg",
                     "status": "ok", "label": CLASSES[i % 3], "label_status": "exact", "source_split": official,
                     "group_id": f"r:{i}", "pixel_hash": str(i)})  # fmt: skip
    ws = Workspace(tmp_path / "ws")
    manifest.write(_full(rows), ws.unified_manifest)
    frame = run_split(ws, SplitOptions(without_dedup=True, keep_source_splits=True)).frame
    official = frame["source_split"]
    assert (frame.loc[official.isin(["TestA", "TestB"]), "split"] == "test").all()
    assert (frame.loc[official == "train", "split"].isin(["train", "val"])).all()
    assert (frame.loc[official == "train", "split"] == "val").sum() >= 15  # validation comes from official train


def test_folds_never_straddle_and_are_as_balanced_as_sklearn(sample_ws):
    from sklearn.model_selection import StratifiedGroupKFold

    result = run_split(sample_ws, SplitOptions(folds=3, seed=0))
    frame = result.frame
    pool = frame[frame["split"].isin(["train", "val"]) & frame["fold"].notna()]
    assert set(pool["fold"].astype(int)) == {0, 1, 2}
    _never_straddles(pool.assign(split=pool["fold"].astype(str)), "split_unit")
    assert frame.loc[frame["split"] == "test", "fold"].isna().all()
    # balance per class: ours is never worse than scikit-learn's StratifiedGroupKFold on the same units
    eligible = pool[(pool["label_status"] == "exact") & pool["dup_keep"].astype(bool)]
    ours = pd.crosstab(eligible["label"], eligible["fold"])
    theirs = np.zeros_like(ours.to_numpy())
    splitter = StratifiedGroupKFold(n_splits=3, shuffle=True, random_state=0)
    labels = eligible["label"].to_numpy()
    for k, (_, held) in enumerate(splitter.split(labels, labels, eligible["split_unit"].to_numpy())):
        theirs[:, k] = pd.Series(labels[held]).value_counts().reindex(ours.index, fill_value=0).to_numpy()
    ideal = ours.sum(axis=1).to_numpy()[:, None] / 3
    assert np.abs(ours.to_numpy() - ideal).max() <= max(1.0, np.abs(theirs - ideal).max())


def test_rare_class_note_and_cli_errors(sample_ws):
    result = runner.invoke(app, ["split", "-w", str(sample_ws.root), "--val", "0.6", "--test", "0.5"])
    assert result.exit_code == 2 and "leave nothing for train" in result.output
    result = runner.invoke(app, ["split", "-w", str(sample_ws.root), "--by", "nurse"])
    assert result.exit_code == 2 and "--by nurse" in result.output
    result = runner.invoke(app, ["split", "-w", str(sample_ws.root), "--val", "0.05", "--test", "0.05"])
    assert result.exit_code == 0, result.output
    # the sample keeps PMY rare (7 images): 5% shares leave it out of a held-out split, and the output says so
    assert re.search(r"PMY: 7 eligible image\(s\), none in (val|test)", " ".join(result.output.split()))
    assert "split results:" in result.output and (sample_ws.reports_dir / "split.md").is_file()


# --------------------------------------------------------------------------- the apportionment itself


def _greedy_slots(deficit: np.ndarray, m: int, order: np.ndarray) -> np.ndarray:
    """The item-by-item greedy that fill_slots must equal."""
    got = np.zeros(len(deficit), dtype=np.int64)
    rank = {b: i for i, b in enumerate(order)}
    for _ in range(m):
        best = max(range(len(deficit)), key=lambda b: (deficit[b] - got[b], -rank[b]))
        got[best] += 1
    return got


def test_fill_slots_equals_the_sequential_greedy():
    rng = np.random.default_rng(7)
    for _ in range(300):
        bins = int(rng.integers(2, 7))
        deficit = rng.normal(3, 4, bins)
        m = int(rng.integers(0, 25))
        order = rng.permutation(bins)
        assert fill_slots(deficit, m, order).tolist() == _greedy_slots(deficit, m, order).tolist()


def test_single_image_units_land_within_one_of_ideal_for_any_shares():
    rng = np.random.default_rng(11)
    for _ in range(50):
        n_units, n_classes = int(rng.integers(1, 400)), int(rng.integers(1, 6))
        counts = np.zeros((n_units, n_classes), dtype=np.int64)
        counts[np.arange(n_units), rng.integers(0, n_classes, n_units)] = 1
        shares = rng.dirichlet(np.ones(int(rng.integers(2, 6))))
        bins = apportion_units(counts, shares, seed=int(rng.integers(1000)))
        for c in range(n_classes):
            total = counts[:, c].sum()
            got = np.bincount(bins[counts[:, c] == 1], minlength=len(shares))
            assert np.all(np.abs(got - shares * total) <= 1.0 + 1e-9), (got, shares * total)


def test_leak_units_follow_chains():
    frame = pd.DataFrame({
        "source": ["a", "a", "a", "b", "b", "b"],
        "parent_id": ["f1", "f1", None, None, None, None],
        "group_id": ["g1", "g1", "g2", "g3", "g4", "g5"],
        "patient_id": [None, None, "7", "7", "7", None],
        "dup_cluster": pd.array([None, 3, None, None, None, 3], dtype="Int64"),
    })  # fmt: skip
    # row 1 and 5 are copies; rows 3 and 4 share patient 7 of source b (row 2's patient 7 is source a's)
    units = leak_units(frame, "patient")
    assert units[0] == units[1] == units[5] and units[3] == units[4] and units[2] not in (units[0], units[3])
    units = leak_units(frame, "group")
    assert units[3] != units[4]


def test_a_source_of_patients_is_tested_beside_a_source_of_single_cells(tmp_path):
    """Real PBC cells (one unit each) and real APL/AML patients (one unit each, dozens of cells) added later: every
    source gets its share of val and test, in whole patients, and adding a source moves no row of another.
    Stratified by class alone, PBC filled every class's val and test and the 21 APL/AML patients all went to train
    (the real split of both, measured: 0 of 2,455 APL/AML cells tested); with one shuffle of all units, adding a
    source moved a third of PBC's rows (3,029 of 8,488)."""
    from tests.conftest import shared_path
    from tests.train_helpers import pbc_subset

    apl = shared_path("apl_aml")
    root = tmp_path / "apl"
    patients = ["Patient_01", "Patient_13", "Patient_18", "Patient_21", "Patient_29", "Patient_49", "Patient_97"]
    for patient in patients:  # lymphocytes and segmented neutrophils, in every one of these patients
        for folder in ("Lymphocyte", "Segmented neutrophils"):
            found = sorted((apl / patient).rglob(f"{folder}/*.jpg"))[:6]
            for path in found:
                target = root / path.relative_to(apl)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(path.read_bytes())
    (root / "master.csv").write_bytes((apl / "master.csv").read_bytes())
    ws = Workspace(tmp_path / "ws")
    ingest("pbc", pbc_subset(tmp_path / "pbc", 40, ("lymphocyte", "neutrophil")), ws, IngestOptions(workers=1))
    merge(ws)
    dedup(ws, DedupOptions(workers=1, reports=False))
    before = run_split(ws, SplitOptions(val=0.15, test=0.15, seed=0)).frame.set_index("sample_id")["split"]
    ingest("apl-aml", root, ws, IngestOptions(workers=1))  # a source added later, then dedup and split again
    merge(ws)
    dedup(ws, DedupOptions(workers=1, reports=False))
    frame = run_split(ws, SplitOptions(val=0.15, test=0.15, seed=0)).frame
    after = frame.set_index("sample_id")["split"].reindex(before.index)
    assert (after == before).all(), "adding a source moved rows of another"  # each unit keeps its hashed place
    assert set(before) >= {"train", "val", "test"}
    _never_straddles(frame, "patient_id")
    cells = frame[(frame["source"] == "apl-aml") & (frame["label_status"] == "exact")]
    assert cells["patient_id"].nunique() == len(patients) and len(cells) >= 60
    per_split = cells.groupby("split")["patient_id"].nunique()
    assert per_split.get("test", 0) >= 1 and per_split.get("val", 0) >= 1 and per_split["train"] >= 4
    tested = (cells["split"] == "test").mean()
    assert 0.05 <= tested <= 0.3, tested  # about its 15%, in whole patients
    pbc = frame[(frame["source"] == "pbc") & frame["split"].isin(["train", "val", "test"])]
    _within_one_of_ideal(pbc, {"val": 0.15, "test": 0.15})


def _single_cells(sources: int, per_class: dict[str, int]) -> list[dict]:
    """Generated single-image rows: ``per_class`` images of each class in each of ``sources`` sources."""
    rows = []
    for s in range(sources):
        for cls, n in per_class.items():
            for i in range(n):
                rows.append({"sample_id": f"src{s}:{cls}/{i:05d}.jpg", "source": f"src{s}", "source_root": "r",
                             "source_path": f"{cls}/{i}.jpg", "status": "ok", "label": cls, "label_status": "exact",
                             "pixel_hash": f"{s}-{cls}-{i}"})  # fmt: skip
    return _full(rows)


def test_a_class_spread_thinly_over_many_sources_still_reaches_val_and_test(tmp_path):
    """40 sources with 3 PLY images each: 0.7 x 3 leaves one image per source to val or test on a tie. Ties broken
    in one fixed order sent all 40 to val (test 0 of an ideal 18); each stratum now breaks its ties its own way."""
    ws = Workspace(tmp_path / "ws")
    manifest.write(_single_cells(40, {"PLY": 3, "LY": 20}), ws.unified_manifest)
    frame = run_split(ws, SplitOptions(without_dedup=True, seed=0)).frame
    ply = frame[frame["label"] == "PLY"]["split"].value_counts()
    assert ply["test"] >= 8 and ply["val"] >= 8, ply  # about half of the 40 tie-broken images each
    _within_one_of_ideal(frame, {"val": 0.15, "test": 0.15})  # and every source's class within one image


def test_the_test_split_is_a_random_draw_and_the_folds_spread_validation(tmp_path):
    """The hashed keys draw like a shuffle: test rows are spread over id order, two seeds share about what two
    independent 15% draws share, and validation rows (drawn with the split's keys) spread over all folds."""
    ws = Workspace(tmp_path / "ws")
    manifest.write(_single_cells(1, {"SNE": 1000, "LY": 1000}), ws.unified_manifest)
    first = run_split(ws, SplitOptions(without_dedup=True, seed=0, folds=5)).frame
    order = first["sample_id"].argsort().to_numpy()
    blocks = (first["split"].to_numpy()[order] == "test").reshape(10, 200).mean(axis=1)  # id order, 10 blocks
    assert blocks.min() > 0.05 and blocks.max() < 0.27, blocks
    other = run_split(ws, SplitOptions(without_dedup=True, seed=1)).frame
    a, b = set(first.loc[first["split"] == "test", "sample_id"]), set(other.loc[other["split"] == "test", "sample_id"])
    assert 0.07 < len(a & b) / len(a) < 0.25  # independent draws share about 15%
    val_folds = first.loc[first["split"] == "val", "fold"].value_counts()
    assert len(val_folds) == 5 and val_folds.min() >= 30, val_folds  # 300 val rows, about 60 per fold


def test_a_copy_dedup_drops_does_not_change_the_key_of_the_unit_it_joins():
    from wbc_data.split.assign import unit_keys

    frame = pd.DataFrame({"sample_id": ["pbc:a.jpg", "pbc:b.jpg", "kaggle:copy-of-a.jpg"]})
    units = np.array([0, 1, 0])  # the copy joined a's unit (one duplicate cluster)
    kept = np.array([True, True, False])  # and dedup kept a
    alone = unit_keys(frame.iloc[:2], units[:2], kept[:2], seed=0)
    joined = unit_keys(frame, units, kept, seed=0)
    assert (alone == joined).all()
    assert (unit_keys(frame, units, kept, seed=1) != joined).all()  # the seed changes every key


def _random_case(rng: np.random.Generator) -> dict:
    """Units of one image and of several (patients spanning classes), some fixed, some restricted, unequal shares."""
    n_units, n_classes, n_bins = int(rng.integers(1, 300)), int(rng.integers(1, 8)), int(rng.integers(2, 6))
    counts = np.zeros((n_units, n_classes), dtype=np.int64)
    counts[np.arange(n_units), rng.integers(0, n_classes, n_units)] = 1
    patients = rng.random(n_units) < 0.2
    counts[patients] += rng.poisson(2.0, (int(patients.sum()), n_classes)) * (rng.random((1, n_classes)) < 0.6)
    counts[rng.random(n_units) < 0.05] = 0  # units without eligible images
    fixed = {int(u): int(rng.integers(n_bins)) for u in rng.choice(n_units, int(rng.integers(0, 4)), replace=True)}
    allowed = rng.random((n_units, n_bins)) < 0.85 if rng.random() < 0.5 else None
    if allowed is not None:
        allowed[np.arange(n_units), rng.integers(0, n_bins, n_units)] = True  # every unit may go somewhere
    return {"counts": counts, "shares": rng.dirichlet(np.ones(n_bins)), "seed": int(rng.integers(1000)),
            "fixed": fixed, "allowed": allowed,
            "keys": rng.integers(0, 2**63, n_units).astype(np.uint64) if rng.random() < 0.7 else None,
            "stratum_keys": rng.integers(0, 2**63, n_classes) if rng.random() < 0.7 else None}  # fmt: skip


def test_the_sparse_apportionment_places_every_unit_as_the_dense_one_did():
    """The counts are kept sparse (memory in the images, not in units x strata); every unit still goes where the
    dense code of main 4b0db9e (``tests/split_reference.py``) sent it, on generated cases with patients, fixed and
    restricted units; and given the counts in any sparse form, canonical or not (duplicate entries, explicit zeros,
    unsorted columns), which it leaves as they were."""

    from tests.split_reference import dense_apportion_units

    rng = np.random.default_rng(5)
    for _ in range(150):
        case = _random_case(rng)
        expected = dense_apportion_units(**case)
        assert (apportion_units(**case) == expected).all()
        for counts in _sparse_forms(case["counts"], rng):
            before = counts.copy()
            assert (apportion_units(**{**case, "counts": counts}) == expected).all()
            assert counts.nnz == before.nnz and (counts.toarray() == before.toarray()).all()  # the caller's, intact


def _sparse_forms(dense: np.ndarray, rng: np.random.Generator) -> list:
    """``dense`` as CSR, and as COO and as CSR whose entries are not canonical: each count stored as two entries that
    sum to it, explicit zeros added, and (CSR) the columns of each row unsorted."""
    from scipy import sparse

    rows, cols = np.nonzero(dense)
    values = dense[rows, cols]
    part = rng.integers(0, values + 1)
    zero_r, zero_c = rng.integers(0, dense.shape[0], 5), rng.integers(0, dense.shape[1], 5)
    r, c = np.r_[rows, rows, zero_r], np.r_[cols, cols, zero_c]
    v = np.r_[part, values - part, np.zeros(5, np.int64)]
    coo = sparse.coo_array((v, (r, c)), shape=dense.shape)
    order = np.lexsort((rng.random(len(r)), r))  # by row, its entries shuffled
    indptr = np.r_[0, np.cumsum(np.bincount(r, minlength=dense.shape[0]))]
    unsorted = sparse.csr_array((v[order], c[order], indptr), shape=dense.shape)
    assert not unsorted.has_canonical_format
    return [sparse.csr_array(dense), coo, unsorted]


def test_the_real_sample_splits_as_the_dense_apportionment_did(sample_ws):
    from tests.split_reference import dense_apportion_units
    from wbc_data.core.rows import is_usable
    from wbc_data.split.assign import eligible_rows, unit_class_counts, unit_keys

    view = load_view(sample_ws)
    frame = view.frame[is_usable(view.frame)].reset_index(drop=True)
    units = leak_units(frame, "patient")
    eligible = eligible_rows(frame)
    strata = unit_class_counts(frame, units, eligible, seed=0)
    keys = unit_keys(frame, units, eligible, seed=0)
    shares = np.array([0.7, 0.15, 0.15])
    got = apportion_units(strata.counts, shares, 0, keys=keys, stratum_keys=strata.keys)
    assert (got == dense_apportion_units(strata.counts.toarray(), shares, 0, keys=keys,
                                         stratum_keys=strata.keys)).all()  # fmt: skip
    assert set(got[got >= 0]) == {0, 1, 2}


def test_the_strata_counts_grow_with_the_images_not_with_the_sources():
    """A stratum per source and class: a million single images in 8 sources made a dense (units x strata) matrix of
    830 MB; kept sparse it holds an entry per unit and stratum present."""
    from wbc_data.split.assign import unit_class_counts

    frame = pd.DataFrame(_single_cells(60, {"LY": 20, "SNE": 20}))
    units = np.arange(len(frame))
    counts = unit_class_counts(frame, units, np.ones(len(frame), bool)).counts
    assert counts.shape == (2400, 120) and counts.sum() == 2400
    held = counts.data.nbytes + counts.indices.nbytes + counts.indptr.nbytes
    assert held < 32 * len(frame), held  # dense: 120 strata x 8 bytes = 960 bytes a unit
