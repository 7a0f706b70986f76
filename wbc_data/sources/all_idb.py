"""ALL-IDB (Labati 2011), both parts in one ingest:

* ALL_IDB2: ``img/ImNNN_Y.tif`` single-cell crops; ``Y=1`` is a blast (BL), ``Y=0`` a non-blast leukocyte whose
  type was never recorded (excluded: no finer class exists, and guessing one would be worse than none);
* ALL_IDB1: ``im/ImNNN_Y.jpg`` fields with ``xyc/ImNNN_Y.xyc`` blast centroids (one ``x y`` per line); each
  centroid becomes a fixed-size crop (option ``crop_size``), clamped to the field. Here ``Y`` says whether the
  patient has ALL, not what a cell is.

Folders are recognised by name (``im``, ``xyc``, ``img``) at any depth, so pointing at ``ALL_IDB1``,
``ALL_IDB2`` or their parent all work.
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

DEFAULT_CROP_SIZE = 257  # the side of the authors' own ALL_IDB2 crops, cut from the same ALL_IDB1 fields
BLAST, NON_BLAST = "blast", "non-blast"
_NAME = re.compile(r"^Im(?P<number>\d+)_(?P<y>[01])$", re.IGNORECASE)
_DOC_SUFFIXES = (".txt", ".pdf", ".htm", ".html", ".md", ".doc", ".docx")


def parse_xyc(path: Path) -> list[tuple[float, float]]:
    """Blast centroids of one ``.xyc`` file (``x y`` per line, whitespace/comma separated); ValueError if garbled.

    An empty file is valid: healthy fields (``Y=0``) have no blasts."""
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise ValueError("not a text file") from None
    points = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.replace(",", " ").split()
        if not fields:
            continue
        if len(fields) != 2:
            raise ValueError(f"line {number}: expected 'x y', found {line.strip()[:40]!r}")
        try:
            x, y = float(fields[0]), float(fields[1])
        except ValueError:
            raise ValueError(f"line {number}: not numbers: {line.strip()[:40]!r}") from None
        points.append((x, y))
    return points


class AllIdbAdapter(SourceAdapter):
    name = "all-idb"
    options: ClassVar[dict[str, str]] = {
        "crop_size": "side in pixels of the square cut around each annotated cell",
    }

    def find_root(self, path: Path) -> Path:
        for part in ("ALL_IDB1", "ALL_IDB2"):
            found = find_named_child(path, part)
            if found is not None:
                return found if found == path else found.parent
        if any((path / sub).is_dir() for sub in ("im", "img", "xyc")):
            return path
        raise SourceError(f"{path}: not an ALL-IDB folder (expected ALL_IDB1/{{im,xyc}}/ or ALL_IDB2/img/)")

    def plan(self, root: Path, files: list[FileEntry], ctx: PlanContext) -> SourcePlan:
        plan = SourcePlan()
        size = int(ctx.options.get("crop_size", ctx.definition.options.get("crop_size", DEFAULT_CROP_SIZE)))
        crops: dict[tuple[str, str], list[tuple[str, re.Match[str]]]] = defaultdict(list)  # (folder, NNN) -> files
        fields: dict[tuple[str, str], list[tuple[str, re.Match[str]]]] = defaultdict(list)
        centroids: dict[tuple[str, str], list[str]] = defaultdict(list)  # (folder, ImNNN_Y) -> xyc rels
        for entry in files:
            parts = entry.source_path.split("/")
            kind = parts[-2].casefold() if len(parts) >= 2 else ""
            folder, stem = "/".join(parts[:-2]), _stem(entry.source_path)
            if kind not in ("im", "img", "xyc"):
                if entry.source_path.lower().endswith(_DOC_SUFFIXES):
                    plan.auxiliary[entry.source_path] = "documentation"
                else:
                    plan.rejected[entry.source_path] = "not in im/ or xyc/ (ALL_IDB1) or img/ (ALL_IDB2)"
                continue
            if kind == "xyc":
                if not entry.source_path.lower().endswith(".xyc"):
                    plan.rejected[entry.source_path] = "not a .xyc centroid file"
                else:
                    centroids[(folder, stem.casefold())].append(entry.source_path)
                continue
            if not is_image_name(entry.source_path):
                plan.rejected[entry.source_path] = not_an_image_reason(entry.source_path)
                continue
            match = _NAME.match(stem)
            if match is None:
                plan.rejected[entry.source_path] = f"file name {parts[-1]!r} is not ImNNN_Y (Y = 0 or 1)"
                continue
            (fields if kind == "im" else crops)[(folder, match["number"])].append((entry.source_path, match))
        for (_, number), items in sorted(crops.items()):
            if _reject_duplicates(plan, number, items):
                continue
            self._plan_crop(plan, *items[0])
        used_xyc: set[str] = set()
        for (folder, number), items in sorted(fields.items()):
            xycs = {source_path: centroids.get((folder, _stem(source_path).casefold()), []) for source_path, _ in items}
            for rels in xycs.values():
                used_xyc.update(rels)
            if _reject_duplicates(plan, number, items):
                for source_path in (r for rels in xycs.values() for r in rels):
                    plan.rejected[source_path] = f"centroids of duplicate image number {number}: its image is ambiguous"
                continue
            source_path, match = items[0]
            self._plan_field(root, plan, source_path, match, xycs[source_path], size)
        for rels in centroids.values():
            for source_path in rels:
                if source_path not in used_xyc:
                    plan.rejected[source_path] = "centroid file without an image (no im/ImNNN_Y.jpg of the same name)"
        if not crops and not fields:
            raise SourceError(f"{root}: no ALL-IDB images found (expected im/ImNNN_Y.jpg or img/ImNNN_Y.tif)")
        return plan

    @staticmethod
    def _plan_crop(plan: SourcePlan, source_path: str, match: re.Match[str]) -> None:
        blast = match["y"] == "1"
        extra = {"part": "ALL_IDB2", "y": int(match["y"])}
        spec = SampleSpec(source_path, source_label=BLAST if blast else NON_BLAST, extra=extra)
        if not blast:
            spec.label_note = "ALL_IDB2 Y=0: a non-blast leukocyte whose type the dataset does not record"
        plan.samples.append(spec)

    @staticmethod
    def _plan_field(
        root: Path, plan: SourcePlan, source_path: str, match: re.Match[str], xyc: list[str], size: int
    ) -> None:
        if not xyc:
            plan.rejected[source_path] = (
                f"no centroid file xyc/{_stem(source_path)}.xyc for this field: its blasts are unknown"
            )
            return
        if len(xyc) > 1:
            plan.rejected[source_path] = f"several centroid files for this field ({', '.join(xyc)})"
            for other in xyc:
                plan.rejected[other] = f"duplicate centroid file for {source_path}"
            return
        try:
            points = parse_xyc(root / xyc[0])
        except (OSError, ValueError) as exc:
            plan.rejected[xyc[0]] = f"unreadable centroid file: {exc}"
            plan.rejected[source_path] = f"its centroid file {xyc[0]} is unreadable: blasts unknown"
            return
        has_all = match["y"] == "1"
        plan.auxiliary[xyc[0]] = f"blast centroids of {source_path} ({len(points)})"
        subject = "ALL patient" if has_all else "healthy subject"
        plan.fields[source_path] = f"full field ({subject}); {len(points)} blast crop(s)"
        if has_all and not points:
            plan.notes.append(f"{source_path}: the patient has ALL (Y=1) but {xyc[0]} lists no blast")
        if not has_all and points:
            plan.notes.append(f"{source_path}: healthy subject (Y=0) but {xyc[0]} lists {len(points)} blast(s)")
        for index, (x, y) in enumerate(points, start=1):
            plan.samples.append(
                SampleSpec(
                    source_path,
                    source_label=BLAST,
                    crop=CropSpec(key=f"blast{index}", centroid=(x, y), size=size),
                    extra={"part": "ALL_IDB1", "y": int(match["y"]), "centroid": [x, y]},
                )
            )


def _stem(source_path: str) -> str:
    return source_path.rsplit("/", 1)[-1].rsplit(".", 1)[0]


def _reject_duplicates(plan: SourcePlan, number: str, items: list[tuple[str, re.Match[str]]]) -> bool:
    """Two files with one image number (``Im001_0`` and ``Im001_1``...): which one is right is unknown."""
    if len(items) < 2:
        return False
    names = ", ".join(source_path for source_path, _ in items)
    for source_path, _ in items:
        plan.rejected[source_path] = f"duplicate image number {number} ({names})"
    return True


ADAPTER = AllIdbAdapter()
