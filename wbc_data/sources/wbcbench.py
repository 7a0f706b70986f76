"""WBCBench 2026, in its two published forms:

* the challenge download: ``phase1/``, ``phase2/{train,eval,test}/`` of 8-digit ``.jpg`` files and the label
  tables ``phase1_label.csv``, ``phase2_train.csv``, ``phase2_eval.csv`` (``ID,labels,split``) and
  ``phase2_test.csv`` (``ID,labels`` with empty labels). The tables may live elsewhere (``annotations`` option:
  a folder or one CSV), since they are published separately from the images;
* the Hub parquet export: ``image`` ({bytes, path}), ``image_id``, ``label``, ``wbcbench_split``, ``severity``,
  ``original_image_id``, ``patient_hash``; each parquet row is one sample whose bytes the adapter supplies.

The source split, patient hash and severity are kept: the challenge splits are patient-level, so a patient's
images share one ``group_id`` and must never straddle train and evaluation.
"""

from __future__ import annotations

import bisect
import csv
import itertools
import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pyarrow.parquet as pq

from wbc_data.io.walk import FileEntry
from wbc_data.sources.base import (
    PlanContext,
    SampleSpec,
    SourceAdapter,
    SourcePlan,
    is_image_name,
    not_an_image_reason,
)
from wbc_data.sources.definition import SourceError
from wbc_data.sources.image_cells import image_cell_bytes

TABLES: dict[str, tuple[str, str]] = {  # label table -> (image folder, default split)
    "phase1_label.csv": ("phase1", "phase1_train"),
    "phase2_train.csv": ("phase2/train", "phase2_train"),
    "phase2_eval.csv": ("phase2/eval", "phase2_eval"),
    "phase2_test.csv": ("phase2/test", "phase2_test"),
}
FOLDER_TABLE = {folder: table for table, (folder, _) in TABLES.items()}
PARQUET_COLUMNS = ("image", "image_id", "label", "wbcbench_split", "severity", "original_image_id", "patient_hash")
CONFIGS = ("pristine", "degraded")
ROW_SEP = ".parquet/"  # a parquet row's rel is "<file>.parquet/<image_id>"


@dataclass
class LabelRow:
    line: int
    label: str | None
    split: str | None


@dataclass
class Table:
    name: str
    rows: dict[str, list[LabelRow]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def read_table(path: Path) -> Table:
    """One WBCBench label CSV, keyed by ID; repeated IDs are kept (all rows) so they can be reported."""
    table = Table(path.name)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = [h.strip() for h in next(reader, [])]
            if "ID" not in header or "labels" not in header:
                raise SourceError(f"{path}: expected a header with ID and labels, found {header}")
            i_id, i_label = header.index("ID"), header.index("labels")
            i_split = header.index("split") if "split" in header else None
            for line, row in enumerate(reader, start=2):
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) <= max(i_id, i_label):
                    table.problems.append(f"{path.name} line {line}: only {len(row)} field(s)")
                    continue
                image_id = row[i_id].strip()
                label = row[i_label].strip() or None
                split = row[i_split].strip() or None if i_split is not None and i_split < len(row) else None
                table.rows.setdefault(image_id, []).append(LabelRow(line, label, split))
    except OSError as exc:
        raise SourceError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return table


def table_of(source_path: str) -> str | None:
    """Which label table an image at ``rel`` belongs to (by its folder, at any depth)."""
    parts = source_path.split("/")
    if len(parts) >= 2 and parts[-2] == "phase1":
        return FOLDER_TABLE["phase1"]
    if len(parts) >= 3 and parts[-3] == "phase2":
        return FOLDER_TABLE.get(f"phase2/{parts[-2]}")
    return None


