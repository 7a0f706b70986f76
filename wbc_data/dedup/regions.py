"""Region-of-field copies: rows that show a zoomed, rotated, shifted or sheared region of a field image, found by
keypoint matching (:mod:`keypoints`) after the window registration of :mod:`relations` has had its turn.

Which pairs are tried (the bound that keeps this cheap): every searchable row that is not a field and is not yet
linked to one gets the fields of its ``NEAREST_WINDOWS`` nearest field windows in bag-of-words space (image and
mirror image); each field then keeps at most ``PER_FIELD`` of those rows, the closest first. Work therefore grows
with the number of fields, not with rows x fields, and a workspace without fields pays nothing.

Costs are paid once: the keypoints of each field are cached by its pixel hash (``<workspace>/cache/
dedup-keypoints-<VERSION>/``, one file per field written atomically), and every matched pair's result goes to the
registration cache (:mod:`paircache`), so a warm re-run detects keypoints only on rows with a pair never tried.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from wbc_data.core.errors import Interrupted, UserError
from wbc_data.core.progress import Progress, or_null
from wbc_data.dedup.extract import in_order
from wbc_data.dedup.keypoints import KEYPOINT_FIELDS, NO_MATCH, ROW_SCALE, Keypoints, detect, linked, match
from wbc_data.dedup.neighbours import nearest
from wbc_data.dedup.paircache import PairCache, cached_register
from wbc_data.dedup.relations import SignatureView, Windows
from wbc_data.io.parallel import worker_pool
from wbc_data.io.pixels import PixelLoader, RowRef

VERSION = "k3"
"""Changes whenever detection or matching changes, so neither cached keypoints nor cached results are reused."""

NEAREST_WINDOWS = 32
"""Field windows per row (image and mirror image each) whose fields are tried: on 40 real BCCD fields x 3 regions,
a region's own field is among the fields of its 32 nearest windows for 0.80 of regions (0.74 with 16, 0.69 with 8;
benchmarks/README.md, dedup)."""

MIN_WORD_SCORE = 0.4
"""A (row, field) pair is tried only when one of the field's windows is at least this similar to the row in
bag-of-words space (cosine of the tf-idf vectors). On 200 real BCCD fields x 3 regions, 99.3% of the regions whose
own field was a candidate scored above it; of the PBC half's cells (none of which is a region of a BCCD field),
16% of candidate windows did (benchmarks/README.md, dedup)."""

MAX_FIELDS = 32
"""Fields tried per row at most, the most similar first."""

PER_FIELD = 256
"""Rows tried per field at most, the most similar first."""

TASK_ROWS = 16
"""Rows per task handed to a worker (or a cluster executor)."""


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


def candidates(view: SignatureView, windows: Windows, queries: np.ndarray,
               excluded: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None) -> np.ndarray:  # fmt: skip
    """(p, 2) pairs (row, field row) to match, sorted by row; ``excluded(rows, fields)`` drops known relations."""
    queries = queries[view.has_words[queries]]
    if not len(queries) or not len(windows.keys):
        return np.zeros((0, 2), np.int64)
    rows, fields, scores = [], [], []
    for side in (0, 1):
        found, score = nearest(windows.words, view.words[queries, side], NEAREST_WINDOWS)
        ok = found >= 0
        rows.append(np.repeat(queries, found.shape[1])[ok.reshape(-1)])
        fields.append(windows.field[found[ok]])
        scores.append(score[ok])
    row, field, score = np.concatenate(rows), np.concatenate(fields), np.concatenate(scores)
    keep = (row != field) & (score >= MIN_WORD_SCORE)
    if excluded is not None and keep.any():
        keep &= ~excluded(row, field)
    row, field, score = row[keep], field[keep], score[keep]
    # the best score per (row, field), then the PER_FIELD best rows per field
    order = np.lexsort((-score, row, field))
    first = np.ones(len(order), bool)
    first[1:] = (row[order][1:] != row[order][:-1]) | (field[order][1:] != field[order][:-1])
    row, field, score = row[order][first], field[order][first], score[order][first]
    best = _rank_within(row, score) < MAX_FIELDS
    row, field, score = row[best], field[best], score[best]
    best = _rank_within(field, score) < PER_FIELD
    pairs = np.stack([row[best], field[best]], axis=1)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def _rank_within(group: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Each item's rank (0 = highest score) among the items of its group."""
    order = np.lexsort((-score, group))
    sorted_group = group[order]
    starts = np.flatnonzero(np.r_[True, sorted_group[1:] != sorted_group[:-1]]) if len(order) else np.zeros(0, int)
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    return rank


