"""The supported-sources table (name, licence, what it gives the 13 classes, where to get it, what was checked on
real files), read from the source definitions so that the README and ``wbc-data sources --markdown`` cannot drift
from the YAML files the adapters use."""

from __future__ import annotations

import re
from collections.abc import Iterable

import pandas as pd

from wbc_data.core.taxonomy import CLASSES, LabelStatus
from wbc_data.report.document import markdown_cell
from wbc_data.sources.definition import SourceDefinition, load_definitions

COLUMNS = ("source", "licence", "contributes", "where", "checked on real files")


def contributes(definition: SourceDefinition) -> str:
    """The 13-class codes its label map gives exactly, then the coarse sets it gives (``{SNE,BNE}``)."""
    exact: set[str] = set()
    coarse: set[tuple[str, ...]] = set()
    for mapped in definition.label_map.entries.values():
        if mapped.status == LabelStatus.EXACT:
            exact |= set(mapped.candidates)
        elif mapped.status == LabelStatus.COARSE:
            coarse.add(tuple(c for c in CLASSES if c in mapped.candidates))
    if not exact and not coarse:
        return "any class (your label map)"
    parts = [" ".join(c for c in CLASSES if c in exact)] if exact else []
    if coarse:
        parts.append("coarse " + " ".join("{" + ",".join(group) + "}" for group in sorted(coarse)))
    return "; ".join(parts)


def checked(definition: SourceDefinition, limit: int = 110) -> str:
    """The first statement of the definition's ``confirmed`` note, short."""
    text = " ".join(definition.confirmed.split())
    if not text:
        return "not stated"
    first = re.split(r"(?<=[a-z0-9)])\. (?=[A-Z])", text, maxsplit=1)[0].rstrip(".")
    first = first.split(": ", 1)[0]
    return first if len(first) <= limit else first[: limit - 1].rstrip() + "…"


def where(definition: SourceDefinition) -> str:
    return definition.download.split(" (", 1)[0].strip()


def sources_table(definitions: Iterable[SourceDefinition] | None = None) -> pd.DataFrame:
    chosen = list(definitions) if definitions is not None else list(load_definitions().values())
    rows = [
        {
            "source": d.name,
            "licence": " ".join(d.licence.split()),
            "contributes": contributes(d),
            "where": where(d),
            "checked on real files": checked(d),
        }
        for d in chosen
    ]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def sources_markdown(definitions: Iterable[SourceDefinition] | None = None) -> str:
    """The table as GitHub Markdown (one row per source, cells escaped)."""
    table = sources_table(definitions)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    for row in table.itertuples(index=False):
        cells = [_cell(markdown_cell(str(v))) for v in row]
        cells[0] = f"`{cells[0]}`"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(text: str) -> str:
    """A Markdown cell with its web addresses as autolinks."""
    return re.sub(r"(https?://\S+)", r"<\1>", text)
