"""Tables that summarise a manifest: what was seen, used, rejected and why, and the 13-class counts.
Pure pandas so the CLI, reports and tests share one computation."""

from __future__ import annotations

import pandas as pd

from wbc_data.core.rows import is_exact, is_usable
from wbc_data.core.taxonomy import CLASSES, LabelStatus


def reason_category(reason: str | None) -> str:
    """Group reasons by their lead phrase ("truncated image: ..." -> "truncated image")."""
    if not reason:
        return "(none)"
    head = reason.split(":", 1)[0].split(" (", 1)[0].strip()
    return head


def file_counts(frame: pd.DataFrame) -> dict[str, int]:
    """files seen (crops are not files), images used, auxiliary files, rejected rows."""
    is_crop = frame["parent_id"].notna()
    return {
        "files seen": int((~is_crop).sum()),
        "images used": int((is_usable(frame) & ~is_crop).sum()),
        "crops used": int((is_usable(frame) & is_crop).sum()),
        "auxiliary files": int((frame["status"] == "auxiliary").sum()),
        "rejected": int((frame["status"] == "rejected").sum()),
    }


def rejection_table(frame: pd.DataFrame) -> pd.DataFrame:
    rejected = frame[frame["status"] == "rejected"]
    if rejected.empty:
        return pd.DataFrame(columns=["reason", "rows", "example"])
    grouped = rejected.groupby(rejected["reason"].map(reason_category))
    table = pd.DataFrame({"rows": grouped.size(), "example": grouped["source_path"].first()})
    return table.sort_values("rows", ascending=False).rename_axis("reason").reset_index()


def per_class(rows: pd.DataFrame) -> pd.Series:
    """Rows per class of their ``label`` column, all 13 classes in order (0 where none)."""
    return rows["label"].value_counts().reindex(list(CLASSES), fill_value=0).astype("int64")


def candidates_per_class(rows: pd.DataFrame, status: str) -> pd.Series:
    """How many rows of ``status`` (coarse, conflict) name each class among their ``label_candidates``."""
    subset = rows.loc[rows["label_status"] == status, "label_candidates"]
    flat = [c for cands in subset if cands is not None for c in cands]
    return pd.Series(flat, dtype="object").value_counts().reindex(list(CLASSES), fill_value=0).astype("int64")


def class_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """Usable rows per class: exact labels, plus how many coarse/conflict rows list the class as a candidate."""
    ok = frame[is_usable(frame)]
    return pd.DataFrame(
        {
            "class": list(CLASSES),
            "exact": per_class(ok[is_exact(ok)]).to_list(),
            "coarse (candidate)": candidates_per_class(ok, LabelStatus.COARSE.value).to_list(),
            "conflict (candidate)": candidates_per_class(ok, LabelStatus.CONFLICT.value).to_list(),
        }
    )


def status_counts(frame: pd.DataFrame) -> pd.Series:
    """Rows per label status among usable images (exact, coarse, not-leukocyte, ...)."""
    ok = frame[is_usable(frame)]
    return ok["label_status"].value_counts()


def class_by_source(frame: pd.DataFrame) -> pd.DataFrame:
    """Exact-label counts, classes x sources, with coarse rows and totals as extra rows."""
    ok = frame[is_usable(frame)]
    exact = ok[is_exact(ok)]
    table = pd.crosstab(exact["label"], exact["source"]).reindex(index=list(CLASSES), fill_value=0)
    for source in sorted(frame["source"].unique()):
        if source not in table.columns:
            table[source] = 0
    table = table[sorted(table.columns)]
    extra = {}
    for status in (
        LabelStatus.COARSE,
        LabelStatus.CONFLICT,
        LabelStatus.NOT_LEUKOCYTE,
        LabelStatus.UNMAPPED,
        LabelStatus.EXCLUDED,
        LabelStatus.UNLABELLED,
    ):
        counts = ok[ok["label_status"] == status.value]["source"].value_counts()
        if counts.sum():
            extra[f"({status.value})"] = [int(counts.get(s, 0)) for s in table.columns]
    for key, values in extra.items():
        table.loc[key] = values
    table.loc["rejected files"] = [
        int(((frame["source"] == s) & (frame["status"] == "rejected")).sum()) for s in table.columns
    ]
    table["total"] = table.sum(axis=1)
    return table.astype(int)
