"""The synth report (Markdown + self-contained HTML): per class what was asked, accepted and rejected (near-copies,
and samples that are not plausible cells of their class), the yield, the memorisation threshold and the fidelity
gate's radius and how each was calibrated, diversity against the real cells, fidelity numbers (KID and
precision/recall in an ImageNet embedding, beside real-vs-real and noise references), a classifier's agreement when
one was given, and pictures: samples beside real images, rejected samples, and each guard's distances."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from wbc_data.report import document
from wbc_data.report.document import Report, Section

if TYPE_CHECKING:
    from wbc_data.core.workspace import Workspace
    from wbc_data.synth.sample import ClassOutcome, SynthResult


def _num(value: float | None, digits: int = 3) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _share(value: float | None) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.0%}"


def outcome_table(outcomes: list[ClassOutcome]) -> pd.DataFrame:
    rows = []
    for o in outcomes:
        d, a = o.diversity, o.agreement
        row = {
            "class": o.label,
            "requested": o.requested,
            "accepted": o.accepted,
            "rejected (near-copy)": o.rejected,
            "rejected (not plausible)": o.implausible if o.gate else "gate off",
            "draws": o.attempts,
            "yield": _share(o.yield_rate),
            "threshold": _num(o.calibration.threshold, 4),
            "nearest real, median": _num(float(np.median(o.accepted_distances)) if o.accepted_distances else None, 4),
            "diversity ratio": _num(d.ratio, 2) if d else "",
            "collapse": ("yes" if d.collapsed else "no") if d else "",
        }
        if any(x.agreement for x in outcomes):
            row["classifier agrees"] = f"{a.agreement:.1%}" if a and a.agreement is not None else ""
        rows.append(row)
    return pd.DataFrame(rows)


def gate_table(outcomes: list[ClassOutcome]) -> pd.DataFrame:
    rows = []
    for o in outcomes:
        g = o.gate
        passed, failed = o.gate_distances.get(True, []), o.gate_distances.get(False, [])
        rows.append(
            {
                "class": o.label,
                "real cells": g.n_real if g else "",
                "quantile": f"{g.quantile:.0%}" if g else "",
                "real: median": _num(g.real_median, 2) if g else "",
                "real: max": _num(g.real_max, 2) if g else "",
                "radius": _num(g.radius, 2) if g else (o.gate_note or ""),
                "samples: median": _num(float(np.median(passed + failed)) if passed + failed else None, 2),
                "passed": f"{len(passed):,} of {len(passed) + len(failed):,}" if g else "",
            }
        )
    return pd.DataFrame(rows)


def fidelity_table(outcomes: list[ClassOutcome]) -> pd.DataFrame:
    rows = []
    for o in outcomes:
        measured = [("accepted samples", o.fidelity), ("every drawn sample", o.fidelity_drawn)]
        first = next((f for _, f in measured if f is not None), None)
        if first is None:
            continue
        sets = [(name, f.samples) for name, f in measured if f is not None]
        sets += [(name, c) for name, c in first.rows() if name != "samples"]
        for name, c in sets:
            rows.append(
                {
                    "class": o.label,
                    "set": name,
                    "images": c.n_other,
                    "real (half A)": c.n_real,
                    "KID": _num(c.kid, 4),
                    "precision": _num(c.precision, 2),
                    "recall": _num(c.recall, 2),
                }
            )
    return pd.DataFrame(rows)


def calibration_table(outcomes: list[ClassOutcome]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "class": o.label,
                "real images": o.calibration.n_real,
                "distinct pairs from": o.calibration.reference,
                "copies: median": _num(o.calibration.copies_median, 4),
                "copies: max": _num(o.calibration.copies_max, 4),
                "distinct: low (5th pct; least under 20)": _num(o.calibration.distinct_low, 4),
                "distinct: median": _num(o.calibration.distinct_median, 4),
                "threshold": _num(o.calibration.threshold, 4),
                "dedup copy test on distinct real cells": f"{o.calibration.dedup_rule_distinct:.0%}",
            }
            for o in outcomes
        ]
    )


def distance_figure(outcomes: list[ClassOutcome], path: Path) -> Path:
    from wbc_data.report.figures import plt, save_png

    fig, axes = plt.subplots(1, len(outcomes), figsize=(4.2 * len(outcomes), 3.0), squeeze=False)
    for ax, o in zip(axes[0], outcomes, strict=True):
        values = o.accepted_distances + o.rejected_distances
        top = max([*values, o.calibration.distinct_median * 1.5, o.calibration.threshold * 2])
        bins = np.linspace(0, top, 30)
        ax.hist(o.accepted_distances, bins=bins, color="#1e88e5", label="no copy")
        if o.rejected_distances:
            ax.hist(o.rejected_distances, bins=bins, color="#e53935", label="near-copy")
        ax.axvline(o.calibration.threshold, color="black", linestyle="--", label="threshold")
        ax.axvline(o.calibration.distinct_median, color="#43a047", linestyle=":", label="distinct real, median")
        ax.set_title(f"{o.label}: distance to nearest training image", fontsize=9)
        ax.set_xlabel("pixel RMSE (any flip/rotation, 1-px shift)", fontsize=8)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return save_png(fig, path, dpi=100)


def gate_figure(outcomes: list[ClassOutcome], path: Path) -> Path:
    """Per class: samples' distance to the nearest real cell in the embedding, beside real cells' distance to their
    nearest other real cell, and the gate's radius."""
    from wbc_data.report.figures import plt, save_png

    gated = [o for o in outcomes if o.gate is not None]
    fig, axes = plt.subplots(1, len(gated), figsize=(4.2 * len(gated), 3.0), squeeze=False)
    for ax, o in zip(axes[0], gated, strict=True):
        assert o.gate is not None
        real = list(o.gate.real_distances)
        passed, failed = o.gate_distances.get(True, []), o.gate_distances.get(False, [])
        bins = np.linspace(0, max([*real, *passed, *failed, o.gate.radius]) * 1.05, 30)
        ax.hist([passed, failed], bins=bins, color=["#1e88e5", "#e53935"], stacked=True,
                label=["samples: plausible", "samples: not plausible"])  # fmt: skip
        # the real cells as an outline on top: filled and drawn first, the samples' bars hid them
        ax.hist(real, bins=bins, histtype="step", color="#424242", linewidth=1.5,
                label="real cells (nearest other real)")  # fmt: skip
        ax.axvline(o.gate.radius, color="black", linestyle="--", label="radius")
        ax.set_title(f"{o.label}: distance to nearest real {o.label}", fontsize=9)
        ax.set_xlabel("ImageNet embedding (tf_efficientnet_lite0)", fontsize=8)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return save_png(fig, path, dpi=100)


