"""The WBCBench 2026 label space: 13 leukocyte classes, their coarse groups, and the rules that
turn a source's raw label(s) into one manifest label.

Every source adapter goes through :func:`resolve`, so coarse, conflicting and non-leukocyte labels
follow one rule set whatever dataset they come from.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from wbc_data.core.errors import UserError

CLASSES: tuple[str, ...] = (
    "SNE", "BNE", "LY", "VLY", "PLY", "MO", "EO", "BA", "BL", "PC", "MY", "MMY", "PMY",
)  # fmt: skip
"""The 13 target classes in WBCBench 2026 order."""

FULL_NAMES: dict[str, str] = {
    "SNE": "segmented neutrophil",
    "BNE": "band neutrophil",
    "LY": "lymphocyte",
    "VLY": "variant (reactive/atypical) lymphocyte",
    "PLY": "prolymphocyte",
    "MO": "monocyte",
    "EO": "eosinophil",
    "BA": "basophil",
    "BL": "blast",
    "PC": "plasma cell",
    "MY": "myelocyte",
    "MMY": "metamyelocyte",
    "PMY": "promyelocyte",
}

COARSE_GROUPS: dict[str, frozenset[str]] = {
    "neutrophil": frozenset({"SNE", "BNE"}),
    "IG": frozenset({"MY", "MMY", "PMY"}),
    "lymphocyte-any": frozenset({"LY", "VLY", "PLY"}),
    "granulocyte": frozenset({"SNE", "BNE", "EO", "BA"}),
    "immature-myeloid": frozenset({"BL", "PMY", "MY", "MMY"}),
}
"""Named sets a label map may use instead of listing codes (matched case-insensitively)."""

NOT_LEUKOCYTE = "not-leukocyte"
"""Label-map value for cells that are real but not leukocytes (erythroblasts, platelets, smudge cells...)."""


class LabelStatus(str, Enum):
    """How much a manifest row's label can be trusted; stored as its string value."""

    EXACT = "exact"  # one of the 13 classes, all annotators agree
    COARSE = "coarse"  # the source only says "one of" label_candidates
    CONFLICT = "conflict"  # annotators disagree, or one said "unassignable"
    NOT_LEUKOCYTE = "not-leukocyte"  # erythroblast, platelet, smudge cell, artefact...
    EXCLUDED = "excluded"  # the label map says: deliberately not used (null)
    UNMAPPED = "unmapped"  # the raw label is not in the label map: reported, never guessed
    UNLABELLED = "unlabelled"  # the source has no label for this row (e.g. a challenge test set)


USABLE_STATUSES = frozenset({LabelStatus.EXACT.value})


class TaxonomyError(UserError):
    """A label map or a label names something the taxonomy does not know."""


@dataclass(frozen=True)
class MappedLabel:
    """What one raw label means in the 13-class space."""

    status: LabelStatus
    candidates: frozenset[str] = field(default_factory=frozenset)

    @property
    def label(self) -> str | None:
        """The single class, only when the label is exact."""
        if self.status is LabelStatus.EXACT:
            return next(iter(self.candidates))
        return None


@dataclass(frozen=True)
class ResolvedLabel:
    """The label a manifest row gets from all of its annotators' labels."""

    label: str | None
    status: LabelStatus
    candidates: tuple[str, ...]
    reason: str | None = None


def is_class(code: str) -> bool:
    return code in FULL_NAMES


def ordered(codes: Iterable[str]) -> tuple[str, ...]:
    """Codes in the canonical class order (stable output for manifests and tests)."""
    wanted = set(codes)
    return tuple(c for c in CLASSES if c in wanted)


def parse_map_value(value: object, *, where: str = "label map") -> MappedLabel:
    """Turn one label-map value into a MappedLabel.

    Accepted values: a class code (``SNE``), a coarse group name (``IG``, ``neutrophil``), a list of
    codes/groups (``[SNE, BNE]``), ``null`` (excluded: not used) or ``not-leukocyte``.
    """
    if value is None:
        return MappedLabel(LabelStatus.EXCLUDED)
    items = value if isinstance(value, list) else [value]
    codes: set[str] = set()
    for item in items:
        if not isinstance(item, str):
            raise TaxonomyError(f"{where}: {item!r} is not a class code, group name or null")
        token = item.strip()
        if token.lower() in {NOT_LEUKOCYTE, "not_leukocyte", "non-leukocyte"}:
            if len(items) > 1:
                raise TaxonomyError(f"{where}: {NOT_LEUKOCYTE} cannot be combined with classes")
            return MappedLabel(LabelStatus.NOT_LEUKOCYTE)
        if token.upper() in FULL_NAMES:
            codes.add(token.upper())
            continue
        group = next((g for g in COARSE_GROUPS if g.lower() == token.lower()), None)
        if group is None:
            known = ", ".join(CLASSES)
            raise TaxonomyError(
                f"{where}: unknown class {token!r} (known classes: {known}; groups: "
                f"{', '.join(COARSE_GROUPS)}; or null / {NOT_LEUKOCYTE})"
            )
        codes |= COARSE_GROUPS[group]
    if not codes:
        raise TaxonomyError(f"{where}: empty list; use null to exclude a label")
    status = LabelStatus.EXACT if len(codes) == 1 else LabelStatus.COARSE
    return MappedLabel(status, frozenset(codes))


def resolve(mapped: Sequence[MappedLabel | None], raw: Sequence[str] | None = None) -> ResolvedLabel:
    """Combine the labels of every annotator of one cell into one row label.

    ``mapped[i]`` is annotator i's label (``None`` = the raw label was not in the label map). Rules,
    in order: no annotator -> unlabelled; the first annotator's label is unmapped -> unmapped;
    one annotator -> their label; several that agree -> that label; otherwise -> conflict with the
    union of every class named as candidates. A conflict is never silently resolved.
    """
    raw = list(raw or [])
    if not mapped:
        return ResolvedLabel(None, LabelStatus.UNLABELLED, ())
    first = mapped[0]
    if first is None:
        return ResolvedLabel(None, LabelStatus.UNMAPPED, (), f"label {raw[0]!r} not in label map" if raw else None)
    if len(mapped) == 1 or all(m == first for m in mapped[1:]):
        return ResolvedLabel(first.label, first.status, ordered(first.candidates))
    union: set[str] = set()
    for m in mapped:
        if m is not None:
            union |= m.candidates
    shown = " vs ".join(repr(r) for r in raw) if raw else "annotators disagree"
    return ResolvedLabel(None, LabelStatus.CONFLICT, ordered(union), f"annotators disagree: {shown}")
