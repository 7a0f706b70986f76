"""The gap table: per class, what the user's own data has, what each external source adds, what survives
dedup, what is only coarse or synthetic, and how that compares with a target.

Pure pandas on the unified manifest so the CLI, the report files and the tests share one computation.
Counting rules (documented in the report too):
- only rows with status 'ok' count; an exact label counts for its class;
- coarse/conflict rows are counted per candidate class in separate columns: they fill nothing until resolved;
- ``dup_keep == False`` (dedup ran and dropped the row as a duplicate) removes a row from every "after dedup"
  figure; without a ``dup_keep`` column every row is kept;
- ``is_synthetic == True`` rows are counted only in the synthetic column, never as own or external data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from wbc_data.core.rows import is_kept, is_synthetic, is_usable
from wbc_data.core.taxonomy import CLASSES, FULL_NAMES, LabelStatus
from wbc_data.gap.errors import GapError
from wbc_data.gap.licence import CHECK, NO, RANK, YES, Terms
from wbc_data.gap.own import default_own
from wbc_data.gap.status import Thresholds, classify, coverage
from wbc_data.gap.targets import Target, floor_target, parse_target
from wbc_data.manifest.summary import candidates_per_class, per_class
from wbc_data.sources.definition import SourceDefinition

EXACT = LabelStatus.EXACT.value
COLUMNS_NEEDED = [
    "sample_id",
    "source",
    "source_split",
    "patient_id",
    "group_id",
    "licence",
    "label",
    "label_status",
    "label_candidates",
    "status",
]
OPTIONAL_COLUMNS = ["dup_keep", "is_synthetic"]


@dataclass
class Rows:
    """The manifest's usable rows split into the roles the gap report counts separately."""

    frame: pd.DataFrame  # status 'ok' rows only, with boolean columns _own, _external, _kept, _synthetic
    own_sources: list[str]
    excluded_own: int  # own rows outside --own-split
    has_dedup: bool
    has_synthetic: bool
    definitions: Mapping[str, SourceDefinition | None] = field(default_factory=dict)  # whose declared terms apply
    training: Mapping[str, Any] = field(default_factory=dict)  # publish's terms of the train split's real sources

    def terms(self, source: str, licence: str | None, synthetic: bool = False) -> Terms:
        """What a source's licence line allows, read as publish reads it (:func:`~wbc_data.publish.licences.
        source_licences`: the terms its definition declares when the rows carry that definition's licence line,
        else the line itself; synthetic rows whose line settles nothing take the strictest terms of the real
        sources a generator learns from), so the gap report and publish never disagree."""
        from wbc_data.publish.licences import ALLOWED, FORBIDDEN, UNCONFIRMED, derived_terms, source_terms

        read = source_terms(licence, self.definitions.get(source))
        if synthetic and not read.declared and read.redistribution == UNCONFIRMED:
            read = derived_terms(self.training)[0]
        word = {ALLOWED: YES, FORBIDDEN: NO}
        return Terms(word.get(read.redistribution, CHECK), word.get(read.commercial, CHECK))


@dataclass
class GapTable:
    classes: pd.DataFrame  # one row per class (13), numeric columns; see class_table()
    sources: pd.DataFrame  # one row per source: role, licence, what it may be used for, counts
    licences: pd.DataFrame  # classes x licence: images available after dedup
    by_source: pd.DataFrame  # classes x source: images available after dedup (own sources first)
    target: Target
    thresholds: Thresholds
    own_sources: list[str]
    external_sources: list[str]
    notes: list[str] = field(default_factory=list)


def split_rows(frame: pd.DataFrame, own: Sequence[str], own_splits: Iterable[str] | None = None) -> Rows:
    """Mark each usable row as own / external / synthetic and kept-after-dedup."""
    missing = [c for c in COLUMNS_NEEDED if c not in frame.columns]
    if missing:
        raise GapError(f"manifest: missing column(s) {', '.join(missing)}")
    known = set(frame["source"].unique())
    unknown = [s for s in own if s not in known]
    if unknown:
        raise GapError(
            f"--own {', '.join(unknown)}: no such source in the manifest (sources: "
            f"{', '.join(sorted(known)) or 'none'})"
        )
    ok = frame[is_usable(frame)].copy()
    has_dedup, has_synth = "dup_keep" in ok.columns, "is_synthetic" in ok.columns
    ok["_kept"] = is_kept(ok) if has_dedup else True
    ok["_synthetic"] = is_synthetic(ok) if has_synth else False
    is_own = ok["source"].isin(list(own)) & ~ok["_synthetic"]
    excluded = pd.Series(False, index=ok.index)
    splits = list(own_splits or [])
    if splits:
        excluded = is_own & ~ok["source_split"].isin(splits)
        if is_own.any() and not (is_own & ~excluded).any():
            seen = sorted(ok.loc[is_own, "source_split"].dropna().unique())
            raise GapError(
                f"--own-split {', '.join(splits)}: no own rows in these splits (splits seen: "
                f"{', '.join(seen) or 'none'})"
            )
    ok["_own"] = is_own & ~excluded
    ok["_external"] = ~is_own & ~ok["_synthetic"]
    ok = ok[ok["_own"] | ok["_external"] | ok["_synthetic"]]
    return Rows(ok, list(own), int(excluded.sum()), has_dedup, has_synth)


