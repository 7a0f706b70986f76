"""Targets: how many images each class should have. Parsed from ``--target`` (wbcbench, uniform:N,
min:N or a YAML file) into one per-class mapping, so the status and the quota never care where it came from.

``wbcbench`` is the real class distribution of WBCBench 2026 training data (phase 1 + phase 2 train), read
from the challenge's label CSVs or, failing that, from an ingested ``wbcbench`` source in the manifest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from wbc_data.gap.errors import GapError
from wbc_data.resources import manifests_dir
from wbc_data.taxonomy import CLASSES, LabelStatus
from wbc_data.yamlfile import read_yaml

WBCBENCH_SOURCE = "wbcbench"
WBCBENCH_TRAIN_FILES = ("phase1_label.csv", "phase2_train.csv")
"""The label tables whose labels make up the training distribution (phase2_eval is held out, phase2_test unlabelled)."""
WBCBENCH_TRAIN_SPLITS = ("phase1_train", "phase2_train")


@dataclass(frozen=True)
class Target:
    """Per-class target counts; ``counts[c] is None`` means "no target for this class"."""

    spec: str
    description: str
    counts: dict[str, int | None]
    notes: list[str] = field(default_factory=list)

    def get(self, cls: str) -> int | None:
        return self.counts.get(cls)


def read_wbcbench_labels(directory: Path) -> pd.Series:
    """Count labels in phase1_label.csv + phase2_train.csv (trailing empty columns tolerated)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise GapError(f"{directory}: not a folder of WBCBench label CSVs")
    counts = pd.Series(0, index=list(CLASSES), dtype="int64")
    for name in WBCBENCH_TRAIN_FILES:
        path = directory / name
        if not path.is_file():
            raise GapError(f"{path}: missing (expected {', '.join(WBCBENCH_TRAIN_FILES)} in {directory})")
        try:
            table = pd.read_csv(path, dtype=str, keep_default_na=False)
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            raise GapError(f"{path}: not a readable CSV ({exc})") from None
        if "labels" not in table.columns:
            raise GapError(f"{path}: no 'labels' column (columns: {', '.join(map(str, table.columns))})")
        labels = table["labels"].str.strip()
        empty = labels == ""
        if empty.any():
            raise GapError(
                f"{path}: {int(empty.sum())} row(s) with an empty label, first at data row "
                f"{int(empty.to_numpy().argmax()) + 2}"
            )
        unknown = labels[~labels.isin(CLASSES)]
        if len(unknown):
            raise GapError(
                f"{path}: label {unknown.iloc[0]!r} at line {int(unknown.index[0]) + 2} is not one of the 13 classes"
            )
        counts = counts.add(labels.value_counts(), fill_value=0).astype("int64")
    return counts


def wbcbench_from_manifest(frame: pd.DataFrame) -> pd.Series | None:
    """The same distribution from an ingested wbcbench source (training splits, exact labels), if present."""
    rows = frame[
        (frame["source"] == WBCBENCH_SOURCE)
        & (frame["status"] == "ok")
        & (frame["label_status"] == LabelStatus.EXACT.value)
        & frame["source_split"].isin(WBCBENCH_TRAIN_SPLITS)
    ]
    if "is_synthetic" in rows.columns:
        rows = rows[~rows["is_synthetic"].fillna(False).astype(bool)]
    if rows.empty:
        return None
    return rows["label"].value_counts().reindex(list(CLASSES), fill_value=0).astype("int64")


_COUNT = re.compile(r"^(uniform|min):(\d[\d_,]*)$")


def parse_target(
    spec: str, frame: pd.DataFrame, *, wbcbench_labels: Path | None = None, own_counts: Mapping[str, int] | None = None
) -> Target:
    """Resolve a ``--target`` value.

    - ``wbcbench``: the WBCBench 2026 training distribution (CSV folder, else an ingested wbcbench source).
    - ``uniform:N``: N images for every class (a balanced set).
    - ``min:N``: a floor: every class needs at least N, and a class whose own data already exceeds N keeps
      its own count as target (nothing is asked to shrink).
    - a path to a YAML mapping ``CLASS: count`` (optionally under a top-level ``classes:`` key); classes left
      out have no target.
    """
    text = spec.strip()
    if text.lower() == "wbcbench":
        return _wbcbench_target(frame, wbcbench_labels)
    match = _COUNT.match(text.lower())
    if match:
        kind, number = match.group(1), int(match.group(2).replace("_", "").replace(",", ""))
        if number <= 0:
            raise GapError(f"--target {spec}: N must be a positive number of images")
        if kind == "uniform":
            return Target(text, f"uniform: {number:,} images per class", dict.fromkeys(CLASSES, number))
        own = dict(own_counts or {})
        counts = {c: max(number, int(own.get(c, 0))) for c in CLASSES}
        return Target(text, f"min: at least {number:,} images per class (own data above that is kept)", counts)
    if text.lower().startswith(("uniform", "min")):
        raise GapError(f"--target {spec}: expected uniform:N or min:N with N a positive whole number")
    path = Path(text).expanduser()
    if path.suffix.lower() in {".yaml", ".yml"} or path.exists():
        return _yaml_target(path)
    raise GapError(
        f"--target {spec}: unknown target (use wbcbench, uniform:N, min:N or a YAML file of per-class counts)"
    )


def shipped_wbcbench_counts() -> Path:
    """The WBCBench 2026 training distribution shipped in manifests/targets (re-counted from the CSVs in tests)."""
    return manifests_dir() / "targets" / "wbcbench-2026-train.yaml"


def _wbcbench_target(frame: pd.DataFrame, labels_dir: Path | None) -> Target:
    if labels_dir is not None:
        counts = read_wbcbench_labels(labels_dir)
        origin = f"label CSVs in {labels_dir}"
    else:
        found = wbcbench_from_manifest(frame)
        if found is not None:
            counts = found
            origin = f"the ingested {WBCBENCH_SOURCE} source ({', '.join(WBCBENCH_TRAIN_SPLITS)})"
        else:
            shipped = _yaml_target(shipped_wbcbench_counts())
            counts = pd.Series({c: int(shipped.counts[c] or 0) for c in CLASSES})
            origin = "the published counts shipped with wbc-data (pass --wbcbench-labels to recount from the CSVs)"
    total = int(counts.sum())
    return Target(
        "wbcbench",
        f"WBCBench 2026 training distribution (phase 1 + phase 2 train, {total:,} images; from {origin})",
        {c: int(counts[c]) for c in CLASSES},
    )


def _yaml_target(path: Path) -> Target:
    if not path.is_file():
        raise GapError(f"{path}: target file not found")
    data = read_yaml(path, GapError, "target YAML")
    if isinstance(data, dict) and isinstance(data.get("classes"), dict):
        data = data["classes"]
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
    missing = [c for c in CLASSES if counts[c] is None]
    notes = [f"no target for {', '.join(missing)} (not in {path.name})"] if missing else []
    return Target(str(path), f"per-class counts from {path}", counts, notes)
