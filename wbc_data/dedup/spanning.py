"""Register the candidate pairs that can change the copy sets, not every one.

An image with 30 augmented copies gives about 465 candidate pairs among its 31 rows, and every one of them is a
full registration (copies pass the cheap log-polar test): on issue 21's dense case those were most of the 138,684
candidates and most of the verify time. The copy sets (:mod:`linkage`) need far less: a path of verified copies
from each row to its set's leader, then the row's own registration against that leader. So:

1. a maximum spanning forest of the candidate graph (Kruskal, by bag-of-words similarity) is registered first;
2. of the other candidates, only those whose rows are not yet linked by verified copies are registered;
3. the rest are *deferred*: :func:`linkage.copy_sets` registers a deferred pair after all as soon as its two rows
   end up in different copy sets (where that pair could have changed the outcome), and repeats until no deferred
   pair spans two sets.

So every candidate pair whose rows end in different copy sets is registered, as before; what is skipped are pairs
inside one set, whose rows were already verified against the set's leader. ``tests/test_dedup_fast.py`` checks
that the clusters equal those of registering every candidate on real copies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numba as nb
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from wbc_data.dedup.linkage import COPY, PairTable

RegisterFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass
class Verified:
    table: PairTable  # the registered candidate pairs
    deferred: np.ndarray  # (q, 2) candidate pairs not registered: their rows were already linked by copies
    rounds: int


def similarity(words: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Bag-of-words cosine of each pair's images, the better of b against a as is and a's mirror image."""
    a, b = words[pairs[:, 0]], words[pairs[:, 1], 0]
    return np.maximum(np.einsum("pd,pd->p", a[:, 0], b), np.einsum("pd,pd->p", a[:, 1], b))


@nb.njit(cache=True)
def _find(parent: np.ndarray, x: int) -> int:
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


@nb.njit(cache=True)
def _forest(n: int, pairs: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Kruskal: the pairs (visited in ``order``) that join two trees of the forest built so far."""
    parent = np.arange(n)
    chosen = np.zeros(len(pairs), np.bool_)
    for k in order:
        ra, rb = _find(parent, pairs[k, 0]), _find(parent, pairs[k, 1])
        if ra != rb:
            parent[ra] = rb
            chosen[k] = True
    return chosen


def spanning_forest(n: int, pairs: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Mask of the pairs of a maximum spanning forest of the graph (ties: the first pair)."""
    order = np.argsort(-weight, kind="stable")
    return _forest(n, np.ascontiguousarray(pairs, np.int64), order.astype(np.int64))


def linked(n: int, pairs: np.ndarray) -> np.ndarray:
    """Component of every row over ``pairs`` (connected components)."""
    graph = coo_matrix((np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def verify_candidates(n: int, pairs: np.ndarray, weight: np.ndarray, register: RegisterFn) -> Verified:
    """Register the spanning forest of the candidates, then the candidates its verified copies leave unlinked."""
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    if not len(pairs):
        return Verified(PairTable.build(n, pairs, np.zeros(0, np.int8), np.zeros((0, 8), np.float32)), pairs, 0)
    first = spanning_forest(n, pairs, weight)
    relation, results = register(pairs[first])
    table = PairTable.build(n, pairs[first], relation, results)
    rest = pairs[~first]
    component = linked(n, pairs[first][relation == COPY])
    apart = component[rest[:, 0]] != component[rest[:, 1]]
    if apart.any():
        table = table.add(rest[apart], *register(rest[apart]))
    return Verified(table, rest[~apart], 2 if apart.any() else 1)
