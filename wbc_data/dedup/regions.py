"""Region-of-field copies: rows that show a zoomed, rotated, shifted or sheared region of a field image, found by
keypoints (:mod:`keypoints`) after the window registration of :mod:`relations` has had its turn.

1. Every field's SIFT keypoints, detected once and cached by pixel hash (``<workspace>/cache/
   dedup-keypoints-<VERSION>/``), go into one descriptor index (:mod:`fieldindex`).
2. Each row not yet linked to a field, and resembling some field window in bag-of-words space (``MIN_WORD_SCORE``:
   the cheap filter that spares most cells of cell-crop datasets), is detected at half resolution; its descriptors
   vote for fields, and the ``VOTE_FIELDS`` fields with most votes (at least ``MIN_VOTES``) are matched: an affine
   fitted by RANSAC links the row to the field when enough keypoints agree. The row's mirror image votes and is
   matched the same way, from the same keypoints (:func:`keypoints.mirrored`), so a flipped region is found too.

A workspace without fields pays nothing. Each row's outcome is cached against the set of fields it was searched in
(the registration cache of :mod:`paircache`, keyed by the row and a digest of the field keys): a re-run after adding
a source of cells only searches the new rows; adding fields searches every row again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import xxhash

from wbc_data.core.errors import Interrupted, UserError
from wbc_data.core.progress import Progress, or_null
from wbc_data.dedup.fieldindex import FieldIndex, KeypointStore
from wbc_data.dedup.keypoints import (
    KEYPOINT_FIELDS,
    NO_MATCH,
    ROW_SCALE,
    Keypoints,
    detect,
    linked,
    match,
    match_mirror,
    mirrored,
)
from wbc_data.dedup.neighbours import nearest
from wbc_data.dedup.paircache import PairCache, cached_register
from wbc_data.dedup.relations import SignatureView, Windows
from wbc_data.io.parallel import executor_map, pool_map
from wbc_data.io.pixels import RowOpener, RowRef

VERSION = "k6"
"""Changes whenever detection, voting or matching changes, so neither cached keypoints nor outcomes are reused."""

MIN_WORD_SCORE = 0.4
"""A row is searched only when some field window is at least this similar to it in bag-of-words space (cosine of
the tf-idf vectors). Of 600 regions of 200 real BCCD fields, 96% pass; of the PBC half's cells (none of which is a
region of a BCCD field), 49% do against all of BCCD (benchmarks/README.md, dedup)."""

VOTE_FIELDS = 2
MIN_VOTES = 6
"""The fields matched per row: the two with most descriptor votes, each with at least this many (an affine needs
``keypoints.MIN_INLIERS`` agreeing keypoints, which all vote for their field)."""

TASK_ROWS = 16
"""Rows per task handed to a cluster executor."""

OUTCOME = ("field", *KEYPOINT_FIELDS)
"""A row's cached outcome: the position of the best matched field among the sorted field keys (-1: none), then its
match."""


class RegionsInterrupted(Interrupted):
    """Ctrl-C while matching keypoints: cached field keypoints are kept, nothing else was written."""


@dataclass
class RegionMatches:
    row: np.ndarray  # the row found to be a region of a field
    field: np.ndarray  # that field's row
    results: np.ndarray  # (p, len(KEYPOINT_FIELDS)) float32

    @classmethod
    def empty(cls) -> RegionMatches:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, len(KEYPOINT_FIELDS)), np.float32))


def rows_to_search(view: SignatureView, windows: Windows, queries: np.ndarray) -> np.ndarray:
    """The ``queries`` whose nearest field window (image or mirror image) scores at least ``MIN_WORD_SCORE``."""
    queries = queries[view.has_words[queries]]
    if not len(queries) or not len(windows.keys):
        return queries[:0]
    best = np.zeros(len(queries), np.float32)
    for side in (0, 1):
        found, score = nearest(windows.words, view.words[queries, side], 1)
        best = np.maximum(best, np.where(found[:, 0] >= 0, score[:, 0], 0))
    return queries[best >= MIN_WORD_SCORE]


# --------------------------------------------------------------------------- workers


@dataclass(frozen=True)
class Task:
    ref: RowRef
    excluded: tuple[int, ...]  # field positions the row may not be linked to (the field its own source cut it from)


@dataclass(frozen=True)
class Fields:
    """What a worker needs of the fields: keys and references (in position order) and their descriptor index."""

    keys: tuple[str, ...]
    refs: tuple[RowRef, ...]
    index: FieldIndex | None = None


_LOADER: RowOpener | None = None
_STORE: KeypointStore | None = None
_FIELDS: Fields | None = None


def _init(loader: RowOpener, store: KeypointStore, fields: Fields | None = None) -> None:
    global _LOADER, _STORE, _FIELDS
    _LOADER, _STORE, _FIELDS = loader, store, fields
    _field_keypoints.cache_clear()
    import faiss

    faiss.omp_set_num_threads(1)  # one process per core already


def _open_keypoints(ref: RowRef, factor: float = 1.0) -> Keypoints:
    assert _LOADER is not None
    return detect(np.asarray(_LOADER.open(ref).convert("RGB")), factor)


@lru_cache(maxsize=1024)  # about 75 KB a field: a worker keeps a thousand fields (reading one costs 1 ms)
def _field_keypoints(position: int) -> Keypoints:
    """A field's keypoints: from the store, else detected and stored."""
    assert _STORE is not None and _FIELDS is not None
    key = _FIELDS.keys[position]
    found = _STORE.get(key)
    if found is None:
        found = _open_keypoints(_FIELDS.refs[position])
        _STORE.put(key, found)
    return found


