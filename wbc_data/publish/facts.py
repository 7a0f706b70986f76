"""The numbers a dataset card states: images per class, source and split, dedup statistics, synthetic rows, and
what was left out. Pure functions of the manifest frames, so the card is the same whenever the data is."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from wbc_data.core.rows import is_kept, is_synthetic, is_usable
from wbc_data.core.taxonomy import CLASSES, FULL_NAMES
from wbc_data.publish.licences import LicenceDecision
from wbc_data.publish.rows import HUB_SPLITS, PublishRows
from wbc_data.sources.definition import SourceDefinition


def n(value: object) -> str:
    """A count as the card prints it (thousands separated)."""
    return f"{int(value):,}"  # type: ignore[call-overload]


def _per_split(frame: pd.DataFrame, key: str, index: list[str]) -> pd.DataFrame:
    splits = [s for s in HUB_SPLITS.values() if s in set(frame["hub_split"])]
    table = pd.crosstab(frame[key], frame["hub_split"]).reindex(index=index, columns=splits, fill_value=0)
    table["total"] = table.sum(axis=1)
    return table


def class_table(rows: PublishRows) -> pd.DataFrame:
    """All 13 classes in the fixed order (a zero says a class is missing), images per split."""
    table = _per_split(rows.frame, "label", list(CLASSES))
    out = pd.DataFrame({"label": range(len(CLASSES)), "class": list(CLASSES), "name": [FULL_NAMES[c] for c in CLASSES]})
    for column in table.columns:
        out[column] = [n(v) for v in table[column].to_numpy()]
    return out


def source_table(rows: PublishRows, decision: LicenceDecision,
                 definitions: Mapping[str, SourceDefinition | None]) -> pd.DataFrame:  # fmt: skip
    sources = sorted(rows.frame["source"].unique())
    table = _per_split(rows.frame, "source", sources)
    licences = {s.source: s for s in decision.sources}
    out = pd.DataFrame({"source": sources})
    out["dataset"] = [(definitions.get(s).title if definitions.get(s) else s).split(" — ")[0] for s in sources]
    for column in table.columns:
        out[column] = [n(v) for v in table[column].to_numpy()]
    out["licence"] = [licences[s].terms.id if s in licences else "?" for s in sources]
    return out


def licence_table(decision: LicenceDecision) -> pd.DataFrame:
    """Per source and licence line: what it allows and where that was read."""
    rows = []
    for s in decision.sources:
        rows.append({
            "source": s.source + (" (synthetic)" if s.synthetic else ""),
            "rows": n(s.rows),
            "licence": s.shown,
            "id": s.terms.id,
            "redistribution": s.terms.redistribution,
            "commercial use": s.terms.commercial,
            "share-alike": "yes" if s.terms.share_alike else "no",
            "terms from": "source definition" if s.terms.declared else (
                f"derived from {', '.join(s.derived_from)}" if s.derived_from else "licence line"),
        })  # fmt: skip
    return pd.DataFrame(rows)


def split_table(rows: PublishRows, files: Mapping[str, int]) -> pd.DataFrame:
    """Images, sources and shard files per split."""
    out = []
    for split in rows.splits:
        part = rows.split(split)
        out.append({"split": split, "images": n(len(part)), "sources": n(part["source"].nunique()),
                    "shards": n(files.get(split, 0))})  # fmt: skip
    return pd.DataFrame(out)


def dedup_facts(frame: pd.DataFrame) -> tuple[str, pd.DataFrame]:
    """What dedup found among the workspace's usable real rows: a sentence and a per-source table."""
    usable = frame[is_usable(frame)]
    usable = usable[~is_synthetic(usable)]
    if "dup_cluster" not in usable.columns or usable.empty:
        return "Dedup has not run on this workspace.", pd.DataFrame()
    clustered = usable[usable["dup_cluster"].notna()]
    dropped = pd.Series(~is_kept(usable), index=usable.index)
    spans = clustered.groupby("dup_cluster")["source"].nunique()
    kept_sources = clustered[is_kept(clustered)].groupby("dup_cluster")["source"].agg(set)
    cross = np.array([
        bool(dropped.loc[i]) and s not in kept_sources.get(c, set())
        for i, s, c in zip(clustered.index, clustered["source"], clustered["dup_cluster"], strict=True)
    ], dtype=bool)  # fmt: skip
    cross_by_source = clustered[cross].groupby("source").size()
    text = (
        f"Dedup compared all {n(len(usable))} usable real images of the workspace (exact file and pixel hashes, then "
        f"perceptual hashes under the 8 flips and rotations): {n(spans.size)} duplicate clusters, "
        f"{n((spans > 1).sum())} of them spanning two or more sources; {n(dropped.sum())} copies were dropped, keeping "
        "one image per cluster (an original source's copy over a re-upload's): no image appears twice here, and no "
        "copy of a validation or test image sits in train (to dedup's thresholds)."
    )
    sources = sorted(usable["source"].unique())
    table = pd.DataFrame({"source": sources})
    table["usable images"] = [n((usable["source"] == s).sum()) for s in sources]
    table["in a duplicate cluster"] = [n((clustered["source"] == s).sum()) for s in sources]
    table["dropped"] = [n((dropped & (usable["source"] == s)).sum()) for s in sources]
    table["dropped as a copy of another source"] = [n(cross_by_source.get(s, 0)) for s in sources]
    return text, table


def synthetic_facts(rows: PublishRows) -> pd.DataFrame:
    """Synthetic rows per generator: how many, of which classes, with which guidance and seeds."""
    frame = rows.frame
    if "is_synthetic" not in frame.columns:
        return pd.DataFrame()
    synth = frame[is_synthetic(frame)]
    if synth.empty:
        return pd.DataFrame()
    generator = synth["generator_id"].fillna("(unknown)") if "generator_id" in synth.columns else "(unknown)"
    out = []
    for gen, part in synth.assign(_gen=generator).groupby("_gen", sort=True):
        seeds = part["seed"].dropna() if "seed" in part.columns else pd.Series(dtype=float)
        guidance = sorted(part["guidance"].dropna().unique()) if "guidance" in part.columns else []
        counts = part["label"].value_counts().reindex(list(CLASSES)).dropna()
        out.append({
            "generator": gen,
            "images": n(len(part)),
            "classes": ", ".join(f"{c} {n(v)}" for c, v in counts.items()),
            "guidance": ", ".join(f"{g:g}" for g in guidance) or "-",
            "seeds": f"{int(seeds.min())}-{int(seeds.max())}" if len(seeds) else "-",
        })  # fmt: skip
    return pd.DataFrame(out)


def left_out_table(rows: PublishRows) -> pd.DataFrame:
    return pd.DataFrame([{"left out": reason, "images": n(count)} for reason, count in rows.left_out.items()])


def size_category(count: int) -> str:
    """The Hub's ``size_categories`` bucket for a row count."""
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
              (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]  # fmt: skip
    return next((label for bound, label in bounds if count < bound), "n>1B")
