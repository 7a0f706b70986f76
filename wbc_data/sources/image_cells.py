"""Encoded image bytes from a Hugging Face dataset cell, shared by the adapters whose samples are rows (``hub``,
``wbcbench``'s parquet form): an ``Image`` feature read with ``decode=False`` gives ``{bytes, path}``, a binary
column gives bytes, and a decoded feature gives a PIL image (re-encoded losslessly as PNG).

A cell may name its file by ``path`` instead of carrying bytes. Such a path comes from the dataset, not from the
user, so it may only lead to a file under the places the source lives (resolved first, symlinks included): a cell
that names ``/etc/passwd``, an absolute path elsewhere, ``../..`` or a link out of the root is refused and its row
rejected with that reason; the file is never opened."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any


class OutsideRoot(PermissionError):
    """An image cell names a file outside the source's root: refused, never opened."""


def image_cell_bytes(value: Any, allowed: Sequence[Path], base: Path | None = None) -> bytes:
    """The cell's encoded image; ``b""`` when it holds none (the engine then rejects the row as empty).

    A ``path`` is read only if it resolves under one of ``allowed``; a relative one is resolved against ``base``
    (the folder of the parquet file it came from, or the dataset's folder)."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, dict):
        if value.get("bytes"):
            return bytes(value["bytes"])
        if value.get("path"):
            path = contained_path(str(value["path"]), allowed, base)
            return path.read_bytes() if path.is_file() else b""
        return b""
    if hasattr(value, "save"):
        buffer = io.BytesIO()
        value.save(buffer, format="PNG")
        return buffer.getvalue()
    return b""


def contained_path(named: str, allowed: Sequence[Path], base: Path | None) -> Path:
    """``named`` resolved (symlinks followed), if it lies under one of ``allowed``; else :class:`OutsideRoot`."""
    path = Path(named)
    if not path.is_absolute():
        if base is None:
            raise OutsideRoot(f"image path {named!r} is relative and the dataset has no folder to resolve it in")
        path = base / path
    resolved = path.resolve()
    for root in allowed:
        if resolved.is_relative_to(Path(root).resolve()):
            return resolved
    where = ", ".join(str(root) for root in allowed) or "no folder"
    raise OutsideRoot(f"image path {named!r} leads outside the source root ({where}): refused, not read")
