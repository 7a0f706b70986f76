"""May these rows be published, and under which licence does the published dataset go out?

Checked before anything is written. A source's terms come from ``licence_terms`` in its YAML (declared,
machine-readable) when its rows carry that definition's licence line; otherwise (a ``--licence`` given to a Hub or
image-folder ingest, a synthetic source) the licence string is read with :func:`wbc_data.gap.licence.terms`, where
"check terms" counts as unconfirmed: never a guessed yes.

The rules:

- redistribution forbidden, or not confirmed: refused, with one line naming the source and how to exclude it;
- no-derivatives licences: refused (crops and relabelled rows are adaptations);
- a non-commercial source makes the whole dataset non-commercial, and is named;
- share-alike carries over: a share-alike source's licence becomes the dataset's licence, so two different
  share-alike licences, or a commercial share-alike licence beside a non-commercial source, cannot be combined and
  are refused;
- synthetic rows are adaptations of the generator's training data: when their licence line does not say what it
  is, they take the strictest terms of every real source in the workspace's train split (what ``wbc-data synth
  train`` learns from), whether or not those sources are published.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from wbc_data.core.errors import UserError
from wbc_data.core.rows import is_synthetic, is_usable
from wbc_data.gap.licence import CHECK, NO, YES
from wbc_data.gap.licence import terms as read_licence
from wbc_data.sources.definition import LicenceTerms, SourceDefinition

ALLOWED, FORBIDDEN, UNCONFIRMED = "allowed", "forbidden", "unconfirmed"
_PERMISSION = {YES: ALLOWED, NO: FORBIDDEN, CHECK: UNCONFIRMED}
_RANK = {ALLOWED: 0, UNCONFIRMED: 1, FORBIDDEN: 2}

PERMISSIVE_IDS = {"mit", "apache-2.0", "bsd-2-clause", "bsd-3-clause", "cc0-1.0", "odc-by", "pddl", "unlicense"}
"""Hub licence ids that ask for attribution (or less) and nothing else: they sit inside a CC BY collection."""

_CC = re.compile(r"\bcc[\s-]?by((?:[\s-]+(?:nc|sa|nd)\b)*)(?:[\s-]+v?(\d(?:\.\d)?))?", re.IGNORECASE)
_SHARE_ALIKE = re.compile(r"\bsa\b|share[\s-]?alike", re.IGNORECASE)


class LicenceRefused(UserError):
    """Some rows may not be published: the message names each source and how to exclude it."""


@dataclass(frozen=True)
class Terms:
    """What one licence allows, as publish needs it."""

    id: str  # the Hub's licence identifier, or "other"
    redistribution: str  # allowed / forbidden / unconfirmed
    commercial: str  # allowed / forbidden / unconfirmed
    share_alike: bool = False
    url: str = ""
    note: str = ""
    declared: bool = False  # read from the source YAML's licence_terms (else from the licence line)

    @property
    def no_derivatives(self) -> bool:
        return "-nd" in self.id


def terms_from_declared(declared: LicenceTerms) -> Terms:
    return Terms(
        id=declared.id,
        redistribution=declared.redistribution,
        commercial=declared.commercial,
        share_alike=declared.share_alike,
        url=declared.url,
        note=declared.note,
        declared=True,
    )


def terms_from_text(licence: str | None) -> Terms:
    """Terms read from a free-text licence line (the strictest of its ``;``-separated parts)."""
    text = (licence or "").strip()
    read = read_licence(text or None)
    return Terms(
        id=hub_licence_id(text),
        redistribution=_PERMISSION[read.publish],
        commercial=_PERMISSION[read.commercial],
        share_alike=bool(_SHARE_ALIKE.search(text)),
        note="read from the licence line" if text else "no licence given",
    )


def hub_licence_id(text: str) -> str:
    """The Hub's licence identifier a licence line names (``CC BY-NC-SA 4.0`` -> ``cc-by-nc-sa-4.0``), else other."""
    parts = [p for p in re.split(r"[;\n]", text) if p.strip()]
    if len(parts) > 1:
        ids = {hub_licence_id(p) for p in parts}
        return ids.pop() if len(ids) == 1 else "other"
    match = _CC.search(text)
    if match:
        flags = [f.lower() for f in re.findall(r"nc|sa|nd", match.group(1), re.IGNORECASE)]
        version = match.group(2) or "4.0"
        version = version if "." in version else f"{version}.0"
        return "-".join(["cc-by", *[f for f in ("nc", "nd", "sa") if f in flags], version])
    lowered = text.lower()
    if re.search(r"\bcc0\b", lowered):
        return "cc0-1.0"
    if re.search(r"\bmit\b", lowered):
        return "mit"
    if "apache" in lowered:
        return "apache-2.0"
    return "other"


