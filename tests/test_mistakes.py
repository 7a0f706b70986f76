"""The evaluation's sheet of mistakes: which confusions it shows (the most frequent, the most confident mistakes
first), and that it draws the real cells it names."""

from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image

from tests.conftest import shared_path
from wbc_data.train.mistakes import TILE, mistakes_png, tile, worst_mistakes


def predictions(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"sample_id": f"s{i:03d}", "source": "pbc", "label": t, "predicted": p, "confidence": c}
            for i, (t, p, c) in enumerate(rows)
        ]
    )


def test_the_most_frequent_confusions_come_first_with_their_most_confident_mistakes():
    table = predictions(
        [("SNE", "SNE", 0.99)] * 5  # right: never shown, whatever the confidence
        + [("BNE", "SNE", c) for c in (0.5, 0.9, 0.7, 0.6)]  # 4
        + [("MY", "PMY", c) for c in (0.8, 0.95)]  # 2
        + [("MMY", "MY", c) for c in (0.6, 0.99)]  # 2: ties with MY -> PMY; MY comes first in the taxonomy
        + [("EO", "BA", 0.999)]  # 1: the most confident mistake of all, but the rarest confusion
    )
    shown = worst_mistakes(table, confusions=3, per_confusion=3)
    assert (
        list(zip(shown["label"], shown["predicted"], strict=True))
        == [("BNE", "SNE")] * 3 + [("MY", "PMY")] * 2 + [("MMY", "MY")] * 2
    )
    assert shown["confidence"].tolist() == [0.9, 0.7, 0.6, 0.95, 0.8, 0.99, 0.6]
    assert shown["count"].tolist() == [4] * 3 + [2] * 4
    assert (shown["label"] != shown["predicted"]).all()


def test_no_mistakes_no_sheet(tmp_path):
    shown = worst_mistakes(predictions([("LY", "LY", 0.9), ("MO", "MO", 0.8)]))
    assert shown.empty and {"label", "predicted", "count", "sample_id"} <= set(shown.columns)
    assert mistakes_png(shown, pd.DataFrame(), None, tmp_path / "m.png", "none") is None
    assert not (tmp_path / "m.png").exists()


def test_the_sheet_draws_the_cells_it_names(tmp_path):
    """Real PBC cells on the sheet: a sheet of the same cells in another order differs, and each tile is the whole
    cell (aspect kept) on white."""
    folder = shared_path("pbc", "PBC_dataset_normal_DIB")
    cells = [
        sorted(f for f in (folder / name).glob("*.jpg") if not f.name.startswith(".")) for name in ("neutrophil", "ig")
    ]
    files = cells[0][:3] + cells[1][:2]  # (PBC's folders hold a hidden .DS_ file that is not a JPEG)
    images = {f.name: Image.open(f).convert("RGB") for f in files}

    class Loader:  # opens a manifest row's file, as PixelLoader does
        def open(self, row):
            return images[row["sample_id"]]

    rows = pd.DataFrame({"sample_id": list(images)})
    table = predictions([("SNE", "BNE", 0.9), ("SNE", "BNE", 0.8), ("SNE", "BNE", 0.7), ("MY", "PMY", 0.6),
                         ("MY", "PMY", 0.5)])  # fmt: skip
    table["sample_id"] = list(images)
    shown = worst_mistakes(table)
    png = mistakes_png(shown, rows, Loader(), tmp_path / "a.png", "real cells").path
    shuffled = table.assign(sample_id=list(images)[::-1])
    other = mistakes_png(worst_mistakes(shuffled), rows, Loader(), tmp_path / "b.png", "real cells").path
    a, b = (np.asarray(Image.open(p).convert("RGB"), dtype=np.int16) for p in (png, other))
    assert a.shape == b.shape and a.shape[0] > 2 * TILE and a.shape[1] > 3 * TILE
    assert np.abs(a - b).mean() > 1.0  # the pixels come from the rows, not from the layout
    cell = next(iter(images.values()))
    wide = tile(cell.crop((0, 90, 360, 270)))  # 2:1: the whole strip, white above and below
    assert wide.shape == (TILE, TILE, 3)
    assert (wide[:30] == 255).all() and (wide[-30:] == 255).all() and wide[50:110].std() > 20


def test_a_palette_png_is_smaller_and_looks_the_same(tmp_path):
    """``save_png(colours=256)``, which the sheet uses: a real cell photograph stored with a palette is a fraction
    of the bytes and within a few grey levels of the full-colour file."""
    from wbc_data.report.figures import plt, save_png

    folder = shared_path("pbc", "PBC_dataset_normal_DIB", "monocyte")
    cell = np.asarray(Image.open(next(f for f in sorted(folder.glob("*.jpg")) if not f.name.startswith("."))))
    paths = []
    for colours in (None, 256):
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.imshow(cell)
        paths.append(save_png(fig, tmp_path / f"{colours}.png", dpi=100, colours=colours))
    full, paletted = (Image.open(p) for p in paths)
    assert full.mode in ("RGB", "RGBA") and paletted.mode == "P"
    assert paths[1].stat().st_size < 0.7 * paths[0].stat().st_size
    difference = np.abs(np.asarray(full.convert("RGB"), np.int16) - np.asarray(paletted.convert("RGB"), np.int16))
    assert difference.mean() < 2 and np.percentile(difference, 99) < 24  # 16 colours: 3.7 and 45


def test_a_file_gone_since_the_predictions_is_drawn_blank_and_named(tmp_path):
    from wbc_data.io.pixels import PixelMissing

    folder = shared_path("pbc", "PBC_dataset_normal_DIB", "lymphocyte")
    files = [f for f in sorted(folder.glob("*.jpg")) if not f.name.startswith(".")][:3]

    class Loader:
        def open(self, row):
            if row["sample_id"] == files[1].name:
                raise PixelMissing(f"{files[1]}: file not found")
            return Image.open(files[[f.name for f in files].index(row["sample_id"])])

    table = predictions([("LY", "MO", 0.9), ("LY", "MO", 0.8), ("LY", "MO", 0.7)]).assign(
        sample_id=[f.name for f in files]
    )
    sheet = mistakes_png(worst_mistakes(table), table, Loader(), tmp_path / "m.png", "one file gone")
    assert sheet.unreadable == [files[1].name] and sheet.path.exists()
