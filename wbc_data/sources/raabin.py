"""Raabin-WBC (Kouzehkanan 2022), in either of its two published layouts:

* cropped, double-labelled cells: ``Train/``, ``TestA/``, ``TestB/`` each with ``<Class>/<name>.jpg``
  (the source split is kept; the cropped set does not split neutrophils, so Neutrophil is coarse);
* full-field originals with one JSON per image: ``"Cell Numbers"`` and ``Cell_0..`` entries holding
  ``Label1``/``Label2`` (two experts) and ``x1 x2 y1 y2``; each cell becomes a crop of its parent field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from wbc_data.io.walk import FileEntry
from wbc_data.sources.base import (
    CropSpec,
    PlanContext,
    SampleSpec,
    SourceAdapter,
    SourcePlan,
    is_image_name,
    not_an_image_reason,
)
from wbc_data.sources.definition import SourceError

SPLITS = {"train": "Train", "testa": "TestA", "testb": "TestB"}


class RaabinAdapter(SourceAdapter):
    name = "raabin"
    options: ClassVar[dict[str, str]] = {
        "margin": "fraction of a box added on each side of a cell crop",
    }

    def find_root(self, path: Path) -> Path:
        if path.name.casefold() in SPLITS:
            return path.parent
        return path

    def plan(self, root: Path, files: list[FileEntry], ctx: PlanContext) -> SourcePlan:
        plan = SourcePlan()
        margin = float(ctx.options.get("margin", 0.0))
        images_by_stem: dict[str, list[str]] = {}
        for entry in files:
            if is_image_name(entry.source_path):
                images_by_stem.setdefault(_stem(entry.source_path), []).append(entry.source_path)
        jsons = [e.source_path for e in files if e.source_path.lower().endswith(".json")]
        field_images: set[str] = set()
        for json_rel in jsons:
            self._plan_field(root, json_rel, images_by_stem, plan, field_images, margin)
        for entry in files:
            source_path = entry.source_path
            if source_path in field_images or source_path in plan.auxiliary or source_path in plan.rejected:
                continue
            if not is_image_name(source_path):
                plan.rejected[source_path] = not_an_image_reason(source_path)
                continue
            split, label = _split_and_class(source_path)
            if label is None:
                plan.rejected[source_path] = "not in <split>/<Class>/ and no JSON annotation for this image"
                continue
            plan.samples.append(SampleSpec(source_path, source_label=label, split=split))
        if not plan.samples and not field_images:
            raise SourceError(
                f"{root}: no Raabin-WBC images found (expected Train/, TestA/, TestB/ with <Class>/ folders, "
                "or field images with JSON annotations)"
            )
        return plan

    def _plan_field(
        self,
        root: Path,
        json_rel: str,
        images_by_stem: dict[str, list[str]],
        plan: SourcePlan,
        field_images: set[str],
        margin: float,
    ) -> None:
        candidates = images_by_stem.get(_stem(json_rel), [])
        same_folder = [c for c in candidates if c.rsplit("/", 1)[0] == json_rel.rsplit("/", 1)[0]]
        matches = same_folder or candidates
        if not matches:
            plan.rejected[json_rel] = "annotation without an image (no image with the same name)"
            return
        if len(matches) > 1:
            plan.rejected[json_rel] = f"ambiguous: {len(matches)} images share its name ({', '.join(matches[:3])})"
            return
        image_rel = matches[0]
        try:
            cells = read_cells(root / json_rel)
        except ValueError as exc:
            plan.rejected[json_rel] = f"unreadable annotation: {exc}"
            return
        plan.auxiliary[json_rel] = f"cell annotations for {image_rel} ({len(cells)} cells)"
        plan.fields[image_rel] = f"full field; its {len(cells)} annotated cells are crop rows"
        field_images.add(image_rel)
        split = _split_and_class(image_rel)[0]
        for key, cell in cells:
            labels = [str(cell.get("Label1") or "").strip(), str(cell.get("Label2") or "").strip()]
            labels = [label for label in labels if label]
            spec = SampleSpec(
                image_rel,
                source_label=labels[0] if labels else None,
                annotator_labels=labels if len(labels) > 1 else None,
                split=split,
                extra={"cell_id": str(cell.get("Cell_ID", key))},
            )
            try:
                box = tuple(float(cell[k]) for k in ("x1", "y1", "x2", "y2"))
            except (KeyError, TypeError, ValueError):
                spec.crop = CropSpec(key=key, box=(0, 0, 0, 0))
                spec.reason = f"cell {key} in {json_rel} has no valid x1/y1/x2/y2 box"
            else:
                x1, y1, x2, y2 = box
                spec.crop = CropSpec(key=key, box=(min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)), margin=margin)
            plan.samples.append(spec)


def read_cells(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """The ``Cell_<n>`` entries of a Raabin field JSON, in order; raises ValueError with a reason."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(str(exc)) from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    container = data.get("Cell Numbers") if isinstance(data.get("Cell Numbers"), dict) else data
    cells = [(k, v) for k, v in container.items() if k.startswith("Cell_") and isinstance(v, dict)]
    declared = data.get("Cell Numbers")
    if isinstance(declared, (int, str)) and str(declared).isdigit() and int(declared) != len(cells):
        raise ValueError(f'"Cell Numbers" says {declared} but {len(cells)} Cell_ entries are present')
    return sorted(cells, key=lambda kv: int(kv[0].split("_", 1)[1]) if kv[0].split("_", 1)[1].isdigit() else 0)


def _stem(source_path: str) -> str:
    name = source_path.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[0]


def _split_and_class(source_path: str) -> tuple[str | None, str | None]:
    """(split, class folder) for ``.../<split>/<Class>/<file>``; the split folder may sit at any depth."""
    parts = source_path.split("/")
    for i, part in enumerate(parts[:-1]):
        split = SPLITS.get(part.casefold())
        if split is not None:
            rest = parts[i + 1 : -1]
            return split, (rest[0] if rest else None)
    return None, None


ADAPTER = RaabinAdapter()
