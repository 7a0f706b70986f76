"""Figures for reports: matplotlib on the Agg backend (no display needed), saved as PNG atomically and closed.

Report modules import ``plt`` from here so the backend is chosen in one place, before pyplot loads."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from wbc_data.io.atomic import atomic_write

__all__ = ["plt", "save_png"]


def save_png(fig: plt.Figure, path: Path, dpi: float | None = None, colours: int | None = None) -> Path:
    """Write ``fig`` to ``path`` atomically (a crash never leaves half a PNG) and free it, whatever happens.
    ``colours`` (2 to 256): store it with a palette of that many colours (a sheet of cell photographs takes 40% of
    the bytes at 256, which matters in a report that inlines every picture)."""
    try:
        if colours is None:
            atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
        else:
            from PIL import Image

            if not 2 <= colours <= 256:
                raise ValueError(f"a PNG palette holds 2 to 256 colours, not {colours}")
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png", dpi=dpi)
            with Image.open(buffer) as image:
                paletted = image.convert("RGB").quantize(colours, method=Image.Quantize.MEDIANCUT)
                resolution = image.info.get("dpi")
            extra = {"dpi": resolution} if resolution else {}
            atomic_write(path, lambda tmp: paletted.save(tmp, format="PNG", optimize=True, **extra))
    finally:
        plt.close(fig)
    return Path(path)
