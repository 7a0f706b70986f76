"""gap-report on small generated manifests: dedup / synthetic / coarse / conflict handling, patients and groups,
own-data selection, targets (good and bad), thresholds, the synth plan contract, licences and one-line CLI errors."""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from wbc_data.cli import app
from wbc_data.core import manifest
from wbc_data.core.taxonomy import CLASSES
from wbc_data.gap import GapError, GapOptions, PlanError, load_plan, run_gap_report
from wbc_data.gap.licence import CHECK, NO, YES, terms
from wbc_data.gap.plan import make_plan, write_plan
from wbc_data.gap.status import Thresholds
from wbc_data.gap.table import gap_table
from wbc_data.gap.targets import parse_target

_counter = iter(range(10**9))


def row(
    source,
    label=None,
    *,
    status="exact",
    candidates=None,
    ok="ok",
    split=None,
    patient=None,
    group=None,
    licence="CC BY 4.0",
    **extra,
):
    r = manifest.empty_row()
    n = next(_counter)
    r.update(
        sample_id=f"{source}:{n}",
        source=source,
        source_path=f"{n}.jpg",
        label=label if status == "exact" else None,
        label_status=status,
        label_candidates=candidates or ([label] if label else None),
        status=ok,
        reason="not an image" if ok == "rejected" else None,
        source_split=split,
        patient_id=patient,
        group_id=group,
        licence=licence,
    )
    r.update(extra)
    return r


def frame_of(rows):
    return manifest.to_frame(manifest.to_table(rows))


def write_ws(workspace, rows):
    manifest.write(rows, workspace.unified_manifest)
    return workspace


def test_counts_dedup_synthetic_coarse_conflict_and_patients():
    rows = (
        # own: 3 BL images of 2 patients, one of them a dropped duplicate
        [
            row("mine", "BL", patient="p1", dup_keep=True),
            row("mine", "BL", patient="p1", dup_keep=True),
            row("mine", "BL", patient="p2", dup_keep=False),
        ]
        # external A: 4 BL (1 dropped), 2 PC; external B: 1 BL, a coarse IG row and a conflict LY/VLY row
        + [row("a", "BL", dup_keep=k) for k in (True, True, True, False)]
        + [row("a", "PC", dup_keep=None)] * 1
        + [row("a", "PC", group="field-1", dup_keep=True), row("a", "PC", group="field-1", dup_keep=True)]
        + [
            row("b", "BL", licence="CC BY-NC 4.0"),
            row("b", status="coarse", candidates=["MY", "MMY", "PMY"]),
            row("b", status="conflict", candidates=["LY", "VLY"]),
        ]
        # synthetic BL (one dropped), never own or external; a rejected file and a platelet: never counted
        + [row("synth", "BL", is_synthetic=True, dup_keep=k) for k in (True, True, False)]
        + [row("a", "BL", ok="rejected"), row("a", status="not-leukocyte")]
    )
    gap = gap_table(frame_of(rows), "uniform:10", own=["mine"])
    t = gap.classes
    bl = t.loc["BL"]
    assert (bl["own"], bl["own after dedup"], bl["own patients"]) == (3, 2, 1)
    assert (bl["a"], bl["b"], bl["external"], bl["external after dedup"]) == (4, 1, 5, 4)
    assert bl["duplicates dropped"] == 2 and bl["available"] == 6 and bl["synthetic"] == 2
    assert math.isclose(bl["gain"], 6 / 2)
    assert bl["commercial use ok"] == 5  # the CC BY-NC row from b does not count
    assert bl["status"] == "partial" and bl["missing"] == 4 and math.isclose(bl["coverage"], 0.6)
    pc = t.loc["PC"]
    assert pc["available"] == 3 and pc["independent groups"] == 2  # two crops of one field are one group
    assert pd.isna(pc["gain"]) and pd.isna(pc["own patients"])  # no own PC: gain undefined, patients unknown
    for c in ("MY", "MMY", "PMY"):
        assert (
            t.loc[c, "coarse candidates"] == 1 and t.loc[c, "available"] == 0 and t.loc[c, "status"] == "critical gap"
        )
    assert t.loc["LY", "conflict candidates"] == t.loc["VLY", "conflict candidates"] == 1
    assert t["available"].sum() == 6 + 3
    sources = gap.sources.set_index("source")
    assert sources.loc["synth", "role"] == "synthetic" and sources.loc["synth", "synthetic"] == 3
    assert sources.loc["mine", "patients"] == 2 and sources.loc["b", "commercial"] == "no"
    assert gap.licences.loc["BL", "CC BY-NC 4.0"] == 1 and gap.licences.loc["BL", "CC BY 4.0"] == 5
    assert not any("no dedup decisions" in n for n in gap.notes)


