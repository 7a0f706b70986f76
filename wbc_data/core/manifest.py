"""The manifest schema: one Parquet table, one row per image or crop, validated on every read and write.

Ingest writes a per-source manifest and ``wbc-data manifest`` merges them into ``manifest.parquet``; no later
stage rewrites it. Later stages (dedup, split) write their own results beside it (:mod:`wbc_data.core.stages`),
and synthetic sources carry generator columns; every such optional column is declared with its type by the package
that writes it (``columns.yaml`` next to its code, assembled into ``OPTIONAL_FIELDS`` by
:mod:`wbc_data.core.columns`), and any other column is rejected so that typos do not become silent new fields.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from wbc_data.core.columns import declared_fields
from wbc_data.core.errors import UserError
from wbc_data.core.taxonomy import CLASSES, LabelStatus
from wbc_data.io.atomic import atomic_write

SCHEMA_VERSION = "2"
"""2: ``source_root`` holds the name of a source root (see ``wbc_data.core.roots``), no longer an absolute path."""

ROW_STATUSES = ("ok", "rejected", "auxiliary")
"""ok: a decoded image (or crop); rejected: a file that could not be used, with a reason;
auxiliary: an annotation/metadata file the adapter read (annotations.dat, JSON, XML, masks)."""

REQUIRED_FIELDS: list[pa.Field] = [
    # identity and provenance
    pa.field("sample_id", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("source_version", pa.string()),
    pa.field("source_root", pa.string()),
    pa.field("source_path", pa.string(), nullable=False),
    pa.field("crop_box", pa.list_(pa.int32())),
    pa.field("parent_id", pa.string()),
    pa.field("group_id", pa.string()),
    pa.field("source_label", pa.string()),
    pa.field("source_split", pa.string()),
    pa.field("patient_id", pa.string()),
    pa.field("licence", pa.string()),
    pa.field("citation", pa.string()),
    # label
    pa.field("label", pa.string()),
    pa.field("label_status", pa.string(), nullable=False),
    pa.field("label_candidates", pa.list_(pa.string())),
    pa.field("annotator_labels", pa.list_(pa.string())),
    pa.field("label_reason", pa.string()),
    # image facts
    pa.field("width", pa.int32()),
    pa.field("height", pa.int32()),
    pa.field("mode", pa.string()),
    pa.field("format", pa.string()),
    pa.field("bytes", pa.int64()),
    pa.field("sha256", pa.string()),
    pa.field("pixel_hash", pa.string()),
    pa.field("phash", pa.uint64()),
    pa.field("thumb", pa.binary()),
    pa.field("status", pa.string(), nullable=False),
    pa.field("reason", pa.string()),
    pa.field("extra", pa.string()),
]

OPTIONAL_FIELDS: list[pa.Field] = declared_fields(taken={f.name for f in REQUIRED_FIELDS})
"""Columns later stages and some adapters add (dedup, split, the synthetic ones): each declared in a
``columns.yaml`` next to the code that writes it, assembled by :mod:`wbc_data.core.columns`."""

SCHEMA = pa.schema(REQUIRED_FIELDS, metadata={b"wbc_data_schema": SCHEMA_VERSION.encode()})
_ALL_FIELDS = {f.name: f for f in REQUIRED_FIELDS + OPTIONAL_FIELDS}
COLUMNS = [f.name for f in REQUIRED_FIELDS]

THUMB_SIZE = 32
"""Side of the grey LANCZOS thumbnail kept per row (the pHash input, reused by dedup)."""


class ManifestError(UserError):
    """A manifest file is missing, unreadable or does not follow the schema."""


def empty_row() -> dict[str, Any]:
    """A row with every required column present and null, for adapters and the engine to fill."""
    return dict.fromkeys(COLUMNS)


def schema_for(columns: Iterable[str]) -> pa.Schema:
    fields = [_ALL_FIELDS[c] for c in columns]
    return pa.schema(fields, metadata=SCHEMA.metadata)


def to_table(rows: Iterable[Mapping[str, Any]] | pd.DataFrame) -> pa.Table:
    """Build a schema-conforming Arrow table from row dicts or a DataFrame, then validate it.

    Columns are converted straight to their Arrow type, never through pandas' type inference: a uint64
    pHash column with a missing value would otherwise become float64 and silently lose bits.
    """
    if isinstance(rows, pd.DataFrame):
        columns = [str(c) for c in rows.columns]
        data = {c: rows[c].tolist() for c in columns}
    else:
        records = list(rows)
        columns = list(dict.fromkeys(k for r in records for k in r)) if records else list(COLUMNS)
        data = {c: [r.get(c) for r in records] for c in columns}
    unknown = [c for c in columns if c not in _ALL_FIELDS]
    if unknown:
        raise ManifestError(f"unknown manifest column(s): {', '.join(map(str, unknown))}")
    missing = [c for c in COLUMNS if c not in columns]
    if missing:
        raise ManifestError(f"missing manifest column(s): {', '.join(missing)}")
    ordered_cols = COLUMNS + [f.name for f in OPTIONAL_FIELDS if f.name in columns]
    schema = schema_for(ordered_cols)
    arrays = [column_array(f.name, data[f.name]) for f in schema]
    table = pa.Table.from_arrays(arrays, schema=schema)
    validate(table)
    return table


def column_array(name: str, values: list[Any]) -> pa.Array:
    """One manifest column as its declared Arrow type (NaN/NA become null; a bad value is one clear line)."""
    f = _ALL_FIELDS.get(name)
    if f is None:
        raise ManifestError(f"unknown manifest column {name!r}")
    if not {type(v) for v in values} <= _NEVER_MISSING_TYPES:  # per-value checks only where NaN/NA can hide
        values = [None if _is_missing(v) else v for v in values]
    if pa.types.is_list(f.type):
        values = [None if v is None else list(v) for v in values]
    try:
        return pa.array(values, type=f.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError) as exc:
        raise ManifestError(f"column {f.name!r}: values do not fit {f.type} ({exc})") from None


_NEVER_MISSING_TYPES = {type(None), str, int, bool, bytes, list, tuple}
"""Value types that ``_is_missing`` passes through unchanged (rows built by the engine hold only these)."""


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, (list, tuple, bytes, np.ndarray)):
        return False
    if isinstance(value, float) and value != value:  # NaN from pandas
        return True
    return value is pd.NA or value is pd.NaT


def validate(table: pa.Table, origin: str = "manifest") -> None:
    """Check columns, types and the row-level invariants every stage relies on."""
    names = table.column_names
    for f in REQUIRED_FIELDS:
        if f.name not in names:
            raise ManifestError(f"{origin}: missing column {f.name!r}")
    for name in names:
        expected = _ALL_FIELDS.get(name)
        if expected is None:
            raise ManifestError(f"{origin}: unknown column {name!r}")
        actual = table.schema.field(name).type
        if not actual.equals(expected.type) and not (pa.types.is_null(actual) and expected.nullable):
            raise ManifestError(f"{origin}: column {name!r} has type {actual}, expected {expected.type}")
        if not expected.nullable and table.column(name).null_count:
            raise ManifestError(f"{origin}: column {name!r} has null values")
    if table.num_rows == 0:
        return
    ids = table.column("sample_id").to_pandas()
    dupes = ids[ids.duplicated()]
    if len(dupes):
        raise ManifestError(f"{origin}: duplicate sample_id {dupes.iloc[0]!r} ({len(dupes)} duplicates)")
    _check_values(table, "status", ROW_STATUSES, origin)
    _check_values(table, "label_status", [s.value for s in LabelStatus], origin)
    labels = table.column("label").to_pandas().dropna()
    bad = labels[~labels.isin(CLASSES)]
    if len(bad):
        raise ManifestError(f"{origin}: label {bad.iloc[0]!r} is not one of the 13 classes")
    frame = table.select(["label", "label_status", "status", "reason"]).to_pandas()
    exact = frame["label_status"] == LabelStatus.EXACT.value  # (core.rows builds on this module)
    if (exact != frame["label"].notna()).any():
        raise ManifestError(f"{origin}: 'label' must be set exactly when label_status is 'exact'")
    rejected_without_reason = (frame["status"] == "rejected") & frame["reason"].isna()
    if rejected_without_reason.any():
        raise ManifestError(f"{origin}: rejected rows must carry a reason")


def _check_values(table: pa.Table, column: str, allowed: Iterable[str], origin: str) -> None:
    values = set(table.column(column).unique().to_pylist()) - {None}
    bad = values - set(allowed)
    if bad:
        raise ManifestError(f"{origin}: column {column!r} has unknown value(s) {sorted(bad)}")


def write(table: pa.Table | pd.DataFrame | Iterable[Mapping[str, Any]], path: Path, **metadata: str) -> Path:
    """Validate and write atomically: a crash or Ctrl-C leaves the previous file untouched."""
    if not isinstance(table, pa.Table):
        table = to_table(table)
    validate(table, str(path))
    meta = dict(table.schema.metadata or {})
    meta[b"wbc_data_schema"] = SCHEMA_VERSION.encode()
    for key, value in metadata.items():
        meta[key.encode()] = value.encode()
    table = table.replace_schema_metadata(meta)
    atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
    return path


def read(path: Path, columns: list[str] | None = None) -> pa.Table:
    """Read and validate a manifest (``columns`` narrows what is loaded, e.g. to skip thumbnails)."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: no manifest here (run `wbc-data ingest` first)")
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise ManifestError(f"{path}: not a readable Parquet manifest ({exc})") from None
    validate(table, str(path))
    if columns is not None:
        table = table.select(columns)
    return table