def source_terms(licence: str | None, definition: SourceDefinition | None) -> Terms:
    """A source's terms: declared in its YAML when the rows carry that definition's licence line, else read."""
    declared = definition.licence_terms if definition is not None else None
    if declared is not None and (licence or "").strip() == definition.licence.strip():  # type: ignore[union-attr]
        return terms_from_declared(declared)
    return terms_from_text(licence)


def strictest(parts: Sequence[Terms], note: str = "") -> Terms:
    """The terms of a mix: the strictest permission of every part, share-alike if any part is."""
    ids = {p.id for p in parts}
    return Terms(
        id=combined_id(parts) if ids else "other",
        redistribution=max((p.redistribution for p in parts), key=_RANK.__getitem__, default=UNCONFIRMED),
        commercial=max((p.commercial for p in parts), key=_RANK.__getitem__, default=UNCONFIRMED),
        share_alike=any(p.share_alike for p in parts),
        note=note,
    )


def _attribution_family(licence_id: str) -> bool:
    """Asks for attribution (and perhaps non-commercial use), nothing else: fits in a CC BY(-NC) collection."""
    return licence_id in PERMISSIVE_IDS or re.fullmatch(r"cc-by(-nc)?-\d\.\d", licence_id) is not None


def combined_id(parts: Sequence[Terms]) -> str:
    """The licence of a collection of parts: the share-alike licence where there is one; the one licence they all
    have; else the CC BY licence (with NC where any part is non-commercial) when every part asks only for
    attribution; ``other`` where a part has terms of its own."""
    ids = sorted({p.id for p in parts})
    non_commercial = any(p.commercial != ALLOWED for p in parts)
    shared = sorted({p.id for p in parts if p.share_alike})
    if shared:
        return shared[0] if len(shared) == 1 else "other"
    if len(ids) == 1 and (not non_commercial or "-nc" in ids[0] or ids[0] == "other"):
        return ids[0]
    if ids and all(_attribution_family(i) for i in ids):
        return "cc-by-nc-4.0" if non_commercial else "cc-by-4.0"
    return "other"


# --------------------------------------------------------------------------- per source


@dataclass(frozen=True)
class SourceLicence:
    """One source (and licence line) among the rows to publish."""

    source: str
    licence: str
    rows: int
    terms: Terms
    synthetic: bool = False
    derived_from: tuple[str, ...] = ()  # synthetic rows: the real sources their terms come from

    @property
    def shown(self) -> str:
        return self.licence or "(no licence)"

    def refusal(self) -> str | None:
        """Why these rows may not be published (None: they may)."""
        why = f" ({self.terms.note})" if self.terms.note else ""
        origin = ""
        if self.synthetic and self.derived_from:
            origin = f"synthetic rows derived from {', '.join(self.derived_from)}: "
        if self.terms.redistribution == FORBIDDEN:
            return f"{self.source}: {origin}redistribution forbidden{why}"
        if self.terms.redistribution == UNCONFIRMED:
            return f"{self.source}: {origin}licence not confirmed{why}"
        if self.terms.no_derivatives:
            return (
                f"{self.source}: {origin}no-derivatives licence {self.terms.id} (crops, relabelled rows: adaptations)"
            )
        return None

    @property
    def non_commercial(self) -> bool:
        return self.terms.commercial != ALLOWED


def source_licences(
    rows: pd.DataFrame,
    definitions: Mapping[str, SourceDefinition | None],
    training: Mapping[str, Terms] | None = None,
) -> list[SourceLicence]:
    """One :class:`SourceLicence` per (source, licence line) of ``rows``. ``definitions`` maps each source name to
    its definition (None: unknown); ``training`` maps the real sources of the workspace's train split to their terms
    (what synthetic rows derive from)."""
    if rows.empty:
        return []
    synthetic = is_synthetic(rows)
    keys = pd.DataFrame(
        {"source": rows["source"].astype(str), "licence": rows["licence"].fillna("").astype(str), "synth": synthetic}
    )
    out = []
    for (source, licence, synth), part in keys.groupby(["source", "licence", "synth"], sort=True):
        terms = source_terms(licence, definitions.get(source))
        derived: tuple[str, ...] = ()
        if synth and not terms.declared and terms.redistribution == UNCONFIRMED:
            terms, derived = derived_terms(training or {})
        out.append(SourceLicence(str(source), str(licence), len(part), terms, bool(synth), derived))
    return out


def derived_terms(training: Mapping[str, Terms]) -> tuple[Terms, tuple[str, ...]]:
    """The terms of synthetic rows whose licence line settles nothing: the strictest of the real sources a
    generator learns from (``training``, from :func:`training_terms`), and their names."""
    names = tuple(sorted(training))
    if not names:
        return Terms("other", UNCONFIRMED, UNCONFIRMED, note="the generator's training data is unknown"), ()
    mix = strictest([training[n] for n in names], note=f"the strictest terms of {', '.join(names)}")
    return mix, names