class WbcbenchAdapter(SourceAdapter):
    name = "wbcbench"
    options: ClassVar[dict[str, str]] = {
        "annotations": "a label table, or a folder of them (default: those in the dataset folder)",
    }

    def find_root(self, path: Path) -> Path:
        if not path.is_dir():
            raise SourceError(f"{path}: not a folder")
        if any((path / name).exists() for name in ("phase1", "phase2", *TABLES)):
            return path
        if next(path.rglob("*.parquet"), None) is not None:
            return path
        raise SourceError(
            f"{path}: not a WBCBench 2026 folder (expected phase1/, phase2/{{train,eval,test}}/ and the label CSVs, "
            "or the Hub parquet files)"
        )

    # ------------------------------------------------------------------ plan

    def plan(self, root: Path, files: list[FileEntry], ctx: PlanContext) -> SourcePlan:
        plan = SourcePlan()
        tables = self._tables(root, files, ctx, plan)
        images: dict[str, dict[str, str]] = {}  # table -> ID -> rel
        for entry in files:
            name = entry.source_path.rsplit("/", 1)[-1]
            if entry.source_path in plan.auxiliary:
                continue
            if name.lower().endswith(".parquet"):
                self._plan_parquet(root, entry.source_path, plan)
                continue
            table = table_of(entry.source_path)
            if table is None:
                continue  # the engine rejects it as not part of the layout
            if not is_image_name(name):
                plan.rejected[entry.source_path] = not_an_image_reason(name)
                continue
            images.setdefault(table, {})[name] = entry.source_path
        for table_name, by_id in sorted(images.items()):
            self._plan_images(table_name, by_id, tables.get(table_name), plan)
        for table_name, table in sorted(tables.items()):
            on_disk = images.get(table_name, {})
            missing = sorted(set(table.rows) - set(on_disk))
            if missing:
                folder = TABLES[table_name][0]
                where = f"{folder}/" if on_disk else f"{folder}/ (folder absent or empty)"
                plan.notes.append(
                    f"{len(missing):,} of {len(table.rows):,} rows in {table_name} name no image in {where} "
                    f"(e.g. {missing[0]})"
                )
        if not plan.samples and not tables:
            raise SourceError(f"{root}: no WBCBench images, label CSVs or parquet files found")
        return plan

    def _tables(self, root: Path, files: list[FileEntry], ctx: PlanContext, plan: SourcePlan) -> dict[str, Table]:
        """Label tables from the ``annotations`` option (a folder or one CSV) or from the tree itself."""
        paths: dict[str, Path] = {}
        given = ctx.options.get("annotations")
        if given:
            given = Path(given)
            if given.is_file():
                if given.name not in TABLES:
                    raise SourceError(f"{given}: not a WBCBench label table (expected one of {', '.join(TABLES)})")
                paths[given.name] = given
            elif given.is_dir():
                paths = {name: given / name for name in TABLES if (given / name).is_file()}
                if not paths:
                    raise SourceError(f"{given}: no WBCBench label tables ({', '.join(TABLES)}) in this folder")
            else:
                raise SourceError(f"{given}: no such file or folder")
        in_tree = {
            e.source_path.rsplit("/", 1)[-1]: e.source_path for e in files if e.source_path.rsplit("/", 1)[-1] in TABLES
        }
        for name, source_path in in_tree.items():
            paths.setdefault(name, root / source_path)
        tables: dict[str, Table] = {}
        for name, path in sorted(paths.items()):
            table = read_table(path)
            tables[name] = table
            plan.notes.extend(table.problems[:10])
            repeated = [k for k, rows in table.rows.items() if len(rows) > 1]
            if repeated:
                plan.notes.append(f"{name}: {len(repeated)} ID(s) listed more than once (e.g. {repeated[0]})")
            labelled = sum(1 for rows in table.rows.values() if rows[0].label)
            what = f"label table: {len(table.rows):,} IDs, {labelled:,} labelled"
            if name in in_tree and (root / in_tree[name]) == path:
                plan.auxiliary[in_tree[name]] = what
            else:
                plan.notes.append(f"labels for {TABLES[name][0]}/ read from {path}")
        for source_path in in_tree.values():
            if source_path not in plan.auxiliary:
                plan.auxiliary[source_path] = "label table not used (the one given with --annotations was read instead)"
        return tables

    def _plan_images(self, table_name: str, by_id: dict[str, str], table: Table | None, plan: SourcePlan) -> None:
        default_split = TABLES[table_name][1]
        for image_id, source_path in sorted(by_id.items()):
            rows = table.rows.get(image_id) if table else None
            spec = SampleSpec(source_path, source_label=None, split=default_split, extra={"label_table": table_name})
            if table is None:
                spec.label_note = f"{table_name} not found: no label"
            elif rows is None:
                spec.label_note = f"no row in {table_name}"
            else:
                labels = [r.label for r in rows if r.label]
                spec.split = rows[0].split or default_split
                if labels:
                    spec.source_label = labels[0]
                    if len(set(labels)) > 1:
                        spec.annotator_labels = labels
                        spec.label_note = f"ID listed {len(rows)} times in {table_name} with different labels"
                elif table_name == "phase2_test.csv":
                    spec.label_note = "challenge test set: labels withheld"
                else:
                    spec.label_note = f"empty label in {table_name}"
            plan.samples.append(spec)

    def _plan_parquet(self, root: Path, source_path: str, plan: SourcePlan) -> None:
        try:
            schema = pq.read_schema(root / source_path)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            plan.rejected[source_path] = f"unreadable parquet file: {exc}"
            return
        missing = [c for c in ("image", "image_id") if c not in schema.names]
        if missing:
            plan.rejected[source_path] = f"parquet file without the WBCBench column(s) {', '.join(missing)}"
            return
        columns = [c for c in PARQUET_COLUMNS if c in schema.names and c != "image"]
        frame = pq.read_table(root / source_path, columns=columns).to_pylist()
        names = class_names(schema)
        config = next((c for c in CONFIGS if c in source_path.lower()), None)
        seen: set[str] = set()
        duplicates = 0
        for index, row in enumerate(frame):
            image_id = str(row.get("image_id") or f"row{index}")
            sample_rel = f"{source_path}/{image_id}"
            label = row.get("label")
            if isinstance(label, int) and names:
                label = names[label] if 0 <= label < len(names) else str(label)
            label = None if label in (None, "") else str(label)
            extra: dict[str, Any] = {"row": index}
            for key in ("severity", "original_image_id"):
                if row.get(key) not in (None, ""):
                    extra[key] = row[key]
            if config:
                extra["config"] = config
            spec = SampleSpec(
                sample_rel,
                source_label=label,
                split=row.get("wbcbench_split") or None,
                patient_id=row.get("patient_hash") or None,
                extra=extra,
            )
            if label is None:
                spec.label_note = "no label in the parquet row (test split)"
            if image_id in seen:
                duplicates += 1
                spec.source_path = f"{sample_rel}~row{index}"
                spec.reason = f"duplicate image_id {image_id} in {source_path} (row {index}); the first row is kept"
            seen.add(image_id)
            plan.samples.append(spec)
        plan.auxiliary[source_path] = f"WBCBench Hub parquet ({len(frame):,} rows{', ' + config if config else ''})"
        if duplicates:
            plan.notes.append(f"{source_path}: {duplicates} row(s) repeat an image_id and are rejected")

    # ------------------------------------------------------------------ labels without images

    def label_counts(self, path: Path, splits: Sequence[str] | None, ctx: PlanContext) -> dict[str, int]:
        """Labels of the tables of ``splits`` in a folder of label CSVs (every labelled row, repeats included)."""
        if not path.is_dir():
            raise SourceError(f"{path}: not a folder of WBCBench label CSVs")
        wanted = set(splits) if splits is not None else {split for _, split in TABLES.values()}
        names = [name for name, (_, split) in TABLES.items() if split in wanted]
        unknown = sorted(wanted - {split for _, split in TABLES.values()})
        if unknown:
            known = ", ".join(split for _, split in TABLES.values())
            raise SourceError(f"{path}: no WBCBench label table for split(s) {', '.join(unknown)} (known: {known})")
        counts: Counter[str] = Counter()
        for name in names:
            counts.update(_table_labels(path / name, wanted, ctx, f"expected {', '.join(names)} in {path}"))
        return dict(counts)

    # ------------------------------------------------------------------ bytes of parquet rows

    def open_reader(self, root: str, options: Mapping[str, Any]) -> Callable[[str], bytes]:
        """Files are read as files; a parquet row ``<file>.parquet/<image_id>`` through :class:`ParquetRows`,
        one row group in memory at a time (a Hub shard is never loaded whole)."""
        base = Path(root)
        shards: dict[str, ParquetRows] = {}

        def read(source_path: str) -> bytes:
            if ROW_SEP not in source_path:
                return (base / source_path).read_bytes()
            file_rel, _, image_id = source_path.partition(ROW_SEP)
            file_rel += ".parquet"
            image_id = image_id.split("~row", 1)[0]
            if file_rel not in shards:
                shards.clear()  # rows are read shard by shard: keep one open
                shards[file_rel] = ParquetRows(base / file_rel, base)
            return shards[file_rel].image_bytes(image_id)

        return read


