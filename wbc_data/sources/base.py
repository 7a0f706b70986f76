"""The adapter contract. Like the folder builder of Hugging Face ``datasets``, the engine never learns a
dataset's name: it walks, decodes, hashes and records, and an adapter only says "these are the samples,
this is each one's raw label and metadata" (plus which files are annotations and which do not belong).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from wbc_data.core.labelmap import LabelMap
from wbc_data.io.walk import FileEntry
from wbc_data.sources.definition import SourceDefinition, SourceError


@dataclass(frozen=True)
class CropSpec:
    """Where a cell lies in a field image. Exactly one of ``box`` (x0, y0, x1, y1, exclusive end),
    ``centroid`` (x, y; with ``size``) or ``mask_rel`` (a mask file; with ``mask_values``) is set.
    ``margin`` is a fraction of the box size added on every side; the result is clamped to the image."""

    key: str
    box: tuple[float, float, float, float] | None = None
    centroid: tuple[float, float] | None = None
    size: int | None = None
    mask_path: str | None = None
    mask_values: tuple[int, ...] | None = None
    margin: float = 0.0


@dataclass
class SampleSpec:
    """One image (or one crop of a field image) an adapter found, before any pixel is read."""

    source_path: str
    source_label: str | None
    annotator_labels: list[str] | None = None  # several annotators: each raw label, first = source_label
    split: str | None = None
    patient_id: str | None = None
    group_id: str | None = None
    crop: CropSpec | None = None
    extra: dict[str, Any] | None = None
    reason: str | None = None  # set to reject the sample outright (e.g. a box outside the image)
    label_note: str | None = None  # why the label is what it is (e.g. "multi-label row in labels.csv")
    columns: dict[str, Any] | None = None  # manifest columns the adapter knows (declared in the schema), e.g. a
    # synthetic sample's generator and seed; they override what the engine would set


@dataclass
class SourcePlan:
    """What an adapter makes of the files under a root. Files in none of these are rejected by the
    engine as "not part of the layout", so every file is accounted for."""

    samples: list[SampleSpec] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)  # field images whose cells are crops: rel -> note
    auxiliary: dict[str, str] = field(default_factory=dict)  # annotation/metadata files read: rel -> what
    rejected: dict[str, str] = field(default_factory=dict)  # rel -> reason
    notes: list[str] = field(default_factory=list)  # facts to show the user (e.g. CSV rows with no image)
    metadata: dict[str, str] = field(default_factory=dict)  # source-level facts stored in the manifest's metadata


@dataclass
class PlanContext:
    definition: SourceDefinition
    label_map: LabelMap
    options: dict[str, Any] = field(default_factory=dict)


class SourceAdapter:
    """Base class: subclasses set ``name`` and implement :meth:`plan`."""

    name: ClassVar[str] = ""
    options: ClassVar[dict[str, str]] = {}
    """The ``-o KEY=VALUE`` options the adapter reads, and what each does: ingest refuses any other (a typo would
    otherwise be dropped without a word)."""
    reads_rows: ClassVar[bool] = False
    """True for adapters whose samples are dataset rows (Hub, parquet): the path they take need not exist, it is
    not walked, and every sample's bytes come from :meth:`read_bytes`."""

    def find_root(self, path: Path) -> Path:
        """Accept what the user points at (the unpacked folder or its parent) and return the source root."""
        return path

    def plan(self, root: Path, files: list[FileEntry], ctx: PlanContext) -> SourcePlan:
        raise NotImplementedError

    def open_reader(self, root: str, options: Mapping[str, Any]) -> Callable[[str], bytes]:
        """A function returning the encoded bytes of one sample, given the ``rel`` ingest planned (the file name
        as on disk, or a row reference for adapters whose samples are dataset rows).

        Ingest and the pixel loader both read through it, so a row reopened later gets the very bytes ingest
        hashed. Adapters whose samples are not plain files (Hub rows, parquet rows) override this."""
        base = Path(root)
        return lambda source_path: (base / source_path).read_bytes()

    def label_counts(self, path: Path, splits: Sequence[str] | None, ctx: PlanContext) -> dict[str, int]:
        """Raw label -> rows in ``splits`` (None: every split), read from the annotation files at ``path`` alone.

        Optional: lets a target be recounted from a source's published label tables without its images. Labels
        the definition's label map does not know raise a one-line :class:`SourceError` naming file and line."""
        raise SourceError(
            f"{path}: source {ctx.definition.name} cannot count labels without images (ingest it and use the manifest)"
        )


def load_adapter(definition: SourceDefinition) -> SourceAdapter:
    """Import ``wbc_data.sources.<adapter>`` and return its ``ADAPTER`` instance."""
    module_name = definition.adapter.replace("-", "_")
    try:
        module = importlib.import_module(f"wbc_data.sources.{module_name}")
    except ModuleNotFoundError as exc:
        raise SourceError(f"{definition.path}: no adapter module wbc_data.sources.{module_name} ({exc})") from None
    adapter = getattr(module, "ADAPTER", None)
    if not isinstance(adapter, SourceAdapter):
        raise SourceError(f"wbc_data.sources.{module_name} does not define ADAPTER = <SourceAdapter>()")
    return adapter


def find_named_child(path: Path, name: str, max_depth: int = 3) -> Path | None:
    """``path`` itself or the first folder called ``name`` (any case) up to ``max_depth`` levels below it."""
    if path.name.casefold() == name.casefold():
        return path
    frontier = [path]
    for _ in range(max_depth):
        nxt: list[Path] = []
        for folder in frontier:
            try:
                children = sorted(p for p in folder.iterdir() if p.is_dir())
            except OSError:
                continue
            for child in children:
                if child.name.casefold() == name.casefold():
                    return child
            nxt.extend(children)
        frontier = nxt
    return None


def is_image_name(source_path: str) -> bool:
    """Has one of the image extensions ingest accepts (any case)."""
    from wbc_data.imaging.decode import IMAGE_EXTENSIONS

    dot = source_path.rfind(".")
    return dot >= 0 and source_path[dot:].lower() in IMAGE_EXTENSIONS


def not_an_image_reason(source_path: str) -> str:
    name = source_path.rsplit("/", 1)[-1]
    suffix = name[name.rfind(".") :] if "." in name else "(none)"
    return f"not an image file (extension {suffix})"
