"""The signature cache: each distinct image's :class:`~wbc_data.dedup.signature.Signature`, computed once.

Keyed by pixel hash (so a million rows of one repeated image cost one signature, and re-running dedup after adding
a source only computes the new images), in shards of at most ``SHARD_ROWS`` under
``<workspace>/cache/dedup-<VERSION>/``. A shard is a folder of ``.npy`` arrays written to a temporary name and
renamed when complete, so Ctrl-C or a kill loses at most the shard being written, never the cache.

Arrays are read lazily: the small ones (embeddings, thumbnails, flags) for the rows of a run, the canvases only
for the rows a verification batch needs, through a memory map that is closed again, so memory stays bounded
however large the cache grows.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from wbc_data.dedup.signature import CANVAS, Signature

VERSION = f"v4-c{CANVAS}"
"""Changes whenever the signature changes (canvas size, fill rule, ORB settings, vocabulary), so an old cache is
never read as a new one. Never reuse a number (``v3`` was a short-lived build with 4 ORB levels)."""

SHARD_ROWS = 4096
FIELDS = ("canvas", "words", "thumb", "fill", "blank", "box")


class SignatureStore:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._keys: pd.DataFrame | None = None

    @classmethod
    def for_workspace(cls, workspace_root: Path) -> SignatureStore:
        return cls(Path(workspace_root) / "cache" / f"dedup-{VERSION}")

    # ------------------------------------------------------------------ index

    def shards(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.iterdir() if p.is_dir() and p.name.startswith("shard-"))

    def index(self) -> pd.DataFrame:
        """key -> (shard number, row in shard), over every complete shard; the first copy of a key wins."""
        if self._keys is None:
            parts = []
            for number, shard in enumerate(self.shards()):
                try:
                    keys = np.load(shard / "keys.npy", allow_pickle=False)
                except (OSError, ValueError):
                    continue  # a damaged shard is recomputed, never trusted
                parts.append(pd.DataFrame({"key": keys.astype(str), "shard": number, "row": np.arange(len(keys))}))
            frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["key", "shard", "row"])
            self._keys = frame.drop_duplicates("key").set_index("key")
        return self._keys

    def missing(self, keys: Sequence[str]) -> list[str]:
        have = self.index().index
        return [k for k in dict.fromkeys(keys) if k not in have]

    # ------------------------------------------------------------------ write

    def add(self, keys: Sequence[str], signatures: Sequence[Signature], boxes: np.ndarray | None = None) -> Path:
        """Write one shard (keys and signatures in the same order) atomically."""
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / f"shard-{len(self.shards()):06d}-{uuid.uuid4().hex[:8]}"
        tmp = self.directory / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            arrays = {
                "keys": np.array(list(keys), dtype="U"),
                "canvas": np.stack([s.canvas for s in signatures]),
                "words": np.stack([s.words for s in signatures]).astype(np.float16),
                "thumb": np.stack([s.thumb for s in signatures]).astype(np.uint8),
                "fill": np.array([s.fill for s in signatures], np.float16),
                "blank": np.array([s.blank for s in signatures], bool),
                "box": (np.full((len(keys), 4), np.nan, np.float32) if boxes is None
                        else np.asarray(boxes, np.float32)),
            }  # fmt: skip
            for name, array in arrays.items():
                np.save(tmp / f"{name}.npy", array, allow_pickle=False)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._keys = None
        return final

    def clear_partial(self) -> None:
        """Remove temporary shards a killed run left behind."""
        if self.directory.is_dir():
            for path in self.directory.glob(".tmp-*"):
                shutil.rmtree(path, ignore_errors=True)

    # ------------------------------------------------------------------ read

    def gather(self, field: str, keys: Sequence[str]) -> np.ndarray:
        """``field`` for each key (all must be present), read shard by shard through a closed-again memory map."""
        where = self.index().loc[list(keys)]
        shard, row = where["shard"].to_numpy(np.int64), where["row"].to_numpy(np.int64)
        shards = self.shards()
        out = None
        for number in np.unique(shard):
            pick = np.flatnonzero(shard == number)
            mapped = np.load(shards[number] / f"{field}.npy", mmap_mode="r", allow_pickle=False)
            values = np.asarray(mapped[row[pick]])
            del mapped
            if out is None:
                out = np.empty((len(keys), *values.shape[1:]), dtype=values.dtype)
            out[pick] = values
        if out is None:
            return np.zeros((0,), np.float32)
        return out
