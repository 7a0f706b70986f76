"""glibc's malloc keeps freed memory for reuse once a torch stage asked it to: the step-after-step allocation of
large tensors then stops faulting fresh pages in (the 1.4x of a CPU training epoch, benchmarks/README.md)."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import ctypes, resource, sys
import numpy as np
ctypes.CDLL(None).prctl(41, 1, 0, 0, 0)  # PR_SET_THP_DISABLE: count 4 KB pages whatever the machine's THP setting
if sys.argv[1] == "retain":
    from wbc_data.core.heap import retain_freed_memory
    assert retain_freed_memory()
np.ones(10_000_000, np.float32)  # one warm-up: 40 MB, as large as an activation of a training step
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    np.ones(10_000_000, np.float32)  # allocated, written, freed: one step's tensor
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return int(done.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="only glibc's malloc is tuned (Linux)")
def test_retained_heap_stops_refaulting_large_tensors():
    pages = 10_000_000 * 4 // 4096  # one 40 MB array
    default = _faults("default")
    retained = _faults("retain")
    assert default > 10 * pages  # each of the 20 arrays was a fresh mapping, faulted in page by page
    assert retained < 2 * pages  # the freed block is reused: its pages stay mapped
