"""Targets: how many images each class should have. Parsed from ``--target`` (a named target, uniform:N, min:N
or a YAML file) into one per-class mapping, so the status and the quota never care where it came from.

Named targets are YAML files in ``manifests/targets`` (see :mod:`wbc_data.gap.target_files`). One that names a
source is recounted, in this order, from that source's label files (``--target-labels``, read by its adapter), from
the source's ingested rows in its training splits, or else taken from the counts written in the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from wbc_data.core.taxonomy import CLASSES
from wbc_data.gap.errors import GapError
from wbc_data.gap.source_counts import counts_from_labels, counts_from_manifest
from wbc_data.gap.target_files import TargetFile, load_targets, read_target_file


@dataclass(frozen=True)
class Target:
    """Per-class target counts; ``counts[c] is None`` means "no target for this class"."""

    spec: str
    description: str
    counts: dict[str, int | None]
    notes: list[str] = field(default_factory=list)
    source: str | None = None  # the source whose training distribution this is (its own data by default)
    train_splits: tuple[str, ...] | None = None
    floor: int | None = None  # min:N: counts depend on the own data, see floor_target

    def get(self, cls: str) -> int | None:
        return self.counts.get(cls)


_COUNT = re.compile(r"^(uniform|min):(\d[\d_,]*)$")


def parse_target(
    spec: str,
    frame: pd.DataFrame,
    *,
    labels: Path | None = None,
    own_counts: Mapping[str, int] | None = None,
    targets: Path | None = None,
) -> Target:
    """Resolve a ``--target`` value.

    - a name from ``targets`` (default: the shipped ``manifests/targets``), e.g. the challenge's training
      distribution; ``labels`` is a folder of the target source's label files to recount from;
    - ``uniform:N``: N images for every class (a balanced set);
    - ``min:N``: a floor: every class needs at least N, and a class whose own data already exceeds N keeps
      its own count as target (nothing is asked to shrink);
    - a path to a YAML mapping ``CLASS: count`` (optionally under a top-level ``classes:`` key, with the keys of
      a named target); classes left out have no target.
    """
    text = spec.strip()
    match = _COUNT.match(text.lower())
    if match:
        kind, number = match.group(1), int(match.group(2).replace("_", "").replace(",", ""))
        if number <= 0:
            raise GapError(f"--target {spec}: N must be a positive number of images")
        if kind == "uniform":
            target = Target(text, f"uniform: {number:,} images per class", dict.fromkeys(CLASSES, number))
        else:
            target = floor_target(text, number, own_counts or {})
    elif text.lower().startswith(("uniform", "min")):
        raise GapError(f"--target {spec}: expected uniform:N or min:N with N a positive whole number")
    else:
        target = _file_target(_find(spec, targets), frame, labels)
    if labels is not None and target.source is None:
        target.notes.append(f"--target-labels {labels} not read: target {text} names no source")
    return target


def floor_target(spec: str, number: int, own_counts: Mapping[str, int]) -> Target:
    """``min:N`` against the own counts: N, or the own count where that is higher."""
    counts: dict[str, int | None] = {c: max(number, int(own_counts.get(c, 0))) for c in CLASSES}
    description = f"min: at least {number:,} images per class (own data above that is kept)"
    return Target(spec, description, counts, floor=number)


def _find(spec: str, directory: Path | None) -> TargetFile:
    named = load_targets(directory)
    text = spec.strip()
    if text.casefold() in named:
        return named[text.casefold()]
    path = Path(text).expanduser()
    if path.suffix.lower() in {".yaml", ".yml"} or path.exists():
        return read_target_file(path)
    shipped = sorted(named.values(), key=lambda t: str(t.name))
    names = "".join(f"{t.name} (named in {Path(t.path).name}), " for t in shipped)
    raise GapError(f"--target {spec}: unknown target (use {names}uniform:N, min:N or a YAML file of per-class counts)")


def _file_target(target: TargetFile, frame: pd.DataFrame, labels: Path | None) -> Target:
    spec = target.name or str(target.path)
    if target.source is None:
        missing = [c for c in CLASSES if target.counts[c] is None]
        notes = [f"no target for {', '.join(missing)} (not in {target.path.name})"] if missing else []
        return Target(spec, target.description or f"per-class counts from {target.path}", target.counts, notes)
    counts, origin = _source_counts(target, frame, labels)
    described = target.description or f"the {target.source} training distribution"
    total = sum(v for v in counts.values() if v is not None)
    return Target(
        spec,
        f"{described} ({total:,} images; from {origin})",
        counts,
        source=target.source,
        train_splits=target.train_splits,
    )


def _source_counts(target: TargetFile, frame: pd.DataFrame, labels: Path | None) -> tuple[dict[str, int | None], str]:
    source, splits = str(target.source), target.train_splits
    if labels is not None:
        return _as_dict(counts_from_labels(source, labels, splits)), f"the {source} labels in {labels}"
    found = counts_from_manifest(frame, source, splits)
    if found is not None:
        where = f" ({', '.join(splits)})" if splits else ""
        return _as_dict(found), f"the ingested {source} source{where}"
    if target.shipped:
        origin = "the published counts shipped with wbc-data (pass --target-labels to recount from the label files)"
    else:
        origin = f"the counts in {target.path}"
    return target.counts, origin


def _as_dict(counts: pd.Series) -> dict[str, int | None]:
    return {c: int(counts[c]) for c in CLASSES}
