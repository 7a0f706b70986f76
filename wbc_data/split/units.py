"""Leak units: the sets of rows that must land in the same split, or information leaks from train into test.

Rows are linked when they share a field image (``parent_id``: crops of one smear photo), a group (``group_id``:
what the source says belongs together), a patient (``patient_id``, within one source; ``by="patient"``) or a
duplicate cluster (``dup_cluster`` from ``wbc-data dedup``: the same cell re-uploaded elsewhere). A unit is a
connected component of those links, so chains (a patient's field whose crop was re-uploaded by another source)
are followed to the end.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

BY_CHOICES = ("patient", "group")


def link_keys(frame: pd.DataFrame, by: str) -> list[pd.Series]:
    """One key per link kind, null where the row has none; rows with equal non-null keys are linked."""
    if by not in BY_CHOICES:
        raise ValueError(f"by must be one of {BY_CHOICES}, got {by!r}")
    keys = []
    for column in ("parent_id", "group_id"):
        if column in frame.columns:
            keys.append(frame[column].astype(object))
    if by == "patient" and "patient_id" in frame.columns:
        patient = frame["patient_id"].astype(object)
        keys.append(frame["source"].astype(str).where(patient.notna(), None) + ":" + patient.where(patient.notna(), ""))
    if "dup_cluster" in frame.columns:
        cluster = frame["dup_cluster"]
        keys.append(cluster.astype("string").where(cluster.notna(), None).astype(object))
    return keys


def leak_units(frame: pd.DataFrame, by: str = "patient") -> np.ndarray:
    """Unit number per row (0..k-1, numbered in row order): rows in one unit must share a split."""
    n = len(frame)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    rows, nodes = [], []
    offset = n
    for key in link_keys(frame, by):
        present = key.notna().to_numpy()
        codes, uniques = pd.factorize(key[present].astype(str))
        rows.append(np.flatnonzero(present))
        nodes.append(codes + offset)
        offset += len(uniques)
    if rows:
        a, b = np.concatenate(rows), np.concatenate(nodes)
    else:
        a = b = np.zeros(0, dtype=np.int64)
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(offset, offset))
    _, component = connected_components(graph, directed=False)
    _, first, inverse = np.unique(component[:n], return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))  # renumber by first row so numbers are stable
    return order[inverse].astype(np.int64)


def straddling_units(units: np.ndarray, splits: np.ndarray) -> np.ndarray:
    """Units whose rows carry more than one split (should be none); rows with no split are ignored."""
    frame = pd.DataFrame({"unit": units, "split": splits}).dropna()
    counts = frame.groupby("unit")["split"].nunique()
    return counts.index[counts > 1].to_numpy()
