"""Columns beyond the required manifest schema, each declared by the package that writes it, next to its code
(``wbc_data/<package>/columns.yaml``: dedup and split for their stage files, the source adapters for the synthetic
columns), and assembled here for :mod:`wbc_data.core.manifest`.

The declarations are data, read from the package folder, so core learns a stage's columns without importing the
stage (layers point one way: stages import core, never the reverse), and a new stage adds its columns without a
change here. Each file::

    order: 10                      # where its block goes among the others (column order in written tables)
    columns:
      dup_cluster: {type: int64, doc: "..."}   # an Arrow type alias: string, bool, int32, int64, float32, ...
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from wbc_data.core.errors import UserError
from wbc_data.io.yamlfile import read_yaml

COLUMN_FILE = "columns.yaml"
PACKAGE_DIR = Path(__file__).resolve().parent.parent


class ColumnDeclarationError(UserError):
    """A package's ``columns.yaml`` cannot be used (a broken install or an edit gone wrong)."""


def declaration_files(package_dir: Path = PACKAGE_DIR) -> list[Path]:
    """Every package's column declaration."""
    return sorted(package_dir.glob(f"*/{COLUMN_FILE}"))


def read_declaration(path: Path) -> tuple[int, list[pa.Field]]:
    """``(order, fields)`` of one declaration; anything unusable is one line naming the file."""
    raw = read_yaml(path, ColumnDeclarationError, "column declarations")
    if not isinstance(raw, dict) or not isinstance(raw.get("order"), int) or not isinstance(raw.get("columns"), dict):
        raise ColumnDeclarationError(f"{path}: expected 'order: <int>' and 'columns: {{name: {{type: ...}}}}'")
    fields = []
    for name, spec in raw["columns"].items():
        kind = spec.get("type") if isinstance(spec, dict) else None
        try:
            fields.append(pa.field(str(name), pa.type_for_alias(str(kind))))
        except (ValueError, TypeError):
            raise ColumnDeclarationError(f"{path}: column {name!r}: unknown type {kind!r}") from None
    return raw["order"], fields


def declared_fields(package_dir: Path = PACKAGE_DIR, taken: set[str] = frozenset()) -> list[pa.Field]:
    """Every package's declared columns, blocks in ``order``; a name declared twice (or in ``taken``, the
    required columns) is refused."""
    blocks = sorted(((*read_declaration(p), p) for p in declaration_files(package_dir)), key=lambda b: (b[0], b[2]))
    seen: dict[str, Path] = {}
    out = []
    for _, fields, path in blocks:
        for f in fields:
            if f.name in taken or f.name in seen:
                where = "the required schema" if f.name in taken else seen[f.name]
                raise ColumnDeclarationError(f"{path}: column {f.name!r} is already declared in {where}")
            seen[f.name] = path
            out.append(f)
    return out
