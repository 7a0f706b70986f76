"""Which rows take part in dedup, how exact copies collapse, and in which order copy sets are formed.

Usable (``ok``) rows take part, except synthetic ones (checked by the synth guards). Field images that an adapter
cut crops from take part too (``auxiliary`` rows that ingest decoded, so they carry a pixel hash): an augmented
copy of a field, or a crop found inside one, is linked to it, yet a field is never a training cell, so it is never
kept or dropped. Rows with the same pixel hash (or the same file) form an exact group: one representative goes
through the search, the others follow it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from wbc_data.dedup.policy import KeepPolicy
from wbc_data.imaging.signatures import THUMB_SIZE

COLUMNS = ["sample_id", "source", "source_root", "source_path", "crop_box", "parent_id", "group_id",
           "source_label", "label", "label_status", "label_candidates", "patient_id", "source_split", "width",
           "height", "sha256", "pixel_hash", "status", "extra"]  # fmt: skip
"""Manifest columns dedup reads (the thumbnails are read apart, straight into one array)."""


@dataclass
class Participants:
    frame: pd.DataFrame  # the rows, positions 0..n-1
    thumbs: np.ndarray  # (n, 32, 32) uint8 stored thumbnails (zeros where missing)
    is_field: np.ndarray  # bool
    group: np.ndarray  # exact group number per row
    rep: np.ndarray  # per row: the representative row of its exact group
    rank: np.ndarray  # keep-policy rank (0 = best), fields after every other row

    @property
    def reps(self) -> np.ndarray:
        """Representative rows in linkage order: field images first (an augmented copy of a field is then
        verified against the field itself, one transform away, not against another copy), then the keep-policy
        order."""
        reps = np.flatnonzero(self.rep == np.arange(len(self.rep)))
        return reps[np.lexsort((self.rank[reps], ~self.is_field[reps]))]

    def exact_label(self, rows: np.ndarray) -> np.ndarray:
        """The exact label of each row ("" where the label is not exact)."""
        label = self.frame["label"].to_numpy(object)[rows]
        exact = self.frame["label_status"].to_numpy(object)[rows] == "exact"
        return np.where(exact & pd.notna(label), label, "").astype(str)


def thumb_array(column: pa.ChunkedArray) -> np.ndarray:
    """(n, 32, 32) uint8 from the manifest's binary thumbnail column without a Python object per row."""
    size = THUMB_SIZE * THUMB_SIZE
    out = np.zeros((len(column), THUMB_SIZE, THUMB_SIZE), np.uint8)
    start = 0
    for chunk in column.chunks:
        chunk = chunk.cast(pa.binary())
        offsets = np.frombuffer(chunk.buffers()[1], np.int32)[chunk.offset : chunk.offset + len(chunk) + 1]
        data = np.frombuffer(chunk.buffers()[2], np.uint8) if chunk.buffers()[2] is not None else np.zeros(0, np.uint8)
        lengths = np.diff(offsets)
        valid = (lengths == size) & chunk.is_valid().to_numpy(zero_copy_only=False)
        rows = np.flatnonzero(valid)
        if ((lengths == 0) | valid).all():  # the usual layout: thumbnails back to back, empty rows in between
            out[start + rows] = data[offsets[0] : offsets[0] + size * len(rows)].reshape(-1, THUMB_SIZE, THUMB_SIZE)
        else:
            for k in rows:
                out[start + k] = data[offsets[k] : offsets[k] + size].reshape(THUMB_SIZE, THUMB_SIZE)
        start += len(chunk)
    return out


def select(table: pa.Table) -> tuple[pa.Table, np.ndarray]:
    """The participating rows of a manifest table and which of them are field images."""
    status = table.column("status").to_numpy(zero_copy_only=False)
    has_pixels = table.column("pixel_hash").is_valid().to_numpy(zero_copy_only=False)
    usable = status == "ok"
    if "is_synthetic" in table.column_names:
        synthetic = table.column("is_synthetic").fill_null(False).to_numpy(zero_copy_only=False).astype(bool)
        usable &= ~synthetic
    field = (status == "auxiliary") & has_pixels
    keep = np.flatnonzero(usable | field)
    return table.take(pa.array(keep)), field[keep]


def exact_groups(frame: pd.DataFrame) -> np.ndarray:
    """Group number per row: rows sharing a pixel hash or a file hash are one group (union of both)."""
    n = len(frame)
    parent = np.arange(n)
    for column in ("pixel_hash", "sha256"):
        codes, _ = pd.factorize(frame[column], use_na_sentinel=True)
        valid = np.flatnonzero(codes >= 0)
        if not len(valid):
            continue
        first = pd.Series(valid).groupby(codes[valid]).transform("min").to_numpy()
        # link every row to the first row holding its key, through the current group roots
        roots = _find(parent, np.arange(n))
        a, b = roots[valid], roots[first]
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        parent[hi] = lo
        parent = _find(parent, np.arange(n))
    return _find(parent, np.arange(n))


def _find(parent: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """Roots of ``nodes`` under ``parent`` (path halving, vectorised until stable)."""
    out = parent[nodes]
    while True:
        nxt = parent[out]
        if np.array_equal(nxt, out):
            return out
        out = nxt


def build(table: pa.Table, policy: KeepPolicy) -> Participants:
    """Participants of a (validated) unified manifest table."""
    chosen, is_field = select(table)
    frame = chosen.select([c for c in COLUMNS if c in chosen.column_names]).to_pandas()
    thumbs = thumb_array(chosen.column("thumb"))
    n = len(frame)
    rank = policy.rank(frame) if n else np.zeros(0, np.int64)
    rank = rank + np.where(is_field, n, 0)  # fields last: never the kept row when a training row is there
    group = exact_groups(frame) if n else np.zeros(0, np.int64)
    order = np.lexsort((rank, group))
    first = np.ones(n, dtype=bool)
    first[1:] = group[order][1:] != group[order][:-1]
    best_of_root = np.full(n, -1, np.int64)
    best_of_root[group[order[first]]] = order[first]
    return Participants(frame, thumbs, is_field, group, best_of_root[group], rank)