class ParquetRows:
    """Random access to the ``image`` cells of one WBCBench parquet shard by ``image_id``: the id column is read
    once, then the row group holding a row is read on demand and kept until another one is needed."""

    def __init__(self, path: Path, root: Path) -> None:
        self.path = path
        self.root = root  # image cells that name a file may name one under it only
        self.file = pq.ParquetFile(path)
        ids = self.file.read(columns=["image_id"]).column("image_id").to_pylist()
        self.index: dict[str, int] = {}
        for row, value in enumerate(ids):
            self.index.setdefault(str(value or f"row{row}"), row)
        self.starts = list(itertools.accumulate(
            (self.file.metadata.row_group(g).num_rows for g in range(self.file.num_row_groups)), initial=0
        ))  # fmt: skip
        self._group: tuple[int, list[Any]] | None = None

    def image_bytes(self, image_id: str) -> bytes:
        row = self.index.get(image_id)
        if row is None:
            raise FileNotFoundError(f"{self.path}: no row with image_id {image_id!r}")
        group = bisect.bisect_right(self.starts, row) - 1
        if self._group is None or self._group[0] != group:
            cells = self.file.read_row_group(group, columns=["image"]).column("image").to_pylist()
            self._group = (group, cells)
        return image_cell_bytes(self._group[1][row - self.starts[group]], [self.root], self.path.parent)


