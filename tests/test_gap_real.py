"""gap-report on real data: PBC ingested from ../shared/data with its adapter, plus the WBCBench 2026 label
tables as the user's own data (rows built straight from the CSVs) and as the target.

Every expected number is computed here with plain Python from the file names and the CSVs."""

from __future__ import annotations

import collections
import csv
import json
import math
import os
import re

import pyarrow as pa
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from tests.conftest import shared_path
from wbc_data.cli import app
from wbc_data.core import manifest
from wbc_data.core.taxonomy import CLASSES
from wbc_data.core.workspace import Workspace
from wbc_data.gap import GapOptions, load_plan, run_gap_report
from wbc_data.gap.targets import parse_target

pytestmark = pytest.mark.slow

TRAIN_FILES = ("phase1_label.csv", "phase2_train.csv")
TRAIN_SPLITS = ("phase1_train", "phase2_train")
PBC_EXACT = ("SNE", "BNE", "LY", "MO", "EO", "BA", "MY", "MMY", "PMY")  # file-name prefix == class


def csv_rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def wbcbench_counts(directory):
    counts = collections.Counter()
    for name in TRAIN_FILES:
        counts.update(row["labels"] for row in csv_rows(directory / name))
    return counts


def pbc_prefixes(root):
    counts = collections.Counter()
    for folder in os.listdir(root):
        for name in os.listdir(root / folder):
            if not name.startswith("."):
                counts[name.split("_", 1)[0]] += 1
    return counts


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """A unified manifest: real PBC (adapter) + one 'wbcbench' row per CSV row (own data, no images needed)."""
    from wbc_data.ingest.engine import IngestOptions, ingest

    labels_dir = shared_path("wbcbench2026")
    pbc_parent = shared_path("pbc")
    ws = Workspace(tmp_path_factory.mktemp("gap") / "ws")
    result = ingest("pbc", pbc_parent, ws, IngestOptions(workers=2))
    rows = []
    for name in ("phase1_label.csv", "phase2_train.csv", "phase2_eval.csv", "phase2_test.csv"):
        split = {"phase1_label.csv": "phase1_train"}.get(name, name.removesuffix(".csv"))
        for line in csv_rows(labels_dir / name):
            row = manifest.empty_row()
            label = line["labels"] or None
            row.update(
                sample_id=f"wbcbench:{split}:{line['ID']}",
                source="wbcbench",
                source_path=line["ID"],
                source_split=split,
                source_label=label,
                label=label,
                status="ok",
                label_status="exact" if label else "unlabelled",
                licence="CC BY-NC 4.0",
                label_candidates=[label] if label else None,
            )
            rows.append(row)
    table = pa.concat_tables([manifest.read(result.manifest_path), manifest.to_table(rows)])
    manifest.write(table, ws.unified_manifest)
    return {
        "ws": ws,
        "labels": labels_dir,
        "target": wbcbench_counts(labels_dir),
        "pbc": pbc_prefixes(pbc_parent / "PBC_dataset_normal_DIB"),
        "eval": collections.Counter(r["labels"] for r in csv_rows(labels_dir / "phase2_eval.csv")),
    }


def test_wbcbench_target_matches_readme_and_both_routes(real):
    """The CSV route and the ingested-manifest route give the distribution the data README states."""
    readme = (real["labels"].parent / "README.md").read_text(encoding="utf-8")
    stated = {
        code: int(n.replace(",", ""))
        for code, n in re.findall(r"\b([A-Z]{2,3}) (\d{1,2},\d{3}|\d+)\b", readme)
        if code in CLASSES
    }
    assert len(stated) == 13 and sum(stated.values()) == 33185
    assert dict(real["target"]) == stated
    frame = manifest.read_frame(real["ws"].unified_manifest)
    from_csv = parse_target("wbcbench", frame, labels=real["labels"])
    from_manifest = parse_target("wbcbench", frame)
    assert from_csv.counts == from_manifest.counts == stated


