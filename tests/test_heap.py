"""glibc's malloc keeps freed memory for reuse once training asked it to: the step-after-step allocation of large
tensors then stops faulting fresh pages in (1.25x a CPU training epoch, benchmarks/README.md)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

PROBE = """
import ctypes, resource, sys
import numpy as np
ctypes.CDLL(None).prctl(41, 1, 0, 0, 0)  # PR_SET_THP_DISABLE: count 4 KB pages whatever the machine's THP setting
if sys.argv[1] == "retain":
    from wbc_data.core.heap import retain_freed_memory
    print(retain_freed_memory())
else:
    print(None)
np.ones(10_000_000, np.float32)  # one warm-up: 40 MB, as large as an activation of a training step
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    np.ones(10_000_000, np.float32)  # allocated, written, freed: one step's tensor
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

ALLOCATOR_SET = [k for k in os.environ if k in ("LD_PRELOAD", "GLIBC_TUNABLES") or k.startswith("MALLOC_")]


def _run(mode: str, **env: str) -> tuple[str, int]:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True,
                          env={**os.environ, **env})  # fmt: skip
    tuned, faults = done.stdout.split()
    return tuned, int(faults)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="only glibc's malloc is tuned (Linux with glibc)")
@pytest.mark.skipif(bool(ALLOCATOR_SET), reason=f"the allocator is already configured here ({ALLOCATOR_SET})")
def test_retained_heap_stops_refaulting_large_tensors():
    pages = 10_000_000 * 4 // 4096  # one 40 MB array
    _, default = _run("default")
    tuned, retained = _run("retain", WBC_DATA_KEEP_HEAP="1")
    declined, faults_declined = _run("retain", WBC_DATA_KEEP_HEAP="0")
    assert default > 10 * pages  # each of the 20 arrays was a fresh mapping, faulted in page by page
    assert tuned == "True" and retained < 2 * pages  # the freed block is reused: its pages stay mapped
    assert declined == "False" and faults_declined > 10 * pages  # WBC_DATA_KEEP_HEAP=0 leaves malloc as it was


POOLS = """
from wbc_data.core import heap
from wbc_data.io.parallel import worker_pool


def kept(_):
    return heap._done


if __name__ == "__main__":
    with worker_pool(2, keep_heap=True) as pool:
        asked = all(pool.map(kept, range(4)))
    with worker_pool(2) as pool:
        plain = any(pool.map(kept, range(4)))
    print(asked, plain, heap._done)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="only glibc's malloc is tuned (Linux with glibc)")
@pytest.mark.skipif(bool(ALLOCATOR_SET), reason=f"the allocator is already configured here ({ALLOCATOR_SET})")
@pytest.mark.skipif(os.environ.get("WBC_DATA_KEEP_HEAP") == "0", reason="WBC_DATA_KEEP_HEAP=0 declines it here")
def test_dedup_worker_pools_keep_freed_memory_and_leave_the_caller_as_it_was(tmp_path):
    """Dedup's array work (signatures, registration batches) runs in pools whose workers keep freed memory; the
    process that asked for the pool is not changed, and a plain pool's workers are not either (a fresh process)."""
    script = tmp_path / "pools.py"
    script.write_text(POOLS)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", "False", "False"]