def _table_labels(path: Path, splits: set[str], ctx: PlanContext, expected: str) -> list[str]:
    """The labels of one table's rows in ``splits``; an empty label or one outside the label map is an error."""
    if not path.is_file():
        raise SourceError(f"{path}: missing ({expected})")
    table = read_table(path)
    if table.problems:
        raise SourceError(f"{path}: {len(table.problems)} malformed row(s), first: {table.problems[0]}")
    default_split = TABLES[path.name][1]
    rows = sorted((r for rows in table.rows.values() for r in rows), key=lambda r: r.line)
    rows = [r for r in rows if (r.split or default_split) in splits]
    empty = [r.line for r in rows if not r.label]
    if empty:
        raise SourceError(f"{path}: {len(empty)} row(s) with an empty label, first at line {empty[0]}")
    for r in rows:
        if r.label not in ctx.label_map:
            raise SourceError(
                f"{path}: label {r.label!r} at line {r.line} is not in the label map ({ctx.label_map.origin})"
            )
    return [r.label for r in rows if r.label]


def class_names(schema: Any) -> list[str] | None:
    """``ClassLabel`` names stored by ``datasets`` in the parquet schema metadata, if any."""
    meta = (schema.metadata or {}).get(b"huggingface")
    if not meta:
        return None
    try:
        features = json.loads(meta)["info"]["features"]
        return list(features["label"]["names"])
    except (KeyError, TypeError, ValueError):
        return None


ADAPTER = WbcbenchAdapter()
