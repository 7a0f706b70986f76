"""The numba Hamming indexes return exactly the numpy brute force's pairs, on random, clustered and weight-32 hashes."""

from __future__ import annotations

import numpy as np
import pytest

from wbc_data.dedup import kernels
from wbc_data.dedup.index import (
    BruteForceIndex,
    Matches,
    NumbaBruteForceIndex,
    NumbaMultiIndexHash,
    build_index,
    chunk_radii,
)

RADII = list(range(11))


def uniform(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)


def weight32(rng: np.random.Generator, n: int) -> np.ndarray:
    """Hashes with exactly 32 set bits, like imagehash's median-thresholded pHash (all distances are even)."""
    bits = np.zeros((n, 64), dtype=np.uint8)
    bits[:, :32] = 1
    bits = rng.permuted(bits, axis=1)
    return np.packbits(bits, axis=1).view(">u8").reshape(-1).astype(np.uint64)


def flip(rng: np.random.Generator, hashes: np.ndarray, max_bits: int) -> np.ndarray:
    """Each hash with 0..max_bits distinct random bits flipped."""
    out = hashes.copy()
    for i, k in enumerate(rng.integers(0, max_bits + 1, len(hashes))):
        for b in rng.choice(64, size=k, replace=False):
            out[i] ^= np.uint64(1) << np.uint64(b)
    return out


def clustered(rng: np.random.Generator, n: int) -> np.ndarray:
    """Real-like: a few weight-32 centres (a centred cell on a plain background) with many close members each."""
    centres = weight32(rng, 12)
    return flip(rng, centres[rng.integers(0, len(centres), n)], 7)


DATASETS = {"uniform": uniform, "weight32": weight32, "clustered": clustered}


def dataset(name: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, queries): 8 queries per hash, near copies of it and of others, as the dihedral search makes them."""
    rng = np.random.default_rng(seed)
    hashes = DATASETS[name](rng, 600)
    hashes = np.concatenate([hashes, flip(rng, hashes[:200], 4)])  # planted near pairs for the sparse sets
    queries = np.concatenate([flip(rng, hashes, 6), hashes, DATASETS[name](rng, 6 * len(hashes))])
    return hashes, queries


def assert_same(got: Matches, expected: Matches) -> None:
    """Same pairs in the same order (query, then item) with the same distances and dtypes."""
    for field in ("query", "item", "distance"):
        a, b = getattr(got, field), getattr(expected, field)
        assert a.dtype == b.dtype, field
        np.testing.assert_array_equal(a, b, err_msg=field)


def test_popcount_matches_numpy():
    rng = np.random.default_rng(1)
    x = np.concatenate([uniform(rng, 1000), np.array([0, 1, 2**63, 2**64 - 1], dtype=np.uint64)])
    np.testing.assert_array_equal(kernels.popcount_array(x), np.bitwise_count(x).astype(np.int8))


@pytest.mark.parametrize("m", [1, 2, 3, 4, 5, 8])
@pytest.mark.parametrize("radius", RADII)
def test_chunk_radii_are_a_pigeonhole_cover(m, radius):
    radii = chunk_radii(radius, m)
    assert len(radii) == m and min(radii) >= -1
    assert sum(s + 1 for s in radii) == radius + 1  # every chunk beyond its radius => distance > radius


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_numba_indexes_equal_numpy_brute_force(name):
    hashes, queries = dataset(name)
    for radius in RADII:
        expected = BruteForceIndex(hashes).search(queries, radius)
        assert len(expected.query) >= len(hashes)  # at least every hash finds itself
        assert_same(NumbaBruteForceIndex(hashes).search(queries, radius), expected)
        for m in (3, 4, 6):
            for swap in (True, False):  # True indexes the 8x larger query set instead (the dihedral case)
                index = NumbaMultiIndexHash(hashes, m=m, swap=swap)
                assert_same(index.search(queries, radius), expected)
        assert_same(build_index(hashes, radius, len(queries)).search(queries, radius), expected)


def test_many_matches_per_query_overflow_the_slots():
    """One tight cluster: every query matches many items, more than the single pass's slots, all still found."""
    rng = np.random.default_rng(2)
    hashes = flip(rng, weight32(rng, 1).repeat(300), 3)
    for radius in (2, 6):
        expected = BruteForceIndex(hashes).search(hashes, radius)
        assert np.bincount(expected.query).max() > kernels.SLOTS
        for m in (3, 4):
            assert_same(NumbaMultiIndexHash(hashes, m=m, swap=False).search(hashes, radius), expected)


def test_queries_equal_hashes_report_self_pairs():
    """The callers drop self-pairs themselves (pairs.py): the index must report each hash against itself, at 0."""
    hashes = clustered(np.random.default_rng(3), 500)
    for index in (NumbaBruteForceIndex(hashes), NumbaMultiIndexHash(hashes, m=4)):
        found = index.search(hashes, 8)
        self_pairs = found.query == found.item
        np.testing.assert_array_equal(found.query[self_pairs], np.arange(len(hashes)))
        assert (found.distance[self_pairs] == 0).all()
        assert_same(found, BruteForceIndex(hashes).search(hashes, 8))


def test_duplicate_hashes_are_all_reported():
    hashes = np.array([5, 5, 5, 7, 2**64 - 1], dtype=np.uint64)
    expected = BruteForceIndex(hashes).search(hashes, 1)
    assert len(expected.query) == 4 * 4 + 1  # 5 and 7 differ by one bit
    for index in (NumbaBruteForceIndex(hashes), NumbaMultiIndexHash(hashes, m=3), NumbaMultiIndexHash(hashes, m=5)):
        assert_same(index.search(hashes, 1), expected)


@pytest.mark.parametrize("n_hashes,n_queries", [(0, 5), (5, 0), (0, 0)])
def test_empty_inputs(n_hashes, n_queries):
    rng = np.random.default_rng(4)
    hashes, queries = uniform(rng, n_hashes), uniform(rng, n_queries)
    expected = BruteForceIndex(hashes).search(queries, 8)
    assert len(expected.query) == 0
    indexes = [NumbaBruteForceIndex(hashes), NumbaMultiIndexHash(hashes, m=3), build_index(hashes, 8, n_queries)]
    for index in indexes:
        assert_same(index.search(queries, 8), Matches.empty())


def test_candidates_cover_the_pairs():
    """The diagnostic counts distinct candidates: at least the pairs, at most every (query, item) combination."""
    hashes, queries = dataset("clustered", seed=5)
    index = NumbaMultiIndexHash(hashes, m=4, swap=False)
    pairs = len(BruteForceIndex(hashes).search(queries, 8).query)
    assert pairs <= index.candidates(queries, 8) <= len(queries) * len(hashes)


def test_build_index_kinds():
    hashes = uniform(np.random.default_rng(6), 100)
    assert isinstance(build_index(hashes, 8, 100, kind="brute"), NumbaBruteForceIndex)
    assert isinstance(build_index(hashes, 8, 100, kind="mih"), NumbaMultiIndexHash)
    assert isinstance(build_index(hashes, 8, 100, kind="numpy-brute"), BruteForceIndex)
