"""Find and register candidate relations between representative rows (and field windows).

Two candidate sources, then one verifier:
- the hash search of issue 4 (dihedral pHashes and zoomed crop hashes of the fill-aware thumbnails): cheap and
  exact for unrotated copies, flips, 90-degree turns and small crops;
- the ``k`` nearest bag-of-words neighbours of each row's image and mirror image: copies at any angle, shift or
  scale;
- for rows that may be part of a field image: the nearest field windows.
Candidate pairs are registered (:mod:`register`, on all cores through :mod:`confirm`; which ones: :mod:`spanning`);
what a registered pair means (copy, overlapping view, part of a field) is decided from its results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from wbc_data.core.progress import Progress, or_null
from wbc_data.dedup.confirm import RESULT_FIELDS, column, confirm
from wbc_data.dedup.dihedral import dihedral_phashes
from wbc_data.dedup.extract import window_key
from wbc_data.dedup.linkage import MIN_TEXTURE
from wbc_data.dedup.neighbours import candidate_pairs, cross_pairs, unique_pairs
from wbc_data.dedup.paircache import PairCache, cached_register
from wbc_data.dedup.pairs import hash_candidates
from wbc_data.dedup.register import MIN_OVERLAP
from wbc_data.dedup.spectra import RowSpectra
from wbc_data.dedup.store import SignatureStore
from wbc_data.dedup.windows import grid_windows


@dataclass
class SignatureView:
    """The signatures of one run's rows (positions 0..n-1), read from the store; canvases on demand."""

    store: SignatureStore
    keys: np.ndarray  # object: store key per row ("" where the row has no signature)
    has: np.ndarray  # bool: the row has a signature
    words: np.ndarray  # (n, 2, dim) float32 (zeros without)
    thumbs: np.ndarray  # (n, 32, 32) uint8: fill-aware where a signature exists, else the stored thumbnail
    blank: np.ndarray  # bool
    fill: np.ndarray  # float32
    use_cache: bool = True  # registration results of earlier runs (paircache)
    counts: dict[str, int] = field(default_factory=dict)  # pairs registered now / taken from the cache

    @property
    def searchable(self) -> np.ndarray:
        """Rows compared by content: a signature, not blank."""
        return self.has & ~self.blank

    @property
    def has_words(self) -> np.ndarray:
        return self.searchable & (np.abs(self.words[:, 0]).sum(axis=1) > 0)

    def canvases(self, rows: np.ndarray) -> np.ndarray:
        return self.store.gather("canvas", list(self.keys[rows]))

    def register(self, pairs: np.ndarray, keys: np.ndarray, register: Callable[[np.ndarray], np.ndarray],
                 engine: str) -> np.ndarray:  # fmt: skip
        """``register(pairs)``, except for pairs of images (``keys``) already in the registration cache."""
        cache = PairCache.beside(self.store, engine) if self.store is not None and self.use_cache else None
        results, fresh = cached_register(cache, keys, pairs, register)
        self.counts["registered"] = self.counts.get("registered", 0) + fresh
        self.counts["registration cached"] = self.counts.get("registration cached", 0) + len(pairs) - fresh
        return results

    @classmethod
    def load(cls, store: SignatureStore, keys: np.ndarray, thumbs: np.ndarray, rows: np.ndarray) -> SignatureView:
        """For ``rows`` (the representatives) whose key is in the store; other rows get stored thumbnails only."""
        n = len(keys)
        index = store.index().index
        has = np.zeros(n, bool)
        has[rows] = [isinstance(keys[r], str) and keys[r] in index for r in rows]
        present = np.flatnonzero(has)
        names = list(keys[present])
        dim = 0
        words = None
        if len(present):
            found = store.gather("words", names).astype(np.float32)
            dim = found.shape[-1]
            words = np.zeros((n, 2, dim), np.float32)
            words[present] = found
        thumbs = thumbs.copy()
        blank = np.zeros(n, bool)
        fill = np.zeros(n, np.float32)
        if len(present):
            thumbs[present] = store.gather("thumb", names)
            blank[present] = store.gather("blank", names)
            fill[present] = store.gather("fill", names)
        out_keys = np.where(has, keys, "").astype(object)
        return cls(store, out_keys, has, words if words is not None else np.zeros((n, 2, 1), np.float32), thumbs,
                   blank, fill)  # fmt: skip


@dataclass
class Candidates:
    pairs: np.ndarray  # (p, 2) rows, a < b
    hash_pairs: int
    word_pairs: int
    capped: int  # hash matches the per-query cap left out


