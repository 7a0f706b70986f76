"""The experiment's answer, written for a reader who will not open the tables: one sentence on whether the
synthetic cells helped the rare class, the per-class change with its interval as a picture, the samples themselves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wbc_data.io.atomic import atomic_write_text
from wbc_data.report.document import Report, Section, write, write_csv
from wbc_data.report.figures import plt, save_png


def change_png(table: pd.DataFrame, rare: str, path: Path, confidence: float) -> Path:
    """F1 change (with - without) per class with its bootstrap interval; the rare class and macro-F1 stand out."""
    y = np.arange(len(table))
    change = table["change"].to_numpy()
    low, high = table["change low"].to_numpy(), table["change high"].to_numpy()
    colours = ["#1a7f37" if lo > 0 else "#c62828" if hi < 0 else "#555555" for lo, hi in zip(low, high, strict=True)]
    fig, ax = plt.subplots(figsize=(7.0, 1.2 + 0.42 * len(table)), layout="constrained")
    ax.axvline(0, color="black", linewidth=0.8)
    for i, colour in enumerate(colours):
        ax.errorbar(change[i], y[i], xerr=[[change[i] - low[i]], [high[i] - change[i]]], fmt="o", color=colour,
                    capsize=3)  # fmt: skip
    labels = [f"{c} (n={n:,})" for c, n in zip(table["class"], table["support"], strict=True)]
    ax.set_yticks(y, labels)
    for tick, name in zip(ax.get_yticklabels(), table["class"], strict=True):
        if name in (rare, "macro"):
            tick.set_fontweight("bold")
    ax.invert_yaxis()
    ax.set_xlabel(f"F1 with synthetic {rare} - F1 without ({confidence:.0%} paired bootstrap interval)")
    ax.set_title(f"Did synthetic {rare} cells help? Same real test images for both classifiers", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return save_png(fig, path, dpi=120)


def sentence(result: Any, options: Any) -> str:
    """The answer in words, plain when the samples did not help."""
    row = result.table.set_index("class").loc[result.rare]
    macro = result.table.set_index("class").loc["macro"]
    held = ", ".join(f"{c} = {n}" for c, n in options.hold_rare.items())
    interval = f"{options.confidence:.0%} interval {row['change low']:+.3f} to {row['change high']:+.3f}"
    what = {
        "helped": f"Synthetic {result.rare} cells helped",
        "hurt": f"Synthetic {result.rare} cells hurt",
        "no detectable change": f"Synthetic {result.rare} cells did not help detectably",
        "seeds disagree": f"Synthetic {result.rare} cells did not change {result.rare} F1 consistently (the test-set "
        "interval excludes zero, but the training seeds moved it both ways)",
    }[result.verdict]
    added = result.synthetic.get("accepted", 0)
    runs = len(result.runs)
    if runs > 1:
        changes = result.runs["change"]
        noise = (
            f"Each arm is the mean of {runs} training seeds (the change per seed ran from {changes.min():+.3f} to "
            f"{changes.max():+.3f}); the interval resamples the test images."
        )
    else:
        noise = "The interval covers test-set sampling only, not training noise (one run per arm: see --seeds)."
    return (
        f"{what}: with {held} real training image(s) and {added} synthetic ones added, {result.rare} F1 on "
        f"{int(row['support'])} real test cells went from {row['f1 without']:.3f} to {row['f1 with']:.3f} "
        f"(change {row['change']:+.3f}, {interval}); macro-F1 {macro['f1 without']:.3f} -> {macro['f1 with']:.3f}. "
        + noise
    )


def write_report(result: Any, options: Any) -> list[Path]:
    """``report.html`` / ``report.md``, ``experiment.csv`` and ``result.json`` in the experiment folder."""
    out = result.out
    png = change_png(result.table, result.rare, out / "change.png", options.confidence)
    csv = write_csv(out / "experiment.csv", result.table, float_format="%.4f")
    answer = sentence(result, options)
    report = Report(f"Experiment: {result.rare} kept rare, with and without synthetic cells", answer)
    steps = pd.DataFrame([{"step": name, "seconds": round(value, 1)} for name, value in result.seconds.items()])
    report.add(
        Section(
            "Per class",
            f"F1 of the classifier trained without and with the synthetic {result.rare} cells, on the same "
            f"{result.test_rows:,} real test images (the held-out {result.rare} cells included), with "
            f"{options.confidence:.0%} paired bootstrap intervals ({options.resamples:,} resamples).",
            tables=[("", result.table.round(4))],
            figures=[("F1 change per class", png)],
        )
    )
    report.add(
        Section(
            "Per training seed",
            "The same comparison for each classifier run: how far training noise alone moves the figures.",
            tables=[("", result.runs.round(4))],
        )
    )
    synthetic = pd.DataFrame([{k: v for k, v in result.synthetic.items() if k not in ("report", "images", "grid")}])
    figures = [("Accepted synthetic samples", Path(result.synthetic["grid"]))] if result.synthetic.get("grid") else []
    report.add(
        Section(
            "Synthetic cells",
            f"Drawn by a generator trained on exactly the classifier's real training rows; the guards rejected "
            f"near-copies and implausible cells. Full report: {result.synthetic.get('report', '')}.",
            tables=[("", synthetic)],
            figures=figures,
        )
    )
    report.add(Section("Steps", " ".join(result.notes), tables=[("", steps)]))
    summary = {
        "rare": result.rare,
        "verdict": result.verdict,
        "answer": answer,
        "test_rows": result.test_rows,
        "options": json.loads(json.dumps(options.key(), default=str)),
        "synthetic": result.synthetic,
        "seconds": result.seconds,
        "per_class": result.table.to_dict(orient="records"),
        "per_run": result.runs.to_dict(orient="records"),
    }
    atomic_write_text(out / "result.json", json.dumps(summary, indent=2, default=float) + "\n")
    return [png, csv, out / "result.json", *write(report, out, "report")]
