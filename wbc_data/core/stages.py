"""Stage results kept apart from the manifest, joined when read: no stage rewrites another stage's columns.

``wbc-data manifest`` (merge) owns ``manifest.parquet``. Every later stage (dedup, split, ...) writes only its own
``<workspace>/stages/<stage>.parquet``: ``sample_id``, a digest of the row it computed on, and its columns, plus
metadata (run id, a digest of its results, the command that re-runs it, the upstream results it used). Reading the
manifest through :func:`load_view` joins them by ``sample_id``:

- an unchanged row keeps its stage results, whatever was re-merged around it;
- a row whose inputs changed (new pixels, new label, new group...) gets empty stage columns and is counted stale;
- a new row has none and is counted new; the stage says which command fills it in;
- a stage run on top of an upstream stage whose results have since changed (a re-run that decided otherwise) is
  flagged stale as a whole; a re-run that decided the same for every row leaves it fresh.

Rows a stage handles by rule (``defaults_for_synthetic``: e.g. synthetic rows always train) need no re-run.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from wbc_data.core import manifest
from wbc_data.core.manifest import ManifestError
from wbc_data.core.rows import is_synthetic, is_usable
from wbc_data.core.workspace import Workspace
from wbc_data.io.atomic import atomic_write
from wbc_data.io.locks import check_workspace_folder

DIGEST_COLUMNS = [
    "source",
    "status",
    "sha256",
    "pixel_hash",
    "crop_box",
    "parent_id",
    "group_id",
    "patient_id",
    "source_split",
    "label",
    "label_status",
    "label_candidates",
    "width",
    "height",
]
"""What a stage's result depends on in a row: if any of these change, the stage's result for that row is stale."""

STAGE_KEY = "wbc_stage"


@dataclass(frozen=True)
class StageStatus:
    """How one stage's results relate to the manifest as it is now."""

    stage: str
    command: str
    run_id: str
    written_at: str
    rows: int  # rows the stage wrote results for
    unchanged: int  # manifest rows whose stage results still hold
    changed: int  # rows whose inputs changed since: results dropped
    new: int  # rows the stage has never seen (and no rule covers)
    removed: int  # rows the stage saw that are no longer in the manifest
    upstream_changed: list[str] = field(default_factory=list)  # upstream stages whose results changed (or gone)
    result: str = ""  # what a downstream stage records of this one: its results' digest (its run id before)

    @property
    def fresh(self) -> bool:
        return not (self.changed or self.new or self.upstream_changed)

    def message(self) -> str:
        if self.fresh:
            extra = f"; {self.removed:,} row(s) no longer in the manifest" if self.removed else ""
            return f"{self.stage}: up to date ({self.unchanged:,} rows){extra}"
        parts = []
        if self.changed:
            parts.append(f"{self.changed:,} row(s) changed since it ran (their results are dropped)")
        if self.new:
            parts.append(f"{self.new:,} new row(s) have no result")
        if self.upstream_changed:
            parts.append(f"{', '.join(self.upstream_changed)} re-ran since, with other results")
        kept = f"results kept for {self.unchanged:,} unchanged row(s); " if self.unchanged else ""
        return f"{self.stage}: stale: {kept}{'; '.join(parts)}: re-run `{self.command}`"


class StaleStageError(ManifestError):
    """A command needs a stage's results and they are missing or stale."""


# --------------------------------------------------------------------------- digests


def result_digest(results: pd.DataFrame) -> str:
    """A digest of a stage's results (rows in ``sample_id`` order, every column): a stage re-run that decides the
    same for every row leaves the stages built on it fresh (a dedup re-run for a report, or with ``--against``,
    used to send the user back to ``split``)."""
    ordered = results.sort_values("sample_id", kind="stable").reset_index(drop=True)
    parts = {c: _as_text(ordered[c]) for c in ordered.columns}
    hashed = pd.util.hash_pandas_object(pd.DataFrame(parts), index=False).to_numpy(np.uint64)
    names = "\x1f".join(ordered.columns).encode()
    return "d:" + hashlib.blake2b(hashed.tobytes() + names, digest_size=12).hexdigest()


