"""Figures for reports: matplotlib on the Agg backend (no display needed), saved as PNG atomically and closed.

Report modules import ``plt`` from here so the backend is chosen in one place, before pyplot loads."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from wbc_data.io.atomic import atomic_write

__all__ = ["plt", "save_png"]


def save_png(fig: plt.Figure, path: Path, dpi: float | None = None) -> Path:
    """Write ``fig`` to ``path`` atomically (a crash never leaves half a PNG) and free it."""
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
    plt.close(fig)
    return Path(path)
