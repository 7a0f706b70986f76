"""Register candidate pairs on every core, in bounded batches.

Pairs are sorted by their first row and cut into batches (:func:`batches_of`: at most :func:`batch_size` pairs
and ``BATCH_ROWS`` distinct rows each); the main process reads the canvases
a batch needs from the signature store and hands them to a worker, with at most two batches per worker in
flight, so memory holds a few batches whatever the number of pairs. Each batch prepares each of its rows once (the
costly part of the cheap log-polar test), so the fewer rows a batch touches per pair, the less is prepared again in
the next one.
"""

from __future__ import annotations

import os
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from wbc_data.core.progress import Progress, or_null
from wbc_data.dedup.kernels import batch_starts
from wbc_data.dedup.register import NO_MATCH, POLAR_FLOOR, Match, Prepared, polar_peak, polar_spectra, prepare, register
from wbc_data.dedup.spectra import RowSpectra, SpectraRef, write_spectra
from wbc_data.io.parallel import in_order, worker_pool

BATCH_PAIRS = 12_000
"""Most pairs per batch. On the real PBC half's 69,590 candidates (sorted by first row, whose neighbours are
mostly cells of the same class nearby) batches of 4,096 prepared 29,682 rows, 12,000 prepared 20,417 (a third
fewer); a batch's rows take about 70 KB each for the log-polar stage, 300 KB for those that pass it."""

MIN_BATCH_PAIRS = 1024

BATCH_ROWS = 4096
"""Most distinct rows per batch. A batch prepares each of its rows (about 70 KB, and 300 KB more for rows of pairs
that pass the log-polar stage), so this bounds a worker at about 1.5 GB whatever the candidates. Bounded by pairs
alone, a batch of 12,000 pairs among the 12,376 regions of 364 BCCD fields touched nearly every row: 3.4 GB in one
worker (benchmarks/README.md, dedup). On the PBC half a batch of 12,000 pairs touches about 3,400 rows, so the bound
rarely cuts there."""


def batches_of(pairs: np.ndarray, order: np.ndarray, workers: int) -> list[np.ndarray]:
    """``order`` (positions into ``pairs``) cut into consecutive batches of at most :func:`batch_size` pairs and
    ``BATCH_ROWS`` distinct rows."""
    ordered = np.ascontiguousarray(pairs[order], np.int64)
    starts = batch_starts(ordered, batch_size(len(pairs), workers), BATCH_ROWS, int(pairs.max()) + 1)
    return np.split(order, starts[1:])


