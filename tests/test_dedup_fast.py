"""Issue 21: the fast dedup path gives the reference path's results. The batched registration engine
(:mod:`wbc_data.dedup.batched`) against the pair-by-pair reference (:func:`wbc_data.dedup.register.register`) on
real copies, the numba kernels against what they replace, and the registration cache of warm re-runs. Recovered
angles and correlations are compared within a tolerance, never exactly (FFT libraries and CPUs round differently).
No timings here: speed is measured in ``benchmarks/dedup.py --case dense|pbc``."""

from __future__ import annotations

import io
import shutil

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from benchmarks import signature_reference
from benchmarks.augment import ACCURACY_LABEL_MAP, Augmentation, augment, augmented_set, load_rgb
from tests.conftest import shared_path
from wbc_data.core.labelmap import LabelMap
from wbc_data.core.workspace import Workspace
from wbc_data.dedup import batched as batched_module
from wbc_data.dedup import confirm as confirm_module
from wbc_data.dedup.confirm import RESULT_FIELDS, column, confirm, register_batch
from wbc_data.dedup.fill import fill_mask
from wbc_data.dedup.kernels import batch_starts, masked_correlations, top_local_peaks
from wbc_data.dedup.linkage import COPY, copy_relation
from wbc_data.dedup.register import correlation
from wbc_data.dedup.run import DedupOptions, dedup
from wbc_data.dedup.signature import CANVAS, grey_and_valid, make_canvas, orb_descriptors, signature
from wbc_data.dedup.words import default_embedder
from wbc_data.imaging.signatures import THUMB_SIZE
from wbc_data.ingest.engine import IngestOptions, ingest
from wbc_data.ingest.worker import image_facts
from wbc_data.io.resources import sample_dir
from wbc_data.manifest.merge import merge

ANGLE_TOLERANCE = 2.5  # degrees: the log-polar image has a row every 2 degrees, refined by a centroid
SCALE_TOLERANCE = 0.05  # the log-polar image has a column every 4.1% of scale (ln 48 / 96), refined by a centroid
CORRELATION_TOLERANCE = 0.03  # decisions are equal; a copy refined a degree apart correlates a little differently


def _canvas(rgb: np.ndarray) -> np.ndarray:
    grey, valid = grey_and_valid(Image.fromarray(rgb))
    return make_canvas(grey, valid)