def find_candidates(
    view: SignatureView,
    threshold: int,
    crop_threshold: int | None,
    k: int,
    index_kind: str = "auto",
    progress: Progress | None = None,
    allowed: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Candidates:
    """Candidate pairs among searchable rows: hash search and word neighbours (``allowed`` filters pairs)."""
    progress = or_null(progress)
    rows = np.flatnonzero(view.searchable)
    parts = []
    capped = 0
    hash_count = 0
    if len(rows) >= 2:
        thumbs = view.thumbs[rows]
        found, capped = hash_candidates(dihedral_phashes(thumbs), thumbs, threshold, crop_threshold, index_kind,
                                        progress=progress)  # fmt: skip
        if len(found):
            parts.append(np.stack([rows[found["a"].to_numpy(np.int64)], rows[found["b"].to_numpy(np.int64)]], 1))
            hash_count = len(found)
    progress.phase("word neighbours")
    word_rows = np.flatnonzero(view.has_words)
    word = candidate_pairs(view.words[word_rows], k) if len(word_rows) >= 2 else np.zeros((0, 2), np.int64)
    if len(word):
        parts.append(word_rows[word])
    pairs = np.concatenate(parts) if parts else np.zeros((0, 2), np.int64)
    pairs = unique_pairs(pairs[:, 0], pairs[:, 1]) if len(pairs) else pairs
    if allowed is not None and len(pairs):
        pairs = pairs[allowed(pairs)]
    return Candidates(pairs, hash_count, len(word), capped)


def register_pairs(
    view: SignatureView,
    pairs: np.ndarray,
    workers: int,
    progress: Progress | None = None,
    what: str = "verify",
    engine: str = "batched",
    torch_device: str | None = None,
    executor: Any = None,
    spectra: RowSpectra | None = None,
) -> np.ndarray:
    """Registration results (``confirm.RESULT_FIELDS``) for row pairs; pairs of images registered by an earlier
    run come from the workspace's registration cache (:mod:`paircache`); pairs registered now are a phase named
    ``what``. ``spectra``: the run's stored log-polar spectra of the view's rows (:mod:`spectra`)."""
    progress = or_null(progress)

    def fresh(p: np.ndarray) -> np.ndarray:
        if len(p):  # none when every pair came from the cache
            progress.phase(what, len(p))
        return confirm(p, view.canvases, workers, progress, engine, torch_device, executor, spectra)

    return view.register(pairs, view.keys, fresh, engine)


# --------------------------------------------------------------------------- field windows


@dataclass
class Windows:
    field: np.ndarray  # row of the field each window belongs to
    box: np.ndarray  # (m, 4) int (left, top, right, bottom) in the field's pixels
    keys: list[str]
    words: np.ndarray  # (m, dim) float32 image embeddings


def field_windows(view: SignatureView, fields: np.ndarray, width: np.ndarray, height: np.ndarray) -> Windows:
    """The stored windows of the field rows (those whose signature and windows were computed)."""
    index = view.store.index().index
    rows, boxes, keys = [], [], []
    for r in fields:
        if not view.has[r] or view.blank[r]:
            continue
        for box in grid_windows(int(width[r]), int(height[r])):
            key = window_key(view.keys[r], tuple(int(v) for v in box))  # type: ignore[arg-type]
            if key in index:
                rows.append(r)
                boxes.append(box)
                keys.append(key)
    words = view.store.gather("words", keys)[:, 0].astype(np.float32) if keys else np.zeros((0, 1), np.float32)
    return Windows(np.array(rows, np.int64), np.array(boxes, np.int64).reshape(-1, 4), keys, words)


@dataclass
class Parts:
    row: np.ndarray  # the row found inside a field
    field: np.ndarray  # that field's row
    box: np.ndarray  # (p, 4) the window it was found in
    results: np.ndarray  # registration results (row onto window)

    @classmethod
    def empty(cls) -> Parts:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4), np.int64),
                   np.zeros((0, len(RESULT_FIELDS)), np.float32))  # fmt: skip


def find_parts(
    view: SignatureView,
    windows: Windows,
    queries: np.ndarray,
    k: int,
    min_correlation: float,
    workers: int,
    excluded: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    progress: Progress | None = None,
    engine: str = "batched",
    torch_device: str | None = None,
    executor: Any = None,
) -> Parts:
    """Rows (``queries``) that are a part of a field: registered onto one of its windows. ``excluded(rows,
    fields)`` drops known relations (a crop and its own parent field)."""
    empty = Parts.empty()
    queries = queries[view.has_words[queries]]
    if not len(windows.keys) or not len(queries):
        return empty
    found = cross_pairs(view.words[queries], windows.words, k)
    rows, wins = queries[found[:, 0]], found[:, 1]
    keep = windows.field[wins] != rows
    if excluded is not None:
        keep &= ~excluded(rows, windows.field[wins])
    rows, wins = rows[keep], wins[keep]
    if not len(rows):
        return empty
    # register in one node space: rows first, then windows
    n = len(view.keys)
    keys = np.concatenate([view.keys, np.array(windows.keys, dtype=object)])

    def canvases(nodes: np.ndarray) -> np.ndarray:
        return view.store.gather("canvas", list(keys[nodes]))

    progress = or_null(progress)

    def fresh(p: np.ndarray) -> np.ndarray:
        if len(p):  # none when every pair came from the cache
            progress.phase("field windows", len(p))
        return confirm(p, canvases, workers, progress, engine, torch_device, executor)

    results = view.register(np.stack([rows, wins + n], axis=1), keys, fresh, engine)
    corr = column(results, "correlation")
    good = (corr >= min_correlation) & (column(results, "texture") >= MIN_TEXTURE)
    good &= column(results, "overlap") >= MIN_OVERLAP
    rows, wins, results = rows[good], wins[good], results[good]
    # the best window per (row, field)
    field = windows.field[wins]
    order = np.lexsort((-column(results, "correlation"), field, rows))
    first = np.ones(len(order), bool)
    first[1:] = (rows[order][1:] != rows[order][:-1]) | (field[order][1:] != field[order][:-1])
    pick = order[first]
    return Parts(rows[pick], field[pick], windows.box[wins[pick]], results[pick])
