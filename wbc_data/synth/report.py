"""The synth report (Markdown + self-contained HTML): per class what was asked, accepted and rejected, the
memorisation threshold and how it was calibrated, diversity against the real cells, fidelity when a classifier was
given, and pictures: samples beside real images, and distances to the nearest real image against the threshold."""

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


def outcome_table(outcomes: list[ClassOutcome]) -> pd.DataFrame:
    rows = []
    for o in outcomes:
        d, f = o.diversity, o.fidelity
        rows.append(
            {
                "class": o.label,
                "requested": o.requested,
                "accepted": o.accepted,
                "rejected (near-copy)": o.rejected,
                "draws": o.attempts,
                "threshold": _num(o.calibration.threshold, 4),
                "nearest real, median": _num(
                    float(np.median(o.accepted_distances)) if o.accepted_distances else None, 4
                ),
                "diversity ratio": _num(d.ratio, 2) if d else "",
                "collapse": ("yes" if d.collapsed else "no") if d else "",
                "agreement": f"{f.agreement:.1%}" if f and f.agreement is not None else "",
                "Fréchet": _num(f.frechet, 2) if f and f.frechet is not None else "",
                "Fréchet real halves": _num(f.frechet_real_halves, 2)
                if f and f.frechet_real_halves is not None
                else "",
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
                "dedup rule on distinct pairs": f"{o.calibration.dedup_rule_distinct:.0%}",
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
        ax.hist(o.accepted_distances, bins=bins, color="#1e88e5", label="accepted")
        if o.rejected_distances:
            ax.hist(o.rejected_distances, bins=bins, color="#e53935", label="rejected")
        ax.axvline(o.calibration.threshold, color="black", linestyle="--", label="threshold")
        ax.axvline(o.calibration.distinct_median, color="#43a047", linestyle=":", label="distinct real, median")
        ax.set_title(f"{o.label}: distance to nearest training image", fontsize=9)
        ax.set_xlabel("pixel RMSE (any flip/rotation, 1-px shift)", fontsize=8)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return save_png(fig, path, dpi=100)


def write_report(
    result: SynthResult, workspace: Workspace, real: dict[str, np.ndarray], synthetic: dict[str, np.ndarray]
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
        "Every sample is compared with its class's real training images at the generator's resolution. Rejected "
        "samples are near-copies (pixel RMSE under the calibrated threshold, any flip/rotation and a 1-pixel shift, "
        "or dedup's signature rule: pHash within 8 bits and thumbnail correlation >= 0.90); they were replaced by "
        "new draws up to the attempt cap and stay in the manifest as rejected rows. Diversity: mean pairwise "
        "distance among samples over that among real images (collapse below 0.5, or when over a quarter of "
        "samples have a near-duplicate sample)."
    )
    if any(o.fidelity for o in result.outcomes):
        text += (
            " Fidelity: the share of samples the classifier assigns to the intended class, and the Fréchet distance "
            "between real and synthetic images in its embedding space (both at the generator's resolution); the "
            "distance between two random halves of the real images is the floor to read it against (it grows as "
            "sets shrink)."
        )
    else:
        text += " Fidelity was not measured (no --classifier given)."
    section = report.add(Section("Per class", text, tables=[("", outcome_table(result.outcomes))]))
    short = [o for o in result.outcomes if o.short]
    if short:
        section.text += " Short: " + "; ".join(f"{o.label} {o.accepted:,} of {o.requested:,}" for o in short) + "."
    report.add(
        Section(
            "Memorisation threshold, calibrated on real pairs",
            "Copies: each of up to 64 real images of the class perturbed six ways (Gaussian noise, +10% contrast, "
            "a 1-pixel shift, JPEG q75, a 0.5-pixel blur, a colour cast) and compared with the real images. Distinct: "
            "each real image against its nearest other real image (of the class; of all classes when the class has "
            "fewer than 5). Threshold: the geometric mean of the largest copy distance and the 5th percentile of "
            "distinct distances, or that percentile where they overlap.",
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
    figures.figures.append(
        (
            "Distance of each sample to its nearest training image",
            distance_figure(result.outcomes, reports / f"{stem}-distances.png"),
        )
    )
    report.add(figures)
    report.add(Section("Licence and citation", f"Licence: {g.licence()}. Citation: {g.citation()}."))
    md, html = document.write(report, reports, stem)
    result.report_paths = [md, html]
    return result.report_paths
