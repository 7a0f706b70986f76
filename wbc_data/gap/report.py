"""Write the gap report: Markdown + self-contained HTML (wbc_data.report.document), CSV and JSON of the
numbers, and the PNG charts, all into ``<workspace>/reports/``."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from wbc_data.gap.charts import class_bars_png, source_share_png
from wbc_data.gap.table import GapTable
from wbc_data.io.atomic import atomic_write_text
from wbc_data.report.document import Report, Section, write, write_csv

STEM = "gap-report"


@dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    html: Path
    csv: Path
    json: Path
    charts: tuple[Path, ...]


def _blank(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def fmt_int(value: Any) -> str:
    return "-" if _blank(value) else f"{int(value):,}"


def fmt_gain(value: Any) -> str:
    return "-" if _blank(value) else f"{value:,.1f}x"


def fmt_pct(value: Any) -> str:
    return "-" if _blank(value) else f"{value:.0%}"


def display_table(gap: GapTable, compact: bool = False) -> pd.DataFrame:
    """The class table as text cells (dashes for unknown/undefined), for Markdown, HTML and the terminal."""
    t = gap.classes
    columns = [
        "own",
        "own patients",
        *gap.external_sources,
        "external",
        "external after dedup",
        "duplicates dropped",
        "available",
        "independent groups",
        "commercial use ok",
        "coarse candidates",
        "conflict candidates",
        "synthetic",
        "gain",
        "target",
        "missing",
        "coverage",
        "status",
    ]
    if compact:
        columns = [
            "own",
            "own patients",
            "external",
            "external after dedup",
            "coarse candidates",
            "synthetic",
            "available",
            "gain",
            "target",
            "coverage",
            "status",
        ]
    out = pd.DataFrame({"class": t.index})
    if not compact:
        out["name"] = t["name"].to_list()
    for column in columns:
        values = t[column].to_list()
        if column == "gain":
            out[column] = [fmt_gain(v) for v in values]
        elif column == "coverage":
            out[column] = [fmt_pct(v) for v in values]
        elif column == "status":
            out[column] = values
        else:
            out[column] = [fmt_int(v) for v in values]
    return out.rename(columns=SHORT) if compact else out


SHORT = {
    "own patients": "own pat.",
    "external": "ext",
    "external after dedup": "ext dedup",
    "coarse candidates": "coarse",
    "synthetic": "synth",
    "available": "avail",
    "coverage": "cover",
}
"""Terminal headers for the compact table (80 columns must stay readable)."""


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: (None if _blank(v) else (v.item() if hasattr(v, "item") else v)) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]


def to_json(gap: GapTable, plan_path: Path | None = None) -> dict[str, Any]:
    return {
        "target": {"spec": gap.target.spec, "description": gap.target.description},
        "thresholds": {"solved_at": gap.thresholds.solved_at, "partial_at": gap.thresholds.partial_at},
        "own_sources": gap.own_sources,
        "external_sources": gap.external_sources,
        "notes": gap.notes,
        "classes": _records(gap.classes.reset_index()),
        "sources": _records(gap.sources),
        "licences": _records(gap.licences.reset_index()),
        "plan": str(plan_path) if plan_path else None,
    }


def _rules(gap: GapTable) -> str:
    th = gap.thresholds
    return (
        f"Own data: {', '.join(gap.own_sources) or 'none'}. Target: {gap.target.description}. "
        "Only rows with status 'ok' count; an exact label counts for its class. 'available' = own + external "
        "exact images after dedup (duplicates dropped by dedup removed); coarse/conflict rows are counted per "
        "candidate class and fill nothing until resolved; synthetic rows are shown apart and never count as real. "
        "gain = available / own. 'own patients' counts distinct patient ids where known; 'independent groups' "
        "counts patients, fields or single images (20 images of one patient are one group). "
        f"Status: coverage = available / target; solved at >= {th.solved_at:.0%}, partial at >= {th.partial_at:.0%}, "
        "below that a critical gap."
    )


def build_report(gap: GapTable, charts: tuple[Path, ...], plan_path: Path | None) -> Report:
    counts = gap.classes["status"].value_counts()
    summary = ", ".join(f"{counts[s]} {s}" for s in ("solved", "partial", "critical gap", "no target") if s in counts)
    report = Report(title="wbc-data gap report", intro=f"13 classes: {summary}. {_rules(gap)}")
    report.add(
        Section(
            "Per class",
            "; ".join(gap.notes),
            tables=[("", display_table(gap))],
            figures=[("Own vs external vs target (log scale)", charts[0])],
        )
    )
    sources = gap.sources.copy()
    for column in ("patients",):
        if column in sources:
            sources[column] = [fmt_int(v) for v in sources[column]]
    report.add(
        Section(
            "Sources and licences",
            "publish / commercial: a coarse reading of each licence string ('check terms' where it is "
            "not a known open licence). The class x licence table shows what a subset restricted to "
            "one kind of licence would hold.",
            tables=[
                ("Per source", sources),
                ("Images per class and licence (after dedup)", gap.licences.reset_index()),
            ],
            figures=[("Where each class's images come from", charts[1])],
        )
    )
    if plan_path is not None:
        report.add(Section("Synth plan", f"Written to {plan_path} (read by `wbc-data synth --plan`)."))
    return report


def write_report(
    gap: GapTable, directory: Path, plan_path: Path | None = None, plan_table: pd.DataFrame | None = None
) -> ReportFiles:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    charts = (
        class_bars_png(gap, directory / f"{STEM}-classes.png"),
        source_share_png(gap, directory / f"{STEM}-sources.png"),
    )
    report = build_report(gap, charts, plan_path)
    if plan_table is not None:
        report.sections[-1].tables.append(("Images to generate per class", plan_table))
    md, html = write(report, directory, STEM)
    csv_path = write_csv(directory / f"{STEM}.csv", gap.classes, index=True)
    json_path = directory / f"{STEM}.json"
    atomic_write_text(json_path, json.dumps(to_json(gap, plan_path), indent=2))
    return ReportFiles(md, html, csv_path, json_path, charts)
