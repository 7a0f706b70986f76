"""Adapters whose samples are rows (Hub, parquet): bytes are read a batch at a time (memory stays flat) and
finished rows are resumed from the cache by content, like files."""

from __future__ import annotations

import io
from collections.abc import Callable

from PIL import Image

from wbc_data.core.progress import NullProgress
from wbc_data.ingest import engine
from wbc_data.ingest.engine import IngestOptions, ingest
from wbc_data.sources.base import SampleSpec, SourceAdapter, SourcePlan
from wbc_data.sources.definition import get_definition


class CountingRows(SourceAdapter):
    name = "rows"
    reads_rows = True

    def __init__(self, n: int) -> None:
        self.n = n
        self.events: list[str] = []

    def plan(self, root, files, ctx):
        return SourcePlan(samples=[SampleSpec(f"row/{i:03d}", source_label="LY") for i in range(self.n)])

    def open_reader(self, root: str, options) -> Callable[[str], bytes]:
        def read(source_path: str) -> bytes:
            self.events.append("read")
            buf = io.BytesIO()
            Image.new("RGB", (16, 16), (int(source_path[-3:]) * 9 % 256, 40, 90)).save(buf, "PNG")
            return buf.getvalue()

        return read


def test_rows_are_read_in_batches_and_resumed(tmp_path, workspace, monkeypatch):
    adapter = CountingRows(12)
    monkeypatch.setattr(engine, "load_adapter", lambda definition: adapter)
    monkeypatch.setattr(engine, "ROW_BATCH", 5)
    definition = get_definition("imagefolder")
    outstanding: list[int] = []

    class Progress(NullProgress):
        def advance(self, done, total=None, **stats):
            adapter.events.append("done")
            outstanding.append(adapter.events.count("read") - done)

    first = ingest(definition, tmp_path / "not-a-folder", workspace, IngestOptions(workers=1, name="rows"), Progress())
    assert (first.frame.status == "ok").sum() == 12 and first.decoded == 12
    assert max(outstanding) <= 5, "never more than one batch of row bytes held before processing"
    adapter.events.clear()
    again = ingest(definition, tmp_path / "not-a-folder", workspace, IngestOptions(workers=1, name="rows"))
    assert again.decoded == 0 and again.from_cache == 12 and adapter.events.count("read") == 12
    assert again.frame.drop(columns="source_root").equals(first.frame.drop(columns="source_root"))
