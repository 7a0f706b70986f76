"""Resume cache: per-file results of finished work, committed as it goes (SQLite, one file per source).

A re-run after Ctrl-C or a kill skips files whose size and mtime are unchanged, so only the work that
was lost is redone; the manifest itself is written atomically at the end.

Workspaces move between machines, so the cache is data only: each result is JSON (bytes as tagged base64), never
pickle, and a row that does not parse as such is a cache miss that is recomputed. Caches of an older format are
emptied on open without reading their rows.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

FORMAT = "json-1"
"""The payload format; a cache written in another (the pickle of earlier versions) is emptied, never read."""

BYTES_TAG = "$bytes"


def encode(result: Any) -> bytes:
    """A worker result (dicts, lists, str, int, float, bool, None, bytes) as JSON."""
    return json.dumps(result, default=_tag_bytes, separators=(",", ":")).encode()


def decode(payload: bytes) -> Any:
    """The result :func:`encode` wrote; ``None`` (a miss) for anything else."""
    try:
        return json.loads(bytes(payload), object_hook=_untag_bytes)
    except (ValueError, TypeError):
        return None


def _tag_bytes(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {BYTES_TAG: base64.b64encode(bytes(value)).decode("ascii")}
    if hasattr(value, "item"):  # a NumPy scalar
        return value.item()
    raise TypeError(f"not cacheable: {type(value).__name__}")


def _untag_bytes(value: dict[str, Any]) -> Any:
    if len(value) == 1 and BYTES_TAG in value:
        return base64.b64decode(value[BYTES_TAG])
    return value


class ResultCache:
    def __init__(self, path: Path, root: str, commit_every_s: float = 2.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(path)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS results (rel BLOB PRIMARY KEY, size INTEGER, mtime_ns INTEGER,"
            " job_key TEXT, payload BLOB)"
        )
        self.conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        stored = dict(self.conn.execute("SELECT key, value FROM meta WHERE key IN ('root', 'format')").fetchall())
        if stored.get("root") != root or stored.get("format") != FORMAT:
            self.conn.execute("DELETE FROM results")
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('root', ?)", (root,))
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('format', ?)", (FORMAT,))
            self.conn.commit()
        self.commit_every_s = commit_every_s
        self._last_commit = time.monotonic()

    @staticmethod
    def job_key(job_repr: str) -> str:
        return hashlib.blake2b(job_repr.encode("utf-8", "surrogateescape"), digest_size=12).hexdigest()

    def load(self) -> dict[bytes, tuple[int, int, str, bytes]]:
        rows = self.conn.execute("SELECT rel, size, mtime_ns, job_key, payload FROM results")
        return {bytes(source_path): (size, mtime, key, payload) for source_path, size, mtime, key, payload in rows}

    def get(
        self, cached: dict[bytes, tuple[int, int, str, bytes]], source_path: str, size: int, mtime_ns: int, key: str
    ) -> Any:
        hit = cached.get(os.fsencode(source_path))
        if hit is None or hit[0] != size or hit[1] != mtime_ns or hit[2] != key:
            return None
        result = decode(hit[3])
        if not isinstance(result, dict) or not all(isinstance(result.get(k), dict) for k in ("file", "crops")):
            return None  # not a result this cache wrote: recompute
        return result

    def put(self, source_path: str, size: int, mtime_ns: int, key: str, result: Any) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?)",
            (os.fsencode(source_path), size, mtime_ns, key, encode(result)),
        )
        if time.monotonic() - self._last_commit > self.commit_every_s:
            self.commit()

    def commit(self) -> None:
        self.conn.commit()
        self._last_commit = time.monotonic()

    def close(self) -> None:
        self.commit()
        self.conn.close()
