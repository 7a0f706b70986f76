"""APL/AML study (Sidhom 2021): the real crops of 21 patients in ../shared/data/apl_aml, ingested once for the module.

Every expected number is computed here from the folders and master.csv with plain Python (and PIL for the one
truncated file), independently of the adapter."""

from __future__ import annotations

import collections
import csv
import hashlib
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import shared_path
from wbc_data.core import manifest
from wbc_data.core.workspace import Workspace
from wbc_data.ingest.engine import IngestOptions, ingest
from wbc_data.sources.definition import SourceError

FOLDER_CLASS = {"Segmented neutrophils": "SNE", "Band neutrophils": "BNE", "Lymphocyte": "LY",
                "Lymphocyte, variant": "VLY", "Prolymphocyte": "PLY", "Monocyte": "MO", "Eosinophils": "EO",
                "Basophil": "BA", "Blast, no lineage spec": "BL", "Plasma cells": "PC", "Myelocyte": "MY",
                "Metamyelocyte": "MMY", "Promyelocyte": "PMY"}  # fmt: skip
NOT_LEUKOCYTE = {"Smudge cells", "Erythroblast", "Giant thrombocyte", "Thrombocyte aggregation", "Arifact"}
EXCLUDED = {"Promonocyte", "Unidentified"}
SLIDES = {"signed slides", "unsigned slides"}


def layout(root: Path):
    """Every file under the root with its place: (rel, patient, session, signed, class folder)."""
    found = []
    for dirpath, _, names in os.walk(root):
        for name in names:
            source_path = os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/")
            parts = source_path.split("/")
            session = parts[1] if len(parts) > 3 and parts[1].lower() not in SLIDES else None
            rest = parts[2:] if session else parts[1:]
            if len(rest) == 3 and rest[0].lower() == "signed slides":
                found.append((source_path, parts[0], session, True, rest[1]))
            elif len(rest) == 2 and rest[0].lower() == "unsigned slides":
                found.append((source_path, parts[0], session, False, None))
            else:
                found.append((source_path, None, None, None, None))  # not in the layout
    return found


def conflicts(files):
    """Signed crops filed under two class folders of one patient, or whose prefix is another folder's."""
    prefixes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    folders_of = collections.defaultdict(set)
    for source_path, patient, session, signed, folder in files:
        if signed:
            name = source_path.rsplit("/", 1)[1]
            prefixes[folder][name.split("_", 1)[0]] += 1
            folders_of[(patient, session, name)].add(folder)
    abbreviation = {folder: counts.most_common(1)[0][0] for folder, counts in prefixes.items()}
    owner = {abbr: folder for folder, abbr in abbreviation.items()}
    bad = set()
    for source_path, patient, session, signed, folder in files:
        if signed:
            name = source_path.rsplit("/", 1)[1]
            other = owner.get(name.split("_", 1)[0], folder)
            if len(folders_of[(patient, session, name)]) > 1 or other != folder:
                bad.add(source_path)
    return bad


def undecodable(root: Path, files):
    bad = set()
    for source_path, *_ in files:
        if source_path.lower().endswith(".jpg"):
            try:
                with Image.open(root / source_path) as image:
                    image.load()
            except OSError:
                bad.add(source_path)
    return bad


