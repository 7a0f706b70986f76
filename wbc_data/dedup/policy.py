"""Which member of a duplicate cluster is kept: a documented, configurable ranking.

Default order of criteria (first difference decides):
1. original over derivative: rows from a source listed in ``derivative_sources`` (re-uploads and mixes) lose to
   rows from the source that published the image;
2. source priority: earlier in ``source_priority`` wins (sources not listed come after, alphabetically);
3. exact label over coarse over anything else (a kept row should carry the most precise label);
4. larger image (width x height);
5. smaller sample_id, so the choice is deterministic.
The default lists come from the source definitions (``keep_priority`` and ``role: derivative`` in
``manifests/*.yaml``), so the core never names a source; a YAML policy file may override ``source_priority``,
``derivative_sources`` and ``order`` (a permutation of original, source, label, size).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from wbc_data.core.errors import DedupError
from wbc_data.io.yamlfile import read_yaml
from wbc_data.sources.definition import SourceDefinition, load_definitions

CRITERIA = ("original", "source", "label", "size")
LABEL_RANK = {"exact": 0, "coarse": 1}


@dataclass
class KeepPolicy:
    """Names are source names as they appear in the manifest; an empty policy ranks sources alphabetically."""

    source_priority: list[str] = field(default_factory=list)
    derivative_sources: list[str] = field(default_factory=list)
    order: list[str] = field(default_factory=lambda: list(CRITERIA))

    @classmethod
    def from_definitions(cls, definitions: Mapping[str, SourceDefinition]) -> KeepPolicy:
        """Priorities and derivative roles declared in the source YAML, keyed by definition (= source) name;
        equal priorities are ordered by name."""
        ranked = sorted((d.keep_priority, name) for name, d in definitions.items() if d.keep_priority is not None)
        derivative = sorted(name for name, d in definitions.items() if d.role == "derivative")
        return cls(source_priority=[name for _, name in ranked], derivative_sources=derivative)

    @classmethod
    def from_yaml(cls, path: Path, base: KeepPolicy | None = None) -> KeepPolicy:
        """``base`` (default: :func:`default_policy`) with the keys the file sets replaced."""
        data = read_yaml(path, DedupError, "the keep policy") or {}
        if not isinstance(data, dict):
            raise DedupError(f"{path}: a keep policy is a mapping (source_priority, derivative_sources, order)")
        unknown = set(data) - {"source_priority", "derivative_sources", "order"}
        if unknown:
            allowed = "source_priority, derivative_sources, order"
            raise DedupError(f"{path}: unknown key(s) {sorted(unknown)} (allowed: {allowed})")
        policy = replace(base or default_policy())
        for key in ("source_priority", "derivative_sources", "order"):
            if key in data:
                value = data[key]
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise DedupError(f"{path}: {key!r} must be a list of names")
                setattr(policy, key, value)
        bad = [c for c in policy.order if c not in CRITERIA]
        if bad or len(set(policy.order)) != len(policy.order):
            raise DedupError(f"{path}: 'order' must list distinct criteria from {list(CRITERIA)}, got {policy.order}")
        return policy

    def rank(self, frame: pd.DataFrame) -> np.ndarray:
        """Rank of every row (0 = most preferred) under this policy; clusters keep their lowest-ranked member."""
        priority = {s: i for i, s in enumerate(self.source_priority)}
        unlisted = sorted(set(frame["source"]) - set(priority))
        priority.update({s: len(self.source_priority) + i for i, s in enumerate(unlisted)})
        keys = {
            "original": frame["source"].isin(self.derivative_sources).astype(int).to_numpy(),
            "source": frame["source"].map(priority).to_numpy(),
            "label": frame["label_status"].map(lambda s: LABEL_RANK.get(s, 2)).to_numpy(),
            "size": -(frame["width"].fillna(0).astype("int64") * frame["height"].fillna(0).astype("int64")).to_numpy(),
        }
        columns = [keys[c] for c in self.order]
        # np.lexsort sorts by the last key first
        order = np.lexsort([frame["sample_id"].to_numpy(), *reversed(columns)])
        rank = np.empty(len(frame), dtype=np.int64)
        rank[order] = np.arange(len(frame))
        return rank

    def describe(self) -> str:
        return (
            f"order {', '.join(self.order)}; source priority {', '.join(self.source_priority) or '(none)'}; "
            f"derivative sources {', '.join(self.derivative_sources) or '(none)'}"
        )


def default_policy(directory: Path | None = None) -> KeepPolicy:
    """The policy the shipped (or ``directory``'s) source definitions declare."""
    return KeepPolicy.from_definitions(load_definitions(directory))


def choose_keepers(frame: pd.DataFrame, cluster: np.ndarray, policy: KeepPolicy) -> np.ndarray:
    """Row position of the kept representative for every row in a cluster (-1 elsewhere)."""
    rank = policy.rank(frame)
    keeper = np.full(len(frame), -1, dtype=np.int64)
    members = np.flatnonzero(cluster >= 0)
    if len(members) == 0:
        return keeper
    table = pd.DataFrame({"pos": members, "cluster": cluster[members], "rank": rank[members]})
    best = table.loc[table.groupby("cluster")["rank"].idxmin(), ["cluster", "pos"]].set_index("cluster")["pos"]
    keeper[members] = best.reindex(cluster[members]).to_numpy()
    return keeper
