"""Where a sampling run's images go and how they are written: ``<workspace>/synth/<name>/`` (a root relative to
the workspace, so it moves with it), one PNG per sample. The rows themselves come from ingest through the ``synth``
source adapter (:mod:`wbc_data.sources.synth`), like any other source's.

``wbc-data manifest`` merges the source like any other; the split stage puts synthetic rows in train by rule and
dedup keeps them by rule. Accepted samples are ``ok`` rows; samples the memorisation guard rejected stay visible as
``rejected`` rows with the reason (their PNGs under ``rejected/``), never used for training.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def source_name(name: str) -> str:
    return name if name.startswith("synth-") else f"synth-{name}"


def folder_rel(name: str) -> str:
    """The images' folder relative to the workspace (what the manifest records as the source root)."""
    return f"synth/{source_name(name)[len('synth-') :]}"


def png_bytes(image: np.ndarray) -> bytes:
    """PNG bytes of an (h, w, 3) uint8 image; PIL writes no timestamp, so the same pixels give the same file."""
    buffer = io.BytesIO()
    Image.fromarray(image, "RGB").save(buffer, "PNG")
    return buffer.getvalue()