def training_terms(frame: pd.DataFrame, definitions: Mapping[str, SourceDefinition | None]) -> dict[str, Terms]:
    """Terms of every real source with usable rows in the workspace's train split (what a generator learns from)."""
    if "split" not in frame.columns:
        return {}
    real = ~is_synthetic(frame)
    train = frame[is_usable(frame) & (frame["split"] == "train") & real]
    out: dict[str, Terms] = {}
    for source, part in train.groupby("source", sort=True):
        parts = [source_terms(lic, definitions.get(str(source))) for lic in sorted(part["licence"].fillna("").unique())]
        out[str(source)] = parts[0] if len(parts) == 1 else strictest(parts, note="several licence lines")
    return out


# --------------------------------------------------------------------------- the decision


@dataclass
class LicenceDecision:
    """The published dataset's licence, and why."""

    sources: list[SourceLicence]
    licence_id: str  # the card's `license`
    refused: list[str] = field(default_factory=list)  # one reason per refused source
    conflicts: list[str] = field(default_factory=list)  # licences that cannot be combined

    @property
    def allowed(self) -> list[SourceLicence]:
        return [s for s in self.sources if s.refusal() is None]

    @property
    def non_commercial(self) -> list[SourceLicence]:
        return [s for s in self.allowed if s.non_commercial]

    @property
    def share_alike(self) -> list[SourceLicence]:
        return [s for s in self.allowed if s.terms.share_alike]

    def check(self) -> None:
        """Raise :class:`LicenceRefused` (one line) when any rows may not be published."""
        if not (self.refused or self.conflicts):
            return
        names = sorted({s.source for s in self.sources if s.refusal() is not None})
        names += sorted({n for c in self.conflicts for n in _named(c, self.sources)} - set(names))
        flags = " ".join(f"--exclude-source {n}" for n in names)
        synthetic = any(s.synthetic for s in self.sources if s.source in names)
        hint = " (or leave out --include-synthetic)" if synthetic else ""
        reasons = "; ".join(self.refused + self.conflicts)
        raise LicenceRefused(
            f"publish refused, nothing written: {reasons}. Exclude with {flags}{hint}, or, where the terms were"
            " checked and allow it, declare them under licence_terms in the source's YAML"
        )

    def statement(self) -> str:
        """The decision in words, for the terminal and the card."""
        parts = [f"Licence of the published dataset: {self.licence_id}."]
        if self.non_commercial:
            parts.append(
                f"Non-commercial use only, because {_names(self.non_commercial)} "
                f"{'does' if len(self.non_commercial) == 1 else 'do'} not allow commercial use."
            )
        else:
            parts.append("Every source allows commercial use with attribution.")
        if self.share_alike:
            parts.append(
                f"Share-alike carries over from {_names(self.share_alike)}: adaptations of this dataset must be "
                f"shared under {self.licence_id} too."
            )
        synthetic = [s for s in self.allowed if s.synthetic]
        for s in synthetic:
            origin = f"derived from {', '.join(s.derived_from)}" if s.derived_from else "as their licence line says"
            parts.append(
                f"Synthetic rows of {s.source} take the terms of the data their generator learnt from ({origin})."
            )
        parts.append(
            "Every row keeps its source's own licence in the `licence` column and its citation in `citation`;"
            " attribution means citing every source listed below."
        )
        return " ".join(parts)


def _names(sources: Iterable[SourceLicence]) -> str:
    return ", ".join(f"{s.source} ({s.terms.id if s.terms.id != 'other' else s.shown})" for s in sources)


def _named(conflict: str, sources: Sequence[SourceLicence]) -> set[str]:
    return {s.source for s in sources if re.search(rf"\b{re.escape(s.source)}\b", conflict)}


def decide(sources: list[SourceLicence]) -> LicenceDecision:
    """Combine the sources' terms into the dataset's licence; refusals and conflicts are collected, not raised."""
    refused = [r for r in (s.refusal() for s in sources) if r]
    allowed = [s for s in sources if s.refusal() is None]
    decision = LicenceDecision(sources, combined_id([s.terms for s in allowed]) if allowed else "other", refused)
    shared = sorted({s.terms.id for s in decision.share_alike})
    if len(shared) > 1:
        who = ", ".join(f"{s.source} ({s.terms.id})" for s in decision.share_alike)
        decision.conflicts.append(f"share-alike licences that cannot be combined: {who}")
    elif shared and decision.non_commercial and "-nc" not in shared[0]:
        decision.conflicts.append(
            f"{_names(decision.share_alike)} must stay share-alike with commercial use allowed, but "
            f"{_names(decision.non_commercial)} forbid commercial use"
        )
    return decision
