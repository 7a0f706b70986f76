"""Each row's log-polar spectrum, computed once per dedup run instead of once per registration batch.

The log-polar test, which rejects most candidate pairs, needs each row's phase-only log-polar spectrum
(:func:`~wbc_data.dedup.batched.polar_spectra`: 35 KB at the 96 px canvas, about 0.3 ms of one core). Registration
runs in batches of pairs sorted by row, in several calls (the spanning forest, the candidates between its
components, the pairs against leaders), and the candidate graph of real cells is close to an expander, so a row was
prepared in several batches: 55,803 preparations for the dense benchmark's 14,487 rows (benchmarks/README.md,
dedup, eleventh session). Here each row's spectrum is computed once, on the workers, into a file-backed array beside
the signature cache: the page cache holds it, not a process heap, and the worker of each batch reads its rows from
it. The file is bounded (:data:`BUDGET`, and a quarter of the free disk, reserved when it is created so that a full
disk is an error, not a crash); rows beyond it are prepared per batch as before. It belongs to one run and is deleted
when the run ends (Ctrl-C included). A run holds the workspace's dedup lock, so any other spectra folder in the cache
was left by a run that was killed: the next run deletes it before it starts.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wbc_data.dedup.register import POLAR_ROWS
from wbc_data.dedup.signature import CANVAS

BUDGET = 8 << 30
"""Most bytes of spectra one run keeps (about 240,000 rows at 35 KB)."""

PREFIX = "dedup-spectra-"


@dataclass(frozen=True)
class SpectraRef:
    """What a worker needs to read the stored spectra of a batch's rows: the file, and for each stored row its
    position in the batch and its slot in the file."""

    path: Path
    positions: np.ndarray
    slots: np.ndarray

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        """(positions, spectra): ``batched.prepare_rows``'s ``known``."""
        stored = np.load(self.path, mmap_mode="r")
        order = np.argsort(self.slots)  # read the file forwards
        spectra = np.empty((len(self.slots), *stored.shape[1:]), stored.dtype)
        spectra[order] = stored[self.slots[order]]
        del stored
        return self.positions, spectra


def write_spectra(path: Path, start: int, canvases: np.ndarray) -> None:
    """Compute the spectra of ``canvases`` into slots ``start``... of the file (a worker's task)."""
    from wbc_data.dedup.batched import polar_spectra

    stored = np.load(path, mmap_mode="r+")
    stored[start : start + len(canvases)] = polar_spectra(canvases)
    stored.flush()
    del stored


def remove_left_over(cache: Path) -> None:
    """Delete every spectra folder in the workspace cache ``cache``: the caller holds the workspace's dedup lock, so
    none belongs to a running process (a killed run leaves its folder behind)."""
    if cache.is_dir():
        for entry in cache.iterdir():
            if entry.name.startswith(PREFIX):
                shutil.rmtree(entry, ignore_errors=True)


class RowSpectra:
    """The stored spectra of one run's rows (positions ``0..rows-1``), slots given out as rows are first needed."""

    def __init__(self, directory: Path, rows: int, side: int = CANVAS, budget: int = BUDGET) -> None:
        self.directory = Path(directory)
        self.side = side
        self.budget = budget
        self.slot = np.full(rows, -1, np.int64)
        self.used = 0
        self.capacity = -1  # not opened yet
        self.path = self.directory / "spectra.npy"

    @classmethod
    def beside(cls, cache: Path, rows: int) -> RowSpectra:
        """Spectra for a run in the workspace cache folder ``cache`` (where the signature cache lives), whose dedup
        lock the caller holds; the folders of killed runs are deleted first."""
        remove_left_over(Path(cache))
        return cls(Path(cache) / f"{PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}", rows)

    @property
    def row_bytes(self) -> int:
        return POLAR_ROWS * (self.side // 2 + 1) * np.dtype(np.complex64).itemsize

    def _open(self) -> None:
        if self.capacity >= 0:
            return
        self.directory.parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(self.directory.parent).free
        self.capacity = int(min(len(self.slot), self.budget // self.row_bytes, free // 4 // self.row_bytes))
        if self.capacity == 0:
            return
        self.directory.mkdir()
        stored = np.lib.format.open_memmap(self.path, mode="w+", dtype=np.complex64,
                                           shape=(self.capacity, POLAR_ROWS, self.side // 2 + 1))  # fmt: skip
        del stored
        if not self._reserve():
            self.close()
            self.capacity = 0

    def _reserve(self) -> bool:
        """Allocate the file's blocks now: a memory-mapped write to a sparse file on a full disk kills the process
        (SIGBUS) instead of raising. False when the disk has no room for it (the run then goes without)."""
        if not hasattr(os, "posix_fallocate"):  # macOS, Windows: the quarter of the free disk is the only guard
            return True
        try:
            with open(self.path, "r+b") as handle:
                os.posix_fallocate(handle.fileno(), 0, os.path.getsize(self.path))
        except OSError:
            return False
        return True

    def assign(self, rows: np.ndarray) -> tuple[np.ndarray, int]:
        """Give slots to those of ``rows`` (unique positions) without one, as far as the file holds them; returns
        the rows given one now (their spectra still to be written, to consecutive slots) and the first slot."""
        self._open()
        new = rows[self.slot[rows] < 0][: max(0, self.capacity - self.used)]
        start = self.used
        self.slot[new] = np.arange(start, start + len(new))
        self.used += len(new)
        return new, start

    def reference(self, rows: np.ndarray) -> SpectraRef | None:
        """How a worker reads the stored spectra of a batch's ``rows`` (its positions 0..len-1), or None if none."""
        slots = self.slot[rows]
        stored = np.flatnonzero(slots >= 0)
        return SpectraRef(self.path, stored, slots[stored]) if len(stored) else None

    def close(self) -> None:
        """Delete the file (the end of the run)."""
        shutil.rmtree(self.directory, ignore_errors=True)