def _nunique_per_class(rows: pd.DataFrame, column: str) -> pd.Series:
    known = rows[rows[column].notna()]
    keys = known["source"].astype(str) + "\x00" + known[column].astype(str)
    return keys.groupby(known["label"]).nunique().reindex(list(CLASSES))


def own_counts(rows: Rows) -> pd.Series:
    """Own exact images per class after dedup (what min:N keeps as a floor)."""
    f = rows.frame
    return per_class(f[f["_own"] & f["_kept"] & (f["label_status"] == EXACT)])


def class_table(rows: Rows, target: Target, thresholds: Thresholds) -> pd.DataFrame:
    """One row per class. Columns: own, own after dedup, own patients, one column per external source (raw),
    external, external after dedup, duplicates dropped, available (own + external after dedup), independent
    groups, coarse/conflict candidates, synthetic, gain, target, missing, coverage, status."""
    f = rows.frame
    exact = f["label_status"] == EXACT
    real = f["_own"] | f["_external"]
    kept = f["_kept"]
    own = per_class(f[f["_own"] & exact])
    own_kept = per_class(f[f["_own"] & exact & kept])
    ext_rows = f[f["_external"] & exact]
    ext_sources = sorted(f.loc[f["_external"], "source"].unique())
    available_rows = f[real & exact & kept]
    table = pd.DataFrame(index=pd.Index(list(CLASSES), name="class"))
    table["name"] = [FULL_NAMES[c] for c in CLASSES]
    table["own"] = own
    table["own after dedup"] = own_kept
    patients = _nunique_per_class(f[f["_own"] & exact & kept], "patient_id")
    table["own patients"] = patients.astype("Int64")
    for source in ext_sources:
        table[source] = per_class(ext_rows[ext_rows["source"] == source])
    table["external"] = per_class(ext_rows)
    table["external after dedup"] = per_class(ext_rows[ext_rows["_kept"]])
    table["duplicates dropped"] = per_class(f[real & exact & ~kept])
    table["available"] = per_class(available_rows)
    groups = available_rows.assign(group_id=available_rows["group_id"].fillna(available_rows["sample_id"]))
    table["independent groups"] = _nunique_per_class(groups, "group_id").fillna(0).astype("int64")
    pairs = available_rows[["source", "licence"]].astype(object).drop_duplicates()  # per licence line, not per row
    allowed = {(src, lic) for src, lic in pairs.itertuples(index=False)
               if rows.terms(str(src), lic if isinstance(lic, str) else None).commercial == YES}  # fmt: skip
    keys = zip(available_rows["source"].astype(object), available_rows["licence"].astype(object), strict=True)
    is_commercial = pd.Series([k in allowed for k in keys], index=available_rows.index, dtype=bool)
    table["commercial use ok"] = per_class(available_rows[is_commercial])
    table["coarse candidates"] = candidates_per_class(f[real & kept], LabelStatus.COARSE.value)
    table["conflict candidates"] = candidates_per_class(f[real & kept], LabelStatus.CONFLICT.value)
    table["synthetic"] = per_class(f[f["_synthetic"] & exact & kept])
    table["gain"] = [(a / o if o else None) for a, o in zip(table["available"], table["own after dedup"], strict=True)]
    table["target"] = pd.array([target.get(c) for c in CLASSES], dtype="Int64")
    table["missing"] = pd.array(
        [
            None if t is None else max(0, int(t) - int(a))
            for t, a in zip(target_list(target), table["available"], strict=True)
        ],
        dtype="Int64",
    )
    table["coverage"] = [coverage(int(a), t) for a, t in zip(table["available"], target_list(target), strict=True)]
    table["status"] = [
        classify(int(a), t, thresholds) for a, t in zip(table["available"], target_list(target), strict=True)
    ]
    return table


def target_list(target: Target) -> list[int | None]:
    return [target.get(c) for c in CLASSES]


