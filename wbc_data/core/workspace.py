"""The workspace: where every output goes (never into the repository).

<workspace>/sources/<name>.parquet   per-source manifests (one per ingest)
<workspace>/manifest.parquet         the unified manifest
<workspace>/cache/<name>.sqlite      resume caches for ingest (and dedup's signature store)
<workspace>/stages/<stage>.parquet   each later stage's own results (dedup, split, ...), keyed by sample_id
<workspace>/roots.yaml               where each named source root lies on this machine (optional)
<workspace>/reports/                 Markdown / HTML / PNG reports
<workspace>/label-maps/              label maps proposed by ingest, for review
<workspace>/generators/<name>/       trained generators (synth train)
<workspace>/synth/<name>/            sampled synthetic images (a source of their own)
<workspace>/models/<name>/           trained classifiers (train)
<workspace>/publish/<repo>/          Hub-layout folders (publish)
<workspace>/locks/                   one writer at a time per part

Every stage asks the workspace for these paths; none spells them out itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from wbc_data.core.roots import Roots, read_manifest_infos, read_roots_file, read_source_info

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
        return self.cache_dir / f"{name}.sqlite"

    def source_manifests(self) -> list[Path]:
        return sorted(self.sources_dir.glob("*.parquet"))

    @property
    def stages_dir(self) -> Path:
        return self.root / "stages"

    def stage_path(self, stage: str) -> Path:
        return self.stages_dir / f"{stage}.parquet"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    def proposed_label_map(self, name: str) -> Path:
        return self.root / "label-maps" / f"{name}.proposed.yaml"

    @property
    def generators_dir(self) -> Path:
        return self.root / "generators"

    def generator_dir(self, name: str) -> Path:
        return self.generators_dir / name

    def synthetic_images_rel(self, name: str) -> str:
        """The folder of a synthetic source's images, relative to the workspace (its recorded root)."""
        return f"synth/{name}"

    def model_dir(self, name: str) -> Path:
        return self.root / "models" / name

    @property
    def publish_dir(self) -> Path:
        return self.root / "publish"

    def publish_folder(self, repo_id: str) -> Path:
        return self.publish_dir / repo_id.replace("/", "__")


def workspace_roots(workspace: Workspace, overrides: Mapping[str, str] | None = None) -> Roots:
    """Where every source of ``workspace`` lies here: per-source manifests (what ingest recorded), else the unified
    manifest's record, re-pointed by ``roots.yaml`` and then by ``overrides`` (``--root``)."""
    infos = {}
    if workspace.unified_manifest.is_file():
        infos.update(read_manifest_infos(workspace.unified_manifest))
    for path in workspace.source_manifests():
        try:
            info = read_source_info(path)
        except (OSError, ValueError):
            continue  # a damaged per-source manifest is reported by the commands that read it
        infos[info.name] = info
    user = read_roots_file(workspace.root)
    return Roots(infos, {**user, **dict(overrides or {})}, workspace.root)


def known_source_names(workspace: Workspace, names: Mapping[str, str]) -> None:
    """Refuse a ``--root`` for a source this workspace never ingested (a typo would silently do nothing)."""
    from wbc_data.core.roots import RootsError

    known = set(workspace_roots(workspace).names())
    unknown = sorted(set(names) - known)
    if unknown:
        listed = ", ".join(sorted(known)) or "none"
        raise RootsError(f"--root {unknown[0]}: no source of that name in {workspace.root} (known: {listed})")