def test_without_optional_columns_everything_is_kept_and_noted():
    rows = [row("wbcbench", "SNE", split="phase1_train"), row("x", "SNE"), row("x", "SNE")]
    gap = gap_table(frame_of(rows), "uniform:3")
    assert "dup_keep" not in frame_of(rows).columns
    assert gap.own_sources == ["wbcbench"]  # the default own data
    sne = gap.classes.loc["SNE"]
    assert (sne["own"], sne["external after dedup"], sne["available"], sne["gain"], sne["status"]) == (
        1,
        2,
        3,
        3.0,
        "solved",
    )
    assert any("no dedup decisions" in n for n in gap.notes)
    no_own = gap_table(frame_of(rows[1:]), "uniform:3")
    assert no_own.own_sources == [] and no_own.classes["gain"].isna().all()
    assert any("no own data" in n for n in no_own.notes)


def test_own_split_filter_and_min_target_keeps_own_counts():
    rows = (
        [row("wbcbench", "LY", split="phase1_train")] * 1
        + [row("wbcbench", "LY", split="phase2_train") for _ in range(4)]
        + [row("wbcbench", "LY", split="phase2_eval"), row("wbcbench", "PLY", split="phase2_eval")]
    )
    frame = frame_of(rows)
    gap = gap_table(frame, "min:3", own_splits=["phase1_train", "phase2_train"])
    assert gap.classes.loc["LY", "own"] == 5 and gap.classes.loc["PLY", "own"] == 0
    assert gap.classes.loc["LY", "target"] == 5 and gap.classes.loc["PLY", "target"] == 3  # floor 3, own 5 kept
    assert any("2 own row(s) outside --own-split" in n for n in gap.notes)
    with pytest.raises(GapError, match="no own rows in these splits"):
        gap_table(frame, "min:3", own_splits=["phase9"])
    with pytest.raises(GapError, match="--own nope: no such source"):
        gap_table(frame, "min:3", own=["nope"])


def test_thresholds_are_options():
    rows = [row("x", "EO") for _ in range(7)]
    strict = gap_table(frame_of(rows), "uniform:10", thresholds=Thresholds(solved_at=1.0, partial_at=0.8))
    loose = gap_table(frame_of(rows), "uniform:10", thresholds=Thresholds(solved_at=0.7, partial_at=0.2))
    assert strict.classes.loc["EO", "status"] == "critical gap" and loose.classes.loc["EO", "status"] == "solved"
    with pytest.raises(GapError, match="--partial-at"):
        Thresholds(solved_at=0.5, partial_at=0.9)
    with pytest.raises(GapError):
        Thresholds(partial_at=0)


