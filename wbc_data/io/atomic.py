"""Atomic file writes: a crash, a kill or Ctrl-C leaves either the old file or the new one, never half of one.

Every stage writes its outputs (manifests, stage results, reports, pictures) through these helpers.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _default_mode() -> int:
    """What ``open()`` would give a new file (0666 less the umask): mkstemp's private 0600 would hide reports and
    manifests from the user's group."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: Path | str, writer: Callable[[str], Any]) -> None:
    """Run ``writer(tmp_path)`` then rename over ``path`` (same directory, so the rename is atomic); the file keeps
    the mode it had, or gets the usual mode of a new file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else _default_mode())
        writer(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path | str, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
