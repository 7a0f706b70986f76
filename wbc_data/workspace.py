"""The workspace: where every output goes (never into the repository).

<workspace>/sources/<name>.parquet   per-source manifests (one per ingest)
<workspace>/manifest.parquet         the unified manifest
<workspace>/cache/<name>.sqlite      resume caches for ingest
<workspace>/reports/                 Markdown / HTML / PNG reports
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_WORKSPACE = Path("wbc-workspace")


@dataclass(frozen=True)
class Workspace:
    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @classmethod
    def at(cls, root: Path | str | None = None) -> Workspace:
        root = Path(root or os.environ.get("WBC_WORKSPACE") or DEFAULT_WORKSPACE).expanduser()
        return cls(root)

    @property
    def sources_dir(self) -> Path:
        return self.root / "sources"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def unified_manifest(self) -> Path:
        return self.root / "manifest.parquet"

    def source_manifest(self, name: str) -> Path:
        return self.sources_dir / f"{name}.parquet"

    def cache_path(self, name: str) -> Path:
        return self.root / "cache" / f"{name}.sqlite"

    def source_manifests(self) -> list[Path]:
        return sorted(self.sources_dir.glob("*.parquet"))