def test_yaml_target_and_bad_targets(tmp_path):
    frame = frame_of([row("x", "BA")])
    good = tmp_path / "t.yaml"
    good.write_text("classes:\n  BA: 4\n  pc: 2\n")
    target = parse_target(str(good), frame)
    assert target.counts["BA"] == 4 and target.counts["PC"] == 2 and target.counts["SNE"] is None
    gap = gap_table(frame, str(good))
    assert gap.classes.loc["SNE", "status"] == "no target" and gap.classes.loc["BA", "status"] == "critical gap"
    assert parse_target("uniform:1_000", frame).counts == dict.fromkeys(CLASSES, 1000)
    bad = {
        "uniform:0": "positive",
        "uniform:abc": "uniform:N or min:N",
        "min:-3": "uniform:N or min:N",
        "nonsense": "unknown target",
        str(tmp_path / "missing.yaml"): "not found",
    }
    for spec, needle in bad.items():
        with pytest.raises(GapError, match=needle):
            parse_target(spec, frame)
    for text, needle in {
        "XX: 3": "unknown class 'XX'",
        "BA: -1": "whole number",
        "BA: 2.5": "whole number",
        "- BA": "must map classes",
        "BA: [1": "cannot read",
    }.items():
        path = tmp_path / "bad.yaml"
        path.write_text(text)
        with pytest.raises(GapError, match=needle) as info:
            parse_target(str(path), frame)
        assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert "shipped with wbc-data" in parse_target("wbcbench", frame).description  # no CSVs, no wbcbench rows


def test_wbcbench_label_csvs_are_validated(tmp_path):
    """--target-labels goes through the wbcbench adapter: the target's train_splits pick the tables."""
    frame = frame_of([row("x", "BA")])
    (tmp_path / "phase1_label.csv").write_text(
        "ID,labels,split,,,\n1.jpg,BA,phase1_train,,,\n2.jpg,PLY,phase1_train,,,\n"
    )
    (tmp_path / "phase2_train.csv").write_text("ID,labels,split\n3.jpg,BA,phase2_train\n")
    (tmp_path / "phase2_eval.csv").write_text("ID,labels,split\n5.jpg,SNE,phase2_eval\n")  # held out: not counted
    target = parse_target("wbcbench", frame, labels=tmp_path)
    assert target.counts["BA"] == 2 and target.counts["PLY"] == 1 and target.counts["SNE"] == 0
    assert target.source == "wbcbench" and f"labels in {tmp_path}" in target.description
    (tmp_path / "phase2_train.csv").write_text("ID,labels,split\n3.jpg,BA,phase2_train\n4.jpg,ZZ,phase2_train\n")
    with pytest.raises(GapError, match=r"phase2_train.csv: label 'ZZ' at line 3"):
        parse_target("wbcbench", frame, labels=tmp_path)
    (tmp_path / "phase2_train.csv").write_text("ID,labels,split\n3.jpg,BA,phase2_train\n4.jpg,,phase2_train\n")
    with pytest.raises(GapError, match=r"phase2_train.csv: 1 row\(s\) with an empty label, first at line 3"):
        parse_target("wbcbench", frame, labels=tmp_path)
    (tmp_path / "phase2_train.csv").unlink()
    with pytest.raises(GapError, match=r"phase2_train\.csv: missing") as info:
        parse_target("wbcbench", frame, labels=tmp_path)
    assert "\n" not in str(info.value)


