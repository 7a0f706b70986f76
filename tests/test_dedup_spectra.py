"""The log-polar stage of registration: 180 degrees of the log-polar image, its floor, the mirror spectra read off
the image's, and the run's stored spectra (issue 21), on real cells of the built-in sample and augmented copies."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from benchmarks.augment import Augmentation, augment, load_rgb
from tests.test_dedup_fast import sample_cells_with_copies
from wbc_data.dedup import batched, spectra
from wbc_data.dedup import confirm as confirm_module
from wbc_data.dedup.confirm import confirm
from wbc_data.dedup.register import ANGLES, MAX_FREQUENCY, POLAR_FLOOR, POLAR_ROWS, polar_peak, polar_spectra
from wbc_data.dedup.run import DedupOptions, dedup
from wbc_data.dedup.signature import grey_and_valid, make_canvas
from wbc_data.dedup.spectra import PREFIX, RowSpectra
from wbc_data.io.resources import sample_dir


def _canvas(rgb: np.ndarray) -> np.ndarray:
    grey, valid = grey_and_valid(Image.fromarray(rgb))
    return make_canvas(grey, valid)


def _copy(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    data = augment(rgb, Augmentation.draw(rng))
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def cells_and_copies() -> tuple[np.ndarray, np.ndarray]:
    """Canvases of 40 real sample cells (every class) and of two augmented copies of each: (canvases, origin)."""
    rng = np.random.default_rng(11)
    paths = sorted((sample_dir() / "pbc").rglob("*.jpg"))[::3][:40]
    canvases, origin = [], []
    for k, path in enumerate(paths):
        rgb = load_rgb(path)
        canvases += [_canvas(rgb), _canvas(_copy(rgb, rng)), _canvas(_copy(rgb, rng))]
        origin += [k, k, k]
    return np.stack(canvases), np.array(origin)


def test_the_log_polar_image_repeats_after_180_degrees(cells_and_copies):
    """The premise of keeping 180 degrees: a real image's magnitude spectrum is point-symmetric, so the 360-degree
    log-polar image is its first half twice (a fraction of a grey level apart)."""
    canvases, _ = cells_and_copies
    n = canvases.shape[1]
    windowed = batched._content(canvases[:12])[4]
    spectrum = np.abs(np.fft.fft2(windowed * batched._window(n)))
    spectrum = (np.log1p(np.fft.fftshift(spectrum, axes=(-2, -1))) * batched._highpass(n)).astype(np.float32)
    for image in spectrum:
        polar = cv2.warpPolar(image, (n, ANGLES), (n / 2, n / 2), MAX_FREQUENCY * n / 2, batched.POLAR_FLAGS)
        assert np.abs(polar[:POLAR_ROWS] - polar[POLAR_ROWS:]).max() <= 1e-4 * np.abs(polar).max()
        assert np.abs(polar[:POLAR_ROWS] - np.roll(polar[:POLAR_ROWS], 5, axis=0)).max() > 0.05 * np.abs(polar).max()


def test_the_log_polar_floor_keeps_real_copies_and_rejects_most_distinct_cells(cells_and_copies):
    """Every augmented copy (any angle, zoom, shift, mirror, fill, JPEG) peaks at or above ``POLAR_FLOOR``; most
    pairs of distinct cells of the same class stay below it, so they are rejected before any shift search."""
    canvases, origin = cells_and_copies
    found = [polar_spectra(c) for c in canvases]
    copies = [polar_peak(found[a], found[b]) for a in range(len(canvases)) for b in range(a + 1, len(canvases))
              if origin[a] == origin[b]]  # fmt: skip
    originals = np.flatnonzero(np.r_[True, origin[1:] != origin[:-1]])
    distinct = [polar_peak(found[a], found[b]) for a in originals for b in originals if a < b]
    assert min(copies) >= POLAR_FLOOR, sorted(copies)[:3]
    assert np.mean(np.array(distinct) < POLAR_FLOOR) >= 0.85


def test_mirror_spectra_equal_those_of_the_mirrored_canvas(cells_and_copies):
    """The mirror image's log-polar spectrum read off the image's (no transform) is that of the flipped canvas:
    their phase correlation peaks at no shift with nearly all its weight; a wrong reading (the rows not reversed,
    or reversed about the wrong row) does not."""
    canvases, _ = cells_and_copies
    n = canvases.shape[1]
    mine = batched.mirror_spectra(batched.polar_spectra(canvases[:10]))
    flipped = batched.polar_spectra(np.ascontiguousarray(canvases[:10, :, ::-1]))
    surfaces = batched._surfaces(mine, flipped, (POLAR_ROWS, n))
    assert (surfaces[:, 0, 0] >= 0.9).all(), surfaces[:, 0, 0]
    wrong = batched._surfaces(batched.polar_spectra(canvases[:10])[:, ::-1], flipped, (POLAR_ROWS, n))
    assert (wrong[:, 0, 0] < 0.5).all()


def test_stored_spectra_give_the_results_of_spectra_prepared_per_batch(tmp_path, cells_and_copies, monkeypatch):
    """Registration reading the run's stored spectra gives what preparing them per batch gives, whether every row
    fits the file or only some (the budget), across calls that reuse the stored rows, in one process and on a pool
    of two (several write tasks, then several batches); the rows are computed once."""
    canvases, origin = cells_and_copies
    n = len(canvases)
    pairs = np.array([(a, b) for a in range(n) for b in range(a + 1, min(n, a + 7))], np.int64)

    def rows(positions: np.ndarray) -> np.ndarray:
        return canvases[positions]

    plain = confirm(pairs, rows, workers=1)
    copies = (plain[:, 0] >= 0.9) & (origin[pairs[:, 0]] == origin[pairs[:, 1]])
    assert copies.sum() >= 30
    monkeypatch.setattr(confirm_module, "MIN_BATCH_PAIRS", 64)
    monkeypatch.setattr(confirm_module, "BATCH_PAIRS", 128)
    monkeypatch.setattr(confirm_module, "FILL_ROWS", 16)
    assert len(confirm_module.batches_of(pairs, np.arange(len(pairs)), 2)) > 2  # the pool's path, not one batch
    for budget_rows in (n, 17):
        stored = RowSpectra(tmp_path / f"s{budget_rows}", n, budget=budget_rows * RowSpectra(tmp_path, 1).row_bytes)
        later = pairs[len(pairs) // 2 :]  # stored first: rows that are not a batch's first positions later
        first = confirm(later, rows, workers=1, spectra=stored)
        assert stored.used == min(len(np.unique(later)), budget_rows)
        second = confirm(pairs, rows, workers=2, spectra=stored)
        assert stored.used == min(n, budget_rows)  # each row once, within the budget
        np.testing.assert_allclose(first, plain[len(pairs) // 2 :], atol=1e-5)
        np.testing.assert_allclose(second, plain, atol=1e-5)
        stored.close()
        assert not stored.directory.exists()


def test_a_disk_without_room_for_the_spectra_means_none_are_stored(tmp_path, cells_and_copies, monkeypatch):
    """When the file cannot be reserved (a full disk), nothing is stored and registration prepares every row per
    batch, with the same results: a memory-mapped write to a full disk would kill the process instead."""
    canvases, _ = cells_and_copies
    pairs = np.array([(a, a + 1) for a in range(0, 30)], np.int64)

    def full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(spectra.os, "posix_fallocate", full, raising=False)
    stored = RowSpectra(tmp_path / "s", len(canvases))
    results = confirm(pairs, lambda positions: canvases[positions], workers=1, spectra=stored)
    assert stored.capacity == 0 and stored.used == 0 and not stored.directory.exists()
    np.testing.assert_allclose(results, confirm(pairs, lambda positions: canvases[positions], workers=1), atol=1e-5)


def test_a_dedup_run_deletes_its_spectra_and_those_left_by_killed_runs(tmp_path, workspace, monkeypatch):
    """The spectra file lives as long as the run (also when it is interrupted); folders left by killed runs are
    deleted when the next run starts (it holds the workspace's dedup lock, so none can be in use)."""
    sample_cells_with_copies(tmp_path, workspace, cells=16, originals=3, copies=2, seed=4)
    cache = workspace.root / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    left = [cache / f"{PREFIX}999999999-dead", cache / f"{PREFIX}1-pid-reused"]
    for folder in left:
        folder.mkdir()
        (folder / "spectra.npy").write_bytes(b"left over")
    opened = []
    original = spectra.RowSpectra._open

    def recording(self: RowSpectra) -> None:
        if self.capacity < 0:
            opened.append(self.directory)
        original(self)

    monkeypatch.setattr(spectra.RowSpectra, "_open", recording)
    result = dedup(workspace, DedupOptions(reports=False, workers=1))
    assert result.findings["registered"] > 0 and opened
    assert not any(folder.exists() for folder in left) and not opened[0].exists()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(batched, "register_many", interrupted)
    (cache / next(p.name for p in cache.iterdir() if p.name.startswith("dedup-pairs-"))).rename(cache / "old-pairs")
    with pytest.raises(KeyboardInterrupt):
        dedup(workspace, DedupOptions(reports=False, workers=1))
    assert len(opened) == 2 and not opened[1].exists()
    assert not [p for p in cache.iterdir() if p.name.startswith(PREFIX)]