def row_digests(frame: pd.DataFrame) -> np.ndarray:
    """A uint64 per row over :data:`DIGEST_COLUMNS` (absent columns count as empty), stable across runs."""
    parts = {}
    for column in DIGEST_COLUMNS:
        if column not in frame.columns:
            parts[column] = pd.Series([""] * len(frame), index=frame.index)
            continue
        parts[column] = _as_text(frame[column])
    if not len(frame):
        return np.zeros(0, dtype=np.uint64)
    table = pd.DataFrame(parts)
    return pd.util.hash_pandas_object(table, index=False).to_numpy(np.uint64)


def _as_text(values: pd.Series) -> pd.Series:
    """A column as text for hashing: lists joined, missing values one marker, whatever the dtype."""
    return values.map(_text) if values.dtype == object else values.astype("string").fillna("\x00")


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "\x00"
    if isinstance(value, (list, tuple, np.ndarray)):
        return "\x1f".join(map(str, list(value)))
    return str(value)


# --------------------------------------------------------------------------- write / read one stage


def write_stage(
    workspace: Workspace,
    stage: str,
    results: pd.DataFrame,
    inputs: pd.DataFrame,
    *,
    command: str,
    params: Mapping[str, Any] | None = None,
    upstream: Sequence[str] = (),
    defaults_for_synthetic: Mapping[str, Any] | None = None,
) -> tuple[Path, str]:
    """Write ``results`` (``sample_id`` + this stage's manifest columns) as the stage's own file, atomically.

    ``inputs`` are the manifest rows the results were computed on (their digests are stored, so later merges can
    tell which results still hold); ``upstream`` names stages whose current run this one used."""
    if "sample_id" not in results.columns:
        raise ManifestError(f"stage {stage}: results need a sample_id column")
    columns = [c for c in results.columns if c != "sample_id"]
    digests = pd.Series(row_digests(inputs), index=inputs["sample_id"].to_numpy())
    if digests.index.has_duplicates:
        raise ManifestError(f"stage {stage}: duplicate sample_id in its inputs")
    missing = ~results["sample_id"].isin(digests.index)
    if missing.any():
        raise ManifestError(
            f"stage {stage}: result for {results['sample_id'][missing].iloc[0]!r}, not among its inputs"
        )
    arrays = [pa.array(results["sample_id"].astype(str).tolist(), pa.string())]
    arrays += [manifest.column_array(c, results[c].tolist()) for c in columns]
    arrays.append(pa.array(digests.reindex(results["sample_id"]).to_numpy(), pa.uint64()))
    table = pa.Table.from_arrays(arrays, names=["sample_id", *columns, "input_digest"])
    run_id = uuid.uuid4().hex[:12]
    statuses = {s.stage: s for s in stage_statuses(workspace, inputs, only=upstream)} if upstream else {}
    meta = {
        STAGE_KEY: stage,
        "command": command,
        "run_id": run_id,
        "result_digest": result_digest(results),
        "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "columns": json.dumps(columns),
        "params": json.dumps(dict(params or {}), default=str, sort_keys=True),
        "upstream": json.dumps({name: statuses[name].result for name in upstream if name in statuses}),
        "synthetic_defaults": json.dumps(dict(defaults_for_synthetic or {}), default=str),
    }
    table = table.replace_schema_metadata({k.encode(): v.encode() for k, v in meta.items()})
    path = workspace.stage_path(stage)
    atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
    return path, run_id


@dataclass
class StageFile:
    stage: str
    path: Path
    table: pd.DataFrame  # sample_id, input_digest, the stage's columns
    meta: dict[str, str]

    @property
    def columns(self) -> list[str]:
        return [c for c in self.table.columns if c not in ("sample_id", "input_digest")]

    def json_meta(self, key: str) -> Any:
        try:
            return json.loads(self.meta.get(key) or "{}")
        except ValueError:
            return {}