def write_target(folder, name, text):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def test_a_second_named_target_needs_no_code(tmp_path):
    """A target file in a targets folder is found by its name; its source and train_splits drive the counts
    (labels through the adapter, else the ingested rows, else its own counts) and the default own data."""
    targets = tmp_path / "targets"
    path = write_target(
        targets,
        "p2",
        "name: bench-p2\ndescription: phase 2 only\nsource: wbcbench\ntrain_splits: [phase2_train]\n"
        "classes: {BA: 7, PC: 1}\n",
    )
    write_target(targets, "flat", "name: flat\nclasses: {BA: 3}\n")
    rows = (
        [row("wbcbench", "BA", split="phase1_train") for _ in range(2)]
        + [row("wbcbench", "BA", split="phase2_train") for _ in range(3)]
        + [row("wbcbench", "BA", split="phase2_eval")]
        + [row("pbc", "BA")]
    )
    frame = frame_of(rows)
    from_rows = parse_target("BENCH-p2", frame, targets=targets)  # names match case-insensitively
    assert from_rows.counts["BA"] == 3 and from_rows.counts["PC"] == 0 and from_rows.train_splits == ("phase2_train",)
    assert from_rows.description.startswith("phase 2 only (3 images; from the ingested wbcbench source (phase2_train)")
    from_file = parse_target("bench-p2", frame_of([row("pbc", "BA")]), targets=targets)
    assert from_file.counts["BA"] == 7 and from_file.counts["SNE"] is None and str(path) in from_file.description
    labels = tmp_path / "labels"  # only the table of the declared split is needed
    labels.mkdir()
    (labels / "phase2_train.csv").write_text("ID,labels,split\n1.jpg,PC,phase2_train\n2.jpg,PC,phase2_train\n")
    assert parse_target("bench-p2", frame, labels=labels, targets=targets).counts["PC"] == 2
    gap = gap_table(frame, "bench-p2", targets=targets)
    assert gap.own_sources == ["wbcbench"] and gap.classes.loc["BA", "own"] == 3
    assert any("held out: phase1_train, phase2_eval" in n for n in gap.notes)
    # a target without a source: own data falls back on the sources the folder's named targets declare
    flat = gap_table(frame, "flat", targets=targets)
    assert flat.target.counts["BA"] == 3 and flat.own_sources == ["wbcbench"] and flat.classes.loc["BA", "own"] == 3
    said = r"unknown target \(use bench-p2 \(named in p2\.yaml\), flat \(named in flat\.yaml\), uniform:N"
    with pytest.raises(GapError, match=said):
        parse_target("wbcbench", frame, targets=targets)  # only the given folder's names are known


def test_bad_target_files_are_one_line(tmp_path):
    frame = frame_of([row("x", "BA")])
    cases = {
        "classes: {BA: 1}\n": "needs a 'name:'",
        "name: a\nclasses: {BA: 1}\nsplits: [x]\n": "unknown key(s) splits",
        "name: a\ntrain_splits: [x]\nclasses: {BA: 1}\n": "train_splits needs a source",
        "name: a\nsource: wbcbench\ntrain_splits: phase1_train\nclasses: {BA: 1}\n": "non-empty list",
        "name: [a]\nclasses: {BA: 1}\n": "name must be a non-empty text",
        "name: a\nclasses: [BA]\n": "must map classes",
    }
    for text, needle in cases.items():
        targets = tmp_path / f"t{len(needle)}"
        path = write_target(targets, "bad", text)
        with pytest.raises(GapError, match=re.escape(needle)) as info:
            parse_target("a", frame, targets=targets)
        assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)
    twice = tmp_path / "twice"
    write_target(twice, "one", "name: same\nclasses: {BA: 1}\n")
    write_target(twice, "two", "name: Same\nclasses: {BA: 2}\n")
    with pytest.raises(GapError, match="also used by"):
        parse_target("same", frame, targets=twice)
    # a source whose adapter cannot count labels without images says so in one line
    pbc = write_target(tmp_path / "p", "p", "name: p\nsource: pbc\nclasses: {BA: 1}\n").parent
    with pytest.raises(GapError, match="source pbc cannot count labels without images"):
        parse_target("p", frame, labels=tmp_path, targets=pbc)
    assert any("not read" in n for n in parse_target("uniform:3", frame, labels=tmp_path).notes)


