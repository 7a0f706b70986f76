"""The local copy of what gets published: built in a staging folder beside the output folder and swapped in whole,
so an interrupted build leaves the previous output as it was.

An output folder that exists is only replaced when an earlier ``wbc-data publish`` wrote it (its marker file says
so): ``--out ~/Desktop`` never deletes a user's files.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from wbc_data.io.atomic import atomic_write_text
from wbc_data.publish.rows import PublishError

MARKER = ".wbc-publish.json"
"""Written into every output folder (never uploaded): which repo it is for and what each file hashes to."""


@dataclass(frozen=True)
class LocalFile:
    """One file of the dataset repo, as built here."""

    path: str  # the path in the repo (POSIX)
    size: int
    sha256: str  # what the Hub records for LFS/Xet files
    git_sha1: str  # what the Hub records for regular git files


def hash_file(path: Path, chunk: int = 2**20) -> tuple[str, str]:
    """sha256 and git blob sha1 of a file, in one streamed pass."""
    sha256 = hashlib.sha256()
    git = hashlib.sha1(f"blob {path.stat().st_size}\0".encode(), usedforsecurity=False)
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            sha256.update(block)
            git.update(block)
    return sha256.hexdigest(), git.hexdigest()


def list_files(folder: Path) -> list[LocalFile]:
    """Every file of the repo folder (not dotfiles, so not the marker), sorted by path."""
    out = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        source_path = path.relative_to(folder)
        if any(part.startswith(".") for part in source_path.parts):
            continue
        sha256, git_sha1 = hash_file(path)
        out.append(LocalFile(source_path.as_posix(), path.stat().st_size, sha256, git_sha1))
    return out


def check_output_folder(out: Path) -> None:
    """Refuse an output folder that holds anything an earlier publish did not write (checked before building)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise PublishError(f"{out}: --out must be a folder, and this is a file")
    if (out / MARKER).is_file() or not any(out.iterdir()):
        return
    raise PublishError(
        f"{out}: this folder holds files that `wbc-data publish` did not write; give --out a new or empty folder"
    )


def write_marker(folder: Path, repo_id: str, files: list[LocalFile]) -> None:
    record = {"repo_id": repo_id, "files": [asdict(f) for f in files]}
    atomic_write_text(folder / MARKER, json.dumps(record, indent=1, sort_keys=True))


@contextmanager
def staging(out: Path) -> Iterator[Path]:
    """A fresh folder beside ``out`` to build into; swapped in for ``out`` when the block ends without error, removed
    (and ``out`` untouched) when it fails or is interrupted."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staged = out.with_name(f".{out.name}.building-{os.getpid()}")
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir()
    try:
        yield staged
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        os.replace(out, old)
    os.replace(staged, out)
    shutil.rmtree(old, ignore_errors=True)
