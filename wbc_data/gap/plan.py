"""The synth plan: class -> number of images to generate, written by ``gap-report --quota`` and read by
``wbc-data synth --plan``. Its own module (format, writer, loader/validator) so the two commands share one
contract, versioned by ``version``.

A generator can only justify so many images from few real ones, so every class is capped at
``max_synth_factor`` x the real exact images available for it (after dedup); a class with no real image
gets 0 with a reason: there is nothing to condition on.

Format (YAML)::

    version: 1
    kind: wbc-data synth plan
    target: wbcbench
    max_synth_factor: 10.0
    classes:
      PLY: {generate: 130, real: 13, existing_synthetic: 0, target: 451, reason: "capped at 10x the 13 real images"}
      ...
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from wbc_data.core.taxonomy import CLASSES
from wbc_data.gap.errors import GapError, PlanError
from wbc_data.io.atomic import atomic_write_text
from wbc_data.io.yamlfile import read_yaml

PLAN_VERSION = 1
PLAN_KIND = "wbc-data synth plan"
DEFAULT_MAX_SYNTH_FACTOR = 10.0


@dataclass(frozen=True)
class ClassQuota:
    generate: int
    real: int
    existing_synthetic: int
    target: int | None
    reason: str


@dataclass(frozen=True)
class SynthPlan:
    target: str
    max_synth_factor: float
    classes: dict[str, ClassQuota]
    version: int = PLAN_VERSION

    def counts(self) -> dict[str, int]:
        """class -> images to generate (only classes with something to generate)."""
        return {c: q.generate for c, q in self.classes.items() if q.generate > 0}

    @property
    def total(self) -> int:
        return sum(q.generate for q in self.classes.values())


def cap(real: int, factor: float) -> int:
    """Most synthetic images a class may have in all: factor x its real images, rounded down."""
    return math.floor(real * factor + 1e-9)


def quota_for(real: int, target: int | None, existing_synthetic: int, factor: float) -> ClassQuota:
    """How many images to generate for one class, and why that many."""
    if target is None:
        return ClassQuota(0, real, existing_synthetic, None, "no target for this class")
    need = max(0, target - real)
    if need == 0:
        return ClassQuota(0, real, existing_synthetic, target, "target met by real images")
    if real == 0:
        return ClassQuota(0, real, existing_synthetic, target, "no real images to condition a generator on")
    still = max(0, need - existing_synthetic)
    if still == 0:
        return ClassQuota(0, real, existing_synthetic, target, "target met with the existing synthetic images")
    room = max(0, cap(real, factor) - existing_synthetic)
    if room < still:
        reason = f"capped at {factor:g}x the {real:,} real images ({cap(real, factor):,} synthetic in all)"
        if existing_synthetic:
            reason += f", {existing_synthetic:,} already generated"
        return ClassQuota(room, real, existing_synthetic, target, reason)
    return ClassQuota(still, real, existing_synthetic, target, f"fills the gap of {need:,} to the target")


def make_plan(
    real: Mapping[str, int],
    targets: Mapping[str, int | None],
    existing: Mapping[str, int],
    factor: float,
    target_name: str,
) -> SynthPlan:
    if not (isinstance(factor, (int, float)) and math.isfinite(factor) and factor >= 0):
        raise GapError(f"--max-synth-factor {factor}: must be a finite number >= 0")
    classes = {
        c: quota_for(int(real.get(c, 0)), targets.get(c), int(existing.get(c, 0)), float(factor)) for c in CLASSES
    }
    return SynthPlan(target_name, float(factor), classes)


def to_dict(plan: SynthPlan) -> dict[str, Any]:
    return {
        "version": plan.version,
        "kind": PLAN_KIND,
        "target": plan.target,
        "max_synth_factor": plan.max_synth_factor,
        "total": plan.total,
        "classes": {
            c: {
                "generate": q.generate,
                "real": q.real,
                "existing_synthetic": q.existing_synthetic,
                "target": q.target,
                "reason": q.reason,
            }
            for c, q in plan.classes.items()
        },
    }


def write_plan(plan: SynthPlan, path: Path) -> Path:
    """Write atomically; the file validates with :func:`load_plan` by construction."""
    text = "# written by `wbc-data gap-report --quota`; read by `wbc-data synth --plan`\n"
    text += yaml.safe_dump(to_dict(plan), sort_keys=False)
    atomic_write_text(Path(path), text)
    return Path(path)


def load_plan(path: Path) -> SynthPlan:
    """Read and validate a plan: known version and classes, whole numbers, generate within the cap."""
    path = Path(path)
    if not path.is_file():
        raise PlanError(f"{path}: no synth plan here (write one with `wbc-data gap-report --quota {path}`)")
    data = read_yaml(path, PlanError, "synth plan")
    if not isinstance(data, dict):
        raise PlanError(f"{path}: a synth plan must be a YAML mapping")
    if data.get("version") != PLAN_VERSION:
        raise PlanError(f"{path}: unsupported plan version {data.get('version')!r} (this tool reads {PLAN_VERSION})")
    factor = data.get("max_synth_factor")
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not math.isfinite(factor) or factor < 0:
        raise PlanError(f"{path}: max_synth_factor must be a number >= 0, got {factor!r}")
    entries = data.get("classes")
    if not isinstance(entries, dict):
        raise PlanError(f"{path}: 'classes' must map class codes to entries")
    classes: dict[str, ClassQuota] = {}
    for code, entry in entries.items():
        if code not in CLASSES:
            raise PlanError(f"{path}: unknown class {code!r} (known: {', '.join(CLASSES)})")
        if not isinstance(entry, dict):
            raise PlanError(f"{path}: {code}: expected a mapping with 'generate' and 'real'")
        values = {}
        for key in ("generate", "real", "existing_synthetic"):
            value = entry.get(key, 0)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise PlanError(f"{path}: {code}.{key} must be a whole number >= 0, got {value!r}")
            values[key] = value
        limit = cap(values["real"], float(factor)) - values["existing_synthetic"]
        if values["generate"] > max(0, limit):
            raise PlanError(
                f"{path}: {code}.generate = {values['generate']:,} exceeds the cap of {max(0, limit):,} "
                f"({factor:g}x {values['real']:,} real images)"
            )
        target = entry.get("target")
        if target is not None and (isinstance(target, bool) or not isinstance(target, int) or target < 0):
            raise PlanError(f"{path}: {code}.target must be a whole number >= 0 or null, got {target!r}")
        classes[code] = ClassQuota(
            values["generate"], values["real"], values["existing_synthetic"], target, str(entry.get("reason", ""))
        )
    return SynthPlan(str(data.get("target", "")), float(factor), classes)
