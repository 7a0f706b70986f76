"""Propose a label map for names a source's map does not know (typically every folder of an ``imagefolder``
ingest run without ``--label-map``): matched against the taxonomy's synonyms and every source definition's own
labels, written as a YAML file to review and pass back with ``--label-map``. Never applied silently.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import yaml

from wbc_data.core.taxonomy import CLASSES, COARSE_GROUPS, FULL_NAMES, NOT_LEUKOCYTE, parse_map_value
from wbc_data.io.atomic import atomic_write_text
from wbc_data.io.resources import manifests_dir
from wbc_data.io.yamlfile import read_yaml

SYNONYMS_FILE = "vocabulary/synonyms.yaml"


@dataclass(frozen=True)
class Proposal:
    raw: str  # the name as found (a folder name)
    value: str | None  # what to map it to (class code, group, not-leukocyte); None: no or ambiguous match
    why: str  # which known name it matched, or why nothing is proposed


def normalise(name: str) -> str:
    """Compare names loosely: lower case, no numeric prefix, no spaces/punctuation, no plural 's'."""
    text = re.sub(r"^\d+[\s._-]*", "", name.strip().lower())
    text = re.sub(r"[^a-z0-9]", "", text)
    return text[:-1] if len(text) > 3 and text.endswith("s") and not text.endswith("ss") else text


def vocabulary(directory: Path | None = None) -> dict[str, dict[str, str]]:
    """``{normalised name: {value: where it comes from}}`` from the synonyms file and every definition's map."""
    directory = directory or manifests_dir()
    known: dict[str, dict[str, str]] = {}

    def add(name: str, value: str, origin: str) -> None:
        known.setdefault(normalise(name), {}).setdefault(value, origin)

    data = read_yaml(directory / SYNONYMS_FILE, ValueError, "the synonyms") or {}
    for value, names in data.items():
        parse_map_value(str(value), where=f"{SYNONYMS_FILE}: {value}")  # a typo in the vocabulary fails loudly
        for name in names:
            add(str(name), str(value), "synonyms")
    for path in sorted(directory.glob("*.yaml")):
        source = read_yaml(path, ValueError, "source definition") or {}
        for raw, mapped in (source.get("label_map") or {}).items():
            value = _as_value(mapped)
            if value is not None:
                add(str(raw), value, f"{path.stem} label map")
    return known


def _as_value(mapped: object) -> str | None:
    """A definition's map value as a proposal value (lists of classes become their coarse group when one fits)."""
    if mapped is None:
        return None
    if isinstance(mapped, list):
        codes = frozenset(str(m).upper() for m in mapped)
        group = next((g for g, members in COARSE_GROUPS.items() if members == codes), None)
        return group
    text = str(mapped).strip()
    if text.upper() in FULL_NAMES:
        return text.upper()
    if text.lower() == NOT_LEUKOCYTE:
        return NOT_LEUKOCYTE
    return next((g for g in COARSE_GROUPS if g.lower() == text.lower()), None)


def propose(raw_labels: Iterable[str], known: dict[str, dict[str, str]] | None = None) -> list[Proposal]:
    known = vocabulary() if known is None else known
    out = []
    for raw in sorted(set(raw_labels), key=str.casefold):
        matches = known.get(normalise(raw), {})
        if len(matches) == 1:
            ((value, origin),) = matches.items()
            out.append(Proposal(raw, value, f"matches {origin}"))
        elif matches:
            listed = ", ".join(f"{v} ({o})" for v, o in sorted(matches.items()))
            out.append(Proposal(raw, None, f"ambiguous: {listed}"))
        else:
            out.append(Proposal(raw, None, "no match: write a class code, a group, null or not-leukocyte"))
    return out


def render(proposals: list[Proposal], header: str) -> str:
    """YAML a user edits: matched names as entries, the others commented out (the file loads as it is)."""
    width = max((len(yaml.safe_dump(p.raw).strip()) for p in proposals), default=8)
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    lines.append(f"# classes: {' '.join(CLASSES)}; groups: {', '.join(COARSE_GROUPS)}; null; {NOT_LEUKOCYTE}")
    for p in proposals:
        key = yaml.safe_dump(p.raw, allow_unicode=True).strip().removesuffix("\n...")
        if p.value is None:
            lines.append(f"# {key}: ?{' ' * max(1, width - len(key))}# {p.why}")
        else:
            lines.append(f"{key}: {p.value}{' ' * max(1, width - len(key) + 1 - len(p.value))}# {p.why}")
    return "\n".join(lines) + "\n"


def write_proposal(path: Path, proposals: list[Proposal], header: str) -> Path:
    atomic_write_text(path, render(proposals, header))
    return path


def proposal_header(source: str, root: str, name: str) -> str:
    return (
        f"Label map proposed by wbc-data on {date.today().isoformat()} for {root} (ingest name {name}).\n"
        "Names were matched against the taxonomy's synonyms and the sources' own label maps; nothing was applied.\n"
        "Review every line (commented lines found no safe match), then re-run:\n"
        f"  wbc-data ingest {source} {root} --label-map <this file> --name {name}"
    )
