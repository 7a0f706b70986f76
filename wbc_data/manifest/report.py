"""The manifest report: class distribution per source (PNG), label statuses, rejections by reason.
Written by `wbc-data manifest` next to the unified manifest so a person can check an ingest at a glance."""

from __future__ import annotations

from pathlib import Path

import matplotlib.ticker
import numpy as np
import pandas as pd

from wbc_data.core.taxonomy import CLASSES, FULL_NAMES
from wbc_data.manifest import summary
from wbc_data.report.document import Report, Section, write
from wbc_data.report.figures import plt, save_png


def class_distribution_png(frame: pd.DataFrame, path: Path) -> Path:
    """Grouped bars: exact-label images per class, one bar per source, log scale so rare classes stay visible."""
    table = summary.class_by_source(frame).loc[list(CLASSES)].drop(columns="total")
    sources = list(table.columns)
    width = 0.8 / max(len(sources), 1)
    x = np.arange(len(CLASSES))
    fig, ax = plt.subplots(figsize=(11, 4.5), dpi=110)
    for i, source in enumerate(sources):
        values = table[source].to_numpy().astype(float)
        ax.bar(x + (i - (len(sources) - 1) / 2) * width, np.where(values > 0, values, np.nan), width, label=source)
    totals = table.sum(axis=1).to_numpy()
    ax.set_xticks(x, [f"{c}\n{int(t):,}" if t else f"{c}\nnone" for c, t in zip(CLASSES, totals, strict=True)])
    ax.set_yscale("log")
    ax.set_ylim(bottom=0.8, top=max(float(totals.max()), 10.0) * 2)
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_ylabel("images with an exact label (log)")
    ax.set_title("Images per class and source (13 WBCBench classes; total under each class)")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.17), ncol=min(len(sources), 5),
              frameon=False)  # below the axes: inside, it can cover the last classes' bars  # fmt: skip
    fig.tight_layout()
    return save_png(fig, path)


def build(frame: pd.DataFrame, directory: Path) -> tuple[Path, Path]:
    png = class_distribution_png(frame, directory / "class-distribution.png")
    report = Report(
        title="wbc-data manifest",
        intro=f"{len(frame):,} rows from {frame['source'].nunique()} source(s).",
    )
    by_source = summary.class_by_source(frame).reset_index().rename(columns={"label": "class"})
    by_source.insert(1, "name", by_source["class"].map(FULL_NAMES).fillna(""))
    report.add(Section("Classes per source", "Exact labels; coarse and other statuses in the rows below.",
                       tables=[("", by_source)], figures=[("Images per class and source", png)]))  # fmt: skip
    files = pd.concat(
        [pd.DataFrame([summary.file_counts(part)]).assign(source=src) for src, part in frame.groupby("source")]
    )
    report.add(Section("Files", tables=[("", files[["source", *files.columns[:-1]]])]))
    rejected = summary.rejection_table(frame)
    report.add(Section("Rejected rows", "Every file that could not be used, grouped by reason.",
                       tables=[("", rejected)] if len(rejected) else []))  # fmt: skip
    licences = frame.groupby(["source", "licence"], dropna=False).size().reset_index(name="rows")
    report.add(Section("Licences", tables=[("", licences)]))
    return write(report, directory, "manifest")
