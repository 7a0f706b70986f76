"""Dedup report: counts per source pair, label conflicts, leakage, a CSV of all pairs and PNG contact sheets of
the largest and of the borderline clusters, so a person can check the threshold by eye."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wbc_data.core.errors import UserError
from wbc_data.core.taxonomy import NOT_LEUKOCYTE, LabelStatus
from wbc_data.dedup.keypoints import MIN_INLIERS
from wbc_data.io.pixels import PixelLoader
from wbc_data.report.document import Report, Section, write, write_csv
from wbc_data.report.figures import plt, save_png

SHEET_ROWS = 6
SHEET_COLS = 8
CAPTION_WIDTH = 30
"""Characters per caption line under a tile (two lines at most: how the row joined, then the transform)."""


def source_pair_counts(pairs: pd.DataFrame) -> pd.DataFrame:
    if pairs.empty:
        return pd.DataFrame(columns=["sources", "file", "pixels", "near", "total"])
    lo = np.minimum(pairs["source_a"], pairs["source_b"])
    hi = np.maximum(pairs["source_a"], pairs["source_b"])
    table = pd.crosstab(lo + " / " + hi, pairs["kind"]).reindex(columns=["file", "pixels", "near"], fill_value=0)
    table["total"] = table.sum(axis=1)
    return table.rename_axis("sources").reset_index()


def label_claims(frame: pd.DataFrame) -> list[frozenset[str] | None]:
    """What each row's label says in the 13-class space: the classes it may be (its exact label, a coarse label's or an
    annotator conflict's candidates, or "not a leukocyte" whatever the source calls the cell), or None where it says
    nothing (unlabelled, unmapped, excluded by the label map, a conflict without candidates)."""
    status = frame["label_status"].astype(object).to_numpy()
    label = frame["label"].astype(object).to_numpy()
    candidates = frame["label_candidates"].to_numpy(object) if "label_candidates" in frame else [None] * len(frame)
    claims: list[frozenset[str] | None] = []
    for st, lab, cand in zip(status, label, candidates, strict=True):
        if st == LabelStatus.EXACT.value and isinstance(lab, str):
            claims.append(frozenset({lab}))
        elif st in (LabelStatus.COARSE.value, LabelStatus.CONFLICT.value) and _listed(cand):
            claims.append(frozenset(str(c) for c in cand))
        elif st == LabelStatus.NOT_LEUKOCYTE.value:
            claims.append(frozenset({NOT_LEUKOCYTE}))
        else:
            claims.append(None)
    return claims


def _listed(candidates: Any) -> bool:
    """A non-empty list of candidates (a frame built by concat or reindex may hold NaN there)."""
    return isinstance(candidates, list | tuple | np.ndarray) and len(candidates) > 0


def label_conflicts(frame: pd.DataFrame) -> pd.DataFrame:
    """Copy sets whose members' labels cannot all be true: no class fits every label (exact, coarse candidates,
    annotator conflicts, "not a leukocyte"). A coarse "neutrophil" copy of a segmented neutrophil agrees with it; an
    erythroblast that one source calls "ERB" and another "erythroblast" is not a leukocyte in both; a monocyte that
    another source calls a smudge cell disagrees. Rows linked to a cluster as other cells of one field (crops, parts,
    overlapping views) may differ: only copies are compared, and only copies whose label says something. The table
    shows each member's label as its source gave it."""
    set_column = "copy_set" if "copy_set" in frame.columns else "dup_cluster"
    members = frame[frame["dup_cluster"].notna()].copy()
    if "dup_keep" in members.columns:
        members = members[members["dup_keep"].notna()]  # field images carry no cell label
    members["claim"] = label_claims(members)
    members = members[members["claim"].notna()]
    if members.empty:
        return pd.DataFrame(columns=["cluster", "size", "labels", "members"])
    members["shown"] = members["label"].fillna(members["label_status"] + ":" + members["source_label"].fillna(""))
    rows = []
    for _, g in members.groupby(set_column):
        if len(g) > 1 and not frozenset.intersection(*g["claim"]):
            rows.append({"cluster": int(g["dup_cluster"].iloc[0]), "size": len(g),
                         "labels": ", ".join(sorted(set(g["shown"]))),
                         "members": ", ".join(g["sample_id"].head(4)) + (" ..." if len(g) > 4 else "")})  # fmt: skip
    return pd.DataFrame(rows, columns=["cluster", "size", "labels", "members"])


