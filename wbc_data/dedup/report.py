"""Dedup report: counts per source pair, label conflicts, leakage, a CSV of all pairs and PNG contact sheets of
the largest and of the borderline clusters, so a person can check the threshold by eye."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wbc_data.atomic import atomic_write_text
from wbc_data.errors import UserError
from wbc_data.pixels import PixelLoader
from wbc_data.report.document import Report, Section, write
from wbc_data.report.figures import plt, save_png

SHEET_ROWS = 6
SHEET_COLS = 8


def source_pair_counts(pairs: pd.DataFrame) -> pd.DataFrame:
    if pairs.empty:
        return pd.DataFrame(columns=["sources", "file", "pixels", "near", "total"])
    lo = np.minimum(pairs["source_a"], pairs["source_b"])
    hi = np.maximum(pairs["source_a"], pairs["source_b"])
    table = pd.crosstab(lo + " / " + hi, pairs["kind"]).reindex(columns=["file", "pixels", "near"], fill_value=0)
    table["total"] = table.sum(axis=1)
    return table.rename_axis("sources").reset_index()


def label_conflicts(frame: pd.DataFrame) -> pd.DataFrame:
    """Clusters whose members carry different labels (exact label, else the raw label)."""
    members = frame[frame["dup_cluster"].notna()].copy()
    if members.empty:
        return pd.DataFrame(columns=["cluster", "size", "labels", "members"])
    members["shown"] = members["label"].fillna(members["label_status"] + ":" + members["source_label"].fillna(""))
    groups = members.groupby("dup_cluster")
    rows = [
        {"cluster": int(c), "size": len(g), "labels": ", ".join(sorted(set(g["shown"]))),
         "members": ", ".join(g["sample_id"].head(4)) + (" ..." if len(g) > 4 else "")}
        for c, g in groups if g["shown"].nunique() > 1
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=["cluster", "size", "labels", "members"])


def _image(row: Any, loader: PixelLoader | None) -> np.ndarray:
    """The row's pixels through the one loader (crop applied), else the stored grey thumbnail when the file is
    not reachable on this machine (the sheet is still worth drawing)."""
    if loader is not None:
        try:
            image = loader.open(row)
            image.thumbnail((128, 128))
            return np.asarray(image)
        except UserError:
            pass
    thumb = row.get("thumb")
    return np.frombuffer(thumb, dtype=np.uint8).reshape(32, 32) if thumb else np.zeros((32, 32))


def contact_sheet(
    frame: pd.DataFrame, cluster_ids: list[int], path: Path, title: str, loader: PixelLoader | None = None
) -> Path | None:
    """One row per cluster (kept member first), up to SHEET_COLS images, captioned with source and distance."""
    if not cluster_ids:
        return None
    fig, axes = plt.subplots(len(cluster_ids), SHEET_COLS, figsize=(SHEET_COLS * 1.6, len(cluster_ids) * 1.9))
    axes = np.atleast_2d(axes)
    for r, cid in enumerate(cluster_ids):
        group = frame[frame["dup_cluster"] == cid].sort_values(["dup_keep", "dup_distance"], ascending=[False, True])
        for c in range(SHEET_COLS):
            ax = axes[r, c]
            ax.axis("off")
            if c >= len(group):
                continue
            row = group.iloc[c]
            ax.imshow(_image(row, loader), cmap="gray")
            tag = "KEEP" if row["dup_keep"] else f"d={row['dup_distance']} {row['dup_transform']}"
            ax.set_title(f"#{cid} {row['source']}\n{row['label'] or row['label_status']} {tag}", fontsize=6)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_png(fig, path, dpi=110)


def build(
    result: Any, frame: pd.DataFrame, directory: Path, options: Any, loader: PixelLoader | None = None
) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    pairs, out = result.pairs, frame
    csv_path = directory / "dedup_pairs.csv"
    columns = ["sample_id_a", "sample_id_b", "source_a", "source_b", "kind", "distance", "transform", "correlation"]
    atomic_write_text(csv_path, pairs[columns].to_csv(index=False))

    in_cluster = out[out["dup_cluster"].notna()]
    sizes = in_cluster["dup_cluster"].value_counts()
    largest = [int(c) for c in sizes.index[:SHEET_ROWS]]
    near = pairs[pairs["kind"] == "near"].sort_values(["distance", "correlation"], ascending=[False, True])
    border_ids = []
    for a in near["a"].to_numpy(np.int64):
        cid = out["dup_cluster"].iloc[a]
        if cid is not pd.NA and int(cid) not in border_ids:
            border_ids.append(int(cid))
        if len(border_ids) == SHEET_ROWS:
            break
    sheets = [
        contact_sheet(out, largest, directory / "dedup_largest.png", "Largest duplicate clusters", loader),
        contact_sheet(
            out, border_ids, directory / "dedup_borderline.png", "Borderline clusters (largest distance)", loader
        ),
    ]

    report = Report(
        "Duplicates and leakage",
        f"Hamming radius {options.threshold} on 64-bit pHashes over all 8 flips/rotations, near pairs verified by "
        f"aligned thumbnail correlation >= {options.min_correlation}. Keep policy: {options.policy.describe()}.",
    )
    summary = pd.DataFrame(
        [
            {"what": "usable rows", "count": len(out)},
            {"what": "rows in a duplicate cluster", "count": len(in_cluster)},
            {"what": "clusters", "count": len(sizes)},
            {"what": "largest cluster", "count": int(sizes.max()) if len(sizes) else 0},
            {"what": "rows dropped (not kept)", "count": int((~out["dup_keep"].astype(bool)).sum())},
            {"what": "pairs: same file", "count": int((pairs["kind"] == "file").sum())},
            {"what": "pairs: same pixels", "count": int((pairs["kind"] == "pixels").sum())},
            {"what": "pairs: near copies", "count": int((pairs["kind"] == "near").sum())},
        ]
    )
    report.add(Section("Summary", tables=[("", summary)]))
    report.add(Section("Pairs per source pair", tables=[("", source_pair_counts(pairs))]))
    conflicts = label_conflicts(out)
    report.add(Section("Label conflicts inside clusters", f"{len(conflicts)} cluster(s) disagree on the label.",
                       tables=[("", conflicts.head(200))]))  # fmt: skip
    if options.against is not None:
        leaks = result.leaks
        text = f"{len(leaks)} training row(s) have a copy in {options.against}" + (
            " and are marked not kept (--exclude-leaks)." if options.exclude_leaks else "."
        )
        shown = leaks[["sample_id", "source", "eval_id", "kind", "distance", "transform"]] if len(leaks) else leaks
        report.add(Section("Leakage against the evaluation set", text, tables=[("", shown.head(500))]))
    figures = [
        (c, p) for c, p in zip(["Largest clusters", "Borderline clusters"], sheets, strict=True) if p is not None
    ]
    report.add(Section("Contact sheets", f"All pairs: {csv_path.name}", figures=figures))
    md, html = write(report, directory, "dedup")
    return [md, html, csv_path, *[p for p in sheets if p is not None]]
