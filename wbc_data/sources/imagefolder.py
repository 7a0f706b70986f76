"""Any ``<class>/<image>`` tree (re-uploads, Kaggle mixes, a lab's own export), labelled by a user label map.

The class of an image is its nearest ancestor folder named in the label map (any case), else its parent
folder, which is then reported as unmapped, never guessed. Folders such as ``train/``, ``val/`` or
``TEST_SIMPLE/`` anywhere in the path become the source split.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

from wbc_data.io.walk import FileEntry
from wbc_data.sources.base import (
    PlanContext,
    SampleSpec,
    SourceAdapter,
    SourcePlan,
    is_image_name,
    not_an_image_reason,
)
from wbc_data.sources.definition import SourceError

SPLIT_FOLDER = re.compile(r"^(train|training|val|valid|validation|test|testing|eval|dev)([_\- ].*)?$", re.IGNORECASE)


TOP_LEVEL = ("reject", "unlabelled")


class ImageFolderAdapter(SourceAdapter):
    name = "imagefolder"
    options: ClassVar[dict[str, str]] = {
        "top_level": "what an image beside the class folders is: reject (default, with the reason) or unlabelled "
        "(a flat folder of images, e.g. a test set to check for leakage)",
    }

    def plan(self, root: Path, files: list[FileEntry], ctx: PlanContext) -> SourcePlan:
        plan = SourcePlan()
        has_map = bool(ctx.label_map.keys())
        top_level = str(ctx.options.get("top_level", "reject"))
        if top_level not in TOP_LEVEL:
            raise SourceError(f"-o top_level={top_level}: use one of {', '.join(TOP_LEVEL)}")
        for entry in files:
            source_path = entry.source_path
            if not is_image_name(source_path):
                plan.rejected[source_path] = not_an_image_reason(source_path)
                continue
            folders = source_path.split("/")[:-1]
            if not folders:
                if top_level == "unlabelled":
                    plan.samples.append(SampleSpec(source_path, source_label=None))
                else:
                    plan.rejected[source_path] = (
                        "image at the top level: not in a class folder (expected <class>/<image>; "
                        "-o top_level=unlabelled reads it without a label)"
                    )
                continue
            label = next((f for f in reversed(folders) if f in ctx.label_map), folders[-1])
            split = next((f for f in folders if SPLIT_FOLDER.match(f) and f not in ctx.label_map), None)
            plan.samples.append(SampleSpec(source_path, source_label=label, split=split))
        if not files:
            raise SourceError(f"{root}: empty folder (expected <class>/<image> files)")
        if not has_map:
            plan.notes.append("no --label-map given: every folder is reported as unmapped")
        return plan


ADAPTER = ImageFolderAdapter()