def _decoded(data: bytes) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _real_copies(n_cells: int, copies: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Canvases of real PBC cells and augmented copies (full issue-9 ranges); (canvases, pairs, is_copy)."""
    pbc = shared_path("pbc", "PBC_dataset_normal_DIB")
    rng = np.random.default_rng(seed)
    files = sorted(p for p in pbc.glob("*/*.jpg") if not p.name.startswith("."))
    canvases, origin = [], []
    for k, index in enumerate(rng.choice(len(files), n_cells, replace=False)):
        rgb = load_rgb(files[index])
        canvases.append(_canvas(rgb))
        origin.append(k)
        for _ in range(copies):
            canvases.append(_canvas(_decoded(augment(rgb, Augmentation.draw(rng)))))
            origin.append(k)
    origin_a = np.array(origin)
    n = len(canvases)
    everything = np.array([(a, b) for a in range(n) for b in range(a + 1, n)], np.int64)
    near = everything[(np.abs(everything[:, 0] - everything[:, 1]) <= copies + 1)]
    return np.stack(canvases), near, origin_a[near[:, 0]] == origin_a[near[:, 1]]


@pytest.mark.slow
def test_batched_registration_agrees_with_the_reference_on_real_copies():
    """Real PBC cells (any angle, fill, shift, zoom, mirror, JPEG, downscale): both engines make the same decision
    for every pair (copy or not), and on copies recover the same angle, scale, mirror and correlation."""
    canvases, pairs, same = _real_copies(n_cells=8, copies=4, seed=3)
    reference = register_batch(canvases, pairs, "reference")
    batched = register_batch(canvases, pairs, "batched")
    none = np.full(len(pairs), "", dtype=object)
    rel_ref = copy_relation(reference, CANVAS, none, none)
    rel_fast = copy_relation(batched, CANVAS, none, none)
    assert (rel_ref == rel_fast).all(), np.flatnonzero(rel_ref != rel_fast)
    assert (rel_ref[same] == COPY).mean() >= 0.95  # the copies are found (both engines alike)
    assert not (rel_ref[~same] == COPY).any()
    col = {name: k for k, name in enumerate(RESULT_FIELDS)}
    copies = rel_ref == COPY
    ref, fast = reference[copies], batched[copies]
    assert np.abs(ref[:, col["correlation"]] - fast[:, col["correlation"]]).max() <= CORRELATION_TOLERANCE
    assert np.abs(ref[:, col["texture"]] - fast[:, col["texture"]]).max() <= 2 * CORRELATION_TOLERANCE
    turn = (ref[:, col["angle"]] - fast[:, col["angle"]] + 180) % 360 - 180
    assert np.abs(turn).max() <= ANGLE_TOLERANCE
    assert np.abs(ref[:, col["scale"]] / fast[:, col["scale"]] - 1).max() <= SCALE_TOLERANCE
    assert (ref[:, col["mirror"]] == fast[:, col["mirror"]]).all()
    assert np.abs(ref[:, col["dx"] :] - fast[:, col["dx"] :]).max() <= 1.0


def _clusters(frame: pd.DataFrame) -> set[frozenset]:
    found = frame.dropna(subset=["dup_cluster"])
    return {frozenset(ids) for _, ids in found.groupby("dup_cluster")["sample_id"]}


def _dedup_both(ws: Workspace, **options) -> tuple[pd.DataFrame, pd.DataFrame]:
    fast = dedup(ws, DedupOptions(reports=False, workers=1, **options)).frame
    reference = dedup(ws, DedupOptions(reports=False, workers=1, engine="reference", **options)).frame
    return fast, reference


def _augmented_workspace(tmp_path, workspace: Workspace, fields: int, copies: int, distinct_per_class: int,
                         seed: int) -> None:  # fmt: skip
    """One real PBC cell per class and ``fields`` BCCD fields, each with ``copies`` augmented copies, among distinct
    cells and 2 distinct fields, ingested and merged."""
    pbc = shared_path("pbc", "PBC_dataset_normal_DIB")
    bccd = shared_path("bccd", "BCCD", "JPEGImages")
    augmented_set(tmp_path / "set", pbc, bccd, cells_per_class=1, fields=fields, copies=copies,
                  distinct_per_class=distinct_per_class, distinct_fields=2, seed=seed)  # fmt: skip
    ingest("imagefolder", tmp_path / "set", workspace,
           IngestOptions(workers=1, label_map=LabelMap.from_dict(ACCURACY_LABEL_MAP)))  # fmt: skip
    merge(workspace)


@pytest.mark.slow
def test_fast_path_gives_the_reference_clusters_on_augmented_real_cells_and_fields(tmp_path, workspace):
    """Augmented copies of real PBC cells and BCCD fields among distinct ones: identical clusters and decisions,
    and the same recovered rotations within the angle tolerance."""
    _augmented_workspace(tmp_path, workspace, fields=2, copies=3, distinct_per_class=2, seed=21)
    fast, reference = _dedup_both(workspace)
    assert _clusters(fast) == _clusters(reference)
    assert len(_clusters(fast)) >= 8
    assert (fast["dup_keep"].fillna(True) == reference["dup_keep"].fillna(True)).all()
    _same_rotations(fast, reference)


@pytest.mark.slow
def test_registering_a_spanning_forest_gives_the_clusters_of_registering_every_candidate(tmp_path, workspace):
    """Real PBC cells with 8 augmented copies each and BCCD fields with 3, among distinct cells and fields: the
    default (a spanning forest of the candidates, pairs inside a copy set deferred) registers fewer pairs and gives
    the clusters and keep decisions of registering every candidate pair."""
    _augmented_workspace(tmp_path, workspace, fields=1, copies=8, distinct_per_class=3, seed=7)
    every = dedup(workspace, DedupOptions(reports=False, workers=1, cache_pairs=False, all_pairs=True))
    forest = dedup(workspace, DedupOptions(reports=False, workers=1, cache_pairs=False))
    assert _clusters(forest.frame) == _clusters(every.frame)
    assert len(_clusters(forest.frame)) >= 7
    assert (forest.frame["dup_keep"].fillna(True) == every.frame["dup_keep"].fillna(True)).all()
    assert forest.findings["candidates inside a copy set, not registered"] > 0
    assert forest.findings["registered"] < every.findings["registered"]
    _same_rotations(forest.frame, every.frame)


def _same_rotations(fast: pd.DataFrame, reference: pd.DataFrame) -> None:
    """Transforms like ``mirror rot 37 scale 1.08 shift 5,-4``: the same mirror and rotation within a degree."""
    pattern = r"(?P<mirror>mirror )?rot (?P<angle>-?\d+)"
    a = fast.set_index("sample_id")["dup_transform"].str.extract(pattern)
    b = reference.set_index("sample_id")["dup_transform"].str.extract(pattern).loc[a.index]
    both = a["angle"].notna() & b["angle"].notna()
    assert both.sum() >= 1
    turn = (a.loc[both, "angle"].astype(float) - b.loc[both, "angle"].astype(float) + 180) % 360 - 180
    assert turn.abs().max() <= ANGLE_TOLERANCE + 1  # printed to a whole degree
    assert (a.loc[both, "mirror"].isna() == b.loc[both, "mirror"].isna()).all()


@pytest.mark.slow
def test_fast_path_gives_the_reference_clusters_on_the_kaggle_copies(tmp_path, workspace):
    """The Kaggle re-upload's PBC files (byte copies) and AML-LMU cells beside a PBC sample: the same clusters."""
    kaggle = shared_path("kaggle_cancer_mix", "val")
    pbc = shared_path("pbc", "PBC_dataset_normal_DIB")
    root = tmp_path / "kaggle" / "val"
    for folder in ("basophil", "myeloblast", "monocyte"):
        (root / folder).mkdir(parents=True)
        for path in sorted((kaggle / folder).glob("*.jpg"))[:15]:
            shutil.copy(path, root / folder / path.name)
    (tmp_path / "pbc" / "basophil").mkdir(parents=True)
    names = {p.name for p in (root / "basophil").iterdir()}
    for path in sorted((pbc / "basophil").glob("*.jpg")):
        if path.name in names or len(names) < 40:
            shutil.copy(path, tmp_path / "pbc" / "basophil" / path.name)
            names.add(path.name)
    ingest("imagefolder", tmp_path / "kaggle", workspace, IngestOptions(workers=1))
    ingest("imagefolder", tmp_path / "pbc", workspace, IngestOptions(workers=1))
    merge(workspace)
    fast, reference = _dedup_both(workspace)
    assert _clusters(fast) == _clusters(reference)


def test_nearest_words_equal_opencv_bfmatcher():
    """The numba matcher gives OpenCV's word counts on real ORB descriptors of both mirror states."""
    embedder = default_embedder()
    images = sorted((sample_dir() / "pbc").rglob("*.jpg"))[:12]
    checked = 0
    for path in images:
        grey, valid = grey_and_valid(Image.open(path).convert("RGB"))
        for descriptors in orb_descriptors(grey, valid):
            assert (embedder.counts(descriptors) == embedder.counts_reference(descriptors)).all()
            checked += len(descriptors)
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (500, 32), dtype=np.uint8)
    assert (embedder.counts(noise) == embedder.counts_reference(noise)).all()
    assert checked > 100


