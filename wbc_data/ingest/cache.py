"""Resume cache: per-file results of finished work, committed as it goes (SQLite, one file per source).

A re-run after Ctrl-C or a kill skips files whose size and mtime are unchanged, so only the work that
was lost is redone; the manifest itself is written atomically at the end.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sqlite3
import time
from pathlib import Path
from typing import Any


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
        stored_root = self.conn.execute("SELECT value FROM meta WHERE key='root'").fetchone()
        if stored_root is None or stored_root[0] != root:
            self.conn.execute("DELETE FROM results")
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('root', ?)", (root,))
            self.conn.commit()
        self.commit_every_s = commit_every_s
        self._last_commit = time.monotonic()

    @staticmethod
    def job_key(job_repr: str) -> str:
        return hashlib.blake2b(job_repr.encode("utf-8", "surrogateescape"), digest_size=12).hexdigest()

    def load(self) -> dict[bytes, tuple[int, int, str, bytes]]:
        rows = self.conn.execute("SELECT rel, size, mtime_ns, job_key, payload FROM results")
        return {bytes(rel): (size, mtime, key, payload) for rel, size, mtime, key, payload in rows}

    def get(
        self, cached: dict[bytes, tuple[int, int, str, bytes]], rel: str, size: int, mtime_ns: int, key: str
    ) -> Any:
        hit = cached.get(os.fsencode(rel))
        if hit is None or hit[0] != size or hit[1] != mtime_ns or hit[2] != key:
            return None
        return pickle.loads(hit[3])

    def put(self, rel: str, size: int, mtime_ns: int, key: str, result: Any) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?)",
            (os.fsencode(rel), size, mtime_ns, key, pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)),
        )
        if time.monotonic() - self._last_commit > self.commit_every_s:
            self.commit()

    def commit(self) -> None:
        self.conn.commit()
        self._last_commit = time.monotonic()

    def close(self) -> None:
        self.commit()
        self.conn.close()
