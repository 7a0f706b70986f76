"""Does the tool tell a cell from noise, and a copy from a new cell? The fidelity numbers against direct
computations, then on real PBC promyelocytes (the shared data; skipped without it): the fidelity gate, KID and
precision/recall beside their real-vs-real floor and noise ceiling, and the copy guard (dedup's registration through
its public function) on rotated, rescaled and cropped copies of training cells."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.conftest import shared_path
from wbc_data.dedup.copies import encode, find_copies
from wbc_data.synth.data import to_resolution
from wbc_data.synth.fidelity import compare, kid, mmd2_unbiased, noise_like, precision_recall
from wbc_data.synth.gate import FidelityGate
from wbc_data.synth.guards import MemorisationGuard

SIZE = 64


# --------------------------------------------------------------------------- the estimators on their own


def kid_double_loop(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3, written out pair by pair."""
    d = x.shape[1]

    def k(a, b):
        return (sum(float(p) * float(q) for p, q in zip(a, b, strict=True)) / d + 1.0) ** 3

    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return xx + yy - 2 * xy


def test_kid_matches_a_double_loop_and_is_unbiased():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 5)), rng.normal(0.5, 1.2, size=(9, 5))
    assert mmd2_unbiased(x, y) == pytest.approx(kid_double_loop(x, y), rel=1e-9)
    assert kid(x, y) == (pytest.approx(kid_double_loop(x, y), rel=1e-9), 0.0)  # small sets: one exact estimate
    # unbiased: sets from one distribution average 0 even at n = 5 (the biased estimate stays well above it)
    same = [mmd2_unbiased(rng.normal(size=(5, 8)), rng.normal(size=(5, 8))) for _ in range(400)]
    shifted = [mmd2_unbiased(rng.normal(size=(5, 8)), rng.normal(1.0, 1.0, size=(5, 8))) for _ in range(400)]
    assert abs(np.mean(same)) < 0.1 * np.mean(shifted)
    assert min(same) < 0  # an unbiased estimate of 0 must go negative sometimes
    # large sets: averaged over subsets, close to the estimate on all vectors
    big_x, big_y = rng.normal(size=(300, 6)), rng.normal(0.3, 1.0, size=(250, 6))
    mean, spread = kid(big_x, big_y, subset_size=100, subsets=50, seed=1)
    assert spread > 0 and mean == pytest.approx(mmd2_unbiased(big_x, big_y), abs=4 * spread / np.sqrt(50))


def test_precision_recall_match_a_direct_computation():
    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(30, 4)), rng.normal(0.8, 1.0, size=(25, 4))

    def radii(a, k=3):
        d = np.linalg.norm(a[:, None] - a[None], axis=2)
        return np.sort(d, axis=1)[:, k]  # column 0 is the vector itself

    def inside(q, c):
        r = radii(c)
        return np.mean([any(np.linalg.norm(p - c[j]) <= r[j] for j in range(len(c))) for p in q])

    precision, recall = precision_recall(real, fake)
    assert precision == pytest.approx(inside(fake, real)) and recall == pytest.approx(inside(real, fake))
    assert precision_recall(real, real) == (1.0, 1.0)
    assert precision_recall(real, real + 100.0) == (0.0, 0.0)


# --------------------------------------------------------------------------- on real cells


@pytest.fixture(scope="module")
def pmy() -> np.ndarray:
    """120 real PBC promyelocytes at the generator's resolution (64 px)."""
    folder = shared_path("pbc", "PBC_dataset_normal_DIB", "ig")
    files = sorted(folder.glob("PMY_*.jpg"))[:120]
    return np.stack([np.asarray(to_resolution(Image.open(f), SIZE)) for f in files])


@pytest.fixture(scope="module")
def embed():
    import torch

    from wbc_data.synth.embedding import Embedder

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # a shared 2-core machine
    yield Embedder()
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def features(pmy, embed) -> np.ndarray:
    return embed(pmy)


def _blank_and_noise(rng: np.random.Generator, like: np.ndarray) -> np.ndarray:
    blank = np.stack([np.full((SIZE, SIZE, 3), v, np.uint8) for v in (0, 128, 255)])
    pink = np.full((1, SIZE, SIZE, 3), like.reshape(-1, 3).mean(axis=0).round(), np.uint8)  # the mean colour
    uniform = rng.integers(0, 256, (4, SIZE, SIZE, 3), dtype=np.uint8)
    return np.concatenate([blank, pink, uniform, noise_like(like[:4])])


