"""PBC (Acevedo 2020): ``PBC_dataset_normal_DIB/<class folder>/<PREFIX>_<id>.jpg``.

The raw label is the file-name prefix, which carries the sub-type (``SNE_``/``BNE_`` inside
``neutrophil/``, ``MY_``/``MMY_``/``PMY_`` inside ``ig/``); ``NEUTROPHIL_`` and ``IG_`` are coarse. A prefix
that contradicts its folder is kept as a conflict between the two, never silently trusted.
"""

from __future__ import annotations

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

FOLDERS = ("basophil", "eosinophil", "erythroblast", "ig", "lymphocyte", "monocyte", "neutrophil", "platelet")


class PbcAdapter(SourceAdapter):
    name = "pbc"

    def find_root(self, path: Path) -> Path:
        found = find_named_child(path, "PBC_dataset_normal_DIB")
        if found is not None:
            return found
        if any((path / folder).is_dir() for folder in FOLDERS):
            return path
        raise SourceError(
            f"{path}: not a PBC folder: expected PBC_dataset_normal_DIB/ or class folders ({', '.join(FOLDERS)})"
        )

    def plan(self, root: Path, files: list[FileEntry], ctx: PlanContext) -> SourcePlan:
        plan = SourcePlan()
        for entry in files:
            parts = entry.source_path.split("/")
            if len(parts) != 2:
                plan.rejected[entry.source_path] = "not in a class folder (expected <class>/<PREFIX>_<id>.jpg)"
                continue
            folder, filename = parts
            if not is_image_name(filename):
                plan.rejected[entry.source_path] = not_an_image_reason(filename)
                continue
            prefix = filename.split("_", 1)[0] if "_" in filename else None
            raw = prefix if prefix and prefix in ctx.label_map else folder
            spec = SampleSpec(source_path=entry.source_path, source_label=raw, extra={"folder": folder})
            folder_label, prefix_label = ctx.label_map.lookup(folder), ctx.label_map.lookup(raw)
            if folder_label and prefix_label and not _consistent(prefix_label.candidates, folder_label.candidates):
                spec.annotator_labels = [raw, folder]
                spec.label_note = f"file-name prefix {raw!r} contradicts folder {folder!r}"
            plan.samples.append(spec)
        return plan


def _consistent(prefix: frozenset[str], folder: frozenset[str]) -> bool:
    return prefix <= folder if prefix and folder else prefix == folder


ADAPTER = PbcAdapter()