def _image(row: Any, loader: PixelLoader | None, thumb: np.ndarray | None = None) -> np.ndarray:
    """The row's pixels through the one loader (crop applied), else the stored grey thumbnail when the file is
    not reachable on this machine (the sheet is still worth drawing)."""
    if loader is not None:
        try:
            image = loader.open(row)
            image.thumbnail((160, 160))
            return np.asarray(image)
        except UserError:
            pass
    return thumb if thumb is not None else np.zeros((32, 32), np.uint8)


def _caption(row: Any) -> str:
    """What a tile shows: KEEP, FIELD, or how the row joined (d = Hamming distance, then the transform)."""
    if row.get("dup_keep") is pd.NA or row.get("dup_keep") is None:
        return "FIELD"
    if row["dup_keep"] and str(row.get("dup_decision", "")).startswith("keep: cluster"):
        return "KEEP"
    how = row.get("linked_by") or ""
    text = f"{how} d={row['dup_distance']} {row['dup_transform'] or ''}".strip()
    return "\n".join(textwrap.wrap(text, CAPTION_WIDTH, max_lines=2, placeholder="~"))


def _sheet_order(group: pd.DataFrame) -> pd.DataFrame:
    """Fields first, then the kept row, then the others by distance."""
    keep = group["dup_keep"]
    rank = np.where(keep.isna(), 0, np.where(keep.fillna(False).astype(bool), 1, 2))
    return group.assign(_rank=rank).sort_values(["_rank", "dup_distance"]).drop(columns=["_rank"])


def contact_sheet(
    frame: pd.DataFrame, cluster_ids: list[int], path: Path, title: str, loader: PixelLoader | None = None,
    thumbs: np.ndarray | None = None,
) -> Path | None:  # fmt: skip
    """One row per cluster (field and kept member first), up to SHEET_COLS images, captioned with source, label
    and how each member joined."""
    if not cluster_ids:
        return None
    groups = [_sheet_order(frame[frame["dup_cluster"] == cid]) for cid in cluster_ids]
    cols = max(2, min(SHEET_COLS, max(len(g) for g in groups)))  # as wide as the largest cluster shown, no wider
    fig, axes = plt.subplots(len(cluster_ids), cols, figsize=(cols * 1.9, len(cluster_ids) * 2.5), squeeze=False)
    for r, (cid, group) in enumerate(zip(cluster_ids, groups, strict=True)):
        for c in range(cols):
            ax = axes[r, c]
            ax.axis("off")
            if c >= len(group):
                continue
            row = group.iloc[c]
            thumb = thumbs[group.index[c]] if thumbs is not None else None
            ax.imshow(_image(row, loader, thumb), cmap="gray")
            label = row["label"] if isinstance(row["label"], str) else row["label_status"]
            ax.set_title(f"#{cid} {row['source']} {label}\n{_caption(row)}", fontsize=6)
        if len(group) > cols:
            axes[r, -1].set_title(axes[r, -1].get_title() + f"\n(+{len(group) - cols} more)", fontsize=6)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_png(fig, path, dpi=110)


def _borderline(pairs: pd.DataFrame, out: pd.DataFrame) -> list[int]:
    """Clusters holding the weakest accepted copies (lowest registration correlation): where to look first."""
    near = pairs[pairs["kind"] == "near"].sort_values("correlation")
    ids: list[int] = []
    cluster = out["dup_cluster"]
    for a in near["a"].to_numpy(np.int64):
        cid = cluster.iloc[a]
        if cid is not pd.NA and int(cid) not in ids:
            ids.append(int(cid))
        if len(ids) == SHEET_ROWS:
            break
    return ids


def _with_fields(out: pd.DataFrame) -> list[int]:
    """The largest clusters that hold a field image (its copies, crops and parts)."""
    fields = out[out["dup_keep"].isna() & out["dup_cluster"].notna()]
    if fields.empty:
        return []
    sizes = out[out["dup_cluster"].isin(fields["dup_cluster"])]["dup_cluster"].value_counts()
    return [int(c) for c in sizes.index[:SHEET_ROWS]]


METHOD = (
    "Every distinct image gets a signature from its pixels: a 96 px grey canvas with constant fill borders "
    "(rotation corners, padding, letterboxing) marked as no content, ORB keypoints of the image and of its mirror "
    "image as bag-of-words vectors, and a fill-aware pHash thumbnail. Candidates are the {k} nearest word vectors "
    "of each image and of its mirror image, plus the pHash search (radius {t}, crops radius {c}) over all 8 "
    "flips/rotations. Each candidate pair is registered (Fourier-Mellin: rotation, scale, shift, mirror) and "
    "accepted as a copy when the valid pixels of both correlate >= {r} with the centres within 25% of the canvas; "
    "with different exact labels it must reach 0.95 within 10%. A row joins a copy set only when it is verified "
    "against the set's leader (no chains); each set keeps one training row ({policy}). Field images take part: "
    "their copies, their crops and rows found inside their windows are linked to them (dup_derived_from) and kept. "
    "With regions on, rows that resemble a field window are also matched to fields by SIFT keypoints (an affine "
    "agreed by at least {inliers} keypoints, the row taken as it is and as its mirror image): zoomed, rotated, "
    "sheared or flipped regions of a field are linked to it the same way."
)