@pytest.mark.slow
def test_gate_rejects_noise_and_blank_images_and_accepts_held_out_cells(pmy, embed, features):
    order = np.random.default_rng(0).permutation(len(pmy))
    calibrate, held_out = pmy[order[:80]], pmy[order[80:]]
    gate, calibration = FidelityGate.calibrated("PMY", calibrate, [f"pmy{i}" for i in range(80)], embed, 0.95)
    assert calibration.real_median < calibration.radius <= calibration.real_max
    real, _ = gate.check(held_out)
    # the radius is the 95% quantile of real cells' nearest-other-cell distances: about 95% of genuine held-out
    # cells pass (measured over random splits of 200 PBC promyelocytes: 94% on average, 86% at worst)
    assert np.mean([v.plausible for v in real]) >= 0.85, [round(v.distance, 2) for v in real]
    assert np.median([v.distance for v in real]) < calibration.radius
    bad, _ = gate.check(_blank_and_noise(np.random.default_rng(0), pmy))
    assert not any(v.plausible for v in bad), [round(v.distance, 2) for v in bad]
    assert all(v.reason.startswith("not a plausible PMY") for v in bad)
    assert min(v.distance for v in bad) > 1.2 * calibration.radius  # far outside, not at the edge
    strict, tight = FidelityGate.calibrated("PMY", calibrate, [f"pmy{i}" for i in range(80)], embed, 0.5)
    assert tight.radius == pytest.approx(tight.real_median) and tight.radius < calibration.radius
    assert np.mean([v.plausible for v in strict.check(held_out)[0]]) < np.mean([v.plausible for v in real])


def test_the_gate_quantile_is_a_flag_and_checked(tmp_path):
    from typer.testing import CliRunner

    from wbc_data.cli import app

    result = CliRunner().invoke(app, ["synth", "--cls", "PMY", "--n", "1", "--fidelity-quantile", "1.5",
                                      "-w", str(tmp_path)])  # fmt: skip
    assert result.exit_code != 0 and "--fidelity-quantile 1.5: a quantile above 0, at most 1" in result.output
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_kid_and_precision_recall_tell_real_cells_from_noise(pmy, embed, features):
    half_a, half_b = features[:60], features[60:]
    floor = compare(half_a, half_b)
    noise = compare(half_a, embed(noise_like(pmy[60:100], seed=1)))
    assert noise.kid > 0.05 and abs(floor.kid) < 0.1 * noise.kid, (floor.kid, noise.kid)
    assert floor.precision > 0.6 and floor.recall > 0.6, floor
    assert noise.precision < 0.05 and noise.recall < 0.05, noise


def _rotated(image: Image.Image, angle: float) -> Image.Image:
    background = tuple(int(v) for v in np.asarray(image)[:4].reshape(-1, 3).mean(axis=0))
    return image.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=background)


def _zoomed(image: Image.Image, factor: float) -> Image.Image:
    side = round(SIZE * factor)
    big = image.resize((side, side), Image.Resampling.BICUBIC)
    offset = (side - SIZE) // 2
    return big.crop((offset, offset, offset + SIZE, offset + SIZE))


def _cropped(image: Image.Image, keep: float) -> Image.Image:
    side = round(SIZE * keep)  # the top-right corner, enlarged back to the full size
    return image.crop((SIZE - side, 0, SIZE, side)).resize((SIZE, SIZE), Image.Resampling.BICUBIC)


@pytest.mark.slow
def test_copy_guard_catches_rotated_rescaled_and_cropped_copies(pmy):
    train = pmy[:40]
    ids = [f"pmy{i}" for i in range(40)]
    guard, calibration = MemorisationGuard.calibrated(train, ids)
    assert calibration.dedup_rule_distinct == 0.0  # dedup's test calls no distinct real cell a copy here
    cells = [Image.fromarray(c) for c in train]
    queries = np.stack(
        [np.asarray(q) for q in (_rotated(cells[3], 37), _zoomed(cells[5], 1.2), _cropped(cells[7], 0.8))]
        + [pmy[100], pmy[101]]  # different real cells of the class
    )
    verdicts = guard.check(queries)
    copies, distinct = verdicts[:3], verdicts[3:]
    assert all(v.copy for v in copies), [v.reason for v in copies]
    assert [v.registered_id for v in copies] == ["pmy3", "pmy5", "pmy7"]
    assert all(v.distance >= calibration.threshold for v in copies)  # the pixel test alone would miss them
    assert not any(v.copy for v in distinct), [v.reason for v in distinct]
    # the recovered transform, through dedup's public function
    found = find_copies(encode(queries[:3]), encode(train))
    assert found[0] is not None and abs(found[0].angle - 37) < 3 and abs(found[0].scale - 1) < 0.05
    assert found[1] is not None and abs(found[1].angle) < 3 and found[1].scale == pytest.approx(1.2, abs=0.05)
    assert found[2] is not None and found[2].scale == pytest.approx(1.25, abs=0.06)
    on_torch = find_copies(encode(queries), encode(train), device="torch-cpu")  # the GPU path, run on the CPU
    assert [f.reference if f else None for f in on_torch] == [3, 5, 7, None, None]


def test_encode_marks_blank_images_and_finds_nothing_in_them():
    blank = encode([np.full((32, 32, 3), 200, np.uint8), Image.new("RGB", (40, 30), (0, 0, 0))])
    assert blank.blank.all() and len(blank) == 2
    assert find_copies(blank, blank) == [None, None]


def test_embedding_is_batch_independent():
    from wbc_data.synth.embedding import Embedder

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 24, 24, 3), dtype=np.uint8)
    embedder = Embedder(batch_size=2)
    together = embedder(images)
    alone = embedder(images[2:])
    assert together.shape == (3, embedder.dim) and np.allclose(together[2], alone[0], atol=1e-4)
    assert not np.allclose(together[0], together[1], atol=1e-3)