class DamagedStageError(ManifestError):
    """A stage file that cannot be read; the message names the command that rebuilds it."""


def rebuild_hint(path: Path) -> str:
    workspace = Path(path).parent.parent
    return f"`wbc-data {Path(path).stem} -w {workspace}` rebuilds it (the damaged file is moved aside)"


def read_stage(path: Path) -> StageFile:
    """One stage file, checked: a damaged or foreign file is one clear line naming the command that rebuilds it."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise DamagedStageError(f"{path}: not a readable stage result ({exc}); {rebuild_hint(path)}") from None
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    stage = meta.get(STAGE_KEY)
    if not stage or "sample_id" not in table.column_names or "input_digest" not in table.column_names:
        raise DamagedStageError(
            f"{path}: not a wbc-data stage result (no stage metadata, sample_id or input_digest); {rebuild_hint(path)}"
        )
    known = {f.name: f for f in manifest.OPTIONAL_FIELDS}
    for name in table.column_names:
        if name in ("sample_id", "input_digest"):
            continue
        if name not in known:
            raise DamagedStageError(f"{path}: unknown stage column {name!r}; {rebuild_hint(path)}")
        actual = table.schema.field(name).type
        if not actual.equals(known[name].type) and not pa.types.is_null(actual):
            raise DamagedStageError(
                f"{path}: column {name!r} has type {actual}, expected {known[name].type}; {rebuild_hint(path)}"
            )
    return StageFile(stage, Path(path), manifest.to_frame(table), meta)


def stage_files(workspace: Workspace, only: Iterable[str] | None = None) -> list[StageFile]:
    """Every stage's file (or those of the stages in ``only``)."""
    wanted = None if only is None else set(only)
    paths = sorted(workspace.stages_dir.glob("*.parquet"))
    return [read_stage(p) for p in paths if wanted is None or p.stem in wanted]


def set_aside_if_damaged(workspace: Workspace, stage: str) -> str | None:
    """Called by a stage before it recomputes: its own unreadable result counts as absent. The file is moved
    aside (kept for inspection, never deleted) and the warning naming the kept copy is returned."""
    path = workspace.stage_path(stage)
    if not path.exists():
        return None
    try:
        read_stage(path)
        return None
    except DamagedStageError as exc:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        aside = path.with_name(f"{path.name}.damaged-{stamp}")
        os.replace(path, aside)
        reason = str(exc).split(": ", 1)[1].split("; ", 1)[0]
        return f"{path} was damaged ({reason}): moved aside to {aside.name}; recomputed from scratch"


# --------------------------------------------------------------------------- join