def batch_size(pairs: int, workers: int) -> int:
    """``BATCH_PAIRS``, but at least two batches per worker where there are enough pairs, so that no core idles
    while the last big batch runs."""
    return max(MIN_BATCH_PAIRS, min(BATCH_PAIRS, -(-pairs // (2 * max(1, workers)))))


PREPARED_CACHE = 256
RESULT_FIELDS = ("correlation", "texture", "overlap", "angle", "scale", "mirror", "dx", "dy")
"""Columns of :func:`confirm`'s result, one row per pair."""


def column(results: np.ndarray, name: str) -> np.ndarray:
    """One named column of :func:`confirm`'s results."""
    return results[:, RESULT_FIELDS.index(name)]


CanvasFn = Callable[[np.ndarray], np.ndarray]
"""Given row positions, their (k, side, side) uint8 canvases."""


def as_row(match: Match) -> tuple[float, ...]:
    return (match.correlation, match.texture, match.overlap, match.angle, match.scale, float(match.mirror),
            *match.shift)  # fmt: skip


def as_match(row: np.ndarray) -> Match:
    values = [float(v) for v in row]
    return Match(*values[:5], bool(row[5]), (values[6], values[7]))


ENGINES = ("batched", "reference")
"""How pairs are registered: ``batched`` (:mod:`wbc_data.dedup.batched`, array passes over a batch: the default)
or ``reference`` (:func:`register_batch_reference`, one pair at a time through :func:`register`: the readable
definition the batched path is tested against)."""


def register_batch(canvases: np.ndarray, pairs: np.ndarray, engine: str = "batched", torch_device: str | None = None,
                   known: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:  # fmt: skip
    """(p, len(RESULT_FIELDS)) float32 for ``pairs`` of positions into ``canvases``, by ``engine`` (``batched``:
    its log-polar stage in torch on ``torch_device`` when given, the log-polar spectra of rows ``known`` taken as
    given)."""
    if engine == "batched":
        from wbc_data.dedup.batched import register_many

        return register_many(canvases, pairs, torch_device, known)
    if engine != "reference":
        raise ValueError(f"unknown registration engine {engine!r}: use one of {', '.join(ENGINES)}")
    return register_batch_reference(canvases, pairs)


def register_batch_reference(canvases: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """(p, len(RESULT_FIELDS)) float32 for ``pairs`` of positions into ``canvases``. Every pair first gets the
    cheap log-polar test (:func:`~wbc_data.dedup.register.polar_peak`, each canvas's spectra computed once per
    batch); only pairs above :data:`~wbc_data.dedup.register.POLAR_FLOOR` (about 4% of distinct candidates on real
    cells) are registered in full."""
    out = np.tile(np.array(as_row(NO_MATCH), np.float32), (len(pairs), 1))
    polar: dict[int, tuple[np.ndarray, np.ndarray] | None] = {}

    def spectra(i: int) -> tuple[np.ndarray, np.ndarray] | None:
        if i not in polar:
            polar[i] = polar_spectra(canvases[i]) if canvases[i].any() else None
        return polar[i]

    survivors = []
    for k, (a, b) in enumerate(pairs):
        sa, sb = spectra(int(a)), spectra(int(b))
        if sa is not None and sb is not None and polar_peak(sa, sb) >= POLAR_FLOOR:
            survivors.append(k)
    polar.clear()
    cache: OrderedDict[int, Prepared] = OrderedDict()

    def prepared(i: int) -> Prepared:
        found = cache.get(i)
        if found is None:
            found = cache[i] = prepare(canvases[i])
            if len(cache) > PREPARED_CACHE:
                cache.popitem(last=False)
        else:
            cache.move_to_end(i)
        return found

    for k in survivors:
        a, b = pairs[k]
        out[k] = as_row(register(prepared(int(a)), prepared(int(b))))
    return out


Payload = tuple[np.ndarray, np.ndarray, str, "str | None", "SpectraRef | None"]


def _task(args: Payload) -> np.ndarray:
    canvases, pairs, engine, torch_device, stored = args
    return register_batch(canvases, pairs, engine, torch_device, stored.read() if stored is not None else None)


def _write_task(args: tuple[Path, int, np.ndarray]) -> None:
    write_spectra(*args)


FILL_ROWS = 512
"""Rows per task when the run's log-polar spectra are computed (:mod:`wbc_data.dedup.spectra`)."""


def _bounded(pool: Any, fn: Callable, payloads: Iterator[Any], in_flight: int) -> Iterator[tuple[Any, Any]]:
    """(payload's tag, result) of ``fn(payload)`` on the pool, in order, with at most ``in_flight`` payloads
    built and not yet collected (memory holds a few, however many there are). ``payloads`` yields (tag, args)."""
    pending: deque = deque()
    for tag, args in payloads:
        pending.append((tag, pool.apply_async(fn, (args,))))
        while len(pending) >= in_flight:
            done_tag, result = pending.popleft()
            yield done_tag, result.get()
    while pending:
        done_tag, result = pending.popleft()
        yield done_tag, result.get()


def confirm(pairs: np.ndarray, canvases: CanvasFn, workers: int = 0, progress: Progress | None = None,
            engine: str = "batched", torch_device: str | None = None, executor: Any = None,
            spectra: RowSpectra | None = None) -> np.ndarray:  # fmt: skip
    """Register every pair of row positions; (p, len(RESULT_FIELDS)) float32 in the order of ``pairs``. Pairs
    done are reported as ``progress.advance`` within the caller's phase. ``spectra``: the run's stored log-polar
    spectra (rows not stored yet are computed into it first), for the batched engine on this machine."""
    progress = or_null(progress)
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    out = np.zeros((len(pairs), len(RESULT_FIELDS)), np.float32)
    if not len(pairs):
        return out
    order = np.lexsort((pairs[:, 1], pairs[:, 0]))
    workers = workers or os.cpu_count() or 1
    batches = batches_of(pairs, order, workers)
    if engine != "batched" or executor is not None:
        spectra = None  # a cluster's workers cannot read this machine's file; the reference engine needs none
    if spectra is not None:
        new, first = spectra.assign(np.unique(pairs))
        fills = ((None, (spectra.path, first + s, canvases(new[s : s + FILL_ROWS])))
                 for s in range(0, len(new), FILL_ROWS))  # fmt: skip
    else:
        fills = iter(())

    def payload(batch: np.ndarray) -> Payload:
        rows, local = np.unique(pairs[batch].reshape(-1), return_inverse=True)
        stored = spectra.reference(rows) if spectra is not None else None
        return canvases(rows), local.reshape(-1, 2), engine, torch_device, stored

    done = 0
    if executor is not None:  # a cluster (Dask...): each batch is an independent task
        tasks = ((_task, (payload(batch),)) for batch in batches)
        for batch, result in zip(batches, in_order(executor, tasks, 16), strict=True):
            out[batch] = result
            done += len(batch)
            progress.advance(done, len(pairs))
        return out
    if torch_device is not None and torch_device.startswith("cuda"):
        workers = 1  # one process drives the GPU (forked workers cannot share its context)
    if workers == 1 or len(batches) == 1:
        for _, args in fills:
            _write_task(args)
        for batch in batches:
            out[batch] = _task(payload(batch))
            done += len(batch)
            progress.advance(done, len(pairs))
        return out
    with worker_pool(workers, opencv=True, keep_heap=True) as pool:
        for _ in _bounded(pool, _write_task, fills, 2 * workers):
            pass
        for batch, result in _bounded(pool, _task, ((batch, payload(batch)) for batch in batches), 2 * workers):
            out[batch] = result
            done += len(batch)
            progress.advance(done, len(pairs))
    return out
