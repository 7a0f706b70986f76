"""The registration cache: each registered pair of distinct images, computed once per workspace.

A warm re-run of ``wbc-data dedup`` (after adding a source, changing the keep policy or a label) finds the same
candidate pairs among the rows it already saw; their registration results do not depend on anything but the two
images' pixels, so they are kept here, keyed by the ordered pair of the images' signature keys (pixel hashes, or a
field window's key), and only pairs never registered before are registered. The cache lives beside the signature
cache (``<workspace>/cache/dedup-pairs-<VERSION>-<engine>/``, so a changed signature, registration or engine never
reads old results) in shards of ``.npy`` arrays written to a temporary name and renamed when complete: Ctrl-C or a
kill loses at most the pairs of the call being registered, never the cache.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import xxhash

from wbc_data.dedup.confirm import RESULT_FIELDS
from wbc_data.dedup.store import VERSION, SignatureStore

REGISTRATION_VERSION = "r2"
"""Changes whenever registration or its thresholds-free results change (never for a threshold: the decisions are
made from the cached results each run)."""


def pair_codes(keys_a: np.ndarray, keys_b: np.ndarray) -> np.ndarray:
    """(p, 2) uint64: a 128-bit hash of each ordered pair of keys (registration of a onto b is not that of b onto a)."""
    out = np.empty((len(keys_a), 2), np.uint64)
    for k, (a, b) in enumerate(zip(keys_a, keys_b, strict=True)):
        digest = xxhash.xxh3_128_intdigest(f"{a}>{b}".encode())
        out[k, 0] = digest >> 64
        out[k, 1] = digest & 0xFFFFFFFFFFFFFFFF
    return out


class PairCache:
    """Results of one verifier: ``width`` float32 columns per pair (registration's ``RESULT_FIELDS`` by default)."""

    def __init__(self, directory: Path, width: int = len(RESULT_FIELDS)) -> None:
        self.directory = Path(directory)
        self.width = width
        self._codes: np.ndarray | None = None
        self._results: np.ndarray | None = None

    @classmethod
    def beside(cls, store: SignatureStore, engine: str, width: int = len(RESULT_FIELDS)) -> PairCache:
        return cls(store.directory.parent / f"dedup-pairs-{VERSION}-{REGISTRATION_VERSION}-{engine}", width)

    def _load(self) -> tuple[np.ndarray, np.ndarray]:
        if self._codes is None or self._results is None:
            codes, results = [np.zeros((0, 2), np.uint64)], [np.zeros((0, self.width), np.float32)]
            if self.directory.is_dir():
                for shard in sorted(p for p in self.directory.iterdir() if p.name.startswith("shard-")):
                    try:
                        c = np.load(shard / "codes.npy", allow_pickle=False)
                        r = np.load(shard / "results.npy", allow_pickle=False)
                    except (OSError, ValueError):
                        continue  # a damaged shard is recomputed, never trusted
                    if c.shape == (len(r), 2) and r.shape[1:] == (self.width,):
                        codes.append(c.astype(np.uint64))
                        results.append(r.astype(np.float32))
            all_codes, all_results = np.concatenate(codes), np.concatenate(results)
            order = np.lexsort((all_codes[:, 1], all_codes[:, 0]))
            self._codes, self._results = all_codes[order], all_results[order]
        return self._codes, self._results

    def __len__(self) -> int:
        return len(self._load()[0])

    def lookup(self, codes: np.ndarray) -> np.ndarray:
        """Position of each code in the cache's results, -1 where it was never registered."""
        have, _ = self._load()
        if not len(have) or not len(codes):
            return np.full(len(codes), -1, np.int64)
        k = np.searchsorted(have[:, 0], codes[:, 0])
        out = np.full(len(codes), -1, np.int64)
        # equal high halves are consecutive: check the few positions from k on (collisions of 64 bits are rare)
        for step in range(4):
            at = np.minimum(k + step, len(have) - 1)
            hit = (out < 0) & (have[at, 0] == codes[:, 0]) & (have[at, 1] == codes[:, 1])
            out[hit] = at[hit]
        return out

    def results(self, positions: np.ndarray) -> np.ndarray:
        return self._load()[1][positions]

    def add(self, codes: np.ndarray, results: np.ndarray) -> None:
        if not len(codes):
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            np.save(tmp / "codes.npy", np.asarray(codes, np.uint64), allow_pickle=False)
            np.save(tmp / "results.npy", np.asarray(results, np.float32), allow_pickle=False)
            os.replace(tmp, self.directory / f"shard-{uuid.uuid4().hex}")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._codes = self._results = None

    def clear_partial(self) -> None:
        if self.directory.is_dir():
            for path in self.directory.glob(".tmp-*"):
                shutil.rmtree(path, ignore_errors=True)


def cached_register(
    cache: PairCache | None, keys: np.ndarray, pairs: np.ndarray, register: Callable[[np.ndarray], np.ndarray]
) -> tuple[np.ndarray, int]:
    """Results for ``pairs`` (positions into ``keys``): from ``cache`` where known, the rest through ``register``
    (then added to the cache). Returns the results and the number of pairs registered now."""
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    if cache is None or not len(pairs):
        return register(pairs), len(pairs)
    cache.clear_partial()
    codes = pair_codes(keys[pairs[:, 0]], keys[pairs[:, 1]])
    found = cache.lookup(codes)
    out = np.empty((len(pairs), cache.width), np.float32)
    known = found >= 0
    out[known] = cache.results(found[known])
    missing = np.flatnonzero(~known)
    if len(missing):
        fresh = register(pairs[missing])
        out[missing] = fresh
        cache.add(codes[missing], fresh)
    return out, len(missing)
