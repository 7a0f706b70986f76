"""One writer at a time for each part of a workspace, and a clear line when a workspace cannot be written.

A stage that writes (ingest of one source, merge, dedup, split, a generator, a classifier) holds an exclusive
lock on ``<workspace>/locks/<part>.lock`` for its whole run. A second writer of the same part refuses at once in
one line naming the holder (command, process id, start time); writers of different parts (ingesting two sources,
say) run side by side. The lock is the operating system's (``flock``; ``msvcrt.locking`` on Windows): it is
released when its process ends, however it ends, so a lock left by a killed process is never in the way, and the
holder's details in the file are only what the refusal quotes.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from wbc_data.core.errors import UserError, WorkspaceBusy


class WorkspaceError(UserError):
    """The workspace path cannot hold a workspace (a file, a read-only folder...)."""


def check_workspace_folder(root: Path) -> None:
    """A workspace that exists must be a folder; one line otherwise."""
    if root.exists() and not root.is_dir():
        raise WorkspaceError(f"{root}: is a file, not a workspace folder (choose another with --workspace)")


def writable_folder(root: Path, sub: str) -> Path:
    """``root/sub``, created; a file in the way or a read-only workspace is one line, not a traceback."""
    check_workspace_folder(root)
    folder = root / sub
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise WorkspaceError(f"{root}: the workspace is not writable ({exc.strerror}); "
                                 "choose another with --workspace") from None  # fmt: skip
        if exc.errno == errno.ENOTDIR:
            raise WorkspaceError(f"{exc.filename or folder}: is a file, not a folder of the workspace") from None
        raise WorkspaceError(f"{folder}: cannot be created ({exc.strerror or exc})") from None
    return folder


@contextlib.contextmanager
def writer_lock(root: Path, part: str, command: str = "", wait: bool = False) -> Iterator[None]:
    """Hold the lock of ``part`` of the workspace at ``root`` while the block runs; :class:`WorkspaceBusy` when
    another live process holds it (or, with ``wait``, once it lets go: for short shared writes such as roots.yaml)."""
    path = writable_folder(Path(root), "locks") / f"{part}.lock"
    if os.environ.get("RANK", "0") != "0":  # another process of the same `accelerate launch` job: rank 0 holds it
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not _try_lock(fd, wait):
            raise WorkspaceBusy(f"{path}: {_holder(path)} is writing {part} of this workspace; wait for it to "
                                "finish (or stop it) and run again")  # fmt: skip
        holder = {
            "command": command or " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "pid": os.getpid(),
            "since": datetime.now().isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(holder).encode())
        yield
    finally:
        os.close(fd)  # releases the lock


def _try_lock(fd: int, wait: bool) -> bool:
    if os.name == "nt":  # pragma: no cover - Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_LOCK if wait else msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _holder(path: Path) -> str:
    try:
        holder = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        holder = {}
    if not holder:
        return "another process"
    return f"`{holder.get('command', '?')}` (pid {holder.get('pid', '?')}, since {holder.get('since', '?')})"