def write_report(
    result: SynthResult,
    workspace: Workspace,
    real: dict[str, np.ndarray],
    synthetic: dict[str, np.ndarray],
    rejected: dict[str, np.ndarray] | None = None,
) -> list[Path]:
    from wbc_data.synth.grids import beside_real

    reports = workspace.reports_dir
    stem = f"synth-{result.name}"
    g = result.generator
    s = result.settings
    report = Report(
        title=f"Synthetic cells: {result.name}",
        intro=(
            f"Generator {g.id} ({g.resolution} px, trained {g.trained_steps:,} of {g.planned_steps:,} steps on "
            f"{sum(g.class_counts.values()):,} images in {g.training_seconds / 60:.1f} min, {g.device}). Sampled on "
            f"{result.device} with {s['scheduler']} ({s['steps']} steps), guidance {s['guidance']:g}, seed "
            f"{s['seed']}{', domain ' + s['domain'] if s['domain'] else ''}, in {result.seconds:.1f} s. Rows: "
            f"source {result.source} (merge with `wbc-data manifest`; synthetic rows are train-only)."
        ),
    )
    text = (
        "Every sample is compared with its class's real training images at the generator's resolution, by two "
        "guards. The memorisation guard rejects near-copies (pixel RMSE under the calibrated threshold, any "
        "flip/rotation and a 1-pixel shift, or dedup's copy test: registration at any angle, scale and crop, then "
        "correlation of intensities >= 0.90 and of fine texture >= 0.80). The fidelity gate rejects samples that are "
        "not plausible cells of their class: farther from every real cell of the class, in an ImageNet embedding "
        "not trained on these images, than real cells are from their nearest other real cell (the radius below). "
        "Rejected samples were replaced by new draws up to the attempt cap and stay in the manifest as rejected "
        "rows, their images under rejected/ for inspection. Yield: accepted samples per draw. Diversity: mean "
        "pairwise distance among samples over that among real images (collapse below 0.5, or when over a quarter "
        "of samples have a near-duplicate sample)."
    )
    if any(o.agreement for o in result.outcomes):
        text += (
            " Classifier agreement: the share of accepted samples the given classifier assigns to the intended "
            "class (a check of the class condition; a classifier can be fooled by images that are no cells)."
        )
    section = report.add(Section("Per class", text, tables=[("", outcome_table(result.outcomes))]))
    short = [o for o in result.outcomes if o.short]
    if short:
        section.text += " Short: " + "; ".join(f"{o.label} {o.accepted:,} of {o.requested:,}" for o in short) + "."
    none = [o.label for o in result.outcomes if o.accepted == 0]
    if none:
        section.text += (
            f" No sample of {', '.join(none)} passed the guards: the generator does not yet draw cells of "
            f"{'this class' if len(none) == 1 else 'these classes'} (see the rejected samples below); train it "
            "longer or better, the gate is not what to loosen."
        )
    gated = [o for o in result.outcomes if o.gate is not None]
    report.add(
        Section(
            "Fidelity gate, calibrated on real cells",
            "Embedding: global-pooled features of ImageNet-pretrained tf_efficientnet_lite0 (timm), cells "
            "letterboxed to 224 px as the classifier sees them. For each real training cell of the class (up to "
            f"{s.get('reference_max', 500):,}), the distance to its nearest other real cell; the radius "
            "is a high quantile of these, so about (1 - quantile) of genuine cells would be refused. A sample "
            "farther than the radius from every real cell of its class is rejected.",
            tables=[("", gate_table(result.outcomes))],
        )
    )
    fidelity = fidelity_table(result.outcomes)
    report.add(
        Section(
            "Fidelity, beside real-vs-real and noise",
            "In the same embedding, per class. The real cells of the class (any split unless --reference-split "
            "says otherwise, up to the reference limit) are split into two random halves; every set is compared "
            "with half A. KID: unbiased squared MMD with the cubic polynomial kernel (Binkowski et al. 2018; 0 "
            "means indistinguishable, slightly negative values are noise). Precision: share of the set inside the "
            "real cells' 3-nearest-neighbour balls (realism); recall: share of real cells inside the set's balls "
            "(variety) (Kynkäänniemi et al. 2019). Read the samples' row between the floor (real half B: what a "
            "perfect generator scores at this size) and the ceilings (half B blurred; coloured noise with half B's "
            "colours). Recall also grows with the set's size."
            if len(fidelity)
            else "Not measured: no sample to measure, or fewer than 2 real cells of the class.",
            tables=[("", fidelity)] if len(fidelity) else [],
        )
    )
    report.add(
        Section(
            "Memorisation threshold, calibrated on real pairs",
            "Copies: each of up to 64 real images of the class perturbed six ways (Gaussian noise, +10% contrast, "
            "a 1-pixel shift, JPEG q75, a 0.5-pixel blur, a colour cast) and compared with the real images. Distinct: "
            "each real image against its nearest other real image (of the class; of all classes when the class has "
            "fewer than 5). Threshold: the geometric mean of the largest copy distance and the 5th percentile of "
            "distinct distances, or that percentile where they overlap. The last column is how often dedup's copy "
            "test calls distinct real cells copies at this resolution (it should be 0%; registration needs about "
            "64 px to catch rotated, rescaled or cropped copies, below that the pixel test guards).",
            tables=[("", calibration_table(result.outcomes))],
        )
    )
    figures = Section("Pictures")
    if synthetic:
        grid = beside_real(
            real,
            synthetic,
            reports / f"{stem}-grid.png",
            f"{result.name}: real training images (left) and accepted samples (right)",
        )
        result.grid_path = grid
        figures.figures.append(("Real training images (left) and accepted samples (right)", grid))
    if rejected:
        picture = beside_real(
            real,
            rejected,
            reports / f"{stem}-rejected.png",
            f"{result.name}: real training images (left) and rejected samples (right)",
            shown="rejected samples",
        )
        figures.figures.append(("Rejected samples (the reason of each is in the manifest)", picture))
    figures.figures.append(
        (
            "Distance of each sample to its nearest training image",
            distance_figure(result.outcomes, reports / f"{stem}-distances.png"),
        )
    )
    if gated:
        figures.figures.append(
            (
                "Fidelity gate: distance of each sample to its nearest real cell of the class, in the embedding",
                gate_figure(gated, reports / f"{stem}-gate.png"),
            )
        )
    report.add(figures)
    report.add(Section("Licence and citation", f"Licence: {g.licence()}. Citation: {g.citation()}."))
    md, html = document.write(report, reports, stem)
    result.report_paths = [md, html]
    return result.report_paths
