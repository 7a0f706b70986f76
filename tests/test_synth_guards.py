"""The guards on their own: the memorisation guard on real promyelocytes (a planted copy is rejected, distinct real
cells pass), collapse detection, and classifier agreement with classifier doubles that implement
``wbc_data.train.classifier.Classifier``. The fidelity gate and numbers are tested in test_synth_fidelity.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import shared_path
from tests.synth_fixtures import RednessClassifier, TinyClassifier
from wbc_data.core.rows import select_rows
from wbc_data.core.stages import load_view
from wbc_data.core.workspace import Workspace
from wbc_data.ingest.engine import IngestOptions, ingest
from wbc_data.io.pixels import PixelLoader
from wbc_data.io.resources import sample_dir
from wbc_data.manifest.merge import merge
from wbc_data.synth.data import to_resolution
from wbc_data.synth.guards import MemorisationGuard, agreement, diversity, perturb
from wbc_data.train.classifier import Classifier


def _pmy_cells(size: int) -> tuple[np.ndarray, list[str]]:
    """Real PMY cells from the shared PBC half (through ingest and the one pixel loader), at ``size`` px."""
    root = shared_path("pbc", "PBC_dataset_normal_DIB")
    ws = Workspace(Path(_pmy_cells.tmp) / "ws")
    if not ws.unified_manifest.is_file():
        import shutil

        folder = Path(_pmy_cells.tmp) / "PBC_dataset_normal_DIB" / "ig"
        folder.mkdir(parents=True)
        for path in sorted((root / "ig").glob("PMY_*.jpg"))[:40]:
            shutil.copy(path, folder / path.name)
        ingest("pbc", folder.parent, ws, IngestOptions(workers=1))
        merge(ws)
    frame = select_rows(load_view(ws).frame, None)
    loader = PixelLoader.for_workspace(ws)
    cells = [np.asarray(to_resolution(loader.open(row), size)) for _, row in frame.iterrows()]
    return np.stack(cells), frame["sample_id"].tolist()


@pytest.mark.slow
@pytest.mark.parametrize("size", [32, 64])
def test_memorisation_guard_rejects_a_planted_copy_and_passes_distinct_real_cells(tmp_path, size):
    _pmy_cells.tmp = tmp_path
    cells, ids = _pmy_cells(size)
    train, others = cells[:13], cells[13:]  # PMY held rare: 13 training images, the rest distinct real cells
    guard, calibration = MemorisationGuard.calibrated(train, ids[:13])
    assert calibration.copies_max < calibration.threshold <= calibration.distinct_low  # copies and cells apart
    rng = np.random.default_rng(1)
    planted = np.stack([
        train[4],  # the very image
        train[7][:, ::-1],  # mirrored
        np.rot90(train[2]),  # rotated
        perturb(perturb(train[9], "jpeg", rng), "noise", rng),  # re-encoded and noisy
        perturb(train[0], "shift", rng),  # moved by a pixel
    ])  # fmt: skip
    verdicts = guard.check(planted)
    assert all(v.copy for v in verdicts), [v.reason for v in verdicts]
    assert [v.nearest_id for v in verdicts] == [ids[4], ids[7], ids[2], ids[9], ids[0]]
    distinct = guard.check(others)
    assert not any(v.copy for v in distinct), [v.reason for v in distinct if v.copy]
    assert min(v.distance for v in distinct) > calibration.threshold


def test_memorisation_guard_on_the_shipped_sample(tmp_path):
    """The same check without the shared data: a training cell is rejected, a cell of the same class passes."""
    from tests.fixtures import sample_copy

    ws = Workspace(tmp_path / "ws")
    ingest("pbc", sample_copy(tmp_path / "pbc"), ws, IngestOptions(workers=1))
    merge(ws)
    frame = select_rows(load_view(ws).frame, None)
    loader = PixelLoader.for_workspace(ws)
    cells = {row["sample_id"]: np.asarray(to_resolution(loader.open(row), 32)) for _, row in frame.iterrows()}
    pmy = sorted(s for s in cells if "/PMY_" in s)
    pool = np.stack(list(cells.values()))
    guard, _ = MemorisationGuard.calibrated(np.stack([cells[s] for s in pmy[:2]]), pmy[:2], pool)
    copy, distinct = guard.check(np.stack([cells[pmy[0]][::-1], cells[pmy[2]]]))
    assert copy.copy and copy.nearest_id == pmy[0] and not distinct.copy


def test_diversity_flags_collapse_and_passes_varied_cells():
    files = sorted((sample_dir() / "pbc" / "PBC_dataset_normal_DIB").rglob("*_1*.jpg"))[:24]
    cells = np.stack([np.asarray(to_resolution(Image.open(f), 32)) for f in files])
    varied = diversity(cells[12:], cells[:12], threshold=0.07)
    assert not varied.collapsed and 0.6 < varied.ratio < 1.6
    collapsed = diversity(np.repeat(cells[:1], 12, axis=0), cells[:12], threshold=0.07)
    assert collapsed.collapsed and collapsed.ratio < 0.01 and collapsed.near_duplicates == 1.0


def test_agreement_with_classifier_doubles():
    assert isinstance(RednessClassifier(), Classifier) and isinstance(TinyClassifier(), Classifier)
    red = [Image.new("RGB", (16, 16), (200, 40 + i, 60)) for i in range(6)]
    blue = [Image.new("RGB", (16, 16), (60, 40 + i, 200)) for i in range(6)]
    judged = agreement(RednessClassifier(), "PMY", red + blue[:2])
    assert judged.agreement == pytest.approx(6 / 8) and judged.predicted == {"PMY": 6, "LY": 2}
    assert judged.n_synthetic == 8 and agreement(RednessClassifier(), "PMY", red).agreement == 1.0
    net = TinyClassifier()
    expected = np.mean(net.predict_proba(blue).argmax(axis=1) == 2)  # LY is column 2 of the 13 classes
    assert agreement(net, "LY", blue).agreement == pytest.approx(expected)