def test_plan_caps_existing_synthetic_and_round_trip(tmp_path):
    real = {"BL": 5, "PC": 0, "SNE": 100, "PLY": 3}
    targets = dict.fromkeys(CLASSES, 60)
    targets["MO"] = None
    plan = make_plan(real, targets, {"PLY": 10}, 4, "uniform:60")
    q = plan.classes
    assert (q["BL"].generate, q["PC"].generate, q["SNE"].generate, q["MO"].generate) == (20, 0, 0, 0)
    assert "capped at 4x" in q["BL"].reason and "no real images" in q["PC"].reason and "met by real" in q["SNE"].reason
    assert q["PLY"].generate == 2 and q["MO"].reason == "no target for this class"  # cap 12 - 10 existing
    assert make_plan({"BL": 5}, {"BL": 8}, {}, 4, "t").classes["BL"].generate == 3  # gap smaller than the cap
    path = write_plan(plan, tmp_path / "plan.yaml")
    loaded = load_plan(path)
    assert loaded.counts() == {"BL": 20, "PLY": 2} == plan.counts() and loaded.max_synth_factor == 4
    data = yaml.safe_load(path.read_text())
    data["classes"]["BL"]["generate"] = 21
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(PlanError, match=r"BL\.generate = 21 exceeds the cap of 20"):
        load_plan(path)
    for change, needle in ((("version", 2), "unsupported plan version"), (("max_synth_factor", -1), "max_synth")):
        broken = dict(data, **{change[0]: change[1]})
        path.write_text(yaml.safe_dump(broken))
        with pytest.raises(PlanError, match=needle):
            load_plan(path)
    with pytest.raises(PlanError, match="no synth plan here"):
        load_plan(tmp_path / "absent.yaml")
    with pytest.raises(GapError, match="max-synth-factor"):
        make_plan(real, targets, {}, float("nan"), "t")


def test_licence_terms():
    assert terms("MIT") == terms("CC0") == terms("CC BY 4.0")
    assert (terms("CC BY 4.0").publish, terms("CC BY 4.0").commercial) == (YES, YES)
    assert (terms("CC BY-NC-SA 4.0").publish, terms("CC BY-NC-SA 4.0").commercial) == (YES, NO)
    assert terms("research use only, no redistribution").publish == NO
    assert terms(None).commercial == CHECK and terms("TCIA terms").commercial == CHECK
    assert terms("CC BY 4.0 (PBC part); TCIA terms for the AML-LMU part").commercial == CHECK


def test_a_source_with_declared_terms_is_read_as_publish_reads_it(tmp_path):
    """The Kaggle re-upload's licence line names "TCIA terms" for its AML-LMU folders, which read alone is "check
    terms"; its definition declares what those terms are (CC BY 3.0, as the TCIA collection lists them), and publish
    goes by that. The gap report now does too, so the two never disagree; a line the user gave is read as text."""
    from wbc_data.publish.licences import ALLOWED, source_licences
    from wbc_data.sources.definition import get_definition

    kaggle = get_definition("kaggle-cancer-mix")
    rows = [row("kaggle-cancer-mix", "BL", licence=kaggle.licence) for _ in range(3)]
    rows += [row("mine", "LY", licence="research use only, no redistribution") for _ in range(2)]
    frame = frame_of(rows)
    definitions = {"kaggle-cancer-mix": kaggle, "mine": None}
    gap = gap_table(frame, "uniform:5", own=["mine"], definitions=definitions)
    sources = gap.sources.set_index("source")
    published = {s.source: s.terms for s in source_licences(frame, definitions)}
    assert published["kaggle-cancer-mix"].redistribution == ALLOWED == published["kaggle-cancer-mix"].commercial
    assert (sources.loc["kaggle-cancer-mix", "publish"], sources.loc["kaggle-cancer-mix", "commercial"]) == (YES, YES)
    assert (sources.loc["mine", "publish"], sources.loc["mine", "commercial"]) == (NO, NO)
    assert gap.classes.loc["BL", "commercial use ok"] == 3 and gap.classes.loc["LY", "commercial use ok"] == 0
    unread = gap_table(frame, "uniform:5", own=["mine"]).sources.set_index("source")  # no definitions: the line
    assert unread.loc["kaggle-cancer-mix", "publish"] == CHECK