def status_of(available, target, solved=1.0, partial=0.5):
    ratio = available / target
    return "solved" if ratio >= solved else "partial" if ratio >= partial else "critical gap"


def test_real_table_statuses_quota_and_files(real):
    ws, n = real["ws"], 1000
    plan_path = ws.root / "plan.yaml"
    options = GapOptions(f"min:{n}", own_splits=["phase1_train", "phase2_train"], quota=plan_path, max_synth_factor=10)
    result = run_gap_report(ws, options)
    gap, t = result.gap, result.gap.classes
    assert gap.own_sources == ["wbcbench"] and gap.external_sources == ["pbc"]
    own, pbc = real["target"], real["pbc"]
    for c in CLASSES:
        pbc_exact = pbc[c] if c in PBC_EXACT else 0
        assert t.loc[c, "own"] == own[c], c
        assert t.loc[c, "pbc"] == t.loc[c, "external"] == t.loc[c, "external after dedup"] == pbc_exact, c
        available = own[c] + pbc_exact
        assert t.loc[c, "available"] == available, c
        assert math.isclose(t.loc[c, "gain"], available / own[c]), c
        target = max(n, own[c])
        assert t.loc[c, "target"] == target and t.loc[c, "status"] == status_of(available, target), c
        coarse = pbc["NEUTROPHIL"] if c in ("SNE", "BNE") else pbc["IG"] if c in ("MY", "MMY", "PMY") else 0
        assert t.loc[c, "coarse candidates"] == coarse, c
        assert t.loc[c, "synthetic"] == 0 and t.loc[c, "duplicates dropped"] == 0
        # PBC is CC BY (commercial ok), WBCBench is CC BY-NC (not)
        assert t.loc[c, "commercial use ok"] == pbc_exact
        assert gap.licences.loc[c, "CC BY-NC 4.0"] == own[c] and gap.licences.loc[c, "CC BY 4.0"] == pbc_exact
    assert {"solved", "partial", "critical gap"} <= set(t["status"])
    # eval/test rows are outside --own-split: noted, never counted
    excluded = sum(real["eval"].values()) + len(csv_rows(real["labels"] / "phase2_test.csv"))
    assert any(f"{excluded:,} own row(s) outside --own-split" in note for note in gap.notes)

    sources = gap.sources.set_index("source")
    assert sources.loc["pbc", "licence"] == "CC BY 4.0" and sources.loc["pbc", "commercial"] == "yes"
    assert sources.loc["wbcbench", "role"] == "own" and sources.loc["wbcbench", "commercial"] == "no"
    assert sources.loc["pbc", "exact images"] == sum(pbc[p] for p in PBC_EXACT)

    # the synth plan: min(gap, 10 x real), 0 where nothing real exists
    plan = load_plan(plan_path)
    raw = yaml.safe_load(plan_path.read_text())
    assert raw["version"] == 1 and raw["max_synth_factor"] == 10
    for c in CLASSES:
        available = own[c] + (pbc[c] if c in PBC_EXACT else 0)
        expected = 0 if available == 0 else min(max(0, max(n, own[c]) - available), 10 * available)
        assert plan.classes[c].generate == raw["classes"][c]["generate"] == expected, c
    assert plan.classes["PLY"].generate == 10 * own["PLY"] and "capped" in plan.classes["PLY"].reason

    # report files: HTML names every class, PNGs decode and are not blank, CSV/JSON carry the same numbers
    html = result.files.html.read_text(encoding="utf-8")
    for c in CLASSES:
        assert f"<td>{c}</td>" in html, c
    assert html.count("data:image/png;base64,") == 2
    for png in result.files.charts:
        with Image.open(png) as image:
            image.load()
            assert image.width >= 800 and image.height >= 400
            assert len(image.convert("RGB").getcolors(maxcolors=1 << 16) or range(1 << 16)) > 20
    data = json.loads(result.files.json.read_text())
    assert {r["class"]: r["available"] for r in data["classes"]} == t["available"].to_dict()
    with open(result.files.csv, newline="") as handle:
        csv_table = {r["class"]: r for r in csv.DictReader(handle)}
    assert all(int(csv_table[c]["available"]) == t.loc[c, "available"] for c in CLASSES)
    md = result.files.markdown.read_text()
    assert "gap-report-classes.png" in md and "critical gap" in md


