"""pHash and thumbnail are imagehash's, bit for bit: on real PBC images, on generated images of several modes and
sizes, and for the hand-written LANCZOS resize (wbc_data.imaging.lanczos) against PIL on both pass orders."""

from __future__ import annotations

import io
from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image

from tests.conftest import shared_path
from wbc_data.imaging import lanczos
from wbc_data.imaging.decode import decode_rgb
from wbc_data.imaging.signatures import grey_thumbnail, phash, phash_from_thumb
from wbc_data.ingest.worker import FileJob, process


@pytest.fixture(autouse=True)
def matrix_resize():
    """Use the matrix LANCZOS path as pool workers do (it is off by default outside the pool)."""
    lanczos.set_enabled(True)
    yield
    lanczos.set_enabled(False)


def reference_thumb(image: Image.Image) -> np.ndarray:
    """imagehash.phash's intermediate image: convert('L') then a 32x32 LANCZOS resize."""
    return np.asarray(image.convert("L").resize((32, 32), Image.Resampling.LANCZOS))


def reference_phash(image: Image.Image) -> int:
    return int(str(imagehash.phash(image)), 16)


def check_file(path: Path) -> None:
    """Through the ingest worker (read, decode to RGB, thumbnail, pHash) against imagehash on the opened file."""
    facts = process(FileJob(path=str(path), whole=True))["file"]
    with Image.open(path) as image:
        expected_thumb = reference_thumb(image)
        expected_phash = reference_phash(image)
    assert facts["thumb"] == expected_thumb.tobytes(), path.name
    assert facts["phash"] == expected_phash, f"{path.name}: {facts['phash']:016x} != {expected_phash:016x}"


def test_phash_and_thumb_equal_imagehash_on_real_pbc_images():
    root = shared_path("pbc", "PBC_dataset_normal_DIB")
    files = sorted(p for p in root.glob("*/*.jpg") if not p.name.startswith("."))
    assert len(files) > 50
    for path in files[:: len(files) // 50][:50]:  # spread over every class folder
        check_file(path)


def random_picture(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Smooth structure plus noise, so that the DCT has real low frequencies (not only noise around a median)."""
    y, x = np.mgrid[0:height, 0:width]
    base = 128 + 90 * np.sin(x / (3 + width / 7)) * np.cos(y / (2 + height / 5))
    noise = rng.normal(0, 25, (height, width))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


@pytest.mark.parametrize(
    ("mode", "width", "height"),
    [
        ("RGB", 360, 363),
        ("RGB", 101, 57),  # PIL runs the vertical pass first for this shape
        ("RGB", 57, 101),
        ("RGB", 33, 500),
        ("L", 257, 129),
        ("L", 64, 64),
        ("L", 31, 17),  # upscale
        ("RGB", 32, 32),  # no resize at all
        ("P", 97, 203),
        ("RGBA", 75, 61),  # opaque alpha: ingest's RGB equals imagehash's L conversion
    ],
)
def test_phash_and_thumb_equal_imagehash_on_generated_images(tmp_path, mode, width, height):
    rng = np.random.default_rng(width * 1000 + height)
    channels = [random_picture(rng, width, height) for _ in range(3)]
    if mode == "L":
        image = Image.fromarray(channels[0], mode="L")
    else:
        image = Image.fromarray(np.dstack(channels), mode="RGB")
        if mode == "P":
            image = image.quantize(colors=64)
        elif mode == "RGBA":
            image = image.convert("RGBA")
    path = tmp_path / f"{mode}_{width}x{height}.png"
    image.save(path)
    for _ in range(3):  # the fast resize takes over from the second sighting of a shape
        check_file(path)
    rgb = decode_rgb(path.read_bytes()).rgb
    assert phash(rgb) == reference_phash(image)
    assert phash_from_thumb(grey_thumbnail(rgb)) == reference_phash(image)


def test_phash_of_a_jpeg_in_memory_equals_imagehash():
    rng = np.random.default_rng(7)
    image = Image.fromarray(np.dstack([random_picture(rng, 200, 150) for _ in range(3)]), mode="RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    decoded = decode_rgb(buffer.getvalue())
    with Image.open(io.BytesIO(buffer.getvalue())) as reopened:
        assert phash(decoded.rgb) == reference_phash(reopened)
        assert np.array_equal(grey_thumbnail(decoded.rgb), reference_thumb(reopened))


def test_fast_lanczos_resize_equals_pil_on_noise_for_both_pass_orders():
    """Pure noise is the hardest input: any difference in weights, rounding or pass order shows up."""
    rng = np.random.default_rng(11)
    shapes = [(363, 360), (101, 57), (500, 37), (57, 101), (37, 500), (1000, 999), (33, 2048), (250, 204)]
    orders = set()
    for height, width in shapes:
        for _ in range(3):
            noise = Image.fromarray(rng.integers(0, 256, (height, width), dtype=np.uint8), mode="L")
            expected = np.asarray(noise.resize((32, 32), Image.Resampling.LANCZOS))
            assert np.array_equal(lanczos.resize_grey(noise, (32, 32)), expected), (width, height)
        orders.add(lanczos._order.get((width, height, 32, 32)))
    # every shape was reproduced exactly by one pass order (None would mean PIL fallback: correct but not faster)
    assert orders == {"hv", "vh"}, f"calibrated orders {orders}: this Pillow's LANCZOS is not reproduced"


def test_fixed_point_weights_match_pil_on_impulses():
    """Each weight, pushed through PIL with one bright pixel per row, comes back as PIL's rounded value."""
    width = 360
    matrix = lanczos.weights(width, 32)
    assert np.allclose(matrix.sum(axis=1), 1 << lanczos.PRECISION_BITS, atol=64)
    impulse = np.zeros((2, width), dtype=np.uint8)
    impulse[:, 180] = 255
    resized = np.asarray(Image.fromarray(impulse, mode="L").resize((32, 2), Image.Resampling.LANCZOS))
    ours = np.clip(np.floor((255 * matrix[:, 180] + 2**21) / 2**22), 0, 255)
    assert np.array_equal(resized[0], ours.astype(np.uint8))