def test_signatures_equal_the_straightforward_code_on_real_images_with_and_without_fill():
    """The signature shortcuts (fill borders grown from the border, no resize or erosion of an all-valid mask,
    OpenCV's masked deviation, the manifest's thumbnail where there is no fill) give the reference code's signatures
    bit for bit, and the mirror image's words (descriptors at the mirrored keypoints) those of detecting on the
    flipped image, identical for most images: on the built-in sample's real PBC cells and BCCD fields, on augmented
    copies of them with black and white fill corners, and on blank and letterboxed images."""
    embedder = default_embedder()
    sample = sample_dir()
    originals = [load_rgb(p) for p in sorted((sample / "pbc").rglob("*.jpg"))[:10]]
    originals += [load_rgb(p) for p in sorted((sample / "bccd").rglob("*.jpg"))[:3]]
    rng = np.random.default_rng(3)
    images = [Image.fromarray(rgb) for rgb in originals]
    images += [Image.open(io.BytesIO(augment(rgb, Augmentation.draw(rng)))).convert("RGB") for rgb in originals]
    letterbox = np.zeros((120, 200, 3), np.uint8)
    letterbox[:, 40:160] = cv2.resize(originals[0], (120, 120))
    images += [
        Image.fromarray(letterbox),
        Image.new("RGB", (90, 70), (0, 0, 0)),
        Image.new("RGB", (90, 70), (200, 40, 90)),
    ]
    filled = same_mirror = 0
    for image in images:
        reference = signature_reference.signature(image, embedder, CANVAS)
        stored = np.frombuffer(image_facts(image)["thumb"], np.uint8).reshape(THUMB_SIZE, THUMB_SIZE)  # ingest's
        fast, with_stored = signature(image, embedder), signature(image, embedder, stored)
        assert (with_stored.thumb == reference.thumb).all()  # the manifest's thumbnail is reused only where exact
        filled += fast.fill > 0
        assert (fast.canvas == reference.canvas).all()
        assert (fast.words[0] == reference.words[0]).all()
        # the mirror image's words: descriptors at the mirrored keypoints, not detected again on the flipped image
        mine, detected = fast.words[1].astype(np.float64), reference.words[1].astype(np.float64)
        assert mine @ detected >= 0.99 * np.linalg.norm(mine) * np.linalg.norm(detected)
        same_mirror += bool((fast.words[1] == reference.words[1]).all())
        assert (fast.thumb == reference.thumb).all()
        assert (fast.fill, fast.blank) == (reference.fill, reference.blank)
        array = np.asarray(image)
        assert (fill_mask(array) == signature_reference.fill_mask(array)).all()
    assert filled >= len(originals)  # the copies' corners (and the letterbox) were really fill
    assert same_mirror >= 0.8 * len(images)


