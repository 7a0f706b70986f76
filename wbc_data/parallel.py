"""Worker pools for OpenCV work, safe however much OpenCV the parent process has already run.

Dedup's workers call OpenCV. A forked child inherits the parent's memory but not its threads, and reconfiguring
OpenCV's thread pool in such a child (``cv2.setNumThreads``) waits forever on a lock of the parent's pool (seen in
dedup once the parent had resized images). So the parent drops to one OpenCV thread (which joins its pool threads)
while the workers are forked, then restores its setting; the workers start with a single OpenCV thread each, one
worker per core. ``fork`` keeps start-up instant and needs no ``if __name__ == "__main__"`` guard in a user's
script; platforms without it use ``spawn``.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from multiprocessing.pool import Pool
from typing import Any


def opencv_pool(workers: int, initializer: Callable[..., None] | None = None, initargs: tuple[Any, ...] = ()) -> Pool:
    """A pool of ``workers`` processes whose OpenCV runs single-threaded."""
    import cv2

    if not hasattr(os, "fork"):
        return multiprocessing.get_context("spawn").Pool(workers, initializer=initializer, initargs=initargs)
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        return multiprocessing.get_context("fork").Pool(workers, initializer=initializer, initargs=initargs)
    finally:
        cv2.setNumThreads(threads)
