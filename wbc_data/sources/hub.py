"""Any Hugging Face dataset, read through ``datasets`` (``load_dataset``, or ``load_from_disk`` for a
``save_to_disk`` folder): a repo id (from the local HF cache when offline) or a local folder of parquet /
imagefolder data.

Samples are dataset rows, not files, so this adapter sets ``reads_rows`` (the engine neither needs a path
nor walks one) and supplies each row's encoded image bytes from :meth:`open_reader`. The image column is read
without decoding (``Image(decode=False)``) so the bytes hashed are the original file's.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from wbc_data.io.walk import FileEntry
from wbc_data.sources.base import PlanContext, SampleSpec, SourceAdapter, SourcePlan
from wbc_data.sources.definition import SourceError
from wbc_data.sources.image_cells import image_cell_bytes

PATIENT_COLUMNS = ("patient_id", "patient_hash", "patient")
SPLIT_COLUMNS = ("wbcbench_split", "split")
SAVE_TO_DISK_MARKERS = ("dataset_dict.json", "state.json")


class HubError(SourceError):
    """The dataset cannot be loaded (not cached while offline, unknown repo, bad column or split)."""


def load(spec: str, config: str | None = None, split: str | None = None) -> dict[str, Any]:
    """``{split name: datasets.Dataset}`` for a repo id or a local folder; one clear line on failure."""
    import datasets

    datasets.disable_progress_bars()  # the ingest command shows its own progress
    local = Path(spec).expanduser()
    try:
        if local.is_dir() and any((local / marker).is_file() for marker in SAVE_TO_DISK_MARKERS):
            loaded = datasets.load_from_disk(os.fspath(local))
        else:
            loaded = datasets.load_dataset(os.fspath(local) if local.is_dir() else spec, config, split=split)
    except Exception as exc:  # datasets/huggingface_hub raise many types; the user needs one line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
        hint = " (offline: HF_HUB_OFFLINE is set and the dataset is not in the Hugging Face cache)" if offline else ""
        raise HubError(f"{spec}: cannot load the dataset{hint}: {type(exc).__name__}: {first}") from None
    if isinstance(loaded, datasets.DatasetDict):
        if split is not None:
            if split not in loaded:
                raise HubError(f"{spec}: no split {split!r} (available: {', '.join(loaded)})")
            return {split: loaded[split]}
        return dict(loaded)
    return {split or "train": loaded}


def image_column(dataset: Any, wanted: str | None) -> str:
    import datasets

    if wanted:
        if wanted not in dataset.column_names:
            raise HubError(f"no image column {wanted!r} (columns: {', '.join(dataset.column_names)})")
        return wanted
    for name, feature in dataset.features.items():
        if isinstance(feature, datasets.Image):
            return name
    for name in ("image", "img"):
        if name in dataset.column_names:
            return name
    raise HubError(f"no image column found (columns: {', '.join(dataset.column_names)}); name one with image_column")


class HubAdapter(SourceAdapter):
    name = "hub"
    options: ClassVar[dict[str, str]] = {
        "config": "the dataset configuration",
        "split": "only this split",
        "label_column": "the column holding the label",
        "image_column": "the column holding the image",
    }
    reads_rows = True

    def __init__(self) -> None:
        self._open: dict[str, tuple[dict[str, Any], str]] = {}  # root -> (splits, image column)

    def plan(self, root: Path, files: list[FileEntry], ctx: PlanContext) -> SourcePlan:

        plan = SourcePlan()
        spec = os.fspath(root)
        splits = load(spec, ctx.options.get("config"), ctx.options.get("split"))
        label_col = ctx.options.get("label_column")
        first = next(iter(splits.values()))
        if label_col is None:
            if "label" not in first.column_names:
                raise HubError(f"{spec}: name the label column with --label-column (columns: {first.column_names})")
            label_col = "label"
        image_col = image_column(first, ctx.options.get("image_column"))
        opened: dict[str, Any] = {}
        for split_name, dataset in splits.items():
            if label_col not in dataset.column_names:
                raise HubError(f"{spec}: split {split_name!r} has no column {label_col!r} ({dataset.column_names})")
            dataset = _undecoded(dataset, image_col)
            opened[split_name] = dataset
            self._plan_split(split_name, dataset, label_col, image_col, plan)
            plan.notes.append(f"{spec}, split {split_name!r}: {dataset.num_rows:,} rows")
        self._open[spec] = (opened, image_col)
        return plan

    def _plan_split(self, split_name: str, dataset: Any, label_col: str, image_col: str, plan: SourcePlan) -> None:
        import datasets

        feature = dataset.features[label_col]
        names = feature.names if isinstance(feature, datasets.ClassLabel) else None
        scalar = [
            c
            for c, f in dataset.features.items()
            if c not in (image_col, label_col) and isinstance(f, (datasets.Value, datasets.ClassLabel))
        ]
        table = dataset.select_columns([label_col, *scalar]).to_list()
        width = len(str(max(dataset.num_rows - 1, 0)))
        for index, row in enumerate(table):
            raw = row.get(label_col)
            if names is not None and isinstance(raw, int) and raw >= 0:
                raw = names[raw]
            raw = None if raw is None or str(raw).strip() in ("", "-1") else str(raw)
            extra = {c: row[c] for c in scalar if row.get(c) is not None and c not in PATIENT_COLUMNS}
            split = next((str(row[c]) for c in SPLIT_COLUMNS if row.get(c)), split_name)
            if split != split_name:
                extra["hub_split"] = split_name
            patient = next((str(row[c]) for c in PATIENT_COLUMNS if row.get(c) not in (None, "")), None)
            spec = SampleSpec(
                f"{split_name}/{index:0{width}d}", source_label=raw, split=split, patient_id=patient, extra=extra
            )
            if raw is None:
                spec.label_note = f"no value in column {label_col!r}"
            plan.samples.append(spec)

    def open_reader(self, root: str, options: Mapping[str, Any]) -> Callable[[str], bytes]:
        """Rows ``<split>/<index>`` of the dataset, its image column read undecoded (the original file's bytes).
        Reuses the datasets opened by :meth:`plan` in this process, else opens them (memory-mapped Arrow: nothing
        is loaded whole)."""
        opened = self._open.get(root)
        if opened is None:
            splits = load(root, options.get("config"), options.get("split"))
            image_col = image_column(next(iter(splits.values())), options.get("image_column"))
            opened = ({name: _undecoded(ds, image_col) for name, ds in splits.items()}, image_col)
            self._open[root] = opened
        datasets_by_split, image_col = opened

        def read(source_path: str) -> bytes:
            split_name, _, index = source_path.rpartition("/")
            if split_name not in datasets_by_split or not index.isdigit():
                raise FileNotFoundError(f"{root}: no row {source_path!r} (splits: {', '.join(datasets_by_split)})")
            dataset = datasets_by_split[split_name]
            if int(index) >= dataset.num_rows:
                raise FileNotFoundError(f"{root}: split {split_name!r} has {dataset.num_rows:,} rows, not row {index}")
            return image_cell_bytes(dataset[int(index)][image_col], allowed, base)

        allowed, base = cell_roots(root)
        return read


def cell_roots(spec: str) -> tuple[list[Path], Path | None]:
    """Where image cells that name a file may point: under the dataset's folder for a local dataset (relative
    paths resolved there), under the Hugging Face caches for a repo id (where ``datasets`` put its files)."""
    local = Path(spec).expanduser()
    if local.is_dir():
        return [local.resolve()], local.resolve()
    import datasets.config
    from huggingface_hub import constants

    return [Path(datasets.config.HF_DATASETS_CACHE), Path(constants.HF_HUB_CACHE)], None


def _undecoded(dataset: Any, image_col: str) -> Any:
    import datasets

    if isinstance(dataset.features.get(image_col), datasets.Image):
        return dataset.cast_column(image_col, datasets.Image(decode=False))
    return dataset


ADAPTER = HubAdapter()
