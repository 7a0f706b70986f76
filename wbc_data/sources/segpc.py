"""SegPC-2021 (multiple myeloma plasma cells): ``<split>/x/<id>.bmp`` fields and ``<split>/y/<id>_<k>.bmp``
instance masks (0 background, 20 cytoplasm, 40 nucleus; 1- or 3-channel).

Each mask is one plasma cell: its bounding box plus a margin is one PC crop of the field. Pairs are found by
folder, not by a fixed depth: a mask belongs to the image with the same ID in the sibling ``x/`` of its
``y/``, wherever that pair sits, so re-uploads that nest the split folders deeper are handled unchanged.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import ClassVar

from wbc_data.io.walk import FileEntry
from wbc_data.sources.base import (
    CropSpec,
    PlanContext,
    SampleSpec,
    SourceAdapter,
    SourcePlan,
    find_named_child,
    is_image_name,
    not_an_image_reason,
)
from wbc_data.sources.definition import SourceError

ROOT_NAME = "TCIA_SegPC_dataset"
RAW_LABEL = "plasma cell"
DEFAULT_MARGIN = 0.2
SPLITS = {"train": "train", "validation": "validation", "valid": "validation", "val": "validation", "test": "test"}
_MASK = re.compile(r"^(?P<id>.+)_(?P<k>\d+)$")


class SegpcAdapter(SourceAdapter):
    name = "segpc"
    options: ClassVar[dict[str, str]] = {
        "margin": "fraction of the mask's box added on each side of a cell crop",
    }

    def find_root(self, path: Path) -> Path:
        found = find_named_child(path, ROOT_NAME)
        if found is not None:
            return found
        if find_named_child(path, "x", max_depth=4) is not None:
            return path
        raise SourceError(f"{path}: not a SegPC-2021 folder (expected {ROOT_NAME}/<split>/x/ and y/ folders)")

    def plan(self, root: Path, files: list[FileEntry], ctx: PlanContext) -> SourcePlan:
        plan = SourcePlan()
        margin = float(ctx.options.get("margin", ctx.definition.options.get("margin", DEFAULT_MARGIN)))
        images: dict[tuple[str, str], list[str]] = defaultdict(list)  # (pair folder, id) -> image rels
        masks: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)  # (pair folder, id) -> (k, rel)
        for entry in files:
            parts = entry.source_path.split("/")
            kind = parts[-2].casefold() if len(parts) >= 2 else ""
            if kind not in ("x", "y"):
                plan.rejected[entry.source_path] = "not in an x/ (images) or y/ (masks) folder"
                continue
            if not is_image_name(entry.source_path):
                plan.rejected[entry.source_path] = not_an_image_reason(entry.source_path)
                continue
            pair = "/".join(parts[:-2])
            stem = parts[-1].rsplit(".", 1)[0]
            if kind == "x":
                images[(pair, stem)].append(entry.source_path)
                continue
            match = _MASK.match(stem)
            if match is None:
                plan.rejected[entry.source_path] = f"mask name {parts[-1]!r} is not <id>_<k>.bmp"
                continue
            masks[(pair, match["id"])].append((match["k"], entry.source_path))

        for key, rels in sorted(masks.items()):
            if key not in images:
                for _, source_path in rels:
                    plan.rejected[source_path] = f"mask without an image (no x/{key[1]}.* beside this y/ folder)"
        for (pair, image_id), rels in sorted(images.items()):
            cells = masks.get((pair, image_id), [])
            if len(rels) > 1:
                others = ", ".join(rels)
                for source_path in rels:
                    plan.rejected[source_path] = f"duplicate image ID {image_id} in {pair or '.'}/x ({others})"
                for _, source_path in cells:
                    plan.rejected[source_path] = f"mask of duplicate image ID {image_id}: its image is ambiguous"
                continue
            image_rel = rels[0]
            if not cells:
                plan.rejected[image_rel] = f"no instance mask y/{image_id}_<k>.bmp for this image: no plasma cell crop"
                continue
            self._plan_field(plan, pair, image_id, image_rel, cells, margin)
        if not images:
            raise SourceError(f"{root}: no SegPC images found (expected <split>/x/<id>.bmp and y/<id>_<k>.bmp)")
        return plan

    @staticmethod
    def _plan_field(
        plan: SourcePlan, pair: str, image_id: str, image_rel: str, cells: list[tuple[str, str]], margin: float
    ) -> None:
        split = next((SPLITS[p.casefold()] for p in reversed(pair.split("/")) if p.casefold() in SPLITS), None)
        by_k: dict[str, list[str]] = defaultdict(list)
        for k, source_path in cells:
            by_k[str(int(k))].append(source_path)
        used = 0
        for k, rels in sorted(by_k.items(), key=lambda kv: int(kv[0])):
            if len(rels) > 1:
                for source_path in rels:
                    plan.rejected[source_path] = f"duplicate mask ID {image_id}_{k} ({', '.join(rels)})"
                continue
            mask_path = rels[0]
            used += 1
            plan.auxiliary[mask_path] = f"instance mask of plasma cell {k} in {image_rel}"
            plan.samples.append(
                SampleSpec(
                    image_rel,
                    source_label=RAW_LABEL,
                    split=split,
                    crop=CropSpec(key=f"cell{k}", mask_path=mask_path, margin=margin),
                    extra={"image_id": image_id, "cell": int(k), "mask": mask_path},
                )
            )
        plan.fields[image_rel] = f"full field; its {used} instance mask(s) are plasma-cell crop rows"


ADAPTER = SegpcAdapter()
