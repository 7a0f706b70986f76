"""Run one source adapter end to end: walk -> plan -> decode and hash in parallel -> label -> manifest.

Every file under the root becomes a row (used, auxiliary, or rejected with a reason). Results are
cached per file as they arrive, so Ctrl-C or a kill loses at most a few seconds of work; the per-source
manifest is replaced atomically only when the run completes.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import xxhash

from wbc_data.core import manifest
from wbc_data.core.errors import Interrupted
from wbc_data.core.labelmap import LabelMap
from wbc_data.core.progress import Progress
from wbc_data.core.roots import SourceInfo, read_roots_file, save_roots
from wbc_data.core.rows import is_usable
from wbc_data.core.taxonomy import LabelStatus, resolve
from wbc_data.core.workspace import Workspace
from wbc_data.imaging.decode import DEFAULT_MAX_PIXELS
from wbc_data.ingest.cache import ResultCache
from wbc_data.ingest.worker import FileJob, init_worker, process
from wbc_data.io import paths
from wbc_data.io.locks import writer_lock
from wbc_data.io.parallel import worker_pool
from wbc_data.io.walk import FileEntry, walk
from wbc_data.sources.base import PlanContext, SampleSpec, SourceAdapter, SourcePlan, load_adapter
from wbc_data.sources.definition import SourceDefinition, SourceError, get_definition
from wbc_data.sources.image_cells import OutsideRoot


class IngestInterrupted(Interrupted):
    """Ctrl-C during ingest: finished work is in the resume cache; the old manifest is untouched."""


@dataclass
class IngestOptions:
    """What to ingest and how; the defaults live here only (the CLI passes what the user gave)."""

    source: str | SourceDefinition | None = None  # a source name (`wbc-data sources`) or a definition
    path: Path | None = None  # the unpacked dataset folder (or its parent); hub: a repo id or a dataset folder
    workers: int = 0  # 0 = every core
    max_pixels: int = DEFAULT_MAX_PIXELS
    label_map: LabelMap | None = None  # overrides the definition's map (imagefolder --label-map)
    name: str | None = None  # manifest name; lets one adapter ingest several roots (e.g. two re-uploads)
    licence: str | None = None
    citation: str | None = None
    adapter_options: dict[str, Any] = field(default_factory=dict)
    use_cache: bool = True


@dataclass
class IngestResult:
    name: str
    root: Path
    manifest_path: Path
    frame: pd.DataFrame
    notes: list[str]
    files_seen: int
    decoded: int  # files decoded in this run (the rest came from the resume cache)
    from_cache: int
    proposal_path: Path | None = None  # a label map proposed for the unmapped labels, to review (never applied)


def ingest(
    source: str | SourceDefinition,
    path: Path,
    workspace: Workspace,
    options: IngestOptions | None = None,
    progress: Progress | None = None,
) -> IngestResult:
    """Shorthand for :func:`run_ingest` with ``source`` and ``path`` set in the options."""
    return run_ingest(workspace, replace(options or IngestOptions(), source=source, path=Path(path)), progress)


def check_adapter_options(source: str, adapter: SourceAdapter, given: dict[str, Any]) -> None:
    """Refuse options the source's adapter does not read (``-o mastr=...`` would be dropped without a word)."""
    unknown = sorted(set(given) - set(adapter.options))
    if unknown:
        takes = ", ".join(f"{k} ({what})" for k, what in adapter.options.items()) or "none"
        raise SourceError(f"{source}: no option {', '.join(repr(k) for k in unknown)} (its options: {takes})")