def source_table(rows: Rows) -> pd.DataFrame:
    """Per source: its role, licence and what that allows, and how many rows it brings (images and patients)."""
    f = rows.frame
    out = []
    for source, part in f.groupby("source", sort=True):
        lines = sorted({str(v) for v in part["licence"].dropna().unique()})
        licence = "; ".join(lines) or "(none)"
        synthetic = bool(part["_synthetic"].all())
        each = [rows.terms(str(source), line, synthetic) for line in lines or [None]]
        read = Terms(max((t.publish for t in each), key=RANK.__getitem__),
                     max((t.commercial for t in each), key=RANK.__getitem__))  # fmt: skip
        exact = part["label_status"] == EXACT
        role = "own" if part["_own"].any() else ("synthetic" if part["_synthetic"].all() else "external")
        out.append(
            {
                "source": source,
                "role": role,
                "licence": licence,
                "publish": read.publish,
                "commercial": read.commercial,
                "exact images": int(exact.sum()),
                "after dedup": int((exact & part["_kept"]).sum()),
                "coarse": int((part["label_status"] == LabelStatus.COARSE.value).sum()),
                "conflict": int((part["label_status"] == LabelStatus.CONFLICT.value).sum()),
                "synthetic": int((part["_synthetic"] & exact).sum()),
                "patients": int(part["patient_id"].dropna().nunique()) or None,
                "groups": int(part["group_id"].fillna(part["sample_id"])[exact].nunique()),
                "classes": int(part.loc[exact, "label"].nunique()),
            }
        )
    table = pd.DataFrame(out)
    if not table.empty:
        table["patients"] = table["patients"].astype("Int64")
    return table


def licence_table(rows: Rows) -> pd.DataFrame:
    """Classes x licence: exact real images after dedup, so a user sees what a publishable subset would hold."""
    f = rows.frame
    avail = f[(f["_own"] | f["_external"]) & (f["label_status"] == EXACT) & f["_kept"]]
    table = pd.crosstab(avail["label"], avail["licence"].fillna("(none)"))
    return table.reindex(index=list(CLASSES), fill_value=0).rename_axis(index="class", columns=None).astype("int64")


def available_by_source(rows: Rows) -> pd.DataFrame:
    """Classes x source: exact real images after dedup (the per-source stacked chart)."""
    f = rows.frame
    avail = f[(f["_own"] | f["_external"]) & (f["label_status"] == EXACT) & f["_kept"]]
    table = pd.crosstab(avail["label"], avail["source"]).reindex(index=list(CLASSES), fill_value=0)
    order = [s for s in rows.own_sources if s in table.columns] + sorted(
        c for c in table.columns if c not in rows.own_sources
    )
    return table[order].rename_axis(index="class", columns=None).astype("int64")


def gap_table(
    frame: pd.DataFrame,
    target: Target | str,
    *,
    own: Sequence[str] | None = None,
    own_splits: Iterable[str] | None = None,
    thresholds: Thresholds | None = None,
    target_labels: Path | None = None,
    targets: Path | None = None,
    definitions: Mapping[str, SourceDefinition | None] | None = None,
) -> GapTable:
    """Everything the gap report shows, from the unified manifest and a target (resolved here when given as a
    ``--target`` string; ``targets`` is the folder of named targets, default the shipped one). ``definitions``:
    each source's definition, whose declared licence terms then apply (as in publish)."""
    thresholds = thresholds or Thresholds()
    if isinstance(target, str):
        target = parse_target(target, frame, labels=target_labels, targets=targets)
    notes = list(target.notes)
    own_list = list(own or [])
    if not own:
        chosen = default_own(frame, target, targets)
        own_list = chosen.sources
        if not own_list:
            notes.append(f"{chosen.note}: gain is not defined")
        elif own_splits is None:
            own_splits = chosen.splits
            notes.append(chosen.note)
    from wbc_data.publish.licences import training_terms

    definitions = dict(definitions or {})
    rows = replace(split_rows(frame, own_list, own_splits), definitions=definitions,
                   training=training_terms(frame, definitions))  # fmt: skip
    if target.floor is not None:  # min:N keeps the own data above N, so it is resolved on the own rows
        target = replace(target, counts=floor_target(target.spec, target.floor, own_counts(rows).to_dict()).counts)
    classes = class_table(rows, target, thresholds)
    if rows.excluded_own:
        notes.append(f"{rows.excluded_own:,} own row(s) outside --own-split were not counted")
    if not rows.has_dedup:
        notes.append("the manifest has no dedup decisions yet (run dedup): 'after dedup' equals the raw counts")
    external = sorted(rows.frame.loc[rows.frame["_external"], "source"].unique())
    return GapTable(
        classes,
        source_table(rows),
        licence_table(rows),
        available_by_source(rows),
        target,
        thresholds,
        own_list,
        external,
        notes,
    )
