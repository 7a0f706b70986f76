"""AML-Cytomorphology_LMU (Matek 2019): ``<CODE>/<CODE>_<nnnn>.tiff`` (RGBA TIFF) + ``annotations.dat``.

``annotations.dat`` rows are ``path original reannotation1 reannotation2`` (``nan`` = not re-annotated,
``UNC`` = the re-annotator could not assign a class). Every annotator's label is kept; disagreement or
``UNC`` becomes a conflict (taxonomy.resolve), never silently resolved in favour of one annotator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

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

ANNOTATIONS = "annotations.dat"
NOT_ANNOTATED = "nan"
_CODE = re.compile(r"^[A-Z]{3}$")


@dataclass(frozen=True)
class AnnotationRow:
    line: int
    original: str
    reannotations: tuple[str, ...]  # without the "nan" placeholders


def parse_annotations(path: Path) -> tuple[dict[str, AnnotationRow], list[str]]:
    """Rows keyed by image path, plus problems (malformed or repeated lines) to report."""
    rows: dict[str, AnnotationRow] = {}
    problems: list[str] = []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise SourceError(f"{path}: cannot read annotation table ({exc.strerror or exc})") from None
    for number, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 4:
            problems.append(f"{path.name} line {number}: expected 4 fields, found {len(parts)}")
            continue
        source_path, original, first, second = parts
        reannotations = tuple(label for label in (first, second) if label != NOT_ANNOTATED)
        row = AnnotationRow(number, original, reannotations)
        if source_path in rows:
            if rows[source_path].original != original or rows[source_path].reannotations != reannotations:
                problems.append(
                    f"{path.name} line {number}: {source_path} listed again with different labels (first kept)"
                )
            else:
                problems.append(f"{path.name} line {number}: {source_path} listed twice")
            continue
        rows[source_path] = row
    return rows, problems


class AmlLmuAdapter(SourceAdapter):
    name = "aml-lmu"
    options: ClassVar[dict[str, str]] = {
        "annotations": "the annotations.dat table (default: the one in the dataset folder)",
    }

    def find_root(self, path: Path) -> Path:
        nested = find_named_child(path, "AML-Cytomorphology_LMU")
        if nested is not None and nested != path:
            return nested
        if (path / ANNOTATIONS).is_file() or any(_CODE.match(p.name) for p in path.iterdir() if p.is_dir()):
            return path
        raise SourceError(f"{path}: not an AML-Cytomorphology_LMU folder (expected {ANNOTATIONS} and <CODE>/ folders)")

    def plan(self, root: Path, files: list[FileEntry], ctx: PlanContext) -> SourcePlan:
        plan = SourcePlan()
        given = ctx.options.get("annotations")
        if given and not Path(given).is_file():
            raise SourceError(f"{given}: no such annotation table (--annotations)")
        annotations_path = Path(given or root / ANNOTATIONS)
        rows: dict[str, AnnotationRow] = {}
        if annotations_path.is_file():
            rows, problems = parse_annotations(annotations_path)
            plan.notes.extend(problems[:20])
            if len(problems) > 20:
                plan.notes.append(f"... and {len(problems) - 20} more problems in {annotations_path.name}")
        else:
            plan.notes.append(f"no {ANNOTATIONS} found: labels come from folder names only, re-annotations unknown")
        seen: set[str] = set()
        for entry in files:
            parts = entry.source_path.split("/")
            if len(parts) == 1:
                if entry.source_path == ANNOTATIONS:
                    plan.auxiliary[entry.source_path] = "annotation table (original label and two re-annotations)"
                elif entry.source_path.lower().endswith(".txt"):
                    plan.auxiliary[entry.source_path] = "documentation (abbreviations)"
                else:
                    plan.rejected[entry.source_path] = "not in a class folder (expected <CODE>/<CODE>_<nnnn>.tiff)"
                continue
            if not is_image_name(entry.source_path):
                plan.rejected[entry.source_path] = not_an_image_reason(entry.source_path)
                continue
            folder = parts[-2]
            row = rows.get(entry.source_path)
            seen.add(entry.source_path)
            if row is None:
                spec = SampleSpec(entry.source_path, source_label=folder, extra={"folder": folder})
                if rows:
                    spec.label_note = f"not listed in {ANNOTATIONS}: label from folder {folder!r}"
            else:
                spec = SampleSpec(entry.source_path, source_label=row.original, extra={"folder": folder})
                if row.reannotations:
                    spec.annotator_labels = [row.original, *row.reannotations]
                if row.original != folder:
                    spec.label_note = f"{ANNOTATIONS} says {row.original!r} for a file in folder {folder!r}"
            plan.samples.append(spec)
        missing = sorted(set(rows) - seen)
        if missing:
            plan.notes.append(
                f"{len(missing):,} of {len(rows):,} rows in {annotations_path.name} name no image under {root} "
                f"(e.g. {missing[0]})"
            )
        return plan


ADAPTER = AmlLmuAdapter()
