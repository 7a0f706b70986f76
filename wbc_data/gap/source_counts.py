"""A source's class distribution for a target: from its label files through its adapter (the one parser of
those files) or from its ingested rows in the manifest. Nothing here knows a source by name."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from wbc_data.core.rows import is_exact, is_synthetic, is_usable
from wbc_data.core.taxonomy import CLASSES
from wbc_data.gap.errors import GapError
from wbc_data.sources.base import PlanContext, load_adapter
from wbc_data.sources.definition import SourceError, get_definition


def counts_from_labels(source: str, path: Path, splits: Sequence[str] | None) -> pd.Series:
    """Per-class counts of ``source``'s labelled rows in ``splits``, read by its adapter from the files at ``path``
    and mapped through its definition's label map (a target counts exact labels only)."""
    try:
        definition = get_definition(source)
        adapter = load_adapter(definition)
        raw = adapter.label_counts(Path(path), splits, PlanContext(definition, definition.label_map))
    except SourceError as exc:
        raise GapError(str(exc)) from None
    counts: Counter[str] = Counter()
    for label, n in raw.items():
        mapped = definition.label_map.lookup(label)
        if mapped is None or mapped.label is None:
            status = "unmapped" if mapped is None else mapped.status.value
            raise GapError(f"{path}: {source} label {label!r} is {status}, not one class: a target needs exact labels")
        counts[mapped.label] += n
    return pd.Series(counts, dtype="int64").reindex(list(CLASSES), fill_value=0)


def counts_from_manifest(frame: pd.DataFrame, source: str, splits: Sequence[str] | None) -> pd.Series | None:
    """The same distribution from the ingested source (usable, exact, real rows in ``splits``), if it has any."""
    rows = frame[(frame["source"] == source) & is_usable(frame) & is_exact(frame)]
    if splits is not None:
        rows = rows[rows["source_split"].isin(list(splits))]
    rows = rows[~is_synthetic(rows)]
    if rows.empty:
        return None
    return rows["label"].value_counts().reindex(list(CLASSES), fill_value=0).astype("int64")
