"""Sample grids people can look at: one row per class, tiles enlarged with nearest-neighbour so small generator
images stay crisp, real images on the left and samples on the right where both are shown."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

TILE_MIN = 96
"""Tiles are enlarged by a whole factor to at least this many pixels a side."""
GAP = 2


def mosaic(rows: list[np.ndarray], columns: int) -> np.ndarray:
    """Rows of (k, h, w, 3) uint8 tiles -> one (rows*h, columns*w, 3) picture with white gaps; short rows are padded."""
    h, w = rows[0].shape[1:3]
    scale = max(1, -(-TILE_MIN // h))
    th, tw = h * scale + GAP, w * scale + GAP
    out = np.full((len(rows) * th + GAP, columns * tw + GAP, 3), 255, dtype=np.uint8)
    for r, tiles in enumerate(rows):
        for c, tile in enumerate(tiles[:columns]):
            big = np.kron(tile, np.ones((scale, scale, 1), dtype=np.uint8))
            out[GAP + r * th : GAP + r * th + h * scale, GAP + c * tw : GAP + c * tw + w * scale] = big
    return out


def class_grid(samples: Mapping[str, np.ndarray], path: Path, title: str) -> Path:
    """One row of samples per class."""
    from wbc_data.report.figures import save_png

    names = [c for c, tiles in samples.items() if len(tiles)]
    columns = max(len(samples[c]) for c in names)
    picture = mosaic([samples[c] for c in names], columns)
    fig, ax = _figure(picture, 1)
    _show(ax[0], picture, names, title)
    return save_png(fig, Path(path), dpi=100)


def beside_real(
    real: Mapping[str, np.ndarray],
    synthetic: Mapping[str, np.ndarray],
    path: Path,
    title: str,
    columns: int = 8,
    shown: str = "synthetic (accepted samples)",
) -> Path:
    """Per class: real images (left) beside synthetic samples (right), both at the generator's resolution."""
    from wbc_data.report.figures import plt, save_png

    names = [c for c in synthetic if len(synthetic[c])]
    empty = np.zeros((0, *synthetic[names[0]].shape[1:]), dtype=np.uint8)
    columns = min(columns, max(len(tiles) for tiles in [*synthetic.values(), *real.values()]))
    left = mosaic([real.get(c, empty) for c in names], columns)
    right = mosaic([synthetic[c] for c in names], columns)
    fig, axes = _figure(right, 2)
    _show(axes[0], left, names, "real (training images)")
    _show(axes[1], right, names, shown)
    fig.suptitle(title, fontsize=11)
    plt.tight_layout()
    return save_png(fig, Path(path), dpi=100)


def _figure(picture: np.ndarray, panels: int) -> tuple[Any, list[Any]]:
    from wbc_data.report.figures import plt

    h, w = picture.shape[:2]
    width = max(panels * w / 100 + 1.2, 5.0)  # room for the title whatever the number of tiles
    fig, axes = plt.subplots(1, panels, figsize=(width, h / 100 + 0.9), squeeze=False)
    return fig, list(axes[0])


def _show(ax: Any, picture: np.ndarray, names: list[str], title: str) -> None:
    rows = len(names)
    row_h = (picture.shape[0] - GAP) / max(rows, 1)
    ax.imshow(picture, interpolation="nearest")
    ax.set_yticks([GAP + row_h * (i + 0.5) for i in range(rows)], names)
    ax.set_xticks([])
    ax.set_title(title, fontsize=10)
    for side in ax.spines.values():
        side.set_visible(False)
