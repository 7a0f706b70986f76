"""Synthetic samples back on the normal road: a per-source manifest ``<workspace>/sources/synth-<name>.parquet``
whose rows point at PNGs under ``<workspace>/synth/<name>/`` (a root relative to the workspace, so it moves with it).

``wbc-data manifest`` merges it like any source; the split stage puts synthetic rows in train by rule and dedup keeps
them by rule. Accepted samples are ``ok`` rows; samples the memorisation guard rejected stay visible as ``rejected``
rows with the reason (their PNGs under ``rejected/``), never used for training.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from wbc_data.core import manifest
from wbc_data.core.roots import SourceInfo
from wbc_data.core.taxonomy import LabelStatus
from wbc_data.core.workspace import Workspace
from wbc_data.ingest.worker import image_facts
from wbc_data.synth.generator import GeneratorInfo
from wbc_data.synth.guards import Verdict

DEFINITION = "synth"
"""The ``definition`` recorded for synthetic sources: no source YAML has that name, so the pixel loader reads their
rows as plain files under the root (exactly what they are)."""


def source_name(name: str) -> str:
    return name if name.startswith("synth-") else f"synth-{name}"


def folder_rel(name: str) -> str:
    """The images' folder relative to the workspace (what the manifest records as the source root)."""
    return f"synth/{source_name(name)[len('synth-') :]}"


def png_bytes(image: np.ndarray) -> bytes:
    """PNG bytes of an (h, w, 3) uint8 image; PIL writes no timestamp, so the same pixels give the same file."""
    buffer = io.BytesIO()
    Image.fromarray(image, "RGB").save(buffer, "PNG")
    return buffer.getvalue()


@dataclass(frozen=True)
class SampleMeta:
    """How one sample was made (what a row records to reproduce it)."""

    label: str
    seed: int
    guidance: float
    steps: int
    scheduler: str
    domain: str | None


def sample_row(
    source: str, rel: str, image: np.ndarray, data: bytes, meta: SampleMeta, verdict: Verdict, generator: GeneratorInfo
) -> dict[str, Any]:
    """One manifest row: image facts as ingest computes them, provenance, how it was made, the guard's verdict."""
    row = manifest.empty_row()
    pil = Image.fromarray(image, "RGB")
    row.update(image_facts(pil))
    row.update(
        sample_id=f"{source}:{rel}",
        source=source,
        source_version=generator.id,
        source_root=source,
        source_path=rel,
        group_id=f"{source}:{rel}",
        source_label=meta.label,
        source_split="train",
        licence=generator.licence(),
        citation=generator.citation(),
        label=meta.label,
        label_status=LabelStatus.EXACT.value,
        mode="RGB",
        format="PNG",
        bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        status="rejected" if verdict.copy else "ok",
        reason=f"memorisation guard: {verdict.reason}" if verdict.copy else None,
        extra=manifest.extra_json(
            {"nearest_hamming": verdict.hamming, "nearest_correlation": round(verdict.correlation, 4)}
        ),
        is_synthetic=True,
        generator_id=generator.id,
        generator_hash=generator.content_hash,
        seed=int(meta.seed),
        guidance=float(meta.guidance),
        sampling_steps=int(meta.steps),
        scheduler=meta.scheduler,
        synth_domain=meta.domain,
        synth_nearest=verdict.nearest_id,
        synth_distance=float(verdict.distance),
    )
    return row


def write_source(
    workspace: Workspace,
    name: str,
    rows: list[dict[str, Any]],
    generator: GeneratorInfo,
    notes: dict[str, Any],
    path: Path | None = None,
) -> Path:
    """Write the synthetic source manifest atomically (to ``path``, default its place under ``sources/``)."""
    source = source_name(name)
    info = SourceInfo(name=source, definition=DEFINITION, adapter=DEFINITION, root=folder_rel(name))
    rows = sorted(rows, key=lambda r: r["sample_id"])
    out = path or workspace.source_manifest(source)
    manifest.write(
        manifest.to_table(rows),
        out,
        **info.to_metadata(),
        ingested_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        generator_id=generator.id,
        generator_hash=generator.content_hash,
        synth_notes=json.dumps(notes, sort_keys=True, default=str),
    )
    return out
