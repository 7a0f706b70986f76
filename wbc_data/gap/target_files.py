"""Target files: per-class counts as YAML, either a plain ``CLASS: count`` mapping or a named target with
metadata (``manifests/targets/*.yaml``), so a new named target is one file and no code.

A named target may say which ingested source its counts describe (``source``) and which of that source's splits
form the training distribution (``train_splits``): the counts are then recounted from the source's label files or
its ingested rows, and that source's training splits are the default "own data" of the gap report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wbc_data.core.taxonomy import CLASSES
from wbc_data.gap.errors import GapError
from wbc_data.io.resources import manifests_dir
from wbc_data.io.yamlfile import read_yaml

KEYS = ("name", "description", "source", "train_splits", "classes")


@dataclass(frozen=True)
class TargetFile:
    path: Path
    counts: dict[str, int | None]  # None: no target for this class
    name: str | None = None
    description: str = ""
    source: str | None = None  # a source definition name
    train_splits: tuple[str, ...] | None = None  # None: every split of the source

    @property
    def shipped(self) -> bool:
        """Bundled with wbc-data (not a user's file)."""
        return self.path.resolve().is_relative_to(manifests_dir().resolve())


def targets_dir() -> Path:
    return manifests_dir() / "targets"


def read_target_file(path: Path) -> TargetFile:
    """A target YAML: ``CLASS: count`` lines, or ``classes:`` with optional name, description, source, train_splits."""
    path = Path(path)
    if not path.is_file():
        raise GapError(f"{path}: target file not found")
    data = read_yaml(path, GapError, "target YAML")
    meta: dict = {}
    if isinstance(data, dict) and "classes" in data:
        unknown = sorted(str(k) for k in data if k not in KEYS)
        if unknown:
            raise GapError(f"{path}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(KEYS)})")
        meta, data = data, data["classes"]
    source = _text(path, meta, "source")
    splits = meta.get("train_splits")
    if splits is not None:
        if not source:
            raise GapError(f"{path}: train_splits needs a source (the source definition whose splits these are)")
        if not isinstance(splits, list) or not splits or not all(isinstance(s, str) and s for s in splits):
            raise GapError(f"{path}: train_splits must be a non-empty list of split names, got {splits!r}")
    return TargetFile(
        path,
        _counts(path, data),
        name=_text(path, meta, "name"),
        description=_text(path, meta, "description") or "",
        source=source,
        train_splits=tuple(splits) if splits is not None else None,
    )


def load_targets(directory: Path | None = None) -> dict[str, TargetFile]:
    """Named targets in ``directory`` (default: the shipped ``manifests/targets``), keyed by case-folded name."""
    directory = Path(directory) if directory is not None else targets_dir()
    found: dict[str, TargetFile] = {}
    for path in sorted(directory.glob("*.yaml")):
        target = read_target_file(path)
        if not target.name:
            raise GapError(f"{path}: a target in {directory} needs a 'name:' (what --target looks up)")
        key = target.name.casefold()
        if key in found:
            raise GapError(f"{path}: target name {target.name!r} is also used by {found[key].path}")
        found[key] = target
    return found


def _text(path: Path, meta: dict, key: str) -> str | None:
    value = meta.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise GapError(f"{path}: {key} must be a non-empty text, got {value!r}")
    return value.strip()


def _counts(path: Path, data: object) -> dict[str, int | None]:
    if not isinstance(data, dict) or not data:
        raise GapError(f"{path}: a target file must map classes to counts, e.g. 'PLY: 500'")
    counts: dict[str, int | None] = dict.fromkeys(CLASSES)
    for key, value in data.items():
        code = str(key).strip().upper()
        if code not in CLASSES:
            raise GapError(f"{path}: unknown class {key!r} (known: {', '.join(CLASSES)})")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise GapError(f"{path}: {key}: count must be a whole number >= 0, got {value!r}")
        counts[code] = int(value)
    return counts
