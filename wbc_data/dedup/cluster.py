"""Group pairs into clusters (connected components): copies of copies end up together."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


def clusters(n: int, pairs: pd.DataFrame) -> np.ndarray:
    """Cluster id per row (0..k-1, numbered by first row), or -1 for rows with no duplicate."""
    labels = np.full(n, -1, dtype=np.int64)
    if pairs.empty:
        return labels
    a, b = pairs["a"].to_numpy(np.int64), pairs["b"].to_numpy(np.int64)
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    sizes = np.bincount(comp)
    member = sizes[comp] > 1
    # renumber clusters in order of their first row so ids are stable across runs
    _, first_seen = np.unique(comp[member], return_index=True)
    order = np.argsort(np.flatnonzero(member)[first_seen])
    remap = np.full(comp.max() + 1, -1, dtype=np.int64)
    remap[np.unique(comp[member])[order]] = np.arange(len(order))
    labels[member] = remap[comp[member]]
    return labels
