"""Pictures of an evaluation: the confusion matrix, and two runs' per-class F1 side by side so the effect of a
change (external data, synthetic rows) on each rare class is visible at a glance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from wbc_data.report.figures import plt, save_png


def confusion_png(confusion: pd.DataFrame, path: Path, title: str) -> Path:
    """Rows: true class, columns: predicted; colour is the share of the true class (recall), text the count."""
    counts = confusion.to_numpy()
    shares = counts / np.clip(counts.sum(axis=1, keepdims=True), 1, None)
    n_rows, n_cols = counts.shape
    fig, ax = plt.subplots(figsize=(1.0 + 0.62 * n_cols, 1.2 + 0.55 * n_rows), layout="constrained")
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for i in range(n_rows):
        for j in range(n_cols):
            if counts[i, j]:
                colour = "white" if shares[i, j] > 0.55 else "black"
                ax.text(j, i, f"{counts[i, j]:,}", ha="center", va="center", fontsize=8, color=colour)
    ax.set_xticks(range(n_cols), confusion.columns, rotation=45, ha="right")
    ax.set_yticks(range(n_rows), [f"{c} ({counts[i].sum():,})" for i, c in enumerate(confusion.index)])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (images)")
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, label="share of the true class", shrink=0.8)
    return save_png(fig, path, dpi=120)


def compare_png(table: pd.DataFrame, names: tuple[str, str], path: Path, title: str) -> Path:
    """Per-class F1 of two runs (``f1 <name>`` columns of ``table``, one row per class with ``support``) as paired
    bars, the change written beside each pair (with its interval where ``table`` has ``change low`` and ``change
    high``); the macro-F1 of each run in the legend."""
    classes = table["class"].tolist()
    a, b = table[f"f1 {names[0]}"].to_numpy(), table[f"f1 {names[1]}"].to_numpy()
    y = np.arange(len(classes))
    fig, ax = plt.subplots(figsize=(7.5, 1.2 + 0.45 * len(classes)), layout="constrained")
    ax.barh(y - 0.2, a, height=0.4, color="#9aa5b1", label=f"{names[0]} (macro-F1 {a.mean():.3f})")
    ax.barh(y + 0.2, b, height=0.4, color="#2f6db5", label=f"{names[1]} (macro-F1 {b.mean():.3f})")
    intervals = "change low" in table.columns and "change high" in table.columns
    for i, (x0, x1) in enumerate(zip(a, b, strict=True)):
        delta = x1 - x0
        colour = "#1a7f37" if delta > 0.005 else "#c62828" if delta < -0.005 else "#555555"
        text = f"{delta:+.3f}"
        if intervals:
            low, high = table["change low"].iloc[i], table["change high"].iloc[i]
            text = f"{delta:+.2f} [{low:+.2f}, {high:+.2f}]"
            if low <= 0 <= high:
                colour = "#555555"  # the images do not show this change
        ax.text(max(x0, x1) + 0.01, i, text, va="center", fontsize=8, color=colour)
    ax.set_yticks(y, [f"{c} (n={n:,})" for c, n in zip(classes, table["support"], strict=True)])
    ax.invert_yaxis()
    ax.set_xlim(0, 1.3 if intervals else 1.12)
    ax.set_xticks(np.linspace(0, 1, 6))
    beside = f"{names[1]} - {names[0]}"
    if intervals:
        beside += " [95% paired bootstrap interval], grey where it holds 0"
    ax.set_xlabel(f"F1 on the same real images\nbeside each pair: {beside}", fontsize=9)
    ax.set_title(title, fontsize=10)
    fig.legend(loc="outside lower center", ncol=2, fontsize=8, frameon=False)  # inside, it covered the last bars
    ax.grid(axis="x", alpha=0.3)
    return save_png(fig, path, dpi=120)
