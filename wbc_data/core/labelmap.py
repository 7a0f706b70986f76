"""Label maps: raw source labels -> the 13-class taxonomy, loaded from YAML and checked at load time."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from wbc_data.core.errors import UserError
from wbc_data.core.taxonomy import MappedLabel, TaxonomyError, parse_map_value
from wbc_data.io.yamlfile import read_yaml


class LabelMapError(UserError):
    """A label-map file is missing, unreadable or names an unknown class."""


@dataclass(frozen=True)
class LabelMap:
    """A case-insensitive mapping from raw label to :class:`MappedLabel`.

    A raw label that is not in the map yields ``None``: it is reported as *unmapped*, never guessed.
    """

    entries: Mapping[str, MappedLabel]
    written: Mapping[str, str]  # folded label -> the label as first written in the map (for display)
    origin: str = "<inline>"

    @classmethod
    def from_dict(cls, data: Mapping[str, object], origin: str = "<inline>") -> LabelMap:
        if not isinstance(data, Mapping):
            raise LabelMapError(f"{origin}: a label map must be a mapping of raw label -> class")
        entries: dict[str, MappedLabel] = {}
        written: dict[str, str] = {}
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
            written.setdefault(folded, str(key).strip())
        return cls(entries, written, origin)

    @classmethod
    def from_yaml(cls, path: Path) -> LabelMap:
        """Load a plain YAML label map (``folder: CODE`` per line), or a source file's ``label_map:`` key."""
        path = Path(path)
        data = read_yaml(path, LabelMapError, "label map")
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
        """The labels, case-folded (as they are matched)."""
        return list(self.entries)

    def names(self) -> list[str]:
        """The labels as written in the map, one per case-insensitive label."""
        return list(self.written.values())
