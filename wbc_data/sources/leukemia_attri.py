"""LeukemiaAttri (Rehman et al., MICCAI 2024) and the Large Leukemia Dataset: full smear fields with WBC boxes,
published per microscope/magnification/camera subset (``H_100x_C1``, ``L_40x_C2``...) in two forms:

* COCO: ``Annotations/{train,test}.json`` + ``Images/{train,test}/``; boxes ``[x, y, w, h]`` in pixels;
* YOLO with attributes: ``images/{train,test}/`` + ``labels/{train,test}/<stem>.txt`` with lines
  ``cls cx cy w h a1 .. a6`` (normalised box, then the morphological attributes).

Each box becomes one crop of its field. Microscope (H = high-cost HCM, L = low-cost LCM), magnification and
camera come from the subset folder name and are kept in ``extra`` with the attributes, because the same cells
are re-imaged across subsets (a domain-shift and leakage fact later stages need).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, ClassVar

from PIL import Image

from wbc_data.io.walk import FileEntry
from wbc_data.sources.base import (
    CropSpec,
    PlanContext,
    SampleSpec,
    SourceAdapter,
    SourcePlan,
    is_image_name,
)
from wbc_data.sources.definition import SourceError

CLASS_NAMES = (
    "None", "Myeloblast", "Lymphoblast", "Neutrophil", "Atypical lymphocyte", "Promonocyte", "Monoblast",
    "Lymphocyte", "Myelocyte", "Abnormal promyelocyte", "Monocyte", "Metamyelocyte", "Eosinophil", "Basophil",
)  # fmt: skip
"""YOLO class index -> name, as in the dataset's ``WBC_v1.yaml``."""

MICROSCOPES = {"h": "HCM (high-cost)", "l": "LCM (low-cost)"}
_SUBSET = re.compile(r"^([HL])_(\d+)x(?:_C(\d+))?$", re.IGNORECASE)
_COCO_KEYS = {"id", "image_id", "category_id", "bbox", "area", "iscrowd", "segmentation"}
_IMAGE_KEYS = {"id", "file_name", "width", "height"}


def subset_facts(source_path: str) -> dict[str, str]:
    """Microscope, magnification and camera named by a ``H_100x_C1``-style folder in ``rel``."""
    for part in source_path.split("/"):
        match = _SUBSET.match(part)
        if match:
            facts = {
                "subset": part,
                "microscope": MICROSCOPES[match.group(1).lower()],
                "magnification": f"{match.group(2)}x",
            }
            if match.group(3):
                facts["camera"] = f"C{match.group(3)}"
            return facts
    return {}


def _scalar_items(data: dict[str, Any], skip: set[str]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in skip and v is not None}