def test_real_cli_with_wbcbench_target(real):
    ws = real["ws"]
    plan_path = ws.root / "cli-plan.yaml"
    result = CliRunner().invoke(
        app,
        [
            "gap-report",
            "-w",
            str(ws.root),
            "--wbcbench-labels",
            str(real["labels"]),
            "--own",
            "pbc",
            "--quota",
            str(plan_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Gap per class" in result.output and "synth plan:" in result.output  # table cells wrap at 80 cols
    # PBC as own data, WBCBench (train + eval rows) as external: the WBCBench training distribution is met
    pbc, target, evals = real["pbc"], real["target"], real["eval"]
    data = json.loads((ws.reports_dir / "gap-report.json").read_text())
    rows = {r["class"]: r for r in data["classes"]}
    plan = load_plan(plan_path)
    for c in CLASSES:
        own = pbc[c] if c in PBC_EXACT else 0
        assert rows[c]["own"] == own and rows[c]["target"] == target[c], c
        assert rows[c]["available"] == own + target[c] + evals[c], c
        assert rows[c]["status"] == "solved" and plan.classes[c].generate == 0, c
        assert rows[c]["gain"] == (rows[c]["available"] / own if own else None), c


def test_shipped_wbcbench_counts_equal_the_real_csvs():
    """The counts shipped for `--target wbcbench` without CSVs must be exactly what the real label tables say,
    and the target file declares the source and training splits the gap report used to hard-code."""
    from wbc_data.gap.target_files import load_targets

    folder = shared_path("wbcbench2026")
    shipped = load_targets()["wbcbench"]
    assert (shipped.name, shipped.source, shipped.train_splits) == ("wbcbench", "wbcbench", TRAIN_SPLITS)
    assert shipped.shipped and shipped.path.name == "wbcbench-2026-train.yaml"
    assert shipped.counts == dict(wbcbench_counts(folder))


def test_wbcbench_adapter_counts_equal_the_real_csvs():
    """One parser: the adapter's label_counts (what --target-labels uses) equal the CSV rows counted here, per split."""
    from wbc_data.gap.source_counts import counts_from_labels
    from wbc_data.sources.base import PlanContext, load_adapter
    from wbc_data.sources.definition import get_definition

    folder = shared_path("wbcbench2026")
    definition = get_definition("wbcbench")
    adapter, ctx = load_adapter(definition), PlanContext(definition, definition.label_map)
    for split, name in (("phase1_train", "phase1_label.csv"), ("phase2_train", "phase2_train.csv"),
                        ("phase2_eval", "phase2_eval.csv")):  # fmt: skip
        independent = collections.Counter(row["labels"] for row in csv_rows(folder / name))
        assert adapter.label_counts(folder, [split], ctx) == dict(independent), split
    mapped = counts_from_labels("wbcbench", folder, TRAIN_SPLITS)
    assert mapped.to_dict() == {c: wbcbench_counts(folder)[c] for c in CLASSES} and mapped.sum() == 33185


def test_wbcbench_target_falls_back_to_shipped_counts():
    import pandas as pd

    from wbc_data.gap.targets import parse_target

    empty = pd.DataFrame(columns=["source", "status", "label_status", "source_split", "label"])
    target = parse_target("wbcbench", empty)
    assert target.counts["PLY"] == 13 and sum(target.counts.values()) == 33185
    assert "shipped" in target.description