def build(
    result: Any, frame: pd.DataFrame, directory: Path, options: Any, loader: PixelLoader | None = None,
    thumbs: np.ndarray | None = None,
) -> list[Path]:  # fmt: skip
    directory.mkdir(parents=True, exist_ok=True)
    pairs, out = result.pairs, frame
    csv_path = directory / "dedup_pairs.csv"
    columns = ["sample_id_a", "sample_id_b", "source_a", "source_b", "kind", "distance", "transform", "correlation"]
    columns += [c for c in ("texture",) if c in pairs.columns]
    write_csv(csv_path, pairs[columns])

    in_cluster = out[out["dup_cluster"].notna()]
    sizes = in_cluster["dup_cluster"].value_counts()
    largest = [int(c) for c in sizes.index[:SHEET_ROWS]]
    sheets = {
        "Largest clusters": contact_sheet(out, largest, directory / "dedup_largest.png",
                                          "Largest duplicate clusters", loader, thumbs),
        "Borderline clusters": contact_sheet(out, _borderline(pairs, out), directory / "dedup_borderline.png",
                                             "Borderline clusters (weakest accepted copies)", loader, thumbs),
        "Field images and what derives from them": contact_sheet(
            out, _with_fields(out), directory / "dedup_fields.png",
            "Field images with their copies, crops and parts", loader, thumbs),
    }  # fmt: skip

    report = Report(
        "Duplicates and leakage",
        METHOD.format(
            k=options.neighbours,
            t=options.threshold,
            c=options.crop_threshold,
            r=options.min_correlation,
            policy=options.policy.describe(),
            inliers=MIN_INLIERS,
        ),
    )
    fields = out["dup_keep"].isna()
    summary = pd.DataFrame(
        [
            {"what": "usable rows", "count": int((~fields).sum())},
            {"what": "field images (linked, never kept or dropped)", "count": int(fields.sum())},
            {"what": "rows in a duplicate cluster", "count": len(in_cluster)},
            {"what": "clusters", "count": len(sizes)},
            {"what": "largest cluster", "count": int(sizes.max()) if len(sizes) else 0},
            {"what": "rows dropped (not kept)", "count": int((out["dup_keep"] == False).sum())},  # noqa: E712
            {"what": "rows derived from a linked field image", "count": int(out["dup_derived_from"].notna().sum())},
            {"what": "pairs: same file", "count": int((pairs["kind"] == "file").sum())},
            {"what": "pairs: same pixels", "count": int((pairs["kind"] == "pixels").sum())},
            {"what": "pairs: near copies (any angle)", "count": int((pairs["kind"] == "near").sum())},
            {"what": "pairs: overlapping views", "count": int((pairs["kind"] == "overlap").sum())},
            {"what": "pairs: part of a field image", "count": int((pairs["kind"] == "part").sum())},
        ]
    )
    report.add(Section("Summary", "\n".join(f"- {note}" for note in result.notes()), tables=[("", summary)]))
    report.add(Section("Pairs per source pair", tables=[("", source_pair_counts(pairs))]))
    conflicts = label_conflicts(out)
    report.add(Section("Label conflicts inside copy sets",
                       f"{len(conflicts)} set(s) of copies carry labels that cannot all be true: no class fits them "
                       "all (a coarse label agrees with an exact one among its candidates; two names for a cell that "
                       "is not a leukocyte agree). A copy with a different exact label was only accepted at "
                       "correlation >= 0.95 with its centre within 10%.",
                       tables=[("", conflicts.head(200))]))  # fmt: skip
    if options.against is not None:
        leaks = result.leaks
        text = f"{len(leaks)} training row(s) have a copy in {options.against}" + (
            " and are marked not kept (--exclude-leaks)." if options.exclude_leaks else "."
        )
        shown = leaks[["sample_id", "source", "eval_id", "kind", "transform", "correlation"]] if len(leaks) else leaks
        report.add(Section("Leakage against the evaluation set", text, tables=[("", shown.head(500))]))
    figures = [(caption, path) for caption, path in sheets.items() if path is not None]
    report.add(Section("Contact sheets", f"All pairs: {csv_path.name}", figures=figures))
    md, html = write(report, directory, "dedup")
    return [md, html, csv_path, *[p for _, p in figures]]