def test_crop_hash_correlations_equal_the_per_pair_crops_on_real_thumbnails():
    """The hash search crops each matched grid box once, by two matrix products per box; its correlations equal
    cropping each pair's thumbnail by itself (``verify.crop_correlation``) on real sample cells and crops of them."""
    from wbc_data.dedup.dihedral import TRANSFORMS, dihedral_phashes
    from wbc_data.dedup.index import build_index
    from wbc_data.dedup.pairs import _crop_candidates, _unit
    from wbc_data.dedup.verify import crop_correlation
    from wbc_data.dedup.zoom import CROP_GRID, as_array, zoomed_phashes

    images = [Image.open(p).convert("RGB") for p in sorted((sample_dir() / "pbc").rglob("*.jpg"))[:40]]
    images += [im.crop((im.width // 14, im.height // 20, im.width - im.width // 30, im.height)) for im in images[:20]]
    thumbs = np.stack([np.frombuffer(image_facts(im)["thumb"], np.uint8).reshape(THUMB_SIZE, THUMB_SIZE)
                       for im in images])  # fmt: skip
    hashes = dihedral_phashes(thumbs)
    index = build_index(zoomed_phashes(thumbs).reshape(-1), 12, n_queries=len(thumbs) * len(TRANSFORMS))
    with pytest.MonkeyPatch.context() as patch:  # every match, not only those above the refinement floor
        patch.setattr("wbc_data.dedup.pairs.REFINE_FLOOR", -2.0)
        frame, _ = _crop_candidates(hashes, thumbs, 12, index, np.arange(len(thumbs)), CROP_GRID)
    assert len(frame) >= 100 and (frame["correlation"] < 0.75).any()
    tags = [box.describe() for box in CROP_GRID]
    which = np.array([tags.index(box) for box in frame["box"]])
    a, b, t = (frame[c].to_numpy(np.int64) for c in ("a", "b", "t"))
    straight = crop_correlation(_unit(thumbs, a, t), thumbs[b], as_array(CROP_GRID)[which])
    assert np.abs(frame["correlation"].to_numpy() - straight).max() <= 1e-5


def test_hypotheses_and_winners_equal_the_per_pair_loops():
    """The batched engine builds its hypotheses and picks each pair's winner in array passes; both equal the loops
    they replaced (the reference's order, out-of-range scales and missing peaks skipped, the first of equal scores,
    a NaN score first, no winner at -1)."""
    rng = np.random.default_rng(4)
    found = rng.normal(0, 30, (50, 4, 2))
    found[rng.random(found.shape) < 0.1] = np.nan
    pairs = rng.integers(0, 1000, 50)
    log_base = np.log(48) / 96
    expected = []
    for s, pair in enumerate(pairs):
        for m, mirror in enumerate((False, True)):
            for dx, dy in zip(found[s, 2 * m], found[s, 2 * m + 1], strict=True):
                angle = dy * 360.0 / 180
                scale = float(np.exp(np.clip(-dx * log_base, -30.0, 30.0)))
                if 0.25 <= scale <= 4.0:
                    expected += [(pair, mirror, float(turn), scale) for turn in (angle, angle + 180.0)]
    got = batched_module._hypotheses(pairs, found, log_base)
    assert len(expected) > 50
    for k, column_got in enumerate(got):
        assert np.array_equal(column_got, np.array([e[k] for e in expected]), equal_nan=True)

    pair_of = np.sort(rng.integers(0, 40, 300))
    score = rng.choice([-1.0, 0.5, 0.9, 0.93, np.nan], 300)
    winners = []
    for s in np.unique(pair_of):
        where = np.flatnonzero(pair_of == s)
        k = where[int(np.argmax(score[where]))]
        if score[k] > -1.0:
            winners.append(k)
    assert batched_module._winners(pair_of, score).tolist() == winners


def test_fill_masks_equal_the_labelling_code_on_random_images():
    """``fill.fill_mask`` (regions grown from the border, ``kernels.fill_pixels``) against the code that labels every
    region of the image (``benchmarks/signature_reference.py``), on random images built to have near-black,
    near-white and flat regions of every size, inside and touching the border, one-colour and not, down to one pixel
    wide; the real-image cases are in ``test_signatures_equal_the_straightforward_code_...``."""
    from wbc_data.dedup.fill import fill_mask

    rng = np.random.default_rng(8)
    found = {"all": 0, "none": 0, "part": 0}
    for k in range(300):
        h, w = (int(v) for v in rng.integers(1, 60, 2)) if k % 10 else (int(rng.integers(1, 4)), 50)
        blocks = cv2.resize(rng.integers(0, 5, (max(1, h // 6), max(1, w // 6))).astype(np.uint8), (w, h),
                            interpolation=cv2.INTER_NEAREST)  # fmt: skip
        palette = np.array([[5, 10, 3], [250, 240, 245], [120, 90, 200], [120, 90, 201], [60, 60, 60]], np.uint8)
        rgb = palette[blocks]
        noisy = rng.random((h, w)) < rng.choice([0.0, 0.02, 0.3])
        rgb[noisy] = rng.integers(0, 256, (int(noisy.sum()), 3))
        got, expected = fill_mask(rgb), signature_reference.fill_mask(rgb)
        assert np.array_equal(got, expected), (k, h, w)
        found["all" if expected.all() else "none" if not expected.any() else "part"] += 1
    assert found["part"] >= 100 and found["all"] and found["none"], found  # the cases were varied


def test_kernels_equal_their_references():
    """``top_local_peaks`` finds the peaks ``register.phase_peaks`` finds; ``masked_correlations`` equals
    ``register.correlation``."""
    rng = np.random.default_rng(1)
    surfaces = cv2.GaussianBlur(rng.random((6, 40, 30)).astype(np.float32).transpose(1, 2, 0), (0, 0), 2)
    surfaces = np.ascontiguousarray(surfaces.transpose(2, 0, 1))
    py, px, height = top_local_peaks(surfaces, 2)
    for k, surface in enumerate(surfaces):  # register.phase_peaks's rule: not below the 5 x 5 dilation (cyclic)
        padded = np.pad(surface, 2, mode="wrap")
        local = surface >= cv2.dilate(padded, np.ones((5, 5), np.uint8))[2:-2, 2:-2]
        ys, xs = np.nonzero(local)
        order = np.argsort(-surface[ys, xs])[:2]
        assert list(zip(py[k], px[k], strict=True)) == [(ys[o], xs[o]) for o in order]
        assert np.allclose(height[k], surface[ys[order], xs[order]])
    a, b = rng.random((5, 24, 24)).astype(np.float32), rng.random((3, 24, 24)).astype(np.float32)
    ma = (rng.random((5, 24, 24)) > 0.3).astype(np.float32)
    mb = (rng.random((3, 24, 24)) > 0.3).astype(np.float32)
    rows = np.array([0, 2, 1, 1, 0])
    minimum = np.array([10, 10, 400, 10, 10])
    got = masked_correlations(a, ma, b, mb, rows, minimum)
    want = [correlation(a[k], ma[k], b[rows[k]], mb[rows[k]], int(minimum[k])) for k in range(5)]
    assert np.allclose(got, want, atol=1e-9)
    assert got[2] == -1.0


def test_batches_bound_pairs_and_distinct_rows():
    """Registration batches hold at most the pairs and the distinct rows allowed (the rows bound a worker's memory),
    cover every pair once in order, and are cut where a plain greedy walk cuts them."""
    rng = np.random.default_rng(4)
    pairs = rng.integers(0, 300, (5_000, 2))
    order = np.lexsort((pairs[:, 1], pairs[:, 0]))
    starts = batch_starts(np.ascontiguousarray(pairs[order]), 700, 120, 300)
    expected, rows, count = [0], set(), 0
    for i, (a, b) in enumerate(pairs[order]):
        if count and (count >= 700 or len(rows | {a, b}) > 120):
            expected.append(i)
            rows, count = set(), 0
        rows |= {a, b}
        count += 1
    assert starts.tolist() == expected
    batches = np.split(order, starts[1:])
    assert np.array_equal(np.concatenate(batches), order)
    assert all(len(b) <= 700 and len(np.unique(pairs[b])) <= 120 for b in batches)
    assert len(batches) > 5_000 // 700 + 1  # the row bound cut too


def test_registration_does_not_depend_on_how_pairs_are_batched(monkeypatch):
    """The same results when a batch may touch only a few rows (many small batches), or works in array passes of a
    few pairs and rows, as in one batch in one pass: on real cells of the built-in sample and augmented copies."""
    rng = np.random.default_rng(6)
    cells = [load_rgb(p) for p in sorted((sample_dir() / "pbc").rglob("*.jpg"))[:6]]
    canvases = np.stack([_canvas(rgb) for rgb in cells] + [_canvas(_decoded(augment(rgb, Augmentation.draw(rng))))
                                                          for rgb in cells])  # fmt: skip
    pairs = np.array([(a, b) for a in range(len(canvases)) for b in range(a + 1, len(canvases))], np.int64)
    whole = confirm(pairs, lambda rows: canvases[rows], workers=1)
    monkeypatch.setattr(confirm_module, "BATCH_ROWS", 4)
    assert len(confirm_module.batches_of(pairs, np.arange(len(pairs)), 1)) > 10
    small = confirm(pairs, lambda rows: canvases[rows], workers=1)
    monkeypatch.undo()  # one batch again, but
    monkeypatch.setattr(batched_module, "CHUNK", 3)  # array passes of a few pairs and rows inside it
    monkeypatch.setattr(batched_module, "PREPARE_CHUNK", 2)
    chunked = confirm(pairs, lambda rows: canvases[rows], workers=1)
    copies = column(whole, "correlation") >= 0.9
    assert copies.sum() >= 4  # the copies were found ...
    for other in (small, chunked):
        assert np.array_equal(copies, column(other, "correlation") >= 0.9)  # ... either way
        np.testing.assert_allclose(other, whole, atol=1e-4)


def test_completed_rows_hold_only_the_rows_asked_for_and_equal_them_computed_alone():
    """The second stage's inputs are made for the surviving pairs' rows only, in arrays of that many rows (sparse
    writes into arrays of every batch row cost a zeroed 2 MB huge page each), and a row's inputs do not depend on
    which other rows are completed with it: real sample cells, one with fill (a rotated copy)."""
    cells = [load_rgb(p) for p in sorted((sample_dir() / "pbc").rglob("*.jpg"))[:5]]
    turned = _decoded(augment(cells[0], Augmentation(angle=33.0, zoom=1.0, shift=(0.05, 0.0), fill=(0, 0, 0),
                                                     mirror=False, downscale=1.0, quality=90)))  # fmt: skip
    canvases = np.stack([_canvas(rgb) for rgb in [*cells, turned]])
    assert (canvases[-1] == 0).any()  # the copy's fill corners are no content
    rows = batched_module.prepare_rows(canvases)
    every = batched_module.complete_rows(rows, np.arange(len(canvases)))
    which = np.array([1, 5])
    some = batched_module.complete_rows(rows, which)
    for name in ("valid", "mean", "values", "mask", "inner", "texture", "windowed", "coarse", "spectrum",
                 "coarse_spectrum"):  # fmt: skip
        part, whole = getattr(some, name), getattr(every, name)
        assert len(part) == len(which), name
        np.testing.assert_array_equal(part, whole[which], err_msg=name)


def sample_cells_with_copies(tmp_path, workspace: Workspace, cells: int, originals: int, copies: int,
                             seed: int) -> None:  # fmt: skip
    """The package's first ``cells`` real sample cells and ``copies`` augmented copies of each of the first
    ``originals``, as an image folder, ingested and merged."""
    paths = sorted((sample_dir() / "pbc").rglob("*.jpg"))[:cells]
    root = tmp_path / "a" / "cells"
    root.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for path in paths:
        shutil.copy(path, root / path.name)
    for path in paths[:originals]:
        for k in range(copies):
            (root / f"{path.stem}_copy{k}.jpg").write_bytes(augment(load_rgb(path), Augmentation.draw(rng)))
    ingest("imagefolder", tmp_path / "a", workspace, IngestOptions(workers=1))
    merge(workspace)


def test_warm_rerun_registers_only_new_pairs(tmp_path, workspace):
    """A second dedup registers nothing (the registration cache) and gives the same clusters; after a new source
    (the package's Kaggle sample), only pairs involving its rows are registered."""
    sample_cells_with_copies(tmp_path, workspace, cells=24, originals=4, copies=1, seed=2)
    first = dedup(workspace, DedupOptions(reports=False, workers=1))
    again = dedup(workspace, DedupOptions(reports=False, workers=1))
    assert first.findings["registered"] > 0 and again.findings["registered"] == 0
    assert again.findings["registration cached"] == first.findings["registered"]
    assert _clusters(first.frame) == _clusters(again.frame)
    ingest("kaggle-cancer-mix", sample_dir() / "kaggle_cancer_mix", workspace, IngestOptions(workers=1))
    merge(workspace)
    after = dedup(workspace, DedupOptions(reports=False, workers=1))
    assert 0 < after.findings["registered"] < first.findings["registered"]
    assert after.findings["registration cached"] > 0


@pytest.mark.slow
def test_torch_path_agrees_with_the_numpy_path():
    """The log-polar stage in torch (here on the CPU; on a GPU with ``--device cuda``) makes the numpy path's
    decisions and recovers the same transforms within the tolerances."""
    pytest.importorskip("torch")
    from wbc_data.dedup.batched import register_many

    canvases, pairs, _ = _real_copies(n_cells=5, copies=3, seed=4)
    numpy_path = register_many(canvases, pairs)
    torch_path = register_many(canvases, pairs, torch_device="cpu")
    none = np.full(len(pairs), "", dtype=object)
    relation = copy_relation(numpy_path, CANVAS, none, none)
    assert (relation == copy_relation(torch_path, CANVAS, none, none)).all()
    copies = relation == COPY
    assert copies.sum() >= 10
    col = {name: k for k, name in enumerate(RESULT_FIELDS)}
    diff = np.abs(numpy_path[copies] - torch_path[copies])
    assert diff[:, col["correlation"]].max() <= CORRELATION_TOLERANCE
    turn = (numpy_path[copies, col["angle"]] - torch_path[copies, col["angle"]] + 180) % 360 - 180
    assert np.abs(turn).max() <= ANGLE_TOLERANCE


def test_cuda_path_agrees_with_the_numpy_path_on_a_gpu():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU here: the torch path is checked on the CPU (test_torch_path_agrees_...)")
    from wbc_data.dedup.batched import register_many

    canvases, pairs, _ = _real_copies(n_cells=5, copies=3, seed=4)
    numpy_path = register_many(canvases, pairs)
    cuda_path = register_many(canvases, pairs, torch_device="cuda")
    none = np.full(len(pairs), "", dtype=object)
    assert (copy_relation(numpy_path, CANVAS, none, none) == copy_relation(cuda_path, CANVAS, none, none)).all()


def _local_clusters_of_copies(tmp_path, workspace, cells: int, copies: int):
    """Real sample cells and augmented copies of the first few, ingested and deduplicated by the local pool; the
    signature cache is then removed, so the next dedup computes everything again (elsewhere)."""
    sample_cells_with_copies(tmp_path, workspace, cells=cells, originals=copies, copies=1, seed=5)
    local = dedup(workspace, DedupOptions(reports=False, workers=1, cache_pairs=False)).frame
    shutil.rmtree(workspace.root / "cache")
    return local


def test_an_executor_receives_signature_and_registration_batches(tmp_path, workspace):
    """Any concurrent.futures-style executor (Dask's is one) gets both phases' batches as tasks, and the clusters
    are the local pool's: checked here with an in-process thread pool that records what it ran."""
    from concurrent.futures import ThreadPoolExecutor

    class Recording(ThreadPoolExecutor):
        def __init__(self):
            super().__init__(max_workers=2)
            self.ran = []

        def submit(self, fn, *args, **kwargs):
            self.ran.append(fn.__name__)
            return super().submit(fn, *args, **kwargs)

    local = _local_clusters_of_copies(tmp_path, workspace, cells=20, copies=4)
    with Recording() as executor:
        remote = dedup(workspace, DedupOptions(reports=False, executor=executor, cache_pairs=False)).frame
    assert "compute_batch" in executor.ran and "_task" in executor.ran  # signatures and registration
    assert _clusters(remote) == _clusters(local) and len(_clusters(local)) >= 4


def test_dedup_on_a_local_dask_cluster_gives_the_local_clusters(tmp_path, workspace):
    """Signature and registration batches as Dask tasks (a local cluster of 2 processes standing in for a real
    one): the same clusters as the local worker pool."""
    distributed = pytest.importorskip("distributed", reason="the dask group is not installed (uv sync --group dask)")
    local = _local_clusters_of_copies(tmp_path, workspace, cells=16, copies=4)
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    with cluster, distributed.Client(cluster) as client:
        on_dask = dedup(workspace, DedupOptions(reports=False, executor=client.get_executor(), cache_pairs=False))
    assert _clusters(on_dask.frame) == _clusters(local)
    assert len(_clusters(local)) >= 4
