"""The split report: eligible images per class and split (Markdown, HTML, CSV and a PNG), the units, what was
excluded and why, and every class that could not reach a split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from wbc_data.core.rows import is_synthetic
from wbc_data.core.taxonomy import CLASSES
from wbc_data.report.document import Report, Section, write, write_csv
from wbc_data.report.figures import plt, save_png
from wbc_data.split.assign import EXCLUDED, SPLITS

COLORS = {"train": "#4c78a8", "val": "#f58518", "test": "#54a24b"}


def class_split_table(frame: pd.DataFrame, eligible: np.ndarray) -> pd.DataFrame:
    """Classes x (train, val, test, synthetic train, excluded): eligible images per split, synthetic apart."""
    labelled = frame.assign(_eligible=eligible)
    real = labelled[labelled["_eligible"]]
    table = pd.crosstab(real["label"], real["split"]).reindex(index=list(CLASSES), columns=list(SPLITS), fill_value=0)
    if "is_synthetic" in frame.columns:
        synthetic = frame[is_synthetic(frame) & frame["label"].notna()]
        table["synthetic (train)"] = synthetic["label"].value_counts().reindex(table.index, fill_value=0)
    excluded = frame[(frame["split"] == EXCLUDED) & frame["label"].notna()]
    table["excluded"] = excluded["label"].value_counts().reindex(table.index, fill_value=0)
    table.index.name = "class"
    return table.astype("int64")


def unreached(table: pd.DataFrame) -> list[str]:
    """One line per class with real images that is missing from val or test."""
    lines = []
    for cls, row in table.iterrows():
        total = int(row[list(SPLITS)].sum())
        missing = [s for s in ("val", "test") if row[s] == 0]
        if total and missing:
            lines.append(
                f"{cls}: {total} eligible image(s), none in {' or '.join(missing)} "
                f"(too few independent images for the requested shares; add data or report it without {missing[0]})"
            )
    return lines


def split_png(table: pd.DataFrame, path: Path) -> Path:
    """Stacked horizontal bars per class: train / val / test, log-free shares with counts written on the bars."""
    fig, ax = plt.subplots(figsize=(10, 5.2), dpi=110)
    totals = table[list(SPLITS)].sum(axis=1).replace(0, np.nan)
    left = np.zeros(len(table))
    y = np.arange(len(table))[::-1]
    for split in SPLITS:
        share = (table[split] / totals).fillna(0).to_numpy()
        ax.barh(y, share, left=left, color=COLORS[split], label=split)
        for yi, li, si, n in zip(y, left, share, table[split].to_numpy(), strict=True):
            if n and si > 0.04:
                ax.text(li + si / 2, yi, f"{n:,}", ha="center", va="center", fontsize=7, color="white")
        left += share
    ax.set_yticks(y, [f"{c} ({int(t) if t == t else 0:,})" for c, t in zip(table.index, totals, strict=True)])
    for yi, t in zip(y, totals, strict=True):
        if t != t:  # no eligible image of this class at all
            ax.text(0.01, yi, "no images", va="center", fontsize=7, color="#888")
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of the class's eligible images (count on the bar)")
    ax.set_title("Split per class (real, exact-label, kept images)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.11), ncol=3, fontsize=8, frameon=False)
    fig.tight_layout()
    return save_png(fig, path)


def write_report(
    table: pd.DataFrame, units: pd.DataFrame, notes: list[str], params: str, directory: Path
) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    png = split_png(table, directory / "split.png")
    csv_path = write_csv(directory / "split.csv", table, index=True)
    report = Report(
        "Train / validation / test split",
        f"{params}. Rows of one patient, field image, group or duplicate cluster always share a split; validation "
        "and test hold real, exact-label, deduplicated images only; synthetic rows are train only.",
    )
    report.add(Section("Images per class and split", tables=[("", table.reset_index())],
                       figures=[("Share of each class per split", png)]))  # fmt: skip
    report.add(Section("Leak units", "Independent units (what is stratified) per split.", tables=[("", units)]))
    report.add(Section("Notes", "\n".join(f"- {n}" for n in notes) if notes else "Every class reached every split."))
    md, html = write(report, directory, "split")
    return [md, html, csv_path, png]
