"""Manifest rows as a Hugging Face ``datasets.Dataset``: an ``Image`` feature, a 13-name ``ClassLabel`` and the
provenance columns, written to Arrow on disk as it goes (memory stays flat).

Whole-image rows keep their original encoded bytes (a JPEG stays that JPEG, bit for bit); a crop is encoded once as
lossless PNG of exactly the pixels ingest hashed.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import xxhash

from wbc_data.core.rows import is_synthetic, label_indices
from wbc_data.core.taxonomy import CLASSES
from wbc_data.io.paths import display_name
from wbc_data.io.pixels import PixelLoader, RowRef, row_refs

TEXT_COLUMNS = ["sample_id", "source", "source_path", "source_label", "source_split", "label_status", "group_id",
                "patient_id", "parent_id", "licence", "citation", "split"]  # fmt: skip
"""Provenance columns carried over (those present in the frame). Never absolute paths, never thumbnails."""

PUBLISHED_COLUMNS = ["sample_id", "source", "source_version", "source_path", "source_label", "source_split",
                     "label_status", "annotator_labels", "group_id", "patient_id", "parent_id", "crop_box", "width",
                     "height", "sha256", "pixel_hash", "licence", "citation", "generator_id", "seed", "guidance",
                     "fold"]  # fmt: skip
"""What a published dataset carries (those present in the frame): the split is the DatasetDict's key, not a column."""

VALUE_TYPES = {"width": "int32", "height": "int32", "seed": "int64", "guidance": "float32", "fold": "int32"}
LIST_TYPES = {"crop_box": "int32", "annotator_labels": "string"}
"""Columns that are not plain strings (the manifest's own types); every other column is a string."""


def features(columns: Sequence[str]) -> Any:
    import datasets

    spec = {"image": datasets.Image(), "label": datasets.ClassLabel(names=list(CLASSES))}
    for c in columns:
        if c in LIST_TYPES:
            spec[c] = datasets.Sequence(datasets.Value(LIST_TYPES[c]))
        else:
            spec[c] = datasets.Value(VALUE_TYPES.get(c, "string"))
    spec["label_candidates"] = datasets.Sequence(datasets.Value("string"))
    spec["is_synthetic"] = datasets.Value("bool")
    return datasets.Features(spec)


def image_cell(loader: PixelLoader, ref: RowRef) -> dict[str, Any]:
    """``{"bytes", "path"}`` for the ``Image`` feature: the original file for whole images, PNG for crops."""
    name = Path(display_name(ref.source_path))  # a non-UTF-8 file name cannot go into an Arrow string
    if ref.crop_box is None:
        return {"bytes": loader.encoded(ref), "path": name.name}
    buffer = io.BytesIO()
    loader.open(ref).save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": f"{name.stem}_crop.png"}


def iter_examples(frame: pd.DataFrame, loader: PixelLoader, columns: Sequence[str]) -> Iterator[dict[str, Any]]:
    refs = row_refs(frame)
    labels = label_indices(frame["label"]).tolist()
    text = {c: _cells(frame[c], c) for c in columns}
    candidates = frame["label_candidates"].tolist() if "label_candidates" in frame.columns else [None] * len(frame)
    synthetic = is_synthetic(frame).tolist()
    for i, ref in enumerate(refs):
        example = {"image": image_cell(loader, ref), "label": labels[i]}
        example.update({c: text[c][i] for c in columns})
        example["label_candidates"] = list(candidates[i]) if candidates[i] is not None else []
        example["is_synthetic"] = synthetic[i]
        yield example


def _cells(values: pd.Series, column: str) -> list[Any]:
    """A column as plain Python values for its feature: lists for list columns, None where the manifest has none."""
    if column in LIST_TYPES:
        return [None if v is None or (isinstance(v, float) and v != v) else list(v) for v in values.tolist()]
    if column in VALUE_TYPES:
        return [None if pd.isna(v) else v for v in values.astype(object).tolist()]
    return values.astype(object).where(values.notna(), None).tolist()


def to_hf_dataset(frame: pd.DataFrame, loader: PixelLoader, cache_dir: Path | None = None) -> Any:
    """A ``datasets.Dataset`` of ``frame``'s rows (see the module docstring)."""
    import datasets

    columns = [c for c in TEXT_COLUMNS if c in frame.columns]
    digest = xxhash.xxh3_64()
    for column in ("sample_id", "pixel_hash", "label"):
        digest.update("\x1f".join(map(str, frame[column].tolist())).encode())
    shown = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # the calling command shows its own progress
    try:
        return datasets.Dataset.from_generator(
            _generate,
            features=features(columns),
            # no list values here: datasets would read a list as shards and run the generator once per item
            gen_kwargs={"frame": frame, "loader": loader, "columns": tuple(columns)},
            cache_dir=None if cache_dir is None else str(cache_dir),
            fingerprint=digest.hexdigest(),
        )
    finally:
        if shown:
            datasets.enable_progress_bars()


def _generate(frame: pd.DataFrame, loader: PixelLoader, columns: Sequence[str]) -> Iterator[dict[str, Any]]:
    yield from iter_examples(frame, loader, columns)
