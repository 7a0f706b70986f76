"""Compute the signatures a dedup run lacks, on every core, through the one pixel loader.

Each distinct image (pixel hash) is opened once with :class:`~wbc_data.io.pixels.PixelLoader`, exactly as ingest
decoded it; a field image also gets its window signatures (:mod:`windows`). Results go to the
:class:`~wbc_data.dedup.store.SignatureStore` a shard at a time, so an interrupted run resumes where it stopped.
Rows whose pixels cannot be opened on this machine are returned with the reason: dedup then compares them by their
stored thumbnail only and says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from wbc_data.core.errors import Interrupted, UserError
from wbc_data.core.progress import Progress, or_null
from wbc_data.dedup.signature import Signature, signature
from wbc_data.dedup.store import SHARD_ROWS, SignatureStore
from wbc_data.dedup.windows import boxes_as_fractions, grid_windows
from wbc_data.io.parallel import executor_map, pool_map
from wbc_data.io.pixels import PixelLoader, RowRef

JOBS_PER_ROUND = 16_384
"""Jobs handed to the pool at a time: the queue holds light row references only, never a million."""


class DedupInterrupted(Interrupted):
    """Ctrl-C while computing signatures: finished shards are kept, nothing else was written."""


@dataclass(frozen=True)
class Job:
    key: str  # pixel hash
    ref: RowRef
    windows: bool  # a field image: add its window signatures
    thumb: np.ndarray | None = None  # the manifest's (THUMB_SIZE, THUMB_SIZE) thumbnail of these pixels, if stored


def window_key(key: str, box: tuple[int, int, int, int]) -> str:
    return f"{key}#w{box[0]},{box[1]},{box[2]},{box[3]}"


_LOADER: PixelLoader | None = None


def _init(loader: PixelLoader) -> None:
    global _LOADER
    _LOADER = loader


def compute(job: Job) -> tuple[Job, list[tuple[str, Signature, np.ndarray | None]], str | None]:
    """The job's signature (and window signatures), or the reason its pixels could not be opened."""
    from wbc_data.dedup.words import default_embedder

    assert _LOADER is not None
    try:
        image = _LOADER.open(job.ref)
    except UserError as exc:
        return job, [], str(exc)
    embedder = default_embedder()
    out: list[tuple[str, Signature, np.ndarray | None]] = [(job.key, signature(image, embedder, job.thumb), None)]
    if job.windows:
        boxes = grid_windows(image.width, image.height)
        fractions = boxes_as_fractions(boxes, image.width, image.height)
        for box, fraction in zip(boxes, fractions, strict=True):
            box_t = tuple(int(v) for v in box)
            out.append((window_key(job.key, box_t), signature(image.crop(box_t), embedder), fraction))  # type: ignore[arg-type]
    return job, out, None


def compute_batch(loader: PixelLoader, jobs: list[Job]) -> list[tuple[Job, list, str | None]]:
    """Signatures of a batch of jobs: an independent task (pure function of its arguments, all picklable), what a
    cluster executor (Dask, see ``DedupOptions.executor``) runs on its workers."""
    _init(loader)
    return [compute(job) for job in jobs]


EXECUTOR_BATCH = 256
"""Jobs per task handed to an executor (a cluster): large enough that scheduling costs nothing."""


def _results(jobs: list[Job], loader: PixelLoader, workers: int,
             executor: Any = None) -> Iterator[tuple[Job, list, str | None]]:  # fmt: skip
    if executor is not None:
        yield from executor_map(executor, compute_batch, (loader,), jobs, EXECUTOR_BATCH)
        return
    yield from pool_map(compute, jobs, _init, (loader,), workers, ordered=False, serial_below=32,
                        round_size=JOBS_PER_ROUND, opencv=True, keep_heap=True)  # fmt: skip


def extract(
    jobs: list[Job], store: SignatureStore, loader: PixelLoader, workers: int = 0, progress: Progress | None = None,
    executor: Any = None,
) -> dict[str, str]:  # fmt: skip
    """Compute and store every job's signatures; return {key: reason} for images that could not be opened. Images
    done are reported as ``progress.advance`` within the caller's phase."""
    progress = or_null(progress)
    store.clear_partial()
    failed: dict[str, str] = {}
    keys: list[str] = []
    sigs: list[Signature] = []
    boxes: list[np.ndarray] = []
    no_box = np.full(4, np.nan, np.float32)

    def flush() -> None:
        if keys:
            store.add(keys, sigs, np.stack(boxes))
            keys.clear()
            sigs.clear()
            boxes.clear()

    done = 0
    progress.advance(0, len(jobs))
    try:
        for job, found, reason in _results(jobs, loader, workers, executor):
            if reason is not None:
                failed[job.key] = reason
            for key, sig, box in found:
                keys.append(key)
                sigs.append(sig)
                boxes.append(no_box if box is None else box)
            if len(keys) >= SHARD_ROWS:
                flush()
            done += 1
            progress.advance(done, len(jobs))
    except KeyboardInterrupt:
        flush()
        raise DedupInterrupted(
            f"interrupted after {done:,} of {len(jobs):,} images; their signatures are cached, re-run to resume "
            "(the previous dedup results are untouched)"
        ) from None
    flush()
    return failed
