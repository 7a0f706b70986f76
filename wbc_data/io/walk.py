"""Walk a dataset folder and account for every entry: regular files are listed; folders that cannot
be read, symlink loops and broken links are returned as problems with a reason, never skipped silently.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class FileEntry:
    """A regular file under the source root; ``source_path`` (relative to the root) uses ``/`` and may hold
    surrogate escapes."""

    source_path: str
    size: int
    mtime_ns: int


@dataclass
class WalkResult:
    files: list[FileEntry] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)  # source_path -> reason


def walk(root: Path, follow_symlinks: bool = True) -> WalkResult:
    """List every regular file under ``root`` (sorted, deterministic).

    Symlinked folders are followed once; a link back to a folder already walked is reported as a
    loop (or a repeated view) instead of being walked again, so the walk always ends.
    """
    root = Path(root)
    result = WalkResult()
    root_stat = os.stat(root)
    seen_dirs: dict[tuple[int, int], str] = {(root_stat.st_dev, root_stat.st_ino): "."}
    stack: list[tuple[str, str]] = [(os.fspath(root), "")]
    while stack:
        abs_dir, rel_dir = stack.pop()
        try:
            with os.scandir(abs_dir) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            result.problems[rel_dir or "."] = f"unreadable folder: {exc.strerror or exc}"
            continue
        subdirs: list[tuple[str, str]] = []
        for entry in entries:
            source_path = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                is_link = entry.is_symlink()
                st = entry.stat(follow_symlinks=follow_symlinks)
            except FileNotFoundError:
                result.problems[source_path] = "broken symlink: target does not exist"
                continue
            except OSError as exc:
                if exc.errno == errno.ELOOP:  # a link that resolves to itself
                    result.problems[source_path] = "symlink loop: the link resolves to itself"
                else:
                    result.problems[source_path] = f"cannot stat: {exc.strerror or exc}"
                continue
            if stat.S_ISDIR(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if key in seen_dirs:
                    kind = "symlink loop" if is_link else "hard-linked folder"
                    result.problems[source_path] = f"{kind}: same folder as '{seen_dirs[key]}', not walked twice"
                    continue
                if is_link and not follow_symlinks:
                    result.problems[source_path] = "symlinked folder not followed"
                    continue
                seen_dirs[key] = source_path
                subdirs.append((entry.path, source_path))
            elif stat.S_ISREG(st.st_mode):
                result.files.append(FileEntry(source_path, st.st_size, st.st_mtime_ns))
            else:
                result.problems[source_path] = "not a regular file (device, socket or pipe)"
        stack.extend(reversed(subdirs))
    result.files.sort(key=lambda f: f.source_path)
    return result