# --------------------------------------------------------------------------- field keypoints, cached


class KeypointStore:
    """Keypoints of field images, one ``.npz`` per pixel hash, written to a temporary name and renamed."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    @classmethod
    def beside(cls, signature_store_directory: Path) -> KeypointStore:
        return cls(Path(signature_store_directory).parent / f"dedup-keypoints-{VERSION}")

    def path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.npz"

    def has(self, key: str) -> bool:
        return self.path(key).is_file()

    def get(self, key: str) -> Keypoints | None:
        try:
            with np.load(self.path(key), allow_pickle=False) as data:
                return Keypoints(data["xy"], data["descriptors"], (int(data["size"][0]), int(data["size"][1])))
        except (OSError, ValueError, KeyError):
            return None  # absent or damaged: detected again

    def put(self, key: str, keypoints: Keypoints) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{uuid.uuid4().hex}.npz")
        try:
            np.savez(tmp, xy=keypoints.xy, descriptors=keypoints.descriptors, size=np.array(keypoints.size))
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


# --------------------------------------------------------------------------- matching, on every core


@dataclass(frozen=True)
class Task:
    """One row and the fields it is matched against (keys for the keypoint store, references to reopen them)."""

    ref: RowRef
    fields: tuple[tuple[str, RowRef], ...]


_LOADER: PixelLoader | None = None
_STORE: KeypointStore | None = None


def _init(loader: PixelLoader, store: KeypointStore) -> None:
    global _LOADER, _STORE
    _LOADER, _STORE = loader, store
    _field_keypoints.cache_clear()


def _keypoints(ref: RowRef, factor: float = 1.0) -> Keypoints:
    assert _LOADER is not None
    return detect(np.asarray(_LOADER.open(ref).convert("RGB")), factor)


@lru_cache(maxsize=1024)  # about 75 KB a field: a worker keeps a thousand fields (reading one costs 1 ms)
def _field_keypoints(key: str, ref: RowRef) -> Keypoints:
    """A field's keypoints: from the store, else detected and stored (a field is matched against many rows)."""
    assert _STORE is not None
    found = _STORE.get(key)
    if found is None:
        found = _keypoints(ref)
        _STORE.put(key, found)
    return found


def run_task(task: Task) -> np.ndarray:
    """(len(task.fields), len(KEYPOINT_FIELDS)) results; no match where an image cannot be opened here."""
    out = np.tile(NO_MATCH, (len(task.fields), 1))
    try:
        region = _keypoints(task.ref, ROW_SCALE)
    except UserError:
        return out
    for k, (key, ref) in enumerate(task.fields):
        try:
            out[k] = match(region, _field_keypoints(key, ref))
        except UserError:
            continue
    return out


def run_tasks(loader: PixelLoader, store: KeypointStore, tasks: list[Task]) -> list[np.ndarray]:
    """A batch of tasks: an independent, picklable unit for a cluster executor (``DedupOptions.executor``)."""
    _init(loader, store)
    return [run_task(t) for t in tasks]


