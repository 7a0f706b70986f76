"""Parquet shards in the layout ``push_to_hub`` writes (``data/<split>-NNNNN-of-NNNNN.parquet``), streamed.

Rows are read one at a time through the pixel loader (:func:`~wbc_data.publish.hfdata.iter_examples`), gathered
into a row group and written as soon as it fills, so memory holds one row group (at most
:data:`ROWS_PER_ROW_GROUP` rows and :data:`MAX_ROW_GROUP_BYTES`), never the dataset. The file options are the ones
``Dataset.to_parquet`` uses (``datasets``' per-column compression and encodings, content-defined chunking, page
index), and the ``huggingface`` schema metadata carries the features, so ``load_dataset`` gets the ``Image`` and
``ClassLabel`` back. Small row groups keep the Hub's dataset viewer able to page through images (it reads a whole
row group to show a few rows, and refuses groups of about 300 MB).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from wbc_data.io.pixels import PixelLoader
from wbc_data.publish.hfdata import iter_examples

ROWS_PER_ROW_GROUP = 100
"""What ``datasets`` long used for image datasets: a viewer page of images is one small read."""

MAX_ROW_GROUP_BYTES = 100 * 2**20
MAX_SHARD_BYTES = 500 * 2**20
"""``datasets``' own defaults (``config.MAX_ROW_GROUP_SIZE``, ``config.MAX_SHARD_SIZE``): uncompressed bytes."""

DATA_DIR = "data"

CHUNK_ROWS = 1_000
"""Manifest rows turned into Python values at a time (their metadata; images are read one by one)."""


@dataclass
class SplitShards:
    """What was written for one split."""

    split: str
    paths: list[Path] = field(default_factory=list)
    num_examples: int = 0
    num_bytes: int = 0  # in-memory (Arrow) size, as the card's dataset_info counts it


def shard_name(split: str, index: int, count: int) -> str:
    return f"{split}-{index:05d}-of-{count:05d}.parquet"


def parquet_options(features: Any) -> dict[str, Any]:
    """The writer options ``Dataset.to_parquet`` uses for these features."""
    from datasets import config
    from datasets.arrow_writer import get_parquet_column_options

    cdc = config.DEFAULT_CDC_OPTIONS
    return {
        "use_content_defined_chunking": cdc,
        "write_page_index": True,
        **get_parquet_column_options(features, features.arrow_schema),
    }


class _ShardWriter:
    """One open shard: rows gathered column by column into a row group, written when it fills.

    The examples :func:`~wbc_data.publish.hfdata.iter_examples` yields are already in the features' storage form
    (image as ``{"bytes", "path"}``, label as its class index), so they go to Arrow as they are and Arrow checks
    every value against the schema; a per-row ``Features.encode_example`` would only cost a third of the run."""

    def __init__(self, path: Path, features: Any, options: dict[str, Any]) -> None:
        self.path = path
        self.schema = features.arrow_schema
        self.writer = pq.ParquetWriter(str(path), self.schema, **options)
        self.writer.add_key_value_metadata(
            {"content_defined_chunking": json.dumps(options["use_content_defined_chunking"])}
        )
        self.columns: dict[str, list[Any]] = {name: [] for name in self.schema.names}
        self.pending = 0
        self.pending_bytes = 0
        self.num_bytes = 0
        self.num_examples = 0

    def add(self, example: dict[str, Any]) -> None:
        for name, values in self.columns.items():
            values.append(example[name])
        self.pending += 1
        self.pending_bytes += len(example["image"]["bytes"])
        if self.pending >= ROWS_PER_ROW_GROUP or self.pending_bytes >= MAX_ROW_GROUP_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        batch = pa.RecordBatch.from_pydict(self.columns, schema=self.schema)
        self.writer.write_batch(batch)
        self.num_bytes += batch.nbytes
        self.num_examples += batch.num_rows
        self.columns = {name: [] for name in self.schema.names}
        self.pending = self.pending_bytes = 0

    def close(self) -> None:
        self.flush()
        self.writer.close()


def write_split(
    rows: pd.DataFrame,
    loader: PixelLoader,
    columns: Sequence[str],
    features: Any,
    directory: Path,
    split: str,
    advance: Callable[[int], None] | None = None,
    max_shard_bytes: int | None = None,
) -> SplitShards:
    """Write ``rows`` as the shards of ``split`` under ``directory``; files are named ``-of-N`` once N is known."""
    max_shard_bytes = max_shard_bytes or MAX_SHARD_BYTES
    directory.mkdir(parents=True, exist_ok=True)
    options = parquet_options(features)
    result = SplitShards(split)
    parts: list[Path] = []
    current: _ShardWriter | None = None
    try:
        for example in _examples(rows, loader, columns):
            if current is None:
                current = _ShardWriter(directory / f".{split}-{len(parts):05d}.partial", features, options)
                parts.append(current.path)
            current.add(example)
            if current.num_bytes + current.pending_bytes >= max_shard_bytes:
                _finish(current, result)
                current = None
            if advance is not None:
                advance(1)
        if current is not None:
            _finish(current, result)
            current = None
    finally:
        if current is not None:  # interrupted: leave no open file behind (the folder is discarded by the caller)
            current.writer.close()
    for index, part in enumerate(parts):
        final = directory / shard_name(split, index, len(parts))
        part.replace(final)
        result.paths.append(final)
    return result


def _examples(rows: pd.DataFrame, loader: PixelLoader, columns: Sequence[str]) -> Iterator[dict[str, Any]]:
    """The rows' examples, a chunk of rows at a time: Python values exist for one chunk, not the whole split."""
    for start in range(0, len(rows), CHUNK_ROWS):
        yield from iter_examples(rows.iloc[start : start + CHUNK_ROWS], loader, columns)


def _finish(writer: _ShardWriter, result: SplitShards) -> None:
    writer.close()
    result.num_examples += writer.num_examples
    result.num_bytes += writer.num_bytes