def test_synthetic_rows_take_their_training_sources_terms_as_in_publish():
    """A generator's samples whose licence line says nothing take the strictest terms of the real sources in the
    train split, in the gap report as in publish: here a non-commercial one."""
    from wbc_data.publish.licences import FORBIDDEN, source_licences, training_terms

    rows = [row("labdata", "PMY", licence="CC BY-NC 4.0") for _ in range(3)]
    rows += [row("synth-pmy", "PMY", licence="generated", is_synthetic=True) for _ in range(2)]
    frame = frame_of(rows).assign(split="train")  # as the split stage leaves it
    definitions = {"labdata": None, "synth-pmy": None}
    sources = gap_table(frame, "uniform:5", own=["labdata"], definitions=definitions).sources.set_index("source")
    published = {s.source: s.terms for s in source_licences(frame, definitions, training_terms(frame, definitions))}
    assert published["synth-pmy"].commercial == FORBIDDEN
    assert (sources.loc["synth-pmy", "publish"], sources.loc["synth-pmy", "commercial"]) == (YES, NO)


def test_run_writes_files_and_cli_errors_are_one_line(workspace, tmp_path):
    write_ws(workspace, [row("wbcbench", "PLY", split="phase1_train", patient="p")] + [row("x", "PLY")] * 1)
    result = run_gap_report(workspace, GapOptions("uniform:5", quota=tmp_path / "plan.yaml", max_synth_factor=1))
    assert result.plan is not None and result.plan.classes["PLY"].generate == 2  # cap 1 x 2 real
    for path in (result.files.markdown, result.files.html, result.files.csv, result.files.json, *result.files.charts):
        assert path.is_file() and path.stat().st_size > 200, path
    runner = CliRunner()
    ok = runner.invoke(app, ["gap-report", "-w", str(workspace.root), "-t", "uniform:5"])
    assert ok.exit_code == 0, ok.output
    for args, needle in (
        (["-t", "uniform:zero"], "uniform:N or min:N"),
        (["-t", "wbcbench", "--wbcbench-labels", str(tmp_path / "none")], "not a folder of WBCBench label CSVs"),
        (["-t", "wbcbench", "--target-labels", str(tmp_path / "none")], "not a folder of WBCBench label CSVs"),
        (["-t", "uniform:5", "--own", "ghost"], "no such source"),
        (["-t", "uniform:5", "--solved-at", "0.2"], "--partial-at"),
        (["-t", "uniform:5", "--wbcbench-labels", str(tmp_path)], None),
    ):
        out = runner.invoke(app, ["gap-report", "-w", str(workspace.root), *args])
        if needle is None:
            assert out.exit_code == 0, out.output  # labels are only read for --target wbcbench
            continue
        assert out.exit_code == 2 and out.output.startswith("error:"), out.output
        assert needle in out.output and "Traceback" not in out.output
    empty = runner.invoke(app, ["gap-report", "-w", str(tmp_path / "nowhere")])
    assert empty.exit_code == 2 and "no unified manifest" in empty.output


def test_wbcbench_own_defaults_to_training_splits():
    """Held-out eval images are not training data: by default only phase1/phase2 train rows are 'own'."""
    rows = (
        [row("wbcbench", "PC", split="phase1_train") for _ in range(2)]
        + [row("wbcbench", "PC", split="phase2_train") for _ in range(3)]
        + [row("wbcbench", "PC", split="phase2_eval") for _ in range(4)]
        + [row("wbcbench", None, status="unlabelled", split="phase2_test")]
        + [row("pbc", "PC")]
    )
    frame = frame_of(rows)
    gap = gap_table(frame, "uniform:10")
    pc = gap.classes.loc["PC"]
    assert pc["own"] == 5 and pc["available"] == 6
    assert any("held out: phase2_eval, phase2_test" in n for n in gap.notes)
    everything = gap_table(frame, "uniform:10", own_splits=["phase1_train", "phase2_train", "phase2_eval"])
    assert everything.classes.loc["PC", "own"] == 9
