"""Dedup building blocks: dihedral hashes vs imagehash, exact index vs brute force, clustering, keep policy."""

from __future__ import annotations

import imagehash
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from wbc_data.core.errors import DedupError
from wbc_data.dedup.cluster import clusters
from wbc_data.dedup.dihedral import TRANSFORMS, dihedral_phashes, transform_array
from wbc_data.dedup.index import BruteForceIndex, MultiIndexHash, build_index
from wbc_data.dedup.pairs import exact_pairs
from wbc_data.dedup.policy import KeepPolicy, choose_keepers, default_policy
from wbc_data.imaging.signatures import grey_thumbnail, phash_from_thumb
from wbc_data.io.resources import manifests_dir, sample_dir
from wbc_data.sources.definition import SourceDefinition, SourceError

PIL_OPS = {
    "identity": None,
    "flip_lr": Image.Transpose.FLIP_LEFT_RIGHT,
    "flip_tb": Image.Transpose.FLIP_TOP_BOTTOM,
    "rot180": Image.Transpose.ROTATE_180,
    "transpose": Image.Transpose.TRANSPOSE,
    "rot90": Image.Transpose.ROTATE_90,
    "rot270": Image.Transpose.ROTATE_270,
    "transverse": Image.Transpose.TRANSVERSE,
}


def sample_images() -> list[Image.Image]:
    files = sorted(p for p in sample_dir().rglob("*.jpg") if not p.name.startswith("."))
    assert len(files) >= 6
    return [Image.open(p).convert("RGB") for p in files]


def test_transform_array_matches_pil():
    grey = np.asarray(sample_images()[0].convert("L"))
    image = Image.fromarray(grey)
    for name, op in PIL_OPS.items():
        expected = grey if op is None else np.asarray(image.transpose(op))
        assert np.array_equal(transform_array(grey, name), expected), name


def test_dihedral_hashes_equal_phash_of_transformed_thumbnail_and_image():
    images = sample_images()
    thumbs = np.stack([grey_thumbnail(img) for img in images])
    hashes = dihedral_phashes(thumbs)
    image_diffs = []
    for k, img in enumerate(images):
        assert int(hashes[k, 0]) == int(str(imagehash.phash(img)), 16)
        for t, name in enumerate(TRANSFORMS):
            # bit-equal to the pHash of the flipped/rotated thumbnail (the DCT sign identity is exact here)
            assert int(hashes[k, t]) == phash_from_thumb(transform_array(thumbs[k], name)), name
            moved = img if PIL_OPS[name] is None else img.transpose(PIL_OPS[name])
            image_diffs.append(bin(int(hashes[k, t]) ^ int(str(imagehash.phash(moved)), 16)).count("1"))
    # vs imagehash of the actually transformed image: resampling order differs, so allow two bits
    assert max(image_diffs) <= 2 and np.mean(image_diffs) < 0.5