_NULLABLE_DTYPES = {
    pa.uint64(): pd.UInt64Dtype(),
    pa.int64(): pd.Int64Dtype(),
    pa.int32(): pd.Int32Dtype(),
    pa.bool_(): pd.BooleanDtype(),
}


def to_frame(table: pa.Table) -> pd.DataFrame:
    """Arrow -> pandas with nullable integer columns, so a missing pHash never turns the column into floats."""
    return table.to_pandas(types_mapper=_NULLABLE_DTYPES.get)


def read_frame(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    return to_frame(read(path, columns))


def read_metadata(path: Path) -> dict[str, str]:
    meta = pq.read_schema(path).metadata or {}
    return {k.decode(): v.decode() for k, v in meta.items()}


def extra_json(values: Mapping[str, Any] | None) -> str | None:
    """Source-specific metadata (magnification, microscope...) as a compact JSON string."""
    if not values:
        return None
    return json.dumps(values, sort_keys=True, separators=(",", ":"), default=str)


def extra_values(frame: pd.DataFrame, key: str) -> pd.Series:
    """One key of the ``extra`` JSON as a column (null where a row lacks it), e.g. ``extra_values(frame,
    "diagnosis")`` for the APL/AML rows: source metadata stays queryable without a schema column per source."""
    column = frame["extra"] if "extra" in frame.columns else pd.Series([None] * len(frame), index=frame.index)
    return column.map(lambda text: json.loads(text).get(key) if isinstance(text, str) and text else None)
