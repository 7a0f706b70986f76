"""Merge per-source manifests into the unified manifest (the input of dedup and the gap report)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa

from wbc_data import manifest
from wbc_data.workspace import Workspace


class MergeError(ValueError):
    pass


def merge(workspace: Workspace, sources: list[str] | None = None) -> tuple[Path, pd.DataFrame]:
    """Concatenate per-source manifests (all, or the named ones) and write ``manifest.parquet`` atomically."""
    paths = workspace.source_manifests()
    if sources:
        wanted = set(sources)
        missing = wanted - {p.stem for p in paths}
        if missing:
            raise MergeError(f"no ingested source named {', '.join(sorted(missing))} in {workspace.sources_dir}")
        paths = [p for p in paths if p.stem in wanted]
    if not paths:
        raise MergeError(f"{workspace.sources_dir}: nothing ingested yet (run `wbc-data ingest <source> <path>`)")
    tables = [manifest.read(p) for p in paths]
    table = pa.concat_tables(tables, promote_options="default")
    manifest.write(table, workspace.unified_manifest, sources=",".join(p.stem for p in paths))
    return workspace.unified_manifest, manifest.to_frame(table.drop_columns(["thumb"]))