def detect_field(position: int) -> int:
    """Make sure one field's keypoints are in the store (phase one); returns how many it has (0 when unreadable)."""
    try:
        return len(_field_keypoints(position))
    except UserError:
        return 0


def search_row(task: Task) -> np.ndarray:
    """The row's outcome (``OUTCOME``): its best field among the most voted, as it is or else as its mirror image,
    or -1 and no match."""
    assert _FIELDS is not None and _FIELDS.index is not None
    out = np.concatenate([[-1.0], NO_MATCH]).astype(np.float32)
    try:
        row = _open_keypoints(task.ref, ROW_SCALE)
    except UserError:
        return out
    for keypoints, matcher in ((row, match), (mirrored(row), match_mirror)):
        if out[0] >= 0:  # linked as it is: its mirror image is not searched (half the votes of a region-heavy set)
            break
        votes = _FIELDS.index.votes(keypoints)
        votes[list(task.excluded)] = 0
        best = np.argsort(-votes, kind="stable")[:VOTE_FIELDS]
        for position in best[votes[best] >= MIN_VOTES]:
            try:
                result = matcher(row, _field_keypoints(int(position)))
            except UserError:
                continue
            if linked(result[None])[0] and result[0] > out[1]:
                out = np.concatenate([[float(position)], result]).astype(np.float32)
    return out


def run_batch(loader: RowOpener, store: KeypointStore, fields: Fields, fn: Callable, items: list) -> list:
    """A batch of ``fn(item)``: an independent, picklable unit for a cluster executor (``DedupOptions.executor``)."""
    _init(loader, store, fields)
    return [fn(item) for item in items]


def _pooled(fn: Callable, items: list, loader: RowOpener, store: KeypointStore, fields: Fields, workers: int,
            executor: Any) -> Iterator[Any]:  # fmt: skip
    """``fn(item)`` for every item, in order, on every core (or on the executor)."""
    if executor is not None:
        yield from executor_map(executor, run_batch, (loader, store, fields, fn), items, TASK_ROWS)
        return
    yield from pool_map(fn, items, _init, (loader, store, fields), workers, opencv=True, keep_heap=True)


def _run(fn: Callable, items: list, what: str, loader: RowOpener, store: KeypointStore, fields: Fields,
         workers: int, progress: Progress, executor: Any) -> list:  # fmt: skip
    progress.phase(what, len(items))
    out: list = []
    try:
        for result in _pooled(fn, items, loader, store, fields, workers, executor):
            out.append(result)
            progress.advance(len(out), len(items))
    except KeyboardInterrupt:
        raise RegionsInterrupted(
            f"interrupted after {len(out):,} of {len(items):,} ({what}); field keypoints are cached, re-run to "
            "resume (the previous dedup results are untouched)"
        ) from None
    return out


def find_regions(
    view: SignatureView, windows: Windows, queries: np.ndarray, field_rows: np.ndarray, parent_field: np.ndarray,
    refs: Callable[[np.ndarray], list], loader: RowOpener, workers: int = 0, progress: Progress | None = None,
    executor: Any = None,
) -> RegionMatches:  # fmt: skip
    """Rows among ``queries`` that are a region of one of ``field_rows``; ``parent_field[r]`` is the field row that
    row ``r``'s own source cut it from (-1: none), never reported."""
    progress = or_null(progress)
    rows = rows_to_search(view, windows, queries)
    field_rows = field_rows[view.has[field_rows] & ~view.blank[field_rows]]
    if not len(rows) or not len(field_rows):
        return RegionMatches.empty()
    field_rows = field_rows[np.argsort(view.keys[field_rows].astype(str), kind="stable")]
    keys = tuple(str(k) for k in view.keys[field_rows])
    digest = xxhash.xxh3_128_hexdigest("\n".join(keys).encode())
    store = KeypointStore(view.store.directory.parent / f"dedup-keypoints-{VERSION}")
    width = len(OUTCOME)
    cache = PairCache.beside(view.store, f"regions-{VERSION}", width) if view.use_cache else None
    position_of = {int(r): p for p, r in enumerate(field_rows)}
    n = len(view.keys)
    all_keys = np.concatenate([view.keys, np.array([digest], dtype=object)])

    def fresh(pairs: np.ndarray) -> np.ndarray:
        if not len(pairs):
            return np.zeros((0, width), np.float32)
        bare = Fields(keys, tuple(refs(field_rows)))
        _run(detect_field, list(range(len(keys))), "field keypoints", loader, store, bare, workers, progress,
             executor)  # fmt: skip
        fields = Fields(keys, bare.refs, FieldIndex.build([store.get(k) or _empty() for k in keys]))
        todo = pairs[:, 0]
        tasks = [Task(ref, tuple([position_of[int(p)]] if int(p) in position_of else []))
                 for ref, p in zip(refs(todo), parent_field[todo], strict=True)]  # fmt: skip
        return np.stack(_run(search_row, tasks, "field regions", loader, store, fields, workers, progress, executor))

    outcome, searched = cached_register(cache, all_keys, np.stack([rows, np.full(len(rows), n)], axis=1), fresh)
    view.counts["rows searched for regions"] = view.counts.get("rows searched for regions", 0) + searched
    view.counts["region searches cached"] = view.counts.get("region searches cached", 0) + len(rows) - searched
    found = outcome[:, 0] >= 0
    return RegionMatches(rows[found], field_rows[outcome[found, 0].astype(np.int64)], outcome[found, 1:])


def _empty() -> Keypoints:
    return Keypoints(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.uint8), (0, 0))
