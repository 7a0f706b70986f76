"""BCCD (Shenggan): ``BCCD/JPEGImages/BloodImage_NNNNN.jpg`` fields with Pascal VOC boxes in
``BCCD/Annotations/`` and the widely copied ``labels.csv`` (``,Image,Category``) that names WBC sub-types
per *image*, not per box.

Each WBC box becomes one crop of its field. Because ``labels.csv`` labels images, a box only gets an exact
label when every label listed for its image agrees (one box + one label, or N boxes whose labels are all
the same class). Otherwise all of the image's labels are kept as candidates (a conflict), a missing label
is kept as ``(no label)`` and a blank row leaves the box unlabelled: the box-to-label pairing is never
guessed. RBC and Platelets boxes are not leukocyte samples; fields with no WBC box are kept as fields.
"""

from __future__ import annotations

import csv
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
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

LABELS_CSV = "labels.csv"
NO_LABEL = "(no label)"
BLANK_ROW = "(blank row)"
SPLITS = ("train", "val", "test")  # trainval.txt is their union
_IMAGE_NUMBER = re.compile(r"BloodImage_(\d+)$", re.IGNORECASE)


@dataclass
class VocBox:
    name: str
    box: tuple[float, float, float, float]
    truncated: str | None = None
    difficult: str | None = None


