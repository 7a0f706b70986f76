"""Keep freed memory for reuse in processes that run torch on a CPU, instead of handing it back to the kernel.

glibc's malloc serves every block above its mmap threshold (128 KB, rising to at most 32 MB) with a fresh ``mmap``
and unmaps it on ``free``. A training step allocates and frees the same activation and gradient tensors (tens of MB
each) every step, so each step faults all their pages in again and the kernel zeroes them: a one-epoch
``lite0-cpu`` run on the PBC half took 27 million page faults and 63 s of system time in its 138 s of wall time
(2 cores). With the heap kept (``mmap`` off for allocations, trimming off), the same run took 1.4 million faults,
10 s of system time and 97 s, with identical results: what a caching allocator (jemalloc, tcmalloc, PyTorch's own
on CUDA) gives. The price: the setting holds for the rest of the process, whose memory may then stay near its peak
until it ends (a freed block below a live one is kept; peak RSS +14% in that run). So only the training entry points
(classifier and generator) ask for it, and ``WBC_DATA_KEEP_HEAP=0`` declines it (e.g. in a long-lived notebook).

Only glibc is tuned (Linux); elsewhere this does nothing. DataLoader workers forked afterwards inherit it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
"""``mallopt`` parameters (glibc's ``malloc.h``)."""

KEEP_BELOW = 2**31 - 1
"""The trim threshold set: free memory at the top of the heap is returned only above 2 GB (an int, as mallopt takes)."""

OPT_OUT = "WBC_DATA_KEEP_HEAP"
"""Set to 0 to leave malloc as it is."""

_done = False


def retain_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed blocks for reuse (once per process); True when it was tuned here or before."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux") or os.environ.get(OPT_OUT, "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or another C library without mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    _done = bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, KEEP_BELOW))
    return _done
