"""Bone marrow cytomorphology (Matek 2021, TCIA): ``BM_cytomorphology_data/<CODE>/[<a>-<b>/]<CODE>_<nnnnn>.jpg``.

Large classes are split into chunk folders of 1,000 (``NGB/9001-9968/``), so the class is the *first* folder
under the root, whatever the depth. The file-name prefix repeats the code: a prefix that contradicts its
folder is kept as a conflict between the two, never silently trusted. The public release has no patient
ids, so each image is its own group (documented in the YAML: a patient may straddle a split).
"""

from __future__ import annotations

import re
from pathlib import Path

from wbc_data.io.walk import FileEntry
from wbc_data.sources.base import (
    PlanContext,
    SampleSpec,
    SourceAdapter,
    SourcePlan,
    find_named_child,
    is_image_name,
    not_an_image_reason,
)
from wbc_data.sources.definition import SourceError

ROOT_NAME = "BM_cytomorphology_data"
_CODE = re.compile(r"^[A-Z]{3}$")
_NAME = re.compile(r"^(?P<code>[A-Za-z]{3})_(?P<number>\d+)$")
_CHUNK = re.compile(r"^(?P<lo>\d+)-(?P<hi>\d+)$")
_DOC_SUFFIXES = (".txt", ".csv", ".md", ".pdf", ".xlsx", ".json")


class BmLmuAdapter(SourceAdapter):
    name = "bm-lmu"

    def find_root(self, path: Path) -> Path:
        found = find_named_child(path, ROOT_NAME)
        if found is not None:
            return found
        if any(_CODE.match(p.name) for p in path.iterdir() if p.is_dir()):
            return path
        raise SourceError(f"{path}: not a bone-marrow cytomorphology folder (expected {ROOT_NAME}/<CODE>/ folders)")

    def plan(self, root: Path, files: list[FileEntry], ctx: PlanContext) -> SourcePlan:
        plan = SourcePlan()
        first_by_id: dict[str, str] = {}
        out_of_chunk = 0
        for entry in files:
            parts = entry.source_path.split("/")
            if len(parts) == 1:
                if entry.source_path.lower().endswith(_DOC_SUFFIXES):
                    plan.auxiliary[entry.source_path] = "documentation"
                else:
                    plan.rejected[entry.source_path] = (
                        "not in a class folder (expected <CODE>/[<a>-<b>/]<CODE>_<nnnnn>.jpg)"
                    )
                continue
            if not is_image_name(entry.source_path):
                plan.rejected[entry.source_path] = not_an_image_reason(entry.source_path)
                continue
            folder, filename = parts[0], parts[-1]
            stem = filename.rsplit(".", 1)[0]
            match = _NAME.match(stem)
            image_id = stem.upper()
            if image_id in first_by_id:
                plan.rejected[entry.source_path] = f"duplicate image ID {stem} (first seen at {first_by_id[image_id]})"
                continue
            first_by_id[image_id] = entry.source_path
            extra: dict[str, object] = {"folder": folder}
            chunk = next((_CHUNK.match(p) for p in parts[1:-1] if _CHUNK.match(p)), None)
            if chunk:
                extra["chunk"] = chunk.group(0)
                if match and not int(chunk["lo"]) <= int(match["number"]) <= int(chunk["hi"]):
                    out_of_chunk += 1
            spec = SampleSpec(entry.source_path, source_label=folder, extra=extra)
            prefix = match["code"] if match else None
            if prefix is None:
                spec.label_note = f"file name {filename!r} is not <CODE>_<nnnnn>: label from folder {folder!r}"
            elif prefix.upper() != folder.upper():
                spec.annotator_labels = [folder, prefix]
                spec.label_note = f"file-name prefix {prefix!r} contradicts class folder {folder!r}"
            plan.samples.append(spec)
        if out_of_chunk:
            plan.notes.append(f"{out_of_chunk:,} image(s) have a number outside their <a>-<b> chunk folder's range")
        if not plan.samples:
            raise SourceError(f"{root}: no images found in <CODE>/ folders (expected {ROOT_NAME}/<CODE>/...)")
        return plan


ADAPTER = BmLmuAdapter()
