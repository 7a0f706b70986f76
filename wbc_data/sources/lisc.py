"""LISC (Rezatofighi 2011): ``Main Dataset/<class>/<n>.bmp`` fields (720x576), each centred on one leukocyte,
cropped with the expert masks ``Ground Truth Segmentation/<class>/areaforexpert<k>/<n>_expert.bmp``.

A mask matches an image when both sit under the same class folder (case-insensitive) and the mask's name is the
image's number, optionally followed by ``_expert...``. The first expert folder in sorted order
(``areaforexpert1``) gives the crop; masks of further experts are kept as auxiliary rows. The unlabelled
``More Dataset without Ground Truth/`` set has neither class nor mask and is rejected with that reason.
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

ROOT_NAME = "LISC Database"
MAIN, TRUTH = "main dataset", "ground truth segmentation"
DEFAULT_MARGIN = 0.2
_MASK_NAME = re.compile(r"^(?P<n>.+?)(?:_expert.*)?$", re.IGNORECASE)


class LiscAdapter(SourceAdapter):
    name = "lisc"
    options: ClassVar[dict[str, str]] = {
        "margin": "fraction of the mask's box added on each side of a cell crop",
    }

    def find_root(self, path: Path) -> Path:
        found = find_named_child(path, ROOT_NAME)
        if found is not None:
            return found
        if any(p.name.casefold() == MAIN for p in path.iterdir() if p.is_dir()):
            return path
        raise SourceError(f"{path}: not a LISC folder (expected '{ROOT_NAME}/Main Dataset/<class>/' folders)")

    def plan(self, root: Path, files: list[FileEntry], ctx: PlanContext) -> SourcePlan:
        plan = SourcePlan()
        margin = float(ctx.options.get("margin", ctx.definition.options.get("margin", DEFAULT_MARGIN)))
        images: dict[tuple[str, str], list[str]] = defaultdict(list)  # (class, n) -> image rels
        masks: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)  # (class, n) -> (expert, rel)
        for entry in files:
            parts = entry.source_path.split("/")
            top = parts[0].casefold()
            if top not in (MAIN, TRUTH):
                if top.startswith("more dataset"):
                    plan.rejected[entry.source_path] = (
                        "LISC's extra set without ground truth: no class and no expert mask"
                    )
                else:
                    plan.rejected[entry.source_path] = "not under 'Main Dataset/' or 'Ground Truth Segmentation/'"
                continue
            if not is_image_name(entry.source_path):
                plan.rejected[entry.source_path] = not_an_image_reason(entry.source_path)
                continue
            stem = parts[-1].rsplit(".", 1)[0]
            if top == MAIN:
                if len(parts) != 3:
                    plan.rejected[entry.source_path] = "not in a class folder (expected Main Dataset/<class>/<n>.bmp)"
                    continue
                images[(parts[1].casefold(), stem.casefold())].append(entry.source_path)
                continue
            if len(parts) not in (3, 4):
                plan.rejected[entry.source_path] = (
                    "expected Ground Truth Segmentation/<class>/[areaforexpert<k>/]<n>_expert.bmp"
                )
                continue
            expert = parts[2] if len(parts) == 4 else ""
            number = _MASK_NAME.match(stem)["n"]  # the pattern matches any non-empty stem
            masks[(parts[1].casefold(), number.casefold())].append((expert, entry.source_path))

        for key, found in sorted(masks.items()):
            if key not in images:
                for _, source_path in found:
                    plan.rejected[source_path] = f"expert mask without an image (no Main Dataset/{key[0]}/{key[1]}.bmp)"
        for key, rels in sorted(images.items()):
            found = sorted(masks.get(key, []))
            if len(rels) > 1:
                for source_path in rels:
                    plan.rejected[source_path] = f"duplicate image ID {key[1]} in class {key[0]} ({', '.join(rels)})"
                for _, source_path in found:
                    plan.rejected[source_path] = f"mask of duplicate image ID {key[1]}: its image is ambiguous"
                continue
            self._plan_image(plan, rels[0], found, margin)
        if not images:
            raise SourceError(f"{root}: no LISC images found (expected Main Dataset/<class>/<n>.bmp)")
        return plan

    @staticmethod
    def _plan_image(plan: SourcePlan, source_path: str, found: list[tuple[str, str]], margin: float) -> None:
        folder = source_path.split("/")[1]
        if not found:
            plan.rejected[source_path] = (
                "no expert mask for this image under Ground Truth Segmentation/: cell not located"
            )
            return
        first_expert = found[0][0]
        chosen = [mask for expert, mask in found if expert == first_expert]
        if len(chosen) > 1:
            plan.rejected[source_path] = f"several masks match this image in one expert folder ({', '.join(chosen)})"
            for mask in chosen:
                plan.rejected[mask] = f"ambiguous: one of several masks for {source_path}"
            return
        for expert, mask in found[1:]:
            plan.auxiliary[mask] = (
                f"expert mask ({expert}) for {source_path}; not used: the crop uses {first_expert or 'the'} mask"
            )
        plan.auxiliary[chosen[0]] = f"expert mask for {source_path} (the crop's box)"
        plan.fields[source_path] = "full field; its leukocyte is a crop row (box of the expert mask)"
        plan.samples.append(
            SampleSpec(
                source_path,
                source_label=folder,
                crop=CropSpec(key="cell", mask_path=chosen[0], margin=margin),
                extra={"mask": chosen[0]},
            )
        )


ADAPTER = LiscAdapter()
