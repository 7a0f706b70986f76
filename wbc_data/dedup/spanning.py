"""Register the candidate pairs that can change the copy sets, not every one.

An image with 30 augmented copies gives about 465 candidate pairs among its 31 rows, and every one of them is a
full registration (copies pass the cheap log-polar test): on issue 21's dense case 41,812 of the 138,684 candidates
were such pairs. The copy sets (:mod:`linkage`) need far less: a path of verified copies from each row to its set's
leader, then the row's own registration against that leader. So:

1. a maximum spanning forest of the candidate graph (Kruskal, by bag-of-words similarity) is registered first;
2. of the other candidates, only those whose rows are not yet linked by verified copies are registered;
3. the rest are *deferred*: :func:`linkage.copy_sets` registers a deferred pair after all as soon as its two rows
   end up in different copy sets (where that pair could have changed the outcome), and repeats until no deferred
   pair spans two sets.

Every candidate pair whose rows end in different copy sets is therefore registered, as before; skipped are pairs
inside one set, whose rows were each registered against the set's leader. The search for a leader follows the
registered copies, so a row that is a verified copy of two leaders that are not copies of each other may reach the
other one first and join it (its choice depended on the search order before too). On the real cases measured
(issue 21's dense case, the PBC half, the tests' augmented real cells and fields) the clusters are identical to
registering every candidate (``DedupOptions(all_pairs=True)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np

from wbc_data.dedup.confirm import RESULT_FIELDS
from wbc_data.dedup.linkage import COPY, PairTable, RegisterFn
from wbc_data.dedup.outcome import components


@dataclass
class Verified:
    table: PairTable  # the registered candidate pairs
    deferred: np.ndarray  # (q, 2) candidate pairs not registered: their rows were already linked by copies


SIMILARITY_BLOCK = 1 << 16
"""Pairs whose words are gathered at a time (about 100 MB): a million rows have millions of candidates."""


def similarity(words: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Bag-of-words cosine of each pair's images, the better of b against a as is and a's mirror image."""
    out = np.empty(len(pairs), np.float32)
    for start in range(0, len(pairs), SIMILARITY_BLOCK):
        part = pairs[start : start + SIMILARITY_BLOCK]
        a, b = words[part[:, 0]], words[part[:, 1], 0]
        out[start : start + len(part)] = np.maximum(np.einsum("pd,pd->p", a[:, 0], b),
                                                    np.einsum("pd,pd->p", a[:, 1], b))  # fmt: skip
    return out


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


def verify_candidates(n: int, pairs: np.ndarray, weight: np.ndarray, register_forest: RegisterFn,
                      register_rest: RegisterFn) -> Verified:  # fmt: skip
    """Register the spanning forest of the candidates (``register_forest``), then the candidates its verified copies
    leave unlinked (``register_rest``); the others are deferred."""
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    if not len(pairs):
        empty = np.zeros((0, len(RESULT_FIELDS)), np.float32)
        return Verified(PairTable.build(n, pairs, np.zeros(0, np.int8), empty), pairs)
    first = spanning_forest(n, pairs, weight)
    forest, rest = pairs[first], pairs[~first]
    relation, results = register_forest(forest)
    table = PairTable.build(n, forest, relation, results)
    copies = forest[relation == COPY]
    component = components(n, copies[:, 0], copies[:, 1])
    apart = component[rest[:, 0]] != component[rest[:, 1]]
    if apart.any():
        table = table.add(rest[apart], *register_rest(rest[apart]))
    return Verified(table, rest[~apart])