class LeukemiaAttriAdapter(SourceAdapter):
    name = "leukemia-attri"
    options: ClassVar[dict[str, str]] = {
        "margin": "fraction of a box added on each side of a cell crop",
    }

    def plan(self, root: Path, files: list[FileEntry], ctx: PlanContext) -> SourcePlan:
        plan = SourcePlan()
        margin = float(ctx.options.get("margin", ctx.definition.options.get("margin", 0.0)))
        images = {e.source_path for e in files if is_image_name(e.source_path)}
        claimed: set[str] = set()
        coco = [
            e.source_path
            for e in files
            if e.source_path.lower().endswith(".json") and _parent(e.source_path).lower() == "annotations"
        ]
        for json_rel in coco:
            self._plan_coco(root, json_rel, images, claimed, plan, margin)
        labels = [
            e.source_path
            for e in files
            if e.source_path.lower().endswith(".txt") and "/labels/" in f"/{e.source_path.lower()}"
        ]
        self._plan_yolo(root, labels, images, claimed, plan, margin)
        for source_path in sorted(images - claimed):
            plan.rejected[source_path] = "image named by no COCO annotation file and with no YOLO label file"
        if not coco and not labels:
            raise SourceError(
                f"{root}: no LeukemiaAttri annotations found (expected Annotations/{{train,test}}.json with "
                "Images/{train,test}/, or images/ + labels/ in YOLO form)"
            )
        if any(s.extra and "magnification" not in s.extra for s in plan.samples):
            plan.notes.append(
                "some fields are not under a subset folder like H_100x_C1: microscope and magnification unknown"
            )
        return plan

    # ------------------------------------------------------------------ COCO

    def _plan_coco(
        self, root: Path, json_rel: str, images: set[str], claimed: set[str], plan: SourcePlan, margin: float
    ) -> None:
        try:
            data = json.loads((root / json_rel).read_text(encoding="utf-8"))
            entries, annotations = data["images"], data.get("annotations", [])
            categories = {c["id"]: str(c["name"]) for c in data.get("categories", [])}
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            reason = "not valid JSON" if isinstance(exc, ValueError) else f"missing or malformed {exc}"
            plan.rejected[json_rel] = f"unusable COCO file: {reason}"
            return
        split = json_rel.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        base = "/".join(json_rel.split("/")[:-2])  # the subset folder holding Annotations/ and Images/
        prefix = f"{base}/" if base else ""
        by_name: dict[str, list[str]] = {}
        for source_path in images:
            if source_path.startswith(prefix) and "/images/" in f"/{source_path[len(prefix) :].lower()}":
                by_name.setdefault(source_path.rsplit("/", 1)[-1], []).append(source_path)
        image_rel: dict[Any, str] = {}
        image_extra: dict[Any, dict[str, Any]] = {}
        unmatched = 0
        for entry in entries:
            name = str(entry.get("file_name", ""))
            candidates = [
                c
                for c in (f"{prefix}Images/{split}/{name}", f"{prefix}Images/{name}", f"{prefix}images/{split}/{name}")
                if c in images
            ] or sorted(by_name.get(name.rsplit("/", 1)[-1], []))
            if not candidates:
                unmatched += 1
                continue
            if entry.get("id") in image_rel:
                plan.notes.append(f"{json_rel}: image id {entry.get('id')} listed twice (first kept)")
                continue
            image_rel[entry.get("id")] = candidates[0]
            image_extra[entry.get("id")] = _scalar_items(entry, _IMAGE_KEYS)
        if unmatched:
            plan.notes.append(f"{json_rel}: {unmatched:,} of {len(entries):,} listed images are not on disk")
        counts: dict[Any, int] = {}
        orphans = 0
        for index, ann in enumerate(annotations):
            source_path = image_rel.get(ann.get("image_id"))
            if source_path is None:
                orphans += 1
                continue
            key = f"ann{ann.get('id', index)}"
            category = ann.get("category_id")
            raw = categories.get(category, f"category {category}")
            extra = {
                **subset_facts(f"{root.name}/{source_path}"),
                **image_extra[ann.get("image_id")],
                **_scalar_items(ann, _COCO_KEYS),
            }
            extra["category_id"] = category
            spec = SampleSpec(source_path, source_label=raw, split=split, extra=extra)
            try:
                x, y, w, h = (float(v) for v in ann["bbox"])
                spec.crop = CropSpec(key=key, box=(x, y, x + w, y + h), margin=margin)
            except (KeyError, TypeError, ValueError):
                spec.crop = CropSpec(key=key, box=(0, 0, 0, 0))
                spec.reason = f"annotation {ann.get('id', index)} in {json_rel} has no valid bbox [x, y, w, h]"
            counts[ann.get("image_id")] = counts.get(ann.get("image_id"), 0) + 1
            plan.samples.append(spec)
        if orphans:
            plan.notes.append(f"{json_rel}: {orphans:,} annotation(s) point at an image that is not on disk")
        for image_id, source_path in image_rel.items():
            n = counts.get(image_id, 0)
            plan.fields[source_path] = (
                f"full field; its {n} annotated cell(s) are crop rows" if n else "field with no box"
            )
            claimed.add(source_path)
        plan.auxiliary[json_rel] = f"COCO annotations ({len(entries):,} images, {len(annotations):,} boxes)"

    # ------------------------------------------------------------------ YOLO

    def _plan_yolo(
        self, root: Path, labels: list[str], images: set[str], claimed: set[str], plan: SourcePlan, margin: float
    ) -> None:
        if not labels:
            return
        label_by_key = {_yolo_key(source_path, "labels"): source_path for source_path in labels}
        for image in sorted(images - claimed):
            key = _yolo_key(image, "images")
            if key is None:
                continue
            label_rel = label_by_key.pop(key, None)
            claimed.add(image)
            split = key[1] or None
            if label_rel is None:
                plan.fields[image] = "field with no YOLO label file (no annotated cell)"
                continue
            try:
                with Image.open(root / image) as handle:
                    width, height = handle.size
            except OSError as exc:
                plan.rejected[image] = f"unreadable image: {exc}"
                plan.rejected[label_rel] = f"its image {image} is unreadable"
                continue
            lines = (root / label_rel).read_text(encoding="utf-8", errors="replace").splitlines()
            n = 0
            for number, line in enumerate(lines, start=1):
                fields = line.split()
                if not fields:
                    continue
                n += 1
                spec = self._yolo_sample(image, label_rel, number, fields, (width, height), split, margin)
                spec.extra = {**subset_facts(f"{root.name}/{image}"), **(spec.extra or {})}
                plan.samples.append(spec)
            plan.fields[image] = f"full field; its {n} annotated cell(s) are crop rows"
            plan.auxiliary[label_rel] = f"YOLO boxes with attributes for {image} ({n} cells)"
        for source_path in label_by_key.values():
            plan.rejected[source_path] = "label file without an image (no image with the same name under images/)"

    def _yolo_sample(
        self,
        image: str,
        label_rel: str,
        number: int,
        fields: list[str],
        size: tuple[int, int],
        split: str | None,
        margin: float,
    ) -> SampleSpec:
        key = f"line{number}"
        width, height = size
        spec = SampleSpec(image, source_label=None, split=split, extra={})
        try:
            cls = int(fields[0])
            cx, cy, w, h = (float(v) for v in fields[1:5])
        except (ValueError, IndexError):
            spec.crop = CropSpec(key=key, box=(0, 0, 0, 0))
            spec.reason = f"{label_rel} line {number}: expected 'cls cx cy w h a1..a6', found {' '.join(fields)!r}"
            return spec
        spec.source_label = CLASS_NAMES[cls] if 0 <= cls < len(CLASS_NAMES) else f"class {cls}"
        spec.extra = {**(spec.extra or {}), "class_index": cls, "attributes": fields[5:]}  # type: ignore[dict-item]
        spec.crop = CropSpec(
            key=key,
            box=((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height),
            margin=margin,
        )
        if len(fields) != 11:
            spec.label_note = f"{len(fields) - 5} attribute value(s) instead of 6"
        return spec


def _parent(source_path: str) -> str:
    parts = source_path.split("/")
    return parts[-2] if len(parts) > 1 else ""


def _yolo_key(source_path: str, folder: str) -> tuple[str, str, str] | None:
    """(prefix before images/ or labels/, split sub-folder, stem): pairs an image with its label file."""
    parts = source_path.split("/")
    lowered = [p.lower() for p in parts]
    if folder not in lowered[:-1]:
        return None
    i = len(lowered) - 1 - lowered[::-1].index(folder)
    middle = "/".join(parts[i + 1 : -1])
    return ("/".join(parts[:i]), middle, parts[-1].rsplit(".", 1)[0])


ADAPTER = LeukemiaAttriAdapter()
