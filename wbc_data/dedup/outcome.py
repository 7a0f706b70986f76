"""From copy sets and relations to the dedup columns of every participating row.

- A *copy set* (:mod:`linkage`) keeps one row: the best by the keep policy among its training rows (a field image
  is never kept or dropped: it is not a training cell). Every dropped row was verified against the set's leader.
- A *cluster* (``dup_cluster``: what the split stage keeps on one side) is a copy set plus what derives from the same
  image: the crops a source cut from a field in the set (``parent_id``), rows registered inside one of its windows,
  and sets whose leaders are overlapping views of each other. Rows linked that way are kept (they are other cells
  of the same field or scene) and name the field in ``dup_derived_from``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from wbc_data.dedup.linkage import OVERLAP, PairTable
from wbc_data.dedup.participants import Participants

FIELD_DECISION = "field image: not a training cell (its copies, crops and parts are linked to it)"


@dataclass
class Outcome:
    cluster: np.ndarray  # int64, -1 = none
    copy_set: np.ndarray  # leader row of the row's copy set
    keeper: np.ndarray  # kept row of the row's copy set (-1: a set of field images only)
    keep: np.ndarray  # object: True / False / None (fields)
    decision: np.ndarray  # object
    derived_from: np.ndarray  # object: a field's sample_id or None
    linked_by: np.ndarray  # object: how a row joined its cluster ("copy", "exact", "crop", "part", "overlap")


def components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Connected component of every row over the pairs (a[k], b[k])."""
    graph = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def decide(
    parts: Participants,
    leader_of_rep: np.ndarray,
    table: PairTable,
    part_of: tuple[np.ndarray, np.ndarray],
    skipped: dict[str, np.ndarray] | None = None,
) -> Outcome:
    """``leader_of_rep``: the copy-set leader of each representative row (itself elsewhere). ``part_of``: (rows,
    fields) where a row was found inside a field (a window or a region of it). ``skipped`` names rows not compared
    by content, by reason (their decision says so)."""
    part_rows, part_fields = part_of
    frame = parts.frame
    n = len(frame)
    ids = frame["sample_id"].to_numpy(object)
    copy_set = leader_of_rep[parts.rep]
    set_size = np.bincount(copy_set, minlength=n)
    is_field = parts.is_field

    # keeper per copy set: best-ranked training row
    order = np.lexsort((parts.rank, copy_set))
    trainable = order[~is_field[order]]
    first = np.ones(len(trainable), bool)
    first[1:] = copy_set[trainable][1:] != copy_set[trainable][:-1]
    best = np.full(n, -1, np.int64)
    best[copy_set[trainable[first]]] = trainable[first]
    keeper = best[copy_set]

    # links beyond copies
    a_links, b_links, kinds = [np.arange(n)], [copy_set], [np.where(set_size[copy_set] > 1, "copy", "")]
    leaders = leader_of_rep == np.arange(n)
    pairs = table.pairs()
    over = (
        (table.relation == OVERLAP) & leaders[pairs[:, 0]] & leaders[pairs[:, 1]] if len(pairs) else np.zeros(0, bool)
    )
    a_links.append(pairs[over, 0])
    b_links.append(pairs[over, 1])
    kinds.append(np.full(int(over.sum()), "overlap", dtype=object))
    a_links.append(part_rows)
    b_links.append(part_fields)
    kinds.append(np.full(len(part_rows), "part", dtype=object))
    # a field is linked when dedup found something about it: copies, parts, overlapping views
    linked_field = np.zeros(n, bool)
    linked_field[part_fields] = True
    linked_field[is_field & (set_size[copy_set] > 1)] = True
    linked_field[pairs[over].reshape(-1)] = linked_field[pairs[over].reshape(-1)] | is_field[pairs[over].reshape(-1)]
    position = pd.Index(ids)
    parent = position.get_indexer(frame["parent_id"].to_numpy(object))
    crops = np.flatnonzero((parent >= 0) & ~is_field)
    crops = crops[linked_field[parent[crops]]]
    a_links.append(crops)
    b_links.append(parent[crops])
    kinds.append(np.full(len(crops), "crop", dtype=object))

    a, b = np.concatenate(a_links), np.concatenate(b_links)
    component = components(n, a, b) if n else np.zeros(0, np.int64)
    size = np.bincount(component, minlength=n) if n else np.zeros(0, np.int64)
    member = size[component] > 1
    cluster = np.full(n, -1, np.int64)
    if member.any():
        _, first = np.unique(component[member], return_index=True)
        roots = component[member][np.sort(first)]
        renumber = np.full(n, -1, np.int64)
        renumber[roots] = np.arange(len(roots))
        cluster[member] = renumber[component[member]]

    # how each row joined, and which field it derives from
    linked_by = np.full(n, None, dtype=object)
    linked_by[set_size[copy_set] > 1] = "copy"
    exact = parts.rep != np.arange(n)
    linked_by[exact] = "exact"
    derived = np.full(n, None, dtype=object)
    field_of_set = np.full(n, -1, np.int64)
    field_rows = np.flatnonzero(is_field)
    field_of_set[copy_set[field_rows]] = field_rows
    in_field_set = (field_of_set[copy_set] >= 0) & ~is_field
    derived[in_field_set] = ids[field_of_set[copy_set[in_field_set]]]
    derived[crops] = ids[parent[crops]]
    linked_by[crops] = np.where(linked_by[crops] == None, "crop", linked_by[crops])  # noqa: E711
    if len(part_rows):
        derived[part_rows] = ids[part_fields]
        linked_by[part_rows] = np.where(linked_by[part_rows] == None, "part", linked_by[part_rows])  # noqa: E711
    over_rows = pairs[over].reshape(-1)
    linked_by[over_rows] = np.where(linked_by[over_rows] == None, "overlap", linked_by[over_rows])  # noqa: E711

    # keep / decision
    keep = np.full(n, True, dtype=object)
    decision = np.full(n, "unique", dtype=object)
    in_cluster = cluster >= 0
    decision[in_cluster] = "keep: linked (same field or scene)"
    sets = set_size[copy_set] > 1
    kept = sets & (keeper == np.arange(n))
    decision[kept] = "keep: cluster representative"
    dropped = sets & (keeper != np.arange(n)) & (keeper >= 0) & ~is_field
    keep[dropped] = False
    decision[dropped] = ["drop: duplicate of " + ids[k] for k in keeper[dropped]]
    for reason, rows in (skipped or {}).items():
        alone = rows[~in_cluster[rows]]
        decision[alone] = f"unique: {reason}"
    keep[is_field] = None
    decision[is_field] = FIELD_DECISION
    return Outcome(cluster, copy_set, keeper, keep, decision, derived, linked_by)