def run_ingest(workspace: Workspace, options: IngestOptions, progress: Progress | None = None) -> IngestResult:
    """Ingest ``options.source`` from ``options.path`` into ``<workspace>/sources/<name>.parquet``."""
    if options.source is None or options.path is None:
        raise SourceError("ingest: name a source and the folder it was unpacked to")
    source = options.source
    definition = get_definition(source) if isinstance(source, str) else source
    adapter = load_adapter(definition)
    check_adapter_options(definition.name, adapter, options.adapter_options)
    path = Path(options.path).expanduser()
    rows_only = adapter.reads_rows  # e.g. hub: a repo id or a dataset folder, samples are rows
    if not path.exists() and not rows_only:
        raise SourceError(f"{path}: no such folder")
    if path.exists() and not path.is_dir():
        raise SourceError(f"{path}: not a folder (point at the unpacked dataset folder)")
    root = adapter.find_root(path.resolve() if path.exists() else path)
    name = options.name or definition.name
    label_map = options.label_map or definition.label_map
    ctx = PlanContext(definition=definition, label_map=label_map, options=dict(options.adapter_options))

    with writer_lock(workspace.root, f"source-{name}"):
        walked = walk(root) if root.is_dir() and not rows_only else None
        files = walked.files if walked else []
        plan = adapter.plan(root, files, ctx)
        results, decoded, from_cache = _process_files(adapter, root, name, files, plan, options, workspace, progress)
        rows = build_rows(
            name, definition, root, files, walked.problems if walked else {}, plan, results, label_map, options
        )
        rows.sort(key=lambda r: r["sample_id"])
        table = manifest.to_table(rows)
        out = workspace.source_manifest(name)
        info = SourceInfo(
            name=name,
            definition=definition.name,
            adapter=definition.adapter,
            root=_recorded_root(root, workspace),
            options=dict(options.adapter_options),
            max_pixels=options.max_pixels,
        )
        manifest.write(
            table,
            out,
            **info.to_metadata(),
            **plan.metadata,
            ingested_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        with writer_lock(workspace.root, "roots", wait=True):  # roots.yaml is shared by every source
            if read_roots_file(workspace.root).get(name) not in (None, info.root):
                save_roots(workspace.root, {}, remove=[name])  # ingest just said where this source lives
        files_seen = len(files) + len(walked.problems if walked else {})
        frame = manifest.to_frame(table.drop_columns(["thumb"]))
        proposal = _propose_label_map(frame, workspace, definition.name, info.root, name)
        return IngestResult(name, root, out, frame, plan.notes, files_seen, decoded, from_cache, proposal)


def _recorded_root(root: Path, workspace: Workspace) -> str:
    """Where the source lies, as the manifest records it: relative to the workspace when inside it (synthetic
    images), so that it moves with the workspace; else the absolute path."""
    try:
        return root.resolve().relative_to(workspace.root.resolve()).as_posix()
    except ValueError:
        return paths.display_name(os.fspath(root))


def _propose_label_map(frame: pd.DataFrame, workspace: Workspace, source: str, root: str, name: str) -> Path | None:
    """Write ``<workspace>/label-maps/<name>.proposed.yaml`` for the raw labels the map did not know."""
    from wbc_data.ingest.labelmap_proposal import proposal_header, propose, write_proposal

    unmapped = frame[is_usable(frame) & (frame["label_status"] == LabelStatus.UNMAPPED.value)]
    raw = unmapped["source_label"].dropna().unique().tolist()
    if not raw:
        return None
    path = workspace.proposed_label_map(name)
    return write_proposal(path, propose(raw), proposal_header(source, root, name))


def adapter_reads_rows(adapter: SourceAdapter) -> bool:
    """See :attr:`SourceAdapter.reads_rows`."""
    return adapter.reads_rows


# --------------------------------------------------------------------------- decoding


def _jobs(root: Path, plan: SourcePlan, options: IngestOptions) -> dict[str, FileJob]:
    """One job per file: whole-image facts and/or all crops of that file, decoded once."""
    whole: set[str] = set(plan.fields)
    crop_specs: dict[str, list] = {}
    for spec in plan.samples:
        if spec.reason:
            continue
        if spec.crop is None:
            whole.add(spec.source_path)
        else:
            crop_specs.setdefault(spec.source_path, []).append(spec.crop)
    jobs = {}
    for source_path in sorted(whole | set(crop_specs)):
        jobs[source_path] = FileJob(
            path=os.fspath(root / source_path),
            whole=source_path in whole,
            crops=tuple(crop_specs.get(source_path, ())),
            root=os.fspath(root),
            max_pixels=options.max_pixels,
        )
    return jobs


ROW_BATCH = 2048
"""Samples whose bytes come from the adapter (Hub or parquet rows) are read this many at a time, so memory stays
flat however large the dataset is."""

Todo = list[tuple[str, FileJob, str]]  # (rel, job, cache key)


def _process_files(
    adapter: SourceAdapter,
    root: Path,
    name: str,
    files: list[FileEntry],
    plan: SourcePlan,
    options: IngestOptions,
    workspace: Workspace,
    progress: Progress | None,
) -> tuple[dict[str, dict[str, Any]], int, int]:
    jobs = _jobs(root, plan, options)
    by_rel = {f.source_path: f for f in files}
    cache = ResultCache(workspace.cache_path(name), os.fsencode(root).hex()) if options.use_cache else None
    cached = cache.load() if cache else {}
    results: dict[str, dict[str, Any]] = {}
    file_todo: Todo = []
    row_rels: list[str] = []  # not plain files under the root: bytes come from the adapter's reader
    for source_path, job in jobs.items():
        entry = by_rel.get(source_path)
        if entry is None:
            row_rels.append(source_path)
            continue
        key = _job_key(job)
        hit = cache.get(cached, source_path, entry.size, entry.mtime_ns, key) if cache else None
        if hit is not None:
            results[source_path] = hit
        else:
            file_todo.append((source_path, job, key))
    counts = {"done": len(results), "decoded": 0}
    total = len(jobs)

    def tick() -> None:
        if progress:
            progress.advance(counts["done"], total)

    def row_batches() -> Iterator[Todo]:
        """Read adapter-provided rows a batch at a time; a row whose bytes are unchanged comes from the cache."""
        reader = adapter.open_reader(os.fspath(root), options.adapter_options) if row_rels else None
        for start in range(0, len(row_rels), ROW_BATCH):
            batch: Todo = []
            for source_path in row_rels[start : start + ROW_BATCH]:
                try:
                    data = reader(source_path)  # type: ignore[misc]
                except OutsideRoot as exc:
                    results[source_path] = {"file": {"reason": str(exc)}, "crops": {}}
                    counts["done"] += 1
                    continue
                except OSError as exc:
                    results[source_path] = {"file": {"reason": f"unreadable row: {exc}"}, "crops": {}}
                    counts["done"] += 1
                    continue
                job = replace(jobs[source_path], data=data)
                key = _job_key(job, xxhash.xxh3_128_hexdigest(data))
                hit = cache.get(cached, source_path, len(data), 0, key) if cache else None
                if hit is not None:
                    results[source_path] = hit
                    counts["done"] += 1
                else:
                    batch.append((source_path, job, key))
            tick()
            yield batch

    tick()
    try:
        batches = itertools.chain([file_todo], row_batches())
        for source_path, job, key, result in _run_parallel(batches, options.workers, len(file_todo) + len(row_rels)):
            results[source_path] = result
            entry = by_rel.get(source_path)
            if cache:
                size, mtime = (entry.size, entry.mtime_ns) if entry else (len(job.data or b""), 0)
                cache.put(source_path, size, mtime, key, result)
            counts["done"] += 1
            counts["decoded"] += 1
            tick()
    except KeyboardInterrupt:
        if cache:
            cache.close()
        raise IngestInterrupted(
            f"interrupted after {counts['done']:,} of {total:,} files; finished work is cached, re-run to resume"
        ) from None
    if cache:
        cache.close()
    return results, counts["decoded"], total - counts["decoded"]


def _job_key(job: FileJob, content: str = "") -> str:
    return ResultCache.job_key(repr((job.whole, job.crops, job.max_pixels)) + content)


def _run_parallel(
    batches: Iterable[Todo], workers: int, expected: int
) -> Iterator[tuple[str, FileJob, str, dict[str, Any]]]:
    """Process batches of jobs, in this process for small runs, else in one pool reused across batches."""
    workers = workers or os.cpu_count() or 1
    if workers == 1 or expected < 32:
        for batch in batches:
            for source_path, job, key in batch:
                yield source_path, job, key, process(job)
        return
    with worker_pool(workers, init_worker) as pool:
        for batch in batches:
            if not batch:
                continue
            chunksize = max(1, min(64, len(batch) // (workers * 8)))
            jobs = [job for _, job, _ in batch]
            for index, result in pool.imap_unordered(_indexed_process, enumerate(jobs), chunksize=chunksize):
                source_path, job, key = batch[index]
                yield source_path, job, key, result


def _indexed_process(item: tuple[int, FileJob]) -> tuple[int, dict[str, Any]]:
    index, job = item
    return index, process(job)


# --------------------------------------------------------------------------- rows


def sample_id(name: str, source_path: str, crop_key: str | None = None) -> str:
    base = f"{name}:{paths.display_name(source_path)}"
    return f"{base}#{crop_key}" if crop_key else base


def build_rows(
    name: str,
    definition: SourceDefinition,
    root: Path,
    files: list[FileEntry],
    walk_problems: dict[str, str],
    plan: SourcePlan,
    results: dict[str, dict[str, Any]],
    label_map: LabelMap,
    options: IngestOptions,
) -> list[dict[str, Any]]:
    licence = options.licence or definition.licence
    citation = options.citation or definition.citation
    sizes = {f.source_path: f.size for f in files}

    def base_row(source_path: str) -> dict[str, Any]:
        row = manifest.empty_row()
        row.update(
            source=name,
            source_version=definition.version or None,
            source_root=name,  # a name: roots.Roots says where it lies on the machine at hand
            source_path=paths.display_name(source_path),
            licence=licence,
            citation=citation,
            label_status=LabelStatus.UNLABELLED.value,
            bytes=sizes.get(source_path),
        )
        if not paths.is_utf8(source_path):
            row["extra"] = manifest.extra_json({"source_path_bytes_hex": paths.name_bytes_hex(source_path)})
        return row

    rows: list[dict[str, Any]] = []
    claimed: set[str] = set()

    for source_path, note in plan.fields.items():
        claimed.add(source_path)
        row = base_row(source_path)
        row["sample_id"] = sample_id(name, source_path)
        row["group_id"] = row["sample_id"]
        facts = results.get(source_path, {}).get("file", {})
        _apply_facts(row, facts)
        if facts.get("reason"):
            row.update(status="rejected", reason=facts["reason"])
        else:
            row.update(status="auxiliary", reason=note)
        rows.append(row)

    for spec in plan.samples:
        claimed.add(spec.source_path)
        row = base_row(spec.source_path)
        crop_key = spec.crop.key if spec.crop else None
        row["sample_id"] = sample_id(name, spec.source_path, crop_key)
        if spec.crop is not None:
            row["parent_id"] = sample_id(name, spec.source_path)
            row["bytes"] = None
        row.update(
            source_label=_text(spec.source_label),
            source_split=spec.split,
            patient_id=spec.patient_id,
        )
        row["group_id"] = spec.group_id or (
            f"{name}:patient:{spec.patient_id}" if spec.patient_id else row["parent_id"] or row["sample_id"]
        )
        _apply_label(row, spec, label_map)
        extra = dict(spec.extra or {})
        if row["extra"]:
            extra["source_path_bytes_hex"] = paths.name_bytes_hex(spec.source_path)
        row["extra"] = manifest.extra_json(extra)
        file_result = results.get(spec.source_path, {})
        facts = file_result.get("crops", {}).get(crop_key, {}) if crop_key else file_result.get("file", {})
        if spec.crop is not None:
            parent_facts = file_result.get("file", {})
            row["sha256"] = None
            facts = {**facts, "format": facts.get("format") or parent_facts.get("format")}
        _apply_facts(row, facts)
        row.update(spec.columns or {})
        if spec.reason:
            row.update(status="rejected", reason=spec.reason)
        elif facts.get("reason"):
            row.update(status="rejected", reason=facts["reason"])
        elif not facts:
            row.update(status="rejected", reason="not processed (internal error: no result for this file)")
        else:
            row["status"] = "ok"
        rows.append(row)

    for source_path, what in plan.auxiliary.items():
        if source_path in claimed:
            continue
        claimed.add(source_path)
        row = base_row(source_path)
        row.update(sample_id=sample_id(name, source_path), status="auxiliary", reason=what)
        row["sha256"] = _file_sha256(root / source_path)
        rows.append(row)

    for source_path, reason in {**walk_problems, **plan.rejected}.items():
        if source_path in claimed:
            continue
        claimed.add(source_path)
        row = base_row(source_path)
        row.update(sample_id=sample_id(name, source_path), status="rejected", reason=reason)
        rows.append(row)

    for entry in files:
        if entry.source_path in claimed:
            continue
        row = base_row(entry.source_path)
        row.update(
            sample_id=sample_id(name, entry.source_path),
            status="rejected",
            reason=f"not part of the {definition.name} layout (expected: {first_line(definition.layout)})",
        )
        rows.append(row)
    return rows


def _apply_label(row: dict[str, Any], spec: SampleSpec, label_map: LabelMap) -> None:
    single = [spec.source_label] if spec.source_label is not None else []
    raws = spec.annotator_labels if spec.annotator_labels else single
    mapped = [label_map.lookup(r) for r in raws]
    resolved = resolve(mapped, raws)
    row.update(
        label=resolved.label,
        label_status=resolved.status.value,
        label_candidates=list(resolved.candidates) or None,
        annotator_labels=[_text(r) for r in spec.annotator_labels] if spec.annotator_labels else None,
        label_reason=spec.label_note or resolved.reason,
    )


def _apply_facts(row: dict[str, Any], facts: dict[str, Any]) -> None:
    for key in (
        "width",
        "height",
        "mode",
        "format",
        "bytes",
        "sha256",
        "pixel_hash",
        "phash",
        "thumb",
        "crop_box",
    ):
        if facts.get(key) is not None:
            row[key] = facts[key]


def _text(value: str | None) -> str | None:
    return None if value is None else paths.display_name(str(value))


def _file_sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "see `wbc-data sources`"
