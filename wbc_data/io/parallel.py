"""The one worker-pool helper every stage uses: workers leave Ctrl-C to the parent, end when the parent ends
(``kill -9`` included), and OpenCV work is safe however much OpenCV the parent has already run.

- Ctrl-C: workers ignore SIGINT; the parent catches it, terminates the pool and says what was kept.
- A killed parent: on Linux each worker asks the kernel for SIGKILL when its parent dies
  (``prctl(PR_SET_PDEATHSIG)``); elsewhere a watcher thread checks the parent every half second. Without this,
  workers blocked on the task queue live on, and busy ones keep computing for their whole batch.
- OpenCV: a forked child inherits the parent's memory but not its threads, and reconfiguring OpenCV's thread pool
  in such a child (``cv2.setNumThreads``) waits forever on a lock of the parent's pool (seen in dedup once the
  parent had resized images). So the parent drops to one OpenCV thread (which joins its pool threads) while the
  workers are forked, then restores its setting; the workers start with a single OpenCV thread each.

``fork`` keeps start-up instant and needs no ``if __name__ == "__main__"`` guard in a user's script; platforms
without it use ``spawn``.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.pool import Pool
from typing import Any

PR_SET_PDEATHSIG = 1


@contextlib.contextmanager
def worker_pool(
    workers: int,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
    *,
    opencv: bool = False,
    keep_heap: bool = False,
) -> Iterator[Pool]:
    """A pool of ``workers`` processes, closed and joined on the way out, terminated on any exception
    (Ctrl-C included) so that nothing keeps running behind the parent. ``keep_heap``: the workers keep freed memory
    for reuse (:mod:`wbc_data.core.heap`), for array work that allocates and frees large blocks per item; they are
    the stage's own processes, so the setting ends with them."""
    context = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
    start_args = (initializer, initargs, os.getpid(), opencv, keep_heap)
    if opencv and hasattr(os, "fork"):
        import cv2

        threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            pool = context.Pool(workers, initializer=_start_worker, initargs=start_args)
        finally:
            cv2.setNumThreads(threads)
    else:
        pool = context.Pool(workers, initializer=_start_worker, initargs=start_args)
    try:
        yield pool
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()


def pool_map(
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    initializer: Callable[..., None],
    initargs: tuple[Any, ...],
    workers: int = 0,
    *,
    ordered: bool = True,
    serial_below: int = 8,
    round_size: int = 16_384,
    opencv: bool = False,
    keep_heap: bool = False,
) -> Iterator[Any]:
    """``fn(item)`` for every item on ``workers`` processes (0: every core), each set up by ``initializer(*initargs)``;
    in this process when one worker is asked for or there are fewer than ``serial_below`` items. Items go to the
    pool ``round_size`` at a time, so its queue never holds a million; ``ordered=False`` yields as they finish."""
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(items) < serial_below:
        initializer(*initargs)
        yield from map(fn, items)
        return
    with worker_pool(workers, initializer, initargs, opencv=opencv, keep_heap=keep_heap) as pool:
        for start in range(0, len(items), round_size):
            part = items[start : start + round_size]
            chunk = max(1, min(32, len(part) // (workers * 8)))
            yield from (pool.imap if ordered else pool.imap_unordered)(fn, part, chunksize=chunk)


def executor_map(
    executor: Any, batch_fn: Callable[..., list], fixed: tuple[Any, ...], items: Sequence[Any], batch_size: int
) -> Iterator[Any]:
    """The results of ``batch_fn(*fixed, part)`` for consecutive parts of ``items`` (``batch_size`` each), run as
    independent tasks on a cluster executor and flattened, in order (at most 16 parts in flight)."""
    tasks = ((batch_fn, (*fixed, items[s : s + batch_size])) for s in range(0, len(items), batch_size))
    for done in in_order(executor, tasks, 16):
        yield from done


def in_order(executor: Any, tasks: Iterator[tuple[Callable, tuple]], in_flight: int) -> Iterator[Any]:
    """Results of ``executor.submit(fn, *args)`` for each task (any concurrent.futures-style executor, e.g. Dask's),
    in order, with at most ``in_flight`` submitted and not yet collected (memory stays bounded however many tasks
    there are)."""
    pending: deque = deque()
    for fn, args in tasks:
        pending.append(executor.submit(fn, *args))
        while len(pending) >= in_flight:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _start_worker(
    initializer: Callable[..., None] | None, initargs: tuple[Any, ...], parent: int, opencv: bool, keep_heap: bool
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent)
    if keep_heap:
        from wbc_data.core.heap import retain_freed_memory

        retain_freed_memory()
    if opencv and not hasattr(os, "fork"):
        import cv2

        cv2.setNumThreads(1)
    if initializer is not None:
        initializer(*initargs)


def die_with_parent(parent: int) -> None:
    """End this process as soon as process ``parent`` is gone."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
                if os.getppid() != parent:  # the parent died before the request was made
                    os._exit(1)
                return
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()
