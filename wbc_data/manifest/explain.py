"""How a source's raw labels became 13-class labels: one line per raw label (or annotator combination) with its
status, label, candidates and row counts, read back from the per-source manifest.

The statuses and their meaning come from :mod:`wbc_data.core.taxonomy` (``resolve`` applies one rule set to every
source), so this module only counts and explains; it never re-derives a label.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from wbc_data.core import manifest
from wbc_data.core.labelmap import LabelMap
from wbc_data.core.rows import is_usable
from wbc_data.core.taxonomy import CLASSES, LabelStatus, ordered
from wbc_data.core.workspace import Workspace

RULES: dict[str, str] = {
    LabelStatus.EXACT.value: "one of the 13 classes; every annotator agrees",
    LabelStatus.COARSE.value: "the source label is coarser than the 13 classes: the row keeps the candidate set",
    LabelStatus.CONFLICT.value: "annotators (or folder and file name) disagree: every class named is a candidate",
    LabelStatus.NOT_LEUKOCYTE.value: "a real cell or object that is not a leukocyte",
    LabelStatus.EXCLUDED.value: "the label map says null: deliberately not used",
    LabelStatus.UNMAPPED.value: "the raw label is not in the label map: reported, never guessed",
    LabelStatus.UNLABELLED.value: "the source gives this row no label",
}
"""One line per label status, shown under the table (the rule each row followed)."""

COLUMNS = ["raw label", "status", "label", "candidates", "rows", "rejected", "note"]
NO_LABEL = "(no label)"


@dataclass
class Explanation:
    source: str
    table: pd.DataFrame  # COLUMNS, one row per raw label (or annotator combination)
    statuses: list[str] = field(default_factory=list)  # statuses present, in RULES order


def explain_frame(frame: pd.DataFrame, label_map: LabelMap | None = None) -> pd.DataFrame:
    """Count rows per (raw label, status, label, candidates); ``rows`` = usable (ok) rows, ``rejected`` = rows of
    that label rejected later (e.g. a crop outside its image). Label-map entries that matched nothing get 0 rows."""
    labelled = frame[(frame["status"] != "auxiliary") & (frame["source_label"].notna() | is_usable(frame))]
    records: dict[tuple[str, str, str, str], dict[str, object]] = {}
    for row in labelled.itertuples(index=False):
        annotators = _items(row.annotator_labels)
        raw = " vs ".join(annotators) if len(annotators) > 1 else (_text(row.source_label) or NO_LABEL)
        candidates = ", ".join(ordered(_items(row.label_candidates)))
        key = (raw, row.label_status, _text(row.label), candidates)
        record = records.setdefault(key, {"rows": 0, "rejected": 0, "notes": {}})
        record["rows" if row.status == "ok" else "rejected"] += 1
        if _text(row.label_reason):
            notes = record["notes"]
            notes[row.label_reason] = notes.get(row.label_reason, 0) + 1
    table_rows = []
    for (raw, status, label, candidates), record in records.items():
        notes = record["notes"]
        note = max(notes, key=notes.get) if notes else ""
        if len(notes) > 1:
            note += f" (+{len(notes) - 1} other reason(s))"
        table_rows.append([raw, status, label, candidates, record["rows"], record["rejected"], note])
    seen = {key[0].casefold() for key in records}
    if label_map is not None:
        for key in label_map.names():
            if key.casefold() in seen:
                continue
            mapped = label_map.lookup(key)
            if mapped is None:
                continue
            candidates = ", ".join(ordered(mapped.candidates)) if len(mapped.candidates) > 1 else ""
            table_rows.append(
                [key, mapped.status.value, mapped.label or "", candidates, 0, 0, "in the label map; no row"]
            )
    table = pd.DataFrame(table_rows, columns=COLUMNS)
    order = {status: i for i, status in enumerate(RULES)}
    table["_status"] = table["status"].map(lambda s: order.get(s, len(order)))
    table["_class"] = table["label"].map(lambda c: CLASSES.index(c) if c in CLASSES else len(CLASSES))
    table = table.sort_values(["_status", "_class", "rows", "raw label"], ascending=[True, True, False, True])
    return table.drop(columns=["_status", "_class"]).reset_index(drop=True)


def explain_source(workspace: Workspace, name: str) -> Explanation:
    """Explain the ingested source ``name`` (its per-source manifest must exist: ManifestError otherwise)."""
    path = workspace.source_manifest(name)
    columns = ["status", "source_label", "annotator_labels", "label", "label_status", "label_candidates"]
    frame = manifest.read_frame(path, [*columns, "label_reason"])
    label_map = _definition_map(name, manifest.read_metadata(path).get("adapter"))
    table = explain_frame(frame, label_map)
    present = [status for status in RULES if status in set(table.loc[table["rows"] + table["rejected"] > 0, "status"])]
    return Explanation(name, table, present)


def rule_lines(frame: pd.DataFrame) -> list[str]:
    """Coarse and conflict labels in an ingest, one line per raw label, for the ingest summary."""
    table = explain_frame(frame)
    wanted = table[table["status"].isin([LabelStatus.COARSE.value, LabelStatus.CONFLICT.value]) & (table["rows"] > 0)]
    return [
        f"{row['status']}: {row['raw label']!r} -> one of {{{row['candidates']}}} ({row['rows']:,} row(s))"
        for row in wanted.to_dict("records")
    ]


def _text(value: object) -> str:
    """A manifest string cell as text; missing values (None or pandas' NaN) become ''."""
    return "" if value is None or (isinstance(value, float) and value != value) else str(value)


def _items(value: object) -> list[str]:
    """A manifest list cell (list, tuple or numpy array) as a list; missing values become []."""
    return [str(v) for v in value] if isinstance(value, (list, tuple, np.ndarray)) else []


def _definition_map(name: str, adapter: str | None) -> LabelMap | None:
    """The source YAML's label map when the manifest came from that source's own adapter (not a --label-map)."""
    from wbc_data.sources.definition import SourceError, get_definition

    try:
        definition = get_definition(name)
    except SourceError:
        return None
    if adapter is not None and adapter != definition.adapter:
        return None
    return definition.label_map