def random_hashes(seed: int) -> np.ndarray:
    """Uniform hashes plus near copies of them (a few bits flipped), so every radius has matches."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 2**64, 800, dtype=np.uint64, endpoint=False)
    flips = np.zeros(len(base), dtype=np.uint64)
    for _ in range(6):
        bit = rng.integers(0, 64, len(base)).astype(np.uint64)
        flips ^= (np.uint64(1) << bit) * (rng.random(len(base)) < 0.6).astype(np.uint64)
    return np.concatenate([base, base ^ flips])


def same(a, b) -> bool:
    a, b = a.sorted(), b.sorted()
    return all(np.array_equal(getattr(a, f), getattr(b, f)) for f in ("query", "item", "distance"))


@pytest.mark.parametrize("radius", [0, 2, 5, 8, 12])
def test_index_equals_brute_force_on_random_hashes(radius):
    db = random_hashes(radius)
    queries = np.concatenate([db[::3], random_hashes(100 + radius)[:500]])
    expected = BruteForceIndex(db).search(queries, radius)
    assert len(expected.query) > 0
    for m in (3, 4, 5, 8):
        assert same(MultiIndexHash(db, m).search(queries, radius), expected), m
    assert same(build_index(db, radius, len(queries), kind="mih").search(queries, radius), expected)
    # brute force itself, checked against a plain Python popcount
    q, i = expected.query, expected.item
    python = {(a, b) for a in range(len(queries)) for b in range(0, len(db), 97)
              if bin(int(queries[a]) ^ int(db[b])).count("1") <= radius}  # fmt: skip
    assert python == {(a, b) for a, b in zip(q.tolist(), i.tolist(), strict=True) if b % 97 == 0}


@pytest.mark.parametrize("radius", [4, 8, 10])
def test_index_equals_brute_force_on_real_dihedral_hashes(radius):
    thumbs = np.stack([grey_thumbnail(img) for img in sample_images()])
    h8 = dihedral_phashes(np.concatenate([thumbs, thumbs[:, ::-1], thumbs[:, :, ::-1]]))
    expected = BruteForceIndex(h8[:, 0]).search(h8.reshape(-1), radius)
    for m in (3, 4, 6):
        assert same(MultiIndexHash(h8[:, 0], m).search(h8.reshape(-1), radius), expected)


def test_exact_pairs_and_clusters():
    keys = pd.Series(["x", None, "y", "x", "x", "y", "z"])
    pairs = exact_pairs(keys, "file")
    assert sorted(zip(pairs.a, pairs.b, strict=True)) == [(0, 3), (0, 4), (2, 5)]
    labels = clusters(7, pairs)
    assert labels.tolist() == [0, -1, 1, 0, 0, 1, -1]


def frame_for_policy() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sample_id": ["k:1", "p:1", "r:1", "p:2", "a:1", "a:2"],
            "source": ["kaggle-cancer-mix", "pbc", "raabin", "pbc", "aml-lmu", "aml-lmu"],
            "label_status": ["exact", "coarse", "exact", "exact", "coarse", "exact"],
            "width": [400, 360, 575, 360, 400, 200],
            "height": [400, 363, 575, 363, 400, 200],
        }
    )


def test_keep_policy_default_and_custom(tmp_path):
    frame = frame_for_policy()
    cluster = np.array([0, 0, 0, 1, 2, 2])
    keep = choose_keepers(frame, cluster, default_policy())
    # cluster 0: original over derivative, then pbc before raabin; cluster 2: exact label beats the larger image
    assert keep.tolist() == [1, 1, 1, 3, 5, 5]
    # the bare policy names no source: no derivative, alphabetical priority, so the Kaggle copy would win
    assert KeepPolicy().source_priority == KeepPolicy().derivative_sources == []
    assert choose_keepers(frame, cluster, KeepPolicy()).tolist() == [0, 0, 0, 3, 5, 5]
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text("order: [size, original, source, label]\nsource_priority: [raabin, pbc]\n")
    keep = choose_keepers(frame, cluster, KeepPolicy.from_yaml(policy_file))
    assert keep.tolist() == [2, 2, 2, 3, 4, 4]


def test_default_policy_is_read_from_the_source_yaml(tmp_path):
    """keep_priority and role come from manifests/*.yaml: edit them in a copy and the keeper changes."""
    shipped = default_policy()
    assert shipped.source_priority == ["pbc", "aml-lmu", "raabin", "bccd"]
    assert shipped.derivative_sources == ["kaggle-cancer-mix"]
    for path in manifests_dir().glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        text = text.replace("keep_priority: 1 ", "keep_priority: 9 ").replace("keep_priority: 3 ", "keep_priority: 1 ")
        (tmp_path / path.name).write_text(text.replace("role: derivative", "role: original"), encoding="utf-8")
    edited = default_policy(tmp_path)
    assert edited.source_priority == ["raabin", "aml-lmu", "bccd", "pbc"] and edited.derivative_sources == []
    keep = choose_keepers(frame_for_policy(), np.array([0, 0, 0, 1, 2, 2]), edited)
    assert keep.tolist() == [2, 2, 2, 3, 5, 5]  # raabin now first; the Kaggle row no longer loses as a derivative
    # a user's policy file overrides only the keys it sets, on top of the definitions
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text("source_priority: [pbc]\n")
    merged = KeepPolicy.from_yaml(policy_file, base=edited)
    assert merged.source_priority == ["pbc"] and merged.derivative_sources == [] and merged.order == edited.order
    assert KeepPolicy.from_yaml(policy_file).derivative_sources == ["kaggle-cancer-mix"]


@pytest.mark.parametrize(
    "line, needle",
    [
        ("keep_priority: 0", "keep_priority must be a whole number >= 1"),
        ("keep_priority: first", "keep_priority must be a whole number >= 1"),
        ("keep_priority: true", "keep_priority must be a whole number >= 1"),
        ("keep_priority: 1.5", "keep_priority must be a whole number >= 1"),
        ("role: copy", "role must be one of original, derivative, got 'copy'"),
    ],
)
def test_bad_keep_keys_in_a_definition_are_one_line(tmp_path, line, needle):
    path = tmp_path / "src.yaml"
    keys = ("name", "title", "citation", "licence", "download", "layout")
    path.write_text("".join(f"{k}: x\n" for k in keys) + line + "\n")
    with pytest.raises(SourceError, match=needle) as info:
        SourceDefinition.from_yaml(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "text", ["order: [size, colour]\n", "- just a list\n", "sources: [pbc]\n", "source_priority: pbc\n"]
)
def test_bad_policy_is_a_user_error(tmp_path, text):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(DedupError, match=str(path)):
        KeepPolicy.from_yaml(path)


def test_resample_matrix_identity_and_shift():
    """No crop is the identity; removing a whole pixel at the start shifts a linear ramp by exactly that pixel."""
    from wbc_data.dedup.zoom import resample_matrices

    assert np.allclose(resample_matrices(np.zeros(1), np.zeros(1))[0], np.eye(32))
    ramp = np.arange(32, dtype=np.float64)
    # keep pixels 1..32 of a 33-pixel-wide span scaled to 32 samples: cubic interpolation reproduces a ramp exactly
    # away from the clamped edges
    shifted = resample_matrices(np.array([1 / 32]), np.array([0.0]))[0] @ ramp
    expected = 1 + (np.arange(32) + 0.5) * 31 / 32 - 0.5
    assert np.allclose(shifted[2:-2], expected[2:-2])


def test_zoomed_hash_approximates_phash_of_cropped_image():
    """The pHash of a box of the stored thumbnail, resampled, is within a few bits of imagehash.phash of the image
    actually cropped to that box (real PBC cells, crops up to 10% per axis)."""
    import random

    from tests.conftest import shared_path
    from wbc_data.dedup.zoom import CropBox, zoomed_phashes

    root = shared_path("pbc", "PBC_dataset_normal_DIB")
    rng = random.Random(5)
    files = [p for cls in ("neutrophil", "monocyte", "lymphocyte") for p in sorted((root / cls).glob("[!.]*.jpg"))[:8]]
    diffs, plain = [], []
    for path in files:
        img = Image.open(path).convert("RGB")
        w, h = img.size
        for _ in range(3):
            dx, dy = round(w * rng.uniform(0.03, 0.10)), round(h * rng.uniform(0.03, 0.10))
            left, top = rng.randint(0, dx), rng.randint(0, dy)
            box = CropBox(left / w, (dx - left) / w, top / h, (dy - top) / h)
            cropped = int(str(imagehash.phash(img.crop((left, top, w - dx + left, h - dy + top)))), 16)
            zoomed = int(zoomed_phashes(grey_thumbnail(img)[None], (box,))[0, 0])
            diffs.append(bin(zoomed ^ cropped).count("1"))
            plain.append(bin(int(str(imagehash.phash(img)), 16) ^ cropped).count("1"))
    assert max(diffs) <= 6 and np.mean(diffs) < 1.5, diffs
    # and the crops were large enough to matter: the uncropped pHash is much farther
    assert np.mean(plain) > 4 * max(np.mean(diffs), 0.5), (np.mean(plain), np.mean(diffs))