@dataclass
class LabelTable:
    """``labels.csv`` keyed by image number: every row's Category text, in file order."""

    rows: dict[int, list[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def read_voc(path: Path) -> tuple[str | None, list[VocBox]]:
    """(``<filename>``, objects) of one VOC XML; raises ValueError with a reason when unusable."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"unreadable: {exc.strerror or exc}") from None
    if not text.strip():
        raise ValueError("empty XML file")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ValueError(f"not valid XML ({exc})") from None
    if root.tag != "annotation":
        raise ValueError(f"not a Pascal VOC annotation (root element <{root.tag}>)")
    boxes: list[VocBox] = []
    for index, obj in enumerate(root.iter("object")):
        name = (obj.findtext("name") or "").strip()
        try:
            coords = tuple(float(obj.findtext(f"bndbox/{k}") or "") for k in ("xmin", "ymin", "xmax", "ymax"))
        except ValueError:
            raise ValueError(f"object {index} ({name or 'no name'}) has no numeric bndbox") from None
        boxes.append(VocBox(name, coords, obj.findtext("truncated"), obj.findtext("difficult")))  # type: ignore[arg-type]
    return root.findtext("filename"), boxes


def read_labels(path: Path) -> LabelTable:
    """Parse ``labels.csv``; rows whose ``Image`` is not an integer are reported, repeated ids are kept."""
    table = LabelTable()
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or "Image" not in reader.fieldnames or "Category" not in reader.fieldnames:
                raise SourceError(f"{path}: expected columns Image and Category, found {reader.fieldnames}")
            for line, row in enumerate(reader, start=2):
                image = (row.get("Image") or "").strip()
                if not image.isdigit():
                    table.problems.append(f"{path.name} line {line}: Image {image!r} is not an image number")
                    continue
                table.rows.setdefault(int(image), []).append((row.get("Category") or "").strip())
    except OSError as exc:
        raise SourceError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return table


def split_category(text: str) -> list[str]:
    """``"NEUTROPHIL, EOSINOPHIL"`` -> ``["NEUTROPHIL", "EOSINOPHIL"]`` (blank -> [])."""
    return [part.strip() for part in text.split(",") if part.strip()]


def box_labels(rows: list[str] | None, n_boxes: int) -> tuple[list[str], str | None]:
    """The candidate labels every WBC box of one image gets, and why (None when plain).

    Returns ``[]`` for unlabelled boxes, one label when the image's labels are unambiguous for every box,
    or several labels (resolved as a conflict unless all are equal).
    """
    if rows is None:
        return [], f"image has no row in {LABELS_CSV}"
    tokens = [token for text in rows for token in split_category(text)]
    if len(rows) > 1 and len(set(rows)) > 1:
        tokens += [BLANK_ROW for text in rows if not text]
        note = f"image listed {len(rows)} times in {LABELS_CSV} with different categories: " + " | ".join(
            repr(t) for t in rows
        )
        return tokens + [NO_LABEL] * max(0, n_boxes - len(tokens)), note
    if not tokens:
        return [], f"blank Category in {LABELS_CSV}"
    if len(tokens) < n_boxes:
        note = (
            f"{LABELS_CSV} lists {len(tokens)} label(s) ({', '.join(tokens)}) for {n_boxes} WBC boxes: "
            "which box is which is unknown"
        )
        return tokens + [NO_LABEL] * (n_boxes - len(tokens)), note
    if len(tokens) == 1:
        return tokens, None
    if len(set(tokens)) == 1:
        note = None if len(tokens) == n_boxes else f"{LABELS_CSV} lists {len(tokens)} cells, the XML {n_boxes} box(es)"
        return tokens, note
    return tokens, f"{LABELS_CSV} lists {', '.join(tokens)} for this image: which box is which is unknown"


class BccdAdapter(SourceAdapter):
    name = "bccd"
    options: ClassVar[dict[str, str]] = {
        "margin": "fraction of a box added on each side of a cell crop",
        "annotations": "the labels.csv of each image's cell type (default: the one in or beside the dataset folder)",
    }

    def find_root(self, path: Path) -> Path:
        if (path / "BCCD").is_dir() or (path / "JPEGImages").is_dir():
            return path
        found = find_named_child(path, "BCCD")
        if found is not None:
            return found.parent if (found.parent / LABELS_CSV).is_file() else found
        raise SourceError(f"{path}: not a BCCD folder (expected BCCD/JPEGImages, BCCD/Annotations and {LABELS_CSV})")

    def plan(self, root: Path, files: list[FileEntry], ctx: PlanContext) -> SourcePlan:
        plan = SourcePlan()
        margin = float(ctx.options.get("margin", ctx.definition.options.get("margin", 0.0)))
        labels_path = self._labels_path(root, files, ctx)
        table = read_labels(labels_path) if labels_path else LabelTable()
        if labels_path is None:
            plan.notes.append(f"no {LABELS_CSV} found: WBC boxes have no sub-type and stay unlabelled")
        plan.notes.extend(table.problems)
        repeated = {k: v for k, v in table.rows.items() if len(v) > 1}
        if repeated:
            plan.notes.append(
                f"{len(repeated)} image number(s) appear more than once in {LABELS_CSV} (e.g. {min(repeated)})"
            )

        images: dict[str, str] = {}  # stem -> rel
        xmls: dict[str, str] = {}
        split_files: dict[str, str] = {}
        for entry in files:
            parts = entry.source_path.split("/")
            name = parts[-1]
            stem = name.rsplit(".", 1)[0]
            folder = parts[-2] if len(parts) > 1 else ""
            if labels_path is not None and (root / entry.source_path) == labels_path:
                plan.auxiliary[entry.source_path] = f"per-image WBC sub-types ({len(table.rows)} image numbers)"
            elif folder == "Annotations" and name.lower().endswith(".xml"):
                xmls[stem] = entry.source_path
            elif folder == "JPEGImages":
                if is_image_name(name):
                    images[stem] = entry.source_path
                else:
                    plan.rejected[entry.source_path] = not_an_image_reason(name)
            elif folder == "Main" and name.lower().endswith(".txt"):
                split_files[stem] = entry.source_path
        splits = self._read_splits(root, split_files, plan)

        used_numbers: set[int] = set()
        for stem, xml_rel in sorted(xmls.items()):
            image_rel = images.get(stem)
            if image_rel is None:
                plan.rejected[xml_rel] = f"annotation without an image (no JPEGImages/{stem}.jpg)"
                continue
            try:
                filename, boxes = read_voc(root / xml_rel)
            except ValueError as exc:
                plan.rejected[xml_rel] = f"unusable annotation: {exc}"
                plan.rejected[image_rel] = f"its annotation {xml_rel} is unusable: {exc}"
                continue
            wbc = [b for b in boxes if b.name.upper() == "WBC"]
            others = len(boxes) - len(wbc)
            plan.auxiliary[xml_rel] = f"VOC boxes for {image_rel}: {len(wbc)} WBC, {others} other (RBC/Platelets)"
            match = _IMAGE_NUMBER.match(stem)
            number = int(match.group(1)) if match else None
            rows = table.rows.get(number) if number is not None else None
            if number is not None and number in table.rows:
                used_numbers.add(number)
            if not wbc:
                shown = f"; {LABELS_CSV} says {' | '.join(rows)!r}" if rows else ""
                plan.fields[image_rel] = f"full field with no WBC box ({others} RBC/Platelets boxes){shown}"
                if rows and any(split_category(r) for r in rows):
                    plan.notes.append(f"{stem}: {LABELS_CSV} names {' | '.join(rows)} but the XML has no WBC box")
                continue
            plan.fields[image_rel] = f"full field; its {len(wbc)} WBC box(es) are crop rows"
            labels, note = box_labels(rows, len(wbc)) if labels_path else ([], f"no {LABELS_CSV}")
            if filename and filename.rsplit(".", 1)[0] != stem:
                note = f"{note}; " if note else ""
                note += f"XML <filename> says {filename}"
            for index, box in enumerate(wbc):
                spec = SampleSpec(
                    image_rel,
                    source_label=_raw_label(rows, labels),
                    annotator_labels=labels if len(labels) > 1 else None,
                    split=splits.get(stem),
                    crop=CropSpec(key=f"wbc{index}", box=box.box, margin=margin),
                    extra={"wbc_boxes_in_image": len(wbc), "labels_csv": rows[0] if rows and len(rows) == 1 else rows},
                    label_note=note,
                )
                if box.difficult not in (None, "0"):
                    spec.extra["difficult"] = box.difficult  # type: ignore[index]
                if box.truncated not in (None, "0"):
                    spec.extra["truncated"] = box.truncated  # type: ignore[index]
                plan.samples.append(spec)
        for stem, image_rel in sorted(images.items()):
            if stem not in xmls:
                plan.rejected[image_rel] = f"field without a VOC annotation (no Annotations/{stem}.xml)"
        missing = sorted(set(table.rows) - used_numbers)
        if missing:
            plan.notes.append(
                f"{len(missing)} of {len(table.rows)} image numbers in {LABELS_CSV} name no annotated image "
                f"(e.g. {', '.join(str(m) for m in missing[:5])})"
            )
        unsplit = sorted(s for s in xmls if s in images and s not in splits)
        if split_files and unsplit:
            plan.notes.append(f"{len(unsplit)} annotated image(s) are in no ImageSets split (e.g. {unsplit[0]})")
        return plan

    def _labels_path(self, root: Path, files: list[FileEntry], ctx: PlanContext) -> Path | None:
        given = ctx.options.get("annotations")
        if given:
            path = Path(given)
            if not path.is_file():
                raise SourceError(f"{path}: no such {LABELS_CSV} file")
            return path
        for candidate in (root / LABELS_CSV, root.parent / LABELS_CSV):
            if candidate.is_file():
                return candidate
        return None

    def _read_splits(self, root: Path, split_files: dict[str, str], plan: SourcePlan) -> dict[str, str]:
        splits: dict[str, str] = {}
        for name, source_path in sorted(split_files.items()):
            if name not in SPLITS and name != "trainval":
                plan.rejected[source_path] = "not a BCCD ImageSets split (expected train/val/test/trainval.txt)"
                continue
            plan.auxiliary[source_path] = f"ImageSets split list ({name})"
            if name == "trainval":
                continue
            for stem in (root / source_path).read_text(encoding="utf-8", errors="replace").split():
                if stem in splits and splits[stem] != name:
                    plan.notes.append(f"{stem} is listed in both {splits[stem]}.txt and {name}.txt (first kept)")
                    continue
                splits[stem] = name
        return splits


def _raw_label(rows: list[str] | None, labels: list[str]) -> str | None:
    """The source label shown for a box: its one label, or the image's Category text when several."""
    if not labels:
        return None
    if len(labels) == 1:
        return labels[0]
    return " | ".join(rows) if rows else labels[0]


ADAPTER = BccdAdapter()
