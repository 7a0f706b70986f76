"""Named source roots: a workspace says *which* source a row came from, never *where* it lies on this machine.

Rows store ``source_root`` = the name of an ingest (the manifest's ``source``). Where that name points is looked
up, in this order:

1. ``--root NAME=PATH`` given to a command (saved into ``roots.yaml`` by ``wbc-data manifest --root``);
2. ``<workspace>/roots.yaml``, a plain ``name: path`` mapping the user may edit (relative paths are relative to the
   workspace folder, so a workspace shipped together with its data stays portable);
3. the path ingest read, recorded in the manifest's metadata with the adapter and its options (a path relative to the
   workspace, as stages that write images into the workspace record, moves with it).

So a workspace curated on a laptop opens on a GPU server after one ``wbc-data manifest --root pbc=/data/PBC``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml

from wbc_data.core.errors import UserError
from wbc_data.io.atomic import atomic_write_text
from wbc_data.io.yamlfile import read_yaml

ROOTS_FILE = "roots.yaml"
INFO_KEY = "source_info"
"""Metadata key of the unified manifest: JSON list of :class:`SourceInfo`, one per merged ingest."""


class RootsError(UserError):
    """A roots file or a ``--root`` value that cannot be used, or a row whose source root is unknown."""


@dataclass(frozen=True)
class SourceInfo:
    """What one ingest recorded about itself: enough to reopen any of its rows later, on any machine."""

    name: str  # the ingest's name: the manifest's ``source`` and the rows' ``source_root``
    definition: str  # the source definition (manifests/<definition>.yaml) it was read with
    adapter: str
    root: str  # the path (or Hub id) ingest read, as seen on the machine that ran it
    options: dict[str, Any] = field(default_factory=dict)  # adapter options (Hub config/split, ...)
    max_pixels: int | None = None

    def to_metadata(self) -> dict[str, str]:
        return {
            "source": self.name,
            "definition": self.definition,
            "adapter": self.adapter,
            "root": self.root,
            "adapter_options": json.dumps(self.options, sort_keys=True, default=str),
            "max_pixels": "" if self.max_pixels is None else str(self.max_pixels),
        }

    @classmethod
    def from_metadata(cls, meta: Mapping[str, str], fallback_name: str) -> SourceInfo:
        try:
            options = json.loads(meta.get("adapter_options") or "{}")
        except ValueError:
            options = {}
        name = meta.get("source") or fallback_name
        max_pixels = meta.get("max_pixels") or ""
        return cls(
            name=name,
            definition=meta.get("definition") or name,
            adapter=meta.get("adapter") or name,
            root=meta.get("root") or "",
            options=options if isinstance(options, dict) else {},
            max_pixels=int(max_pixels) if max_pixels.isdigit() else None,
        )


def infos_to_json(infos: Iterable[SourceInfo]) -> str:
    return json.dumps([asdict(i) for i in infos], sort_keys=True, default=str)


def infos_from_json(text: str | None) -> dict[str, SourceInfo]:
    if not text:
        return {}
    try:
        items = json.loads(text)
    except ValueError:
        return {}
    out = {}
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and item.get("name"):
            out[item["name"]] = SourceInfo(**{k: item.get(k) for k in SourceInfo.__dataclass_fields__})
    return out


def read_source_info(path: Path) -> SourceInfo:
    """The :class:`SourceInfo` in a per-source manifest's metadata (read from the footer only)."""
    meta = {k.decode(): v.decode() for k, v in (pq.read_schema(path).metadata or {}).items()}
    return SourceInfo.from_metadata(meta, Path(path).stem)


def read_manifest_infos(path: Path) -> dict[str, SourceInfo]:
    """The per-ingest infos a unified manifest carries in its metadata (empty for older manifests)."""
    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(INFO_KEY.encode())
    return infos_from_json(raw.decode() if raw else None)


# --------------------------------------------------------------------------- roots.yaml


def roots_file(workspace_root: Path) -> Path:
    return Path(workspace_root) / ROOTS_FILE


def read_roots_file(workspace_root: Path) -> dict[str, str]:
    """``roots.yaml`` of a workspace as ``{name: path}`` (empty when there is none)."""
    path = roots_file(workspace_root)
    if not path.is_file():
        return {}
    data = read_yaml(path, RootsError, "the source roots")
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(v, str) and v.strip() for v in data.values()):
        example = "e.g. 'pbc: /data/PBC_dataset_normal_DIB'"
        raise RootsError(f"{path}: expected 'name: path' lines, one per source ({example})")
    return {str(k): v.strip() for k, v in data.items()}


def parse_root_options(items: Iterable[str]) -> dict[str, str]:
    """``--root NAME=PATH`` values as ``{name: path}``; a bad value is one clear line."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise RootsError(f"--root {item!r}: expected NAME=PATH, e.g. --root pbc=/data/PBC_dataset_normal_DIB")
        out[name.strip()] = value.strip()
    return out


def save_roots(workspace_root: Path, updates: Mapping[str, str], remove: Iterable[str] = ()) -> Path:
    """Merge ``updates`` into ``roots.yaml`` (and drop ``remove``), atomically."""
    current = read_roots_file(workspace_root)
    for name in remove:
        current.pop(name, None)
    current.update(updates)
    path = roots_file(workspace_root)
    if not current and not path.exists():
        return path
    header = (
        "# Where each ingested source lives on this machine (name: path). Relative paths are relative to this\n"
        "# workspace folder. Written by `wbc-data manifest --root NAME=PATH`; edit freely.\n"
    )
    atomic_write_text(path, header + yaml.safe_dump(dict(sorted(current.items())), allow_unicode=True))
    return path


# --------------------------------------------------------------------------- resolution


@dataclass
class Roots:
    """Resolves a row's ``source_root`` name to a path (or Hub id) on this machine."""

    infos: dict[str, SourceInfo] = field(default_factory=dict)
    overrides: dict[str, str] = field(default_factory=dict)
    base: Path | None = None  # the workspace folder, for relative paths in roots.yaml

    def location(self, name: str) -> str:
        """Where source ``name`` lies here; a name that is itself an absolute path (manifests written before
        roots were named) is taken as is."""
        if name in self.overrides:
            return self._absolute(self.overrides[name])
        info = self.infos.get(name)
        if info is not None and info.root:
            return self._absolute(info.root)  # a stage that writes inside the workspace records a relative root
        if name and os.path.isabs(name):
            return name
        known = ", ".join(sorted(set(self.infos) | set(self.overrides))) or "none"
        raise RootsError(
            f"source root {name!r} is unknown here (known: {known}); point it at its folder with "
            f"`wbc-data manifest --root {name}=PATH`"
        )

    def info(self, name: str) -> SourceInfo:
        found = self.infos.get(name)
        if found is not None:
            return found
        return SourceInfo(name=name, definition=name, adapter=name, root=self.location(name))

    def names(self) -> list[str]:
        return sorted(set(self.infos) | set(self.overrides))

    def _absolute(self, value: str) -> str:
        expanded = os.path.expanduser(value)
        if os.path.isabs(expanded) or self.base is None:
            return expanded
        candidate = Path(self.base) / expanded
        return os.fspath(candidate) if candidate.exists() else expanded  # a Hub id stays as written

    def with_overrides(self, overrides: Mapping[str, str]) -> Roots:
        return Roots(self.infos, {**self.overrides, **overrides}, self.base)
