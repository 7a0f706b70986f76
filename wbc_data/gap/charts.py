"""PNG charts of the gap table (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.ticker
import numpy as np
import pandas as pd

from wbc_data.core.taxonomy import CLASSES
from wbc_data.gap.table import GapTable
from wbc_data.report.figures import plt, save_png

STATUS_COLOURS = {"solved": "#2e7d32", "partial": "#f9a825", "critical gap": "#c62828", "no target": "#777777"}


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    return save_png(fig, path)


def _positive(values: pd.Series) -> np.ndarray:
    array = values.astype("float64").to_numpy()
    return np.where(array > 0, array, np.nan)  # log scale: leave empty bars out instead of failing on 0


def class_bars_png(gap: GapTable, path: Path) -> Path:
    """Per class: own, external after dedup, coarse candidates and synthetic as bars, the target as a tick,
    on a log scale so that 13 prolymphocytes stay visible next to 15,000 neutrophils."""
    t = gap.classes
    x = np.arange(len(CLASSES))
    series = [
        ("own", t["own after dedup"], "#1565c0"),
        ("external after dedup", t["external after dedup"], "#ef6c00"),
        ("coarse candidates", t["coarse candidates"], "#b0bec5"),
        ("synthetic", t["synthetic"], "#8e24aa"),
    ]
    series = [s for s in series if s[1].sum() > 0 or s[0] in {"own", "external after dedup"}]
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(12, 5), dpi=110)
    for i, (label, values, colour) in enumerate(series):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, _positive(values), width, label=label, color=colour)
    targets = t["target"].astype("float64").to_numpy()
    if np.isfinite(targets).any():
        ax.scatter(
            x,
            np.where(targets > 0, targets, np.nan),
            marker="_",
            s=900,
            linewidths=2.5,
            color="black",
            label=f"target ({gap.target.spec})",
            zorder=3,
        )
    labels = [f"{c}\n{s}" for c, s in zip(CLASSES, t["status"], strict=True)]
    ax.set_xticks(x, labels, fontsize=8)
    for tick, status in zip(ax.get_xticklabels(), t["status"], strict=True):
        tick.set_color(STATUS_COLOURS.get(status, "black"))
    ax.set_yscale("log")
    top = np.nanmax(np.concatenate([t[[s[0] for s in series]].to_numpy(dtype="float64").ravel(), targets, [10.0]]))
    ax.set_ylim(bottom=0.8, top=top * 2)
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_ylabel("images (log)")
    ax.set_title("Images per class: own vs external (after dedup) vs target; status under each class")
    ax.legend(fontsize=8, loc="upper right")
    return _save(fig, path)


def source_share_png(gap: GapTable, path: Path) -> Path:
    """Stacked 100% bars: which source each class's available images come from (total on each bar), so a
    class that rests on one external source (or on one licence) shows at a glance."""
    counts = gap.by_source.astype("float64").rename(columns={s: f"{s} (own)" for s in gap.own_sources})
    totals = counts.sum(axis=1)
    shares = counts.div(totals.replace(0, np.nan), axis=0).fillna(0)
    fig, ax = plt.subplots(figsize=(11, 5.5), dpi=110)
    left = np.zeros(len(CLASSES))
    colours = plt.get_cmap("tab20").colors
    for i, column in enumerate(shares.columns):
        ax.barh(np.arange(len(CLASSES)), shares[column], left=left, label=column, color=colours[i % len(colours)])
        left += shares[column].to_numpy()
    ax.set_yticks(np.arange(len(CLASSES)), [f"{c}  ({round(n):,})" for c, n in zip(CLASSES, totals, strict=True)])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.set_xlabel("share of available images (after dedup); total in brackets")
    ax.set_title("Where each class's images come from")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=min(len(shares.columns), 5),
              frameon=False)  # below the bars: inside, it covered the last classes' bars  # fmt: skip
    return _save(fig, path)
