"""Synthetic cells (``wbc-data synth``): PNGs a generator sampled, back on the normal road through ingest, so that
ids, image facts and the pixel reader come from the same place as for any real source.

The sampler writes ``samples.jsonl`` (one line per image: class, seed, guidance, steps, scheduler, domain and the
guards' verdict) and ``generation.json`` (the generator's id, content hash and per-class notes) beside the images;
this adapter turns each line into a sample whose synthetic columns (``is_synthetic``, ``generator_id``, ``seed``...)
are declared manifest columns, and a sample the guards refused (memorisation guard or fidelity gate) into a
rejected row with the reason. Every synthetic row is a train row and its own group.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from wbc_data.io.pixels import FRAMING
from wbc_data.io.walk import FileEntry
from wbc_data.sources.base import PlanContext, SampleSpec, SourceAdapter, SourcePlan
from wbc_data.sources.definition import SourceError

SAMPLES_FILE = "samples.jsonl"
GENERATION_FILE = "generation.json"
REQUIRED = {"file", "label", "seed", "guidance", "steps", "scheduler"}
EXTRA = ("copy_of", "correlation", "transform", "embedding_distance", "embedding_nearest", FRAMING)
"""Details kept in a row's ``extra``: the training image dedup's registration matched (its correlation and the
transform), the distance to the nearest real cell of the class in the fidelity gate's embedding, and the framing
the sample imitates (``"box"``: framed as an annotated box crop, which the pixel loader reads, see
:data:`wbc_data.io.pixels.FRAMING`)."""


def sample_line(
    source_path: str, label: str, seed: int, guidance: float, steps: int, scheduler: str, domain: str | None,
    verdict: dict[str, Any], framing: str = "whole",
) -> dict[str, Any]:  # fmt: skip
    """One line of ``samples.jsonl`` (what the sampler writes for an image; ``framing``: ``"box"`` or ``"whole"``,
    as the generator's training cells of the class were framed)."""
    return {"file": source_path, "label": label, "seed": int(seed), "guidance": float(guidance), "steps": int(steps),
            "scheduler": scheduler, "domain": domain, "framing": framing, **verdict}  # fmt: skip


class SynthAdapter(SourceAdapter):
    name = "synth"

    def plan(self, root: Path, files: list[FileEntry], ctx: PlanContext) -> SourcePlan:
        plan = SourcePlan()
        generation = _read_json(root / GENERATION_FILE)
        lines = _read_lines(root / SAMPLES_FILE)
        plan.auxiliary[GENERATION_FILE] = "the generator and the sampling run's notes"
        plan.auxiliary[SAMPLES_FILE] = "how each image was made and the guards' verdict"
        generator = {"generator_id": generation.get("generator_id"), "generator_hash": generation.get("generator_hash")}
        notes = json.dumps(generation.get("notes", {}), sort_keys=True, default=str)
        plan.metadata = {**{k: str(v) for k, v in generator.items() if v}, "synth_notes": notes}
        present = {entry.source_path for entry in files}
        for line in lines:
            source_path = line["file"]
            if source_path not in present:
                plan.notes.append(f"{SAMPLES_FILE}: {source_path} is listed but missing")
                continue
            rejected_by = line.get("rejected_by") or ("memorisation guard" if line.get("copy") else None)
            plan.samples.append(
                SampleSpec(
                    source_path,
                    source_label=line["label"],
                    split="train",
                    extra={key: line.get(key) for key in EXTRA if line.get(key) is not None},
                    reason=f"{rejected_by}: {line.get('reason')}" if rejected_by else None,
                    columns={
                        "source_version": generator["generator_id"],
                        "is_synthetic": True,
                        **generator,
                        "seed": int(line["seed"]),
                        "guidance": float(line["guidance"]),
                        "sampling_steps": int(line["steps"]),
                        "scheduler": line["scheduler"],
                        "synth_domain": line.get("domain"),
                        "synth_nearest": line.get("nearest_id"),
                        "synth_distance": float(line["distance"]) if line.get("distance") is not None else None,
                    },
                )
            )
        listed = {line["file"] for line in lines}
        for entry in files:
            if entry.source_path not in listed and entry.source_path not in (SAMPLES_FILE, GENERATION_FILE):
                plan.rejected[entry.source_path] = f"not listed in {SAMPLES_FILE} (not made by this sampling run)"
        return plan


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SourceError(f"{path}: missing (a folder written by `wbc-data synth` has it)") from None
    except (OSError, ValueError) as exc:
        raise SourceError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise SourceError(f"{path}: expected a JSON object")
    return data


def _read_lines(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SourceError(f"{path}: missing (a folder written by `wbc-data synth` has it)") from None
    lines = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise SourceError(f"{path}:{number}: not a JSON line ({exc})") from None
        if not isinstance(record, dict) or not {"file", "label", "seed", "guidance", "steps", "scheduler"} <= set(
            record
        ):
            raise SourceError(f"{path}:{number}: a sample line needs file, label, seed, guidance, steps and scheduler")
        lines.append(record)
    return lines


ADAPTER = SynthAdapter()