def join_stages(frame: pd.DataFrame, files: Iterable[StageFile]) -> tuple[pd.DataFrame, list[StageStatus]]:
    """Add every stage's columns to ``frame`` (which needs ``sample_id`` and the digest columns it has), results
    of changed rows dropped; return the joined frame and one :class:`StageStatus` per stage."""
    files = list(files)
    digests = row_digests(frame)
    ids = frame["sample_id"].to_numpy()
    synthetic, usable = is_synthetic(frame), is_usable(frame)
    run_ids = {f.stage: f.meta.get("run_id", "") for f in files}
    results = {f.stage: f.meta.get("result_digest", "") for f in files}
    out = frame.copy()
    statuses = []
    for stage in files:
        table = stage.table
        if table.empty:
            table = pd.concat([table, pd.DataFrame({"sample_id": ["\x00"], "input_digest": [0]})], ignore_index=True)
        position = pd.Index(table["sample_id"]).get_indexer(ids)
        seen = position >= 0
        same = np.zeros(len(frame), dtype=bool)
        same[seen] = table["input_digest"].to_numpy(np.uint64)[position[seen]] == digests[seen]
        defaults = stage.json_meta("synthetic_defaults")
        by_rule = synthetic & ~seen & bool(defaults)
        for column in stage.columns:
            values = table[column].take(np.where(same, position, 0)).reset_index(drop=True)
            values = values.where(pd.Series(same), None) if values.dtype == object else values.mask(~pd.Series(same))
            if column in defaults and by_rule.any():
                values = values.astype(object) if values.dtype == object else values
                values[pd.Series(by_rule)] = defaults[column]
            out[column] = values.to_numpy() if values.dtype == object else values.array
        upstream = stage.json_meta("upstream")
        # recorded: the upstream's result digest (a run id in files written before digests were kept)
        moved = [name for name, ref in upstream.items() if ref not in (run_ids.get(name), results.get(name)) or not ref]
        statuses.append(
            StageStatus(
                stage=stage.stage,
                command=stage.meta.get("command", f"wbc-data {stage.stage}"),
                run_id=stage.meta.get("run_id", ""),
                written_at=stage.meta.get("written_at", ""),
                rows=len(table),
                unchanged=int(same.sum()),
                changed=int((seen & ~same).sum()),
                new=int((~seen & ~by_rule & usable).sum()),  # stages compute on usable rows only
                removed=int(len(table) - seen.sum()) if len(table) else 0,
                upstream_changed=moved,
                result=stage.meta.get("result_digest") or stage.meta.get("run_id", ""),
            )
        )
    return out, statuses


def stage_statuses(
    workspace: Workspace, frame: pd.DataFrame | None = None, only: Iterable[str] | None = None
) -> list[StageStatus]:
    """Statuses of every stage (or those in ``only``) against the unified manifest (or ``frame``)."""
    files = stage_files(workspace, only)
    if not files:
        return []
    if frame is None:
        frame = _base_frame(workspace, None)
    return join_stages(frame, files)[1]


# --------------------------------------------------------------------------- the joined view


@dataclass
class ManifestView:
    """The unified manifest with every stage's results joined, and how fresh each stage is."""

    path: Path
    frame: pd.DataFrame
    stages: list[StageStatus]

    def status(self, stage: str) -> StageStatus | None:
        return next((s for s in self.stages if s.stage == stage), None)

    def require(self, stage: str, needed_by: str) -> StageStatus:
        """The stage's status; a missing or stale stage is one clear line naming the command to run."""
        found = self.status(stage)
        if found is None:
            raise StaleStageError(f"{self.path}: {needed_by} needs `wbc-data {stage}` to have run first")
        if not found.fresh:
            raise StaleStageError(f"{self.path}: {needed_by} needs fresh {stage} results; {found.message()}")
        return found


def require_manifest(workspace: Workspace) -> Path:
    """The unified manifest's path; one line when there is none (or the workspace is not a folder)."""
    path = workspace.unified_manifest
    if not path.is_file():
        check_workspace_folder(workspace.root)
        raise ManifestError(f"{path}: no unified manifest (run `wbc-data manifest` first)")
    return path


def _base_frame(workspace: Workspace, columns: list[str] | None) -> pd.DataFrame:
    path = require_manifest(workspace)
    table = manifest.read(path)
    names = table.column_names
    if columns is not None:
        wanted = list(dict.fromkeys([*columns, "sample_id", *[c for c in DIGEST_COLUMNS if c in names]]))
        if "is_synthetic" in names:
            wanted.append("is_synthetic")
        table = table.select([c for c in dict.fromkeys(wanted) if c in names])
    elif "thumb" in names:
        table = table.drop_columns(["thumb"])
    return manifest.to_frame(table)


def load_view(workspace: Workspace, columns: list[str] | None = None) -> ManifestView:
    """The unified manifest (``columns``, else all but thumbnails) joined with every stage's results."""
    frame = _base_frame(workspace, columns)
    joined, statuses = join_stages(frame, stage_files(workspace))
    return ManifestView(workspace.unified_manifest, joined, statuses)