def read_master(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return {row["Patient_ID"]: row for row in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """The shared 21 patients ingested once (about 10 s on 2 cores): (root, files on disk, ingest result, ws)."""
    root = shared_path("apl_aml")
    ws = Workspace(tmp_path_factory.mktemp("apl") / "ws")
    result = ingest("apl-aml", root, ws, IngestOptions(workers=2, use_cache=False))
    return root, layout(root), result, ws


def test_real_counts_per_class_match_the_folders(real):
    root, files, result, _ = real
    frame = result.frame.set_index("source_path")
    assert len(frame) == len(files) == result.files_seen, "every file must be a row"
    bad_pixels, conflicting = undecodable(root, files), conflicts(files)
    exact, not_wbc, excluded, unsigned = collections.Counter(), 0, collections.Counter(), 0
    for source_path, _, _, signed, folder in files:
        if signed is None or source_path in bad_pixels or source_path in conflicting:
            continue
        if not signed:
            unsigned += 1
        elif folder in FOLDER_CLASS:
            exact[FOLDER_CLASS[folder]] += 1
        elif folder in NOT_LEUKOCYTE:
            not_wbc += 1
        else:
            assert folder in EXCLUDED, folder
            excluded[folder] += 1
    ok = frame[frame.status == "ok"]
    assert ok[ok.label_status == "exact"]["label"].value_counts().to_dict() == dict(exact)
    assert (ok.label_status == "not-leukocyte").sum() == not_wbc
    assert ok[ok.label_status == "excluded"]["source_label"].value_counts().to_dict() == dict(excluded)
    assert (ok.label_status == "unlabelled").sum() == unsigned
    # the real quirks: 3 crops filed under two folders (6 rows), one truncated JPEG
    assert set(ok[ok.label_status == "conflict"].index) == conflicting - bad_pixels and len(conflicting) >= 2
    for source_path, row in ok[ok.label_status == "conflict"].iterrows():
        assert FOLDER_CLASS[source_path.split("/")[-2]] in row.label_candidates and len(row.annotator_labels) == 2
    assert set(frame[frame.status == "rejected"].index) == bad_pixels
    assert frame.loc["master.csv", "status"] == "auxiliary"
    # the reason a folder outside the 13 gives no class is on its rows
    reasons = ok[ok.label_status.isin(["excluded", "not-leukocyte"])].groupby("source_label")["label_reason"]
    assert (reasons.nunique() == 1).all() and reasons.first().notna().all()
    assert "outside the 13 classes" in reasons.first()["Promonocyte"]
    assert {"PMY", "VLY", "BNE", "PC", "MY", "MMY"} <= set(exact) and "PLY" not in exact


def test_patients_and_diagnosis_joined_for_every_row(real):
    root, _, result, _ = real
    master = read_master(root / "master.csv")
    rows = result.frame[result.frame.source_path != "master.csv"]
    assert (rows.patient_id == rows.source_path.str.split("/").str[0]).all()
    assert (rows.group_id == "apl-aml:patient:" + rows.patient_id).all()
    assert rows.patient_id.nunique() == sum(1 for p in root.iterdir() if p.name.startswith("Patient_"))
    for key, column in (("diagnosis", "Diagnosis"), ("cohort", "Cohort"), ("sex", "Gender")):
        expected = rows.patient_id.map(lambda p, c=column: master[p][c])
        assert (manifest.extra_values(rows, key) == expected).all(), key
    ages = manifest.extra_values(rows, "age")
    assert (ages == rows.patient_id.map(lambda p: int(master[p]["Age at Diagnosis"]))).all()
    assert set(manifest.extra_values(rows, "diagnosis")) == {"APL", "AML"}
    assert len(master) == 106


def test_session_folders_are_read_the_same_way(real):
    _, files, result, _ = real
    sessions = {(patient, session) for _, patient, session, _, _ in files if session}
    assert len(sessions) >= 2, "the shared data holds two patients with a scan-session folder"
    frame = result.frame
    for patient, session in sessions:
        prefix = f"{patient}/{session}/"
        part = frame[frame.source_path.str.startswith(prefix)]
        on_disk = [f for f in files if f[0].startswith(prefix)]
        assert len(part) == len(on_disk) > 0
        assert (part.patient_id == patient).all()
        assert (manifest.extra_values(part, "session") == session).all()
        exact = part[part.label_status == "exact"]
        assert (exact.label == exact.source_path.str.split("/").str[-2].map(FOLDER_CLASS)).all() and len(exact)
    others = frame[~frame.source_path.str.contains("|".join(f"{p}/{s}/" for p, s in sessions), regex=True)]
    assert manifest.extra_values(others, "session").isna().all()


def test_unsigned_crops_are_unlabelled_rows(real):
    _, files, result, _ = real
    unsigned = [source_path for source_path, _, _, signed, _ in files if signed is False]
    assert unsigned, "the shared data ships unsigned slides for two patients"
    frame = result.frame.set_index("source_path").loc[unsigned]
    assert (frame.status == "ok").all() and (frame.label_status == "unlabelled").all()
    assert frame.label.isna().all() and frame.source_label.isna().all()
    assert (manifest.extra_values(frame.reset_index(), "slides") == "unsigned").all()
    assert frame.label_reason.str.contains("unsigned").all()
    # they copy signed crops (what dedup and leakage checks see): Patient_01's all byte-identical
    signed = result.frame[manifest.extra_values(result.frame, "slides") == "signed"]
    assert frame.sha256.isin(set(signed.sha256)).sum() > 0


def test_patient_split_never_puts_a_patient_on_two_sides(real):
    from wbc_data.core.stages import load_view
    from wbc_data.manifest.merge import merge
    from wbc_data.split import SplitOptions, run_split

    ws = real[3]
    merge(ws)
    run_split(ws, SplitOptions(val=0.2, test=0.2, seed=0, by="patient", without_dedup=True))
    frame = load_view(ws).frame
    placed = frame[frame.split.isin(["train", "val", "test"])]
    assert set(placed.split) == {"train", "val", "test"}
    per_patient = placed.groupby("patient_id")["split"].nunique()
    assert (per_patient == 1).all(), per_patient[per_patient > 1]
    assert placed.patient_id.notna().all()


def test_demo_sample_holds_no_apl_aml_cell(real):
    import wbc_data.demo.run
    from wbc_data.imaging.decode import ImageRejected, decode_rgb
    from wbc_data.imaging.signatures import pixel_hash
    from wbc_data.io.resources import sample_dir

    frame = real[2].frame
    ok = frame[frame.status == "ok"]
    sha, pixels = set(ok.sha256), set(ok.pixel_hash)
    checked = 0
    for path in sorted(p for p in sample_dir().rglob("*") if p.is_file()):
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() not in sha, path
        try:
            image = decode_rgb(data).rgb
        except ImageRejected:  # annotation files, README
            continue
        assert pixel_hash(image) not in pixels, path
        checked += 1
    assert checked > 100
    assert not any("apl" in p.name.lower() for p in sample_dir().iterdir())
    assert "apl" not in Path(wbc_data.demo.run.__file__).read_text(encoding="utf-8").lower()  # no such demo step


# --------------------------------------------------------------------------- small copies, planted files


def copy_patients(tmp: Path, *patients: str, master: bool = True) -> Path:
    source = shared_path("apl_aml")
    root = tmp / "data" / "apl_aml"
    for patient in patients:
        shutil.copytree(source / patient, root / patient)
    if master:
        shutil.copy(source / "master.csv", root / "master.csv")
    return root


def test_planted_bad_file_and_thumbs_db_are_accounted_for(tmp_path, workspace):
    root = copy_patients(tmp_path, "Patient_49", "Patient_69")
    lymph = root / "Patient_49/Signed slides/Lymphocyte"
    (lymph / "Thumbs.db").write_bytes(b"\0\1\2")
    (lymph / "LY_0000000.jpg").write_bytes(b"not a jpeg at all")
    (root / "Patient_49/notes.txt").write_text("stray")
    (root / "Patient_49/Signed slides/LY_loose.jpg").write_bytes((next(lymph.glob("LY_*.jpg"))).read_bytes())
    (root / "README.md").write_text("stray")
    files = layout(root)
    result = ingest("apl-aml", tmp_path / "data", workspace, IngestOptions(workers=1, use_cache=False))  # the parent
    assert result.root == root.resolve()
    frame = result.frame.set_index("source_path")
    assert len(frame) == len(files) == result.files_seen
    reason = frame["reason"]
    assert "not an image file (extension .db)" in reason["Patient_49/Signed slides/Lymphocyte/Thumbs.db"]
    assert frame.loc["Patient_49/Signed slides/Lymphocyte/LY_0000000.jpg", "status"] == "rejected"
    for stray in ("Patient_49/notes.txt", "Patient_49/Signed slides/LY_loose.jpg", "README.md"):
        assert frame.loc[stray, "status"] == "rejected" and "expected Patient_NN/" in reason[stray], stray
    assert (frame.status == "rejected").sum() == 5
    assert frame.loc["master.csv", "status"] == "auxiliary" and not result.notes
    session = frame[frame.index.str.startswith("Patient_69/10026924218/")]
    assert len(session) and (session.patient_id == "Patient_69").all()


@pytest.mark.parametrize("master", ["missing", "malformed"])
def test_missing_or_malformed_master_is_one_warning(tmp_path, workspace, master):
    root = copy_patients(tmp_path, "Patient_49", master=master == "malformed")
    if master == "malformed":
        (root / "master.csv").write_text("Patient,Dx\nPatient_49,APL\n", encoding="utf-8")
    result = ingest("apl-aml", root, workspace, IngestOptions(workers=1, use_cache=False))
    assert len(result.notes) == 1 and result.notes[0].startswith("warning:") and "\n" not in result.notes[0]
    assert "master.csv" in result.notes[0]
    frame = result.frame
    rows = frame[frame.source_path != "master.csv"]
    assert (rows.status == "ok").all() and (rows.patient_id == "Patient_49").all()
    assert manifest.extra_values(rows, "diagnosis").isna().all()
    if master == "malformed":
        assert frame.set_index("source_path").loc["master.csv", "status"] == "rejected"


def test_a_given_master_is_the_file_named_and_a_mistyped_option_is_refused(tmp_path, workspace):
    root = copy_patients(tmp_path, "Patient_49", master=False)
    with pytest.raises(SourceError, match=r"nowhere\.csv: no such patient table"):
        ingest(
            "apl-aml", root, workspace, IngestOptions(workers=1, adapter_options={"master": tmp_path / "nowhere.csv"})
        )
    bad = tmp_path / "bad.csv"
    bad.write_text("Patient,Dx\nPatient_49,APL\n", encoding="utf-8")
    result = ingest(
        "apl-aml", root, workspace, IngestOptions(workers=1, use_cache=False, adapter_options={"master": bad})
    )
    assert str(bad) in result.notes[0] and "missing column" in result.notes[0]  # the file given, not "master.csv"
    with pytest.raises(SourceError, match=r"apl-aml: no option 'mastr' \(its options: master"):
        ingest("apl-aml", root, workspace, IngestOptions(workers=1, adapter_options={"mastr": bad}))


def test_publish_refuses_the_source_by_default(tmp_path):
    from tests.publish_workspaces import finish
    from wbc_data.core.stages import load_view
    from wbc_data.dedup.report import label_conflicts
    from wbc_data.io.resources import sample_dir
    from wbc_data.publish import LicenceRefused, PublishOptions, plan_publish

    ws = Workspace(tmp_path / "ws")
    ingest("pbc", sample_dir() / "pbc", ws, IngestOptions(workers=1))
    ingest("apl-aml", copy_patients(tmp_path, "Patient_49", "Patient_01"), ws, IngestOptions(workers=1))
    finish(ws, gap=False)
    # dedup on the way: Patient_01's unsigned crops copy its signed ones; the signed copy is kept, and an unlabelled
    # copy is no label conflict
    frame = load_view(ws).frame
    unsigned = frame[frame.source_path.str.startswith("Patient_01/Unsigned slides/")]
    assert len(unsigned) and unsigned.dup_cluster.notna().all() and not unsigned.dup_keep.any()
    kept = frame[frame.dup_cluster.isin(set(unsigned.dup_cluster)) & frame.dup_keep.fillna(False).astype(bool)]
    assert (kept.label_status != "unlabelled").all() and set(kept.dup_cluster) == set(unsigned.dup_cluster)
    conflicting = label_conflicts(frame)
    assert not any("Unsigned" in str(m) for m in conflicting.get("members", []))
    out = tmp_path / "out"
    with pytest.raises(LicenceRefused) as caught:
        plan_publish(ws, PublishOptions("lab/wbc", dry_run=True, out=out))
    message = str(caught.value)
    assert "apl-aml: redistribution forbidden" in message and "Johns Hopkins" in message
    assert "--exclude-source apl-aml" in message and "\n" not in message and not out.exists()
    plan = plan_publish(ws, PublishOptions("lab/wbc", dry_run=True, out=out, exclude_sources=("apl-aml",)))
    assert "apl-aml" not in set(plan.rows.frame["source"])
