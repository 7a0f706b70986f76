"""APL/AML study (Sidhom 2021, github.com/sidhomj/DeepAPL): CellaVision crops of peripheral-blood cells, per patient.

Layout, as the authors' repository keeps it::

    master.csv                                             Patient_ID,Diagnosis,Cohort,Age at Diagnosis,Gender
    Patient_NN/[<scan session>/]Signed slides/<class name>/<ABBR>_<id>.jpg    labelled by the class folder
    Patient_NN/[<scan session>/]Unsigned slides/<name>.jpg                    not reviewed: no label

The raw label is the class folder (``Segmented neutrophils``, ``Lymphocyte, variant``...). The file-name prefix is
the CellaVision abbreviation of a class; a crop whose prefix names another class folder, or whose file name is
filed under several class folders of one patient, is a conflict with both labels kept, never silently resolved.
``patient_id`` is the patient folder (every crop of a patient shares one group); diagnosis, cohort, age and sex
come from ``master.csv`` and, with the scan session, are kept in ``extra``.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

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

MASTER = "master.csv"
SIGNED = "signed slides"
UNSIGNED = "unsigned slides"
MASTER_COLUMNS = {"Patient_ID": "patient", "Diagnosis": "diagnosis", "Cohort": "cohort",
                  "Age at Diagnosis": "age", "Gender": "sex"}  # fmt: skip
_PATIENT = re.compile(r"^patient_(\d+)$", re.IGNORECASE)
LAYOUT = "expected Patient_NN/[<session>/]Signed slides/<class>/<file> or Patient_NN/[<session>/]Unsigned slides/<file>"

PREFIXES = {
    "SNE": "Segmented neutrophils", "BNE": "Band neutrophils", "LY": "Lymphocyte", "VLY": "Lymphocyte, variant",
    "PLY": "Prolymphocyte", "MO": "Monocyte", "PMO": "Promonocyte", "EO": "Eosinophils", "BA": "Basophil",
    "BL": "Blast, no lineage spec", "PC": "Plasma cells", "MY": "Myelocyte", "MMY": "Metamyelocyte",
    "PMY": "Promyelocyte", "ERB": "Erythroblast", "SMU": "Smudge cells", "GT": "Giant thrombocyte",
    "ERC": "Thrombocyte aggregation", "UI": "Unidentified",
}  # fmt: skip
"""CellaVision file-name prefix -> the class folder it stands for (read off the real files: every prefix but three
files' equals its folder's). Prefixes not listed here are not compared."""

WHY = {
    "promonocyte": "a leukocyte outside the 13 classes (monocyte precursor)",
    "unidentified": "the reviewer could not identify the cell",
    "smudge cells": "a ruptured cell, no longer identifiable as a leukocyte type",
    "erythroblast": "a nucleated red cell, not a leukocyte",
    "giant thrombocyte": "a platelet, not a leukocyte",
    "thrombocyte aggregation": "a platelet clump, not a leukocyte",
    "arifact": "an artefact (folder spelled 'Arifact' by the study), not a cell",
}
"""Why a class folder that is not one of the 13 gives no class (shown as the row's label_reason)."""


@dataclass(frozen=True)
class Patient:
    diagnosis: str | None
    cohort: str | None
    age: int | str | None
    sex: str | None

    def extra(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v not in (None, "")}


def read_master(path: Path) -> tuple[dict[str, Patient], str | None]:
    """Patients by id, or the one problem that stopped the table from being read (a warning, never a failure)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [h.strip() for h in (reader.fieldnames or [])]
            missing = [c for c in MASTER_COLUMNS if c not in header]
            if missing:
                return {}, f"{path}: missing column(s) {', '.join(missing)} (found: {', '.join(header) or 'none'})"
            patients: dict[str, Patient] = {}
            for row in reader:
                row = {(k or "").strip(): (v or "").strip() for k, v in row.items() if isinstance(v, str)}
                pid = row.get("Patient_ID", "")
                if not pid:
                    continue
                age: int | str | None = row.get("Age at Diagnosis") or None
                if isinstance(age, str) and age.isdigit():
                    age = int(age)
                patients[pid] = Patient(row.get("Diagnosis") or None, row.get("Cohort") or None, age,
                                        row.get("Gender") or None)  # fmt: skip
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return {}, f"{path}: unreadable ({getattr(exc, 'strerror', None) or exc})"
    if not patients:
        return {}, f"{path}: no patient rows"
    return patients, None


def patient_key(name: str) -> int | None:
    match = _PATIENT.match(name)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class Place:
    """Where one file sits in the layout."""

    patient: str
    session: str | None
    signed: bool
    folder: str | None  # the class folder (signed crops only)
    name: str


def place(source_path: str) -> Place | str:
    """The file's place in the layout, or why it has none."""
    parts = source_path.split("/")
    if patient_key(parts[0]) is None:
        return f"not in a Patient_NN folder ({LAYOUT})"
    if len(parts) < 3:
        return f"not part of the layout ({LAYOUT})"
    patient, rest = parts[0], parts[1:]
    session = None
    if rest[0].casefold() not in (SIGNED, UNSIGNED):
        session, rest = rest[0], rest[1:]
    if len(rest) == 3 and rest[0].casefold() == SIGNED:
        return Place(patient, session, True, rest[1], rest[2])
    if len(rest) == 2 and rest[0].casefold() == UNSIGNED:
        return Place(patient, session, False, None, rest[1])
    return f"not part of the layout ({LAYOUT})"


class AplAmlAdapter(SourceAdapter):
    name = "apl-aml"
    options: ClassVar[dict[str, str]] = {
        "master": "the master.csv of patients and diagnoses (default: the one in the dataset folder)",
    }

    def find_root(self, path: Path) -> Path:
        frontier = [path]
        for _ in range(3):  # the folder, or a folder up to two levels below it that holds Patient_NN/
            for folder in frontier:
                if _is_root(folder):
                    return folder
            frontier = [child for folder in frontier for child in _subfolders(folder)]
        raise SourceError(f"{path}: not an APL/AML study folder (expected Patient_NN/ folders and {MASTER})")

    def plan(self, root: Path, files: list[FileEntry], ctx: PlanContext) -> SourcePlan:
        plan = SourcePlan()
        given = ctx.options.get("master")
        if given and not Path(given).is_file():
            raise SourceError(f"{given}: no such patient table (-o master=)")
        master = Path(given or root / MASTER)
        patients: dict[str, Patient] = {}
        problem: str | None = None
        if master.is_file():
            patients, problem = read_master(master)
            if problem:
                plan.notes.append(f"warning: {problem}; diagnosis, cohort, age and sex left unknown")
        else:
            plan.notes.append(f"warning: no {MASTER} at {root}; diagnosis, cohort, age and sex left unknown")
        by_number = {patient_key(k): v for k, v in patients.items() if patient_key(k) is not None}
        places: dict[str, Place] = {}
        for entry in files:
            if entry.source_path == MASTER:
                if patients:
                    plan.auxiliary[entry.source_path] = (
                        f"patient table ({len(patients)} patients: diagnosis, cohort, age, sex)"
                    )
                else:
                    plan.rejected[entry.source_path] = f"patient table not read: {problem or 'no rows'}"
                continue
            where = place(entry.source_path)
            if isinstance(where, str):
                plan.rejected[entry.source_path] = where
            elif not is_image_name(where.name):
                plan.rejected[entry.source_path] = not_an_image_reason(where.name)
            else:
                places[entry.source_path] = where
        filed: dict[tuple[str, str | None, str], set[str]] = defaultdict(set)  # one crop's name -> its class folders
        for where in places.values():
            if where.signed:
                filed[(where.patient, where.session, where.name)].add(where.folder or "")
        unknown: set[str] = set()
        for source_path, where in places.items():
            patient = patients.get(where.patient) or by_number.get(patient_key(where.patient))
            if patient is None and patients:
                unknown.add(where.patient)
            extra: dict[str, Any] = {"slides": "signed" if where.signed else "unsigned"}
            if where.session:
                extra["session"] = where.session
            if patient is not None:
                extra.update(patient.extra())
            spec = SampleSpec(source_path, source_label=where.folder, patient_id=where.patient, extra=extra)
            if not where.signed:
                spec.label_note = "unsigned slide: crops not reviewed, no label"
            else:
                _label(spec, where, filed[(where.patient, where.session, where.name)], ctx)
            plan.samples.append(spec)
        if unknown:
            shown = ", ".join(sorted(unknown, key=lambda p: patient_key(p) or 0)[:10])
            plan.notes.append(f"warning: {len(unknown)} patient folder(s) not in {MASTER} ({shown}): no diagnosis")
        return plan


def _label(spec: SampleSpec, where: Place, folders: set[str], ctx: PlanContext) -> None:
    folder = where.folder or ""
    others = sorted(folders - {folder})
    prefix = where.name.split("_", 1)[0].upper() if "_" in where.name else ""
    named = PREFIXES.get(prefix)
    if others:
        spec.annotator_labels = [folder, *others]
        shown = " and ".join(repr(f) for f in [folder, *others])
        spec.label_note = f"the same crop is filed under {shown} in {where.patient}"
    elif named and named.casefold() != folder.casefold() and named in ctx.label_map:
        spec.annotator_labels = [folder, named]
        spec.label_note = f"file-name prefix {prefix!r} ({named}) contradicts folder {folder!r}"
    elif folder.casefold() in WHY:
        spec.label_note = WHY[folder.casefold()]


def _subfolders(path: Path) -> list[Path]:
    try:
        return sorted(p for p in path.iterdir() if p.is_dir())
    except OSError:
        return []


def _is_root(path: Path) -> bool:
    return (path / MASTER).is_file() or any(patient_key(p.name) is not None for p in _subfolders(path))


ADAPTER = AplAmlAdapter()
