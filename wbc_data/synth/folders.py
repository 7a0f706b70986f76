"""Whole folders written atomically enough: built under a hidden staging name beside their final place, then
swapped in by renames, so a crash or Ctrl-C leaves the old folder or the new one, never a half-written one."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path


def staging_dir(final: Path) -> Path:
    """A fresh, empty folder beside ``final`` (same file system, so the swap is a rename)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    return tmp


def replace_dir(staged: Path, final: Path) -> Path:
    """Put ``staged`` where ``final`` is: the old folder is renamed away first and deleted only after the swap."""
    staged, final = Path(staged), Path(final)
    old = None
    if final.exists():
        old = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(final, old)
    os.replace(staged, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return final


def remove_stale(parent: Path, name: str) -> None:
    """Delete staging or swapped-out leftovers of ``parent/name`` from an earlier crash."""
    for leftover in Path(parent).glob(f".{name}.tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    for leftover in Path(parent).glob(f".{name}.old-*"):
        shutil.rmtree(leftover, ignore_errors=True)
