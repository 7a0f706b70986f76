"""Encoded image bytes from a Hugging Face dataset cell, shared by the adapters whose samples are rows (``hub``,
``wbcbench``'s parquet form): an ``Image`` feature read with ``decode=False`` gives ``{bytes, path}``, a binary
column gives bytes, and a decoded feature gives a PIL image (re-encoded losslessly as PNG)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any


def image_cell_bytes(value: Any, origin: Path | None = None) -> bytes:
    """The cell's encoded image; ``b""`` when it holds none (the engine then rejects the row as empty).

    A relative ``path`` is resolved against the folder of ``origin`` (the parquet file it came from) when given.
    """
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, dict):
        if value.get("bytes"):
            return bytes(value["bytes"])
        if value.get("path"):
            path = Path(value["path"])
            if origin is not None and not path.is_absolute():
                path = origin.parent / path
            return path.read_bytes() if path.is_file() else b""
        return b""
    if hasattr(value, "save"):
        buffer = io.BytesIO()
        value.save(buffer, format="PNG")
        return buffer.getvalue()
    return b""