def _results(tasks: list[Task], loader: PixelLoader, store: KeypointStore, workers: int,
             executor: Any) -> Iterator[np.ndarray]:  # fmt: skip
    if executor is not None:
        batches = ((run_tasks, (loader, store, tasks[s : s + TASK_ROWS])) for s in range(0, len(tasks), TASK_ROWS))
        for done in in_order(executor, batches, 16):
            yield from done
        return
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(tasks) < 8:
        _init(loader, store)
        yield from (run_task(t) for t in tasks)
        return
    with worker_pool(workers, _init, (loader, store), opencv=True) as pool:
        yield from pool.imap(run_task, tasks, chunksize=max(1, min(TASK_ROWS, len(tasks) // (workers * 4))))


def match_pairs(pairs: np.ndarray, refs: Callable[[np.ndarray], list[RowRef]], keys: np.ndarray,
                loader: PixelLoader, store: KeypointStore, workers: int = 0, progress: Progress | None = None,
                executor: Any = None) -> np.ndarray:  # fmt: skip
    """Results for (row, field) ``pairs`` sorted by row: one task per row. Rows done are reported as
    ``progress.advance`` within the caller's phase."""
    progress = or_null(progress)
    out = np.tile(NO_MATCH, (len(pairs), 1))
    if not len(pairs):
        return out
    starts = np.flatnonzero(np.r_[True, pairs[1:, 0] != pairs[:-1, 0]])
    ends = np.r_[starts[1:], len(pairs)]
    nodes = np.unique(pairs.reshape(-1))
    ref_of = dict(zip(nodes.tolist(), refs(nodes), strict=True))
    tasks = [Task(ref_of[int(pairs[s, 0])], tuple((str(keys[f]), ref_of[int(f)]) for f in pairs[s:e, 1]))
             for s, e in zip(starts, ends, strict=True)]  # fmt: skip
    progress.advance(0, len(tasks))
    done = 0
    try:
        for (s, e), result in zip(zip(starts, ends, strict=True), _results(tasks, loader, store, workers, executor),
                                  strict=True):  # fmt: skip
            out[s:e] = result
            done += 1
            progress.advance(done, len(tasks))
    except KeyboardInterrupt:
        raise RegionsInterrupted(
            f"interrupted after {done:,} of {len(tasks):,} rows matched against fields; field keypoints are cached, "
            "re-run to resume (the previous dedup results are untouched)"
        ) from None
    return out


def find_regions(view: SignatureView, windows: Windows, queries: np.ndarray, refs: Callable[[np.ndarray], list],
                 loader: PixelLoader, workers: int = 0, excluded: Callable | None = None,
                 progress: Progress | None = None, executor: Any = None) -> RegionMatches:  # fmt: skip
    """Rows among ``queries`` that are a region of a field (the best-supported field per row)."""
    pairs = candidates(view, windows, queries, excluded)
    if not len(pairs):
        return RegionMatches.empty()
    progress = or_null(progress)
    store = KeypointStore.beside(view.store.directory)
    width = len(KEYPOINT_FIELDS)
    cache = PairCache.beside(view.store, f"keypoints-{VERSION}", width) if view.use_cache else None

    def fresh(p: np.ndarray) -> np.ndarray:
        if not len(p):
            return np.zeros((0, width), np.float32)
        progress.phase("field regions", len(np.unique(p[:, 0])))
        return match_pairs(p, refs, view.keys, loader, store, workers, progress, executor)

    results, registered = cached_register(cache, view.keys, pairs, fresh)
    view.counts["region pairs matched"] = view.counts.get("region pairs matched", 0) + registered
    view.counts["region pairs cached"] = view.counts.get("region pairs cached", 0) + len(pairs) - registered
    good = linked(results)
    row, field, results = pairs[good, 0], pairs[good, 1], results[good]
    # the field with most inliers per row
    order = np.lexsort((-results[:, 0], row))
    first = np.r_[True, row[order][1:] != row[order][:-1]] if len(order) else np.zeros(0, bool)
    pick = order[first]
    return RegionMatches(row[pick], field[pick], results[pick])
