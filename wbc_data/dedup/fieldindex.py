"""The keypoints of every field image, cached on disk, and one search index over all their descriptors.

Why an index: a region of a field shares dozens of SIFT descriptors with that field and almost none with any other,
so each of a row's descriptors votes for the field that holds its nearest neighbour (when clearly nearer than the
second nearest, Lowe's ratio), and the fields with most votes are the ones worth matching. On 200 real BCCD fields
x 3 regions the own field came first for every region; the bag-of-words windows had it among their 32 nearest for
0.80 (benchmarks/README.md, dedup).

Descriptors are SIFT's integer values 0-255, so the index stores them as bytes (faiss's ``QT_8bit_direct`` scalar
quantiser: exact for such values); above ``EXACT_LIMIT`` descriptors it is an inverted file searched in
``PROBES`` buckets.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wbc_data.dedup.keypoints import Keypoints

EXACT_LIMIT = 50_000
PROBES = 8
TRAIN_PER_LIST = 40
"""k-means samples per bucket (faiss asks for 39): with 2 sqrt(n) buckets, the 188,000 descriptors of 364 BCCD fields
train in about 3 s, against 18 s with 4 sqrt(n) buckets and 64 samples each (benchmarks/README.md, dedup)."""
VOTE_RATIO = 0.8
"""A descriptor votes when its nearest field descriptor is this much nearer (in distance) than its second."""


class KeypointStore:
    """Keypoints of field images, one ``.npz`` per pixel hash, written to a temporary name and renamed."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.npz"

    def get(self, key: str) -> Keypoints | None:
        try:
            with np.load(self.path(key), allow_pickle=False) as data:
                return Keypoints(data["xy"], data["descriptors"], (int(data["size"][0]), int(data["size"][1])))
        except (OSError, ValueError, KeyError):
            return None  # absent or damaged: detected again

    def put(self, key: str, keypoints: Keypoints) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{uuid.uuid4().hex}.npz")
        try:
            np.savez(tmp, xy=keypoints.xy, descriptors=keypoints.descriptors, size=np.array(keypoints.size))
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


@dataclass
class FieldIndex:
    """Nearest-descriptor search over every field's keypoints; ``owner[i]`` is the field of descriptor ``i``."""

    index: object  # a faiss index
    owner: np.ndarray  # (d,) int32: field position of each indexed descriptor
    fields: int

    @classmethod
    def build(cls, keypoints: list[Keypoints]) -> FieldIndex:
        import faiss

        sizes = np.array([len(k) for k in keypoints], np.int64)
        owner = np.repeat(np.arange(len(keypoints), dtype=np.int32), sizes)
        data = np.concatenate([k.descriptors for k in keypoints] + [np.zeros((0, 128), np.uint8)]).astype(np.float32)
        kind = faiss.ScalarQuantizer.QT_8bit_direct
        if len(data) <= EXACT_LIMIT:
            index = faiss.IndexScalarQuantizer(128, kind, faiss.METRIC_L2)
        else:
            lists = int(min(8_192, max(64, 2 * np.sqrt(len(data)))))
            index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatL2(128), 128, lists, kind, faiss.METRIC_L2)
            take = min(len(data), TRAIN_PER_LIST * lists)
            sample = data[np.random.default_rng(0).choice(len(data), take, replace=False)]
            index.train(sample)
            index.nprobe = PROBES
        if not index.is_trained:
            index.train(data)
        index.add(data)
        return cls(index, owner, len(keypoints))

    def __getstate__(self) -> dict:
        """Picklable for a cluster executor: faiss's own serialisation."""
        import faiss

        return {"index": faiss.serialize_index(self.index), "owner": self.owner, "fields": self.fields}

    def __setstate__(self, state: dict) -> None:
        import faiss

        self.index = faiss.deserialize_index(state["index"])
        self.owner, self.fields = state["owner"], state["fields"]

    def votes(self, keypoints: Keypoints) -> np.ndarray:
        """(fields,) int: how many of ``keypoints``' descriptors have their clear nearest neighbour in each field."""
        out = np.zeros(self.fields, np.int64)
        if len(keypoints) == 0 or len(self.owner) < 2:
            return out
        distance, found = self.index.search(keypoints.descriptors.astype(np.float32), 2)  # type: ignore[attr-defined]
        clear = (found[:, 1] >= 0) & (found[:, 0] >= 0) & (distance[:, 0] < VOTE_RATIO**2 * distance[:, 1])
        np.add.at(out, self.owner[found[clear, 0]], 1)
        return out
