"""Source definitions: the declarative YAML in ``manifests/`` (citation, licence and its machine-readable terms,
download address, expected layout, label map, and how dedup ranks the source). Adding a dataset = one adapter
module + one YAML file, no core change."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wbc_data.core.errors import UserError
from wbc_data.core.labelmap import LabelMap, LabelMapError
from wbc_data.io.resources import manifests_dir
from wbc_data.io.yamlfile import read_yaml

if TYPE_CHECKING:
    from collections.abc import Sequence

    from wbc_data.core.workspace import Workspace


class SourceError(UserError):
    """Unknown source, bad definition file, or a folder that does not match the expected layout."""


ROLES = ("original", "derivative")
"""``derivative``: a re-upload or mix of other sources' images, so dedup keeps the original's copy instead."""


PERMISSIONS = ("allowed", "forbidden", "unconfirmed")
"""Values of ``licence_terms.redistribution`` and ``licence_terms.commercial``."""


@dataclass(frozen=True)
class LicenceTerms:
    """``licence_terms:`` of a source YAML: what its licence allows, declared where the licence line (for people)
    cannot say it alone (a Hub card that forbids redistribution, an unconfirmed licence). ``wbc-data publish``
    checks these before it writes anything."""

    id: str  # the Hub's licence identifier (cc-by-4.0, mit, cc-by-nc-sa-4.0...) or "other"
    redistribution: str  # allowed / forbidden / unconfirmed
    commercial: str  # allowed / forbidden / unconfirmed
    share_alike: bool = False
    url: str = ""
    note: str = ""  # where the terms come from, shown when publish refuses or relabels

    @classmethod
    def from_yaml(cls, path: Path, value: object) -> LicenceTerms | None:
        if value is None:
            return None
        where = f"{path}: licence_terms"
        if not isinstance(value, dict):
            raise SourceError(f"{where} must be a mapping (id, redistribution, commercial, share_alike, url, note)")
        unknown = sorted(set(value) - {"id", "redistribution", "commercial", "share_alike", "url", "note"})
        if unknown:
            raise SourceError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}")
        for key in ("redistribution", "commercial"):
            if value.get(key) not in PERMISSIONS:
                raise SourceError(f"{where}.{key} must be one of {', '.join(PERMISSIONS)}, got {value.get(key)!r}")
        if not isinstance(value.get("id"), str) or not value["id"].strip():
            raise SourceError(f"{where}.id must be the Hub's licence identifier (e.g. cc-by-4.0) or other")
        if not isinstance(value.get("share_alike", False), bool):
            raise SourceError(f"{where}.share_alike must be true or false")
        return cls(
            id=value["id"].strip().lower(),
            redistribution=value["redistribution"],
            commercial=value["commercial"],
            share_alike=value.get("share_alike", False),
            url=str(value.get("url") or "").strip(),
            note=" ".join(str(value.get("note") or "").split()),
        )


@dataclass(frozen=True)
class SourceDefinition:
    name: str
    adapter: str
    title: str
    version: str
    citation: str
    licence: str
    download: str
    layout: str
    label_map: LabelMap
    confirmed: str = ""
    notes: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    keep_priority: int | None = None  # dedup keeps a lower number first; unranked sources come after
    role: str = "original"
    splits: dict[str, str] = field(default_factory=dict)  # source_split value -> train/val/test (--keep-source-splits)
    licence_terms: LicenceTerms | None = None  # machine-readable terms (None: read from the licence line)
    path: Path | None = None

    @classmethod
    def from_yaml(cls, path: Path) -> SourceDefinition:
        data = read_yaml(path, SourceError, "source definition")
        if not isinstance(data, dict):
            raise SourceError(f"{path}: a source definition must be a YAML mapping")
        missing = [k for k in ("name", "title", "citation", "licence", "download", "layout") if not data.get(k)]
        if missing:
            raise SourceError(f"{path}: missing key(s) {', '.join(missing)}")
        try:
            label_map = LabelMap.from_dict(data.get("label_map") or {}, origin=f"{path}: label_map")
        except LabelMapError as exc:
            raise SourceError(str(exc)) from None
        return cls(
            name=str(data["name"]),
            adapter=str(data.get("adapter", data["name"])),
            title=str(data["title"]),
            version=str(data.get("version", "")),
            citation=str(data["citation"]).strip(),
            licence=str(data["licence"]).strip(),
            download=str(data["download"]).strip(),
            layout=str(data["layout"]).rstrip(),
            label_map=label_map,
            confirmed=str(data.get("confirmed", "")).strip(),
            notes=str(data.get("notes", "")).strip(),
            options=dict(data.get("options") or {}),
            keep_priority=_keep_priority(path, data.get("keep_priority")),
            role=_role(path, data.get("role", "original")),
            splits=_splits(path, data.get("splits")),
            licence_terms=LicenceTerms.from_yaml(path, data.get("licence_terms")),
            path=Path(path),
        )


def _keep_priority(path: Path, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SourceError(f"{path}: keep_priority must be a whole number >= 1 (1 is kept first), got {value!r}")
    return value


def _role(path: Path, value: object) -> str:
    if value not in ROLES:
        raise SourceError(f"{path}: role must be one of {', '.join(ROLES)}, got {value!r}")
    return str(value)


SPLIT_NAMES = ("train", "val", "test")


def _splits(path: Path, value: object) -> dict[str, str]:
    """``splits:`` maps the source's own split names to train/val/test (what ``--keep-source-splits`` keeps)."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(v in SPLIT_NAMES for v in value.values()):
        raise SourceError(f"{path}: splits must map the source's split names to one of {', '.join(SPLIT_NAMES)}")
    return {str(k): str(v) for k, v in value.items()}


def load_definitions(directory: Path | None = None) -> dict[str, SourceDefinition]:
    directory = directory or manifests_dir()
    definitions: dict[str, SourceDefinition] = {}
    for path in sorted(Path(directory).glob("*.yaml")):
        definition = SourceDefinition.from_yaml(path)
        if definition.name in definitions:
            raise SourceError(f"{path}: source name {definition.name!r} is defined twice")
        definitions[definition.name] = definition
    return definitions


def get_definition(name: str) -> SourceDefinition:
    definitions = load_definitions()
    if name not in definitions:
        raise SourceError(f"unknown source {name!r}; known: {', '.join(sorted(definitions))} (see `wbc-data sources`)")
    return definitions[name]


def source_definitions(workspace: Workspace, sources: Sequence[str]) -> dict[str, SourceDefinition | None]:
    """Each source of a workspace (an ingest's name) -> the definition it was read with, as its ingest recorded
    it (None for one not known here): what publish and the gap report read a source's declared licence from."""
    from wbc_data.core.workspace import workspace_roots

    infos = workspace_roots(workspace).infos
    known = load_definitions()
    return {s: known.get(infos[s].definition if s in infos else s) for s in sources}
