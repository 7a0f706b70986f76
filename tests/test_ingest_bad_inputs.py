"""Every kind of bad input a real dataset folder holds: each file is a row, rejected with a clear reason."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from wbc_data.core.labelmap import LabelMap
from wbc_data.ingest.engine import IngestOptions, ingest


def _jpeg(color=(200, 100, 150), size=(40, 30), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color if mode == "RGB" else 128).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _save(path, image, fmt, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, fmt, **kw)


@pytest.fixture
def messy_tree(tmp_path):
    root = tmp_path / "data"
    good = root / "Mono"
    good.mkdir(parents=True)
    (good / "ok.jpg").write_bytes(_jpeg())
    (good / "UPPER.JPEG").write_bytes(_jpeg((10, 20, 30)))
    (good / "zero.jpg").write_bytes(b"")
    full = _jpeg(size=(200, 200))
    (good / "truncated.jpg").write_bytes(full[: len(full) // 2])
    (good / "text.jpg").write_text("hello, not an image")
    (good / "notes.txt").write_text("readme")
    _save(good / "cmyk.jpg", Image.new("CMYK", (20, 20), (0, 100, 50, 10)), "JPEG")
    _save(good / "grey.png", Image.new("L", (20, 20), 77), "PNG")
    _save(good / "deep.png", Image.fromarray(np.full((20, 20), 40000, dtype=np.uint16)), "PNG")
    rgba = Image.new("RGBA", (20, 20), (255, 0, 0, 255))
    _save(good / "rgba.tiff", rgba, "TIFF")
    _save(good / "pal.bmp", Image.new("P", (20, 20), 3), "BMP")
    _save(good / "bomb.png", Image.new("1", (3000, 3000)), "PNG")  # 9 Mpx, refused with --max-pixels 1e6
    weird = root / "Blast"
    weird.mkdir()
    (weird / os.fsdecode(b"caf\xe9.jpg")).write_bytes(_jpeg((1, 2, 3)))  # not UTF-8
    (root / "unknownfolder").mkdir()
    (root / "unknownfolder" / "x.png").write_bytes(_png_bytes())
    os.symlink(root, root / "Mono" / "loop")  # a folder link back to the root
    os.symlink(root / "missing.jpg", root / "Mono" / "broken.jpg")
    return root


def _png_bytes():
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (5, 5, 5)).save(buf, "PNG")
    return buf.getvalue()


def test_every_file_accounted_with_reasons(messy_tree, workspace):
    label_map = LabelMap.from_dict({"mono": "MO", "blast": "BL"})
    result = ingest(
        "imagefolder", messy_tree, workspace, IngestOptions(workers=1, label_map=label_map, max_pixels=1_000_000)
    )
    frame = result.frame.set_index("source_path")
    reasons = frame["reason"].to_dict()
    status = frame["status"].to_dict()
    n_files = sum(len(files) for _, _, files in os.walk(messy_tree))  # os.walk does not follow the loop
    n_links_to_dirs = 1
    assert len(frame) == n_files + n_links_to_dirs - 0, "every entry must be accounted for"
    for ok in ("Mono/ok.jpg", "Mono/UPPER.JPEG", "Mono/cmyk.jpg", "Mono/grey.png", "Mono/deep.png", "Mono/rgba.tiff",
               "Mono/pal.bmp"):  # fmt: skip
        assert status[ok] == "ok", (ok, reasons[ok])
    assert reasons["Mono/zero.jpg"] == "empty file (0 bytes)"
    assert reasons["Mono/truncated.jpg"].startswith(("truncated image", "cannot decode image"))
    assert reasons["Mono/text.jpg"].startswith("not an image")
    assert reasons["Mono/notes.txt"] == "not an image file (extension .txt)"
    assert reasons["Mono/bomb.png"].startswith("decompression bomb")
    assert reasons["Mono/loop"].startswith("symlink loop")
    assert reasons["Mono/broken.jpg"].startswith("broken symlink")
    assert frame.loc["Mono/cmyk.jpg", "mode"] == "CMYK"
    assert frame.loc["Mono/deep.png", "mode"].startswith("I")
    assert frame.loc["Mono/rgba.tiff", "mode"] == "RGBA"
    # the non-UTF-8 name is ingested, stored escaped, and its exact bytes are kept to reopen it
    escaped = "Blast/caf\\xe9.jpg"
    assert status[escaped] == "ok" and frame.loc[escaped, "label"] == "BL"
    assert "source_path_bytes_hex" in frame.loc[escaped, "extra"]
    # an unknown folder is reported as unmapped, not guessed
    assert frame.loc["unknownfolder/x.png", "label_status"] == "unmapped"
    assert frame.loc["unknownfolder/x.png", "source_label"] == "unknownfolder"


def test_unreadable_folder_is_a_row(messy_tree, workspace, monkeypatch):
    """Tests run as root (chmod 000 does not stop root), so the permission error is injected."""
    real_scandir = os.scandir

    def scandir(path):
        if os.fspath(path).endswith("unknownfolder"):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    result = ingest("imagefolder", messy_tree, workspace, IngestOptions(workers=1))
    row = result.frame[result.frame.source_path == "unknownfolder"].iloc[0]
    assert row.status == "rejected" and row.reason == "unreadable folder: Permission denied"


def test_rgba_and_16bit_pixels_are_converted_not_clipped(tmp_path, workspace):
    from wbc_data.imaging.decode import decode_rgb

    buf = io.BytesIO()
    Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16)).save(buf, "PNG")
    assert decode_rgb(buf.getvalue()).rgb.getpixel((0, 0)) == (255, 255, 255)
    buf = io.BytesIO()
    Image.new("RGBA", (4, 4), (255, 0, 0, 0)).save(buf, "PNG")  # fully transparent -> white, not black
    assert decode_rgb(buf.getvalue()).rgb.getpixel((0, 0)) == (255, 255, 255)


def test_parallel_equals_serial(messy_tree, tmp_path):
    from wbc_data.core.workspace import Workspace

    # enough files for the pool to be used
    extra = messy_tree / "Mono" / "many"
    extra.mkdir()
    for i in range(60):
        (extra / f"{i}.jpg").write_bytes(_jpeg((i, 2 * i, 3 * i)))
    serial = ingest("imagefolder", messy_tree, Workspace(tmp_path / "a"), IngestOptions(workers=1, use_cache=False))
    parallel = ingest("imagefolder", messy_tree, Workspace(tmp_path / "b"), IngestOptions(workers=2, use_cache=False))
    assert serial.frame.drop(columns="source_root").equals(parallel.frame.drop(columns="source_root"))
