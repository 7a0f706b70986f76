"""Label maps: raw source labels -> the 13-class taxonomy, loaded from YAML and checked at load time."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from wbc_data.taxonomy import MappedLabel, TaxonomyError, parse_map_value


class LabelMapError(ValueError):
    """A label-map file is missing, unreadable or names an unknown class."""


@dataclass(frozen=True)
class LabelMap:
    """A case-insensitive mapping from raw label to :class:`MappedLabel`.

    A raw label that is not in the map yields ``None``: it is reported as *unmapped*, never guessed.
    """

    entries: Mapping[str, MappedLabel]
    raw_values: Mapping[str, object]
    origin: str = "<inline>"

    @classmethod
    def from_dict(cls, data: Mapping[str, object], origin: str = "<inline>") -> LabelMap:
        if not isinstance(data, Mapping):
            raise LabelMapError(f"{origin}: a label map must be a mapping of raw label -> class")
        entries: dict[str, MappedLabel] = {}
        raw_values: dict[str, object] = {}
        for key, value in data.items():
            folded = str(key).strip().casefold()
            try:
                mapped = parse_map_value(value, where=f"{origin}: {key!r}")
            except TaxonomyError as exc:
                raise LabelMapError(str(exc)) from None
            if folded in entries and entries[folded] != mapped:
                raise LabelMapError(
                    f"{origin}: label {key!r} appears twice with different classes (labels match case-insensitively)"
                )
            entries[folded] = mapped
            raw_values[folded] = value
        return cls(entries, raw_values, origin)

    @classmethod
    def from_yaml(cls, path: Path) -> LabelMap:
        """Load a plain YAML label map (``folder: CODE`` per line), or a source file's ``label_map:`` key."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise LabelMapError(f"{path}: cannot read label map ({exc.strerror or exc})") from None
        except yaml.YAMLError as exc:
            raise LabelMapError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
        if isinstance(data, dict) and isinstance(data.get("label_map"), dict):
            data = data["label_map"]
        if data is None:
            raise LabelMapError(f"{path}: label map is empty")
        return cls.from_dict(data, origin=str(path))

    def lookup(self, raw: str | None) -> MappedLabel | None:
        if raw is None:
            return None
        return self.entries.get(str(raw).strip().casefold())

    def __contains__(self, raw: object) -> bool:
        return str(raw).strip().casefold() in self.entries

    def keys(self) -> list[str]:
        return list(self.entries)
