"""Leakage audit: which training rows have a copy (exact, near at any angle, or a part or a zoomed, rotated region
of a field) in an evaluation set.

The evaluation set (a manifest, or a folder ingested with the imagefolder adapter into a temporary workspace)
goes through the same signatures, candidates, registration and field-region search as a dedup run, on the
training and evaluation rows together, with only cross pairs kept. Field images take part on both sides: a training
row inside an evaluation field leaks into that field's crops, and the crops of a training field leak when the field
matches an evaluation row.
"""

from __future__ import annotations

import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from wbc_data.core import manifest
from wbc_data.core.errors import DedupError
from wbc_data.core.manifest import ManifestError
from wbc_data.core.progress import Progress
from wbc_data.core.roots import Roots, read_manifest_infos, read_roots_file, read_source_info
from wbc_data.core.rows import is_usable
from wbc_data.dedup import participants as participants_mod
from wbc_data.dedup.linkage import COPY, OVERLAP
from wbc_data.dedup.participants import Participants
from wbc_data.dedup.relations import SignatureView
from wbc_data.io.pixels import PixelLoader, RowRef

if TYPE_CHECKING:
    from wbc_data.core.workspace import Workspace
    from wbc_data.dedup.run import DedupOptions

LEAK_COLUMNS = ["train", "eval", "eval_id", "kind", "distance", "transform", "correlation"]


@contextmanager
def opened_against(path: Path, workers: int = 0):
    """(manifest table, pixel loader) of the evaluation set; a folder is ingested for the duration."""
    path = Path(path).expanduser()
    if path.is_file():
        try:
            table = manifest.read(path)
        except ManifestError as exc:
            raise DedupError(f"--against {path}: {exc}") from None
        yield table, loader_for_manifest(path)
    elif path.is_dir():
        from wbc_data.core.workspace import Workspace
        from wbc_data.ingest.engine import IngestOptions, ingest

        with tempfile.TemporaryDirectory(prefix="wbc-against-") as tmp:
            ws = Workspace(Path(tmp))
            # labels do not matter here, and an evaluation set is often one flat folder (WBCBench's test images)
            read_all = IngestOptions(workers=workers, use_cache=False, adapter_options={"top_level": "unlabelled"})
            result = ingest("imagefolder", path, ws, read_all)
            table = manifest.read(result.manifest_path)
            if "ok" not in set(table.column("status").to_pylist()):
                reasons = [r for r in table.column("reason").to_pylist() if r]
                first = f"; e.g. {reasons[0]}" if reasons else ""
                seen = f"{result.files_seen:,} file(s)"
                raise DedupError(f"--against {path}: no image could be read there ({seen}{first})")
            yield table, PixelLoader.for_workspace(ws)
    else:
        raise DedupError(f"--against {path}: no such manifest file or folder")


def loader_for_manifest(path: Path) -> PixelLoader:
    """Pixels of a unified or per-source manifest file, with its workspace's ``roots.yaml`` when it has one."""
    infos = read_manifest_infos(path)
    if not infos:
        try:
            info = read_source_info(path)
            infos = {info.name: info}
        except (OSError, ValueError, KeyError):
            infos = {}
    folder = path.parent
    workspace = folder.parent if folder.name == "sources" else folder
    return PixelLoader(Roots(infos, read_roots_file(workspace), workspace))


EVALUATION_ROOT = "against:"
"""Prefix of the evaluation rows' ``source_root`` in the joined frame, so one loader can reopen rows of both sides
(the two sets may name roots alike, e.g. both a ``pbc`` source, stored in different places)."""


@dataclass(frozen=True)
class JoinedLoader:
    """Reopens training rows with the workspace's loader and evaluation rows (roots prefixed by
    :data:`EVALUATION_ROOT`) with the evaluation set's; picklable like both, for the region workers."""

    train: PixelLoader
    evaluation: PixelLoader

    def open(self, ref: RowRef):
        if ref.root.startswith(EVALUATION_ROOT):
            return self.evaluation.open(replace(ref, root=ref.root[len(EVALUATION_ROOT) :]))
        return self.train.open(ref)


def _join(train: Participants, other: Participants) -> Participants:
    n = len(train.frame)
    marked = other.frame.assign(source_root=EVALUATION_ROOT + other.frame["source_root"].astype(str))
    frame = pd.concat([train.frame, marked], ignore_index=True)
    return Participants(
        frame,
        np.concatenate([train.thumbs, other.thumbs]),
        np.concatenate([train.is_field, other.is_field]),
        np.concatenate([train.group, other.group + n]),
        np.concatenate([train.rep, other.rep + n]),
        np.concatenate([train.rank, other.rank + len(other.rank) + n]),
    )


def _join_views(a: SignatureView, b: SignatureView) -> SignatureView:
    dim = max(a.words.shape[-1], b.words.shape[-1])

    def widen(w: np.ndarray) -> np.ndarray:
        return w if w.shape[-1] == dim else np.zeros((len(w), 2, dim), np.float32)

    return SignatureView(a.store, np.concatenate([a.keys, b.keys]), np.concatenate([a.has, b.has]),
                         np.concatenate([widen(a.words), widen(b.words)]), np.concatenate([a.thumbs, b.thumbs]),
                         np.concatenate([a.blank, b.blank]), np.concatenate([a.fill, b.fill]))  # fmt: skip


def audit(
    train: Participants,
    train_view: SignatureView,
    options: DedupOptions,
    workspace: Workspace,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """One row per leaking training row (its closest evaluation copy), in ``LEAK_COLUMNS`` plus names."""
    from wbc_data.dedup.run import compute_signatures, find_relations

    assert options.against is not None
    with opened_against(options.against, options.workers) as (table, loader):
        if "status" not in table.column_names:
            raise DedupError(f"--against {options.against}: not a wbc-data manifest")
        other = participants_mod.build(table, options.policy)
        other_view, _ = compute_signatures(other, workspace, options, progress, loader=loader, store=train_view.store)
        n = len(train.frame)
        both = _join(train, other)
        view = _join_views(train_view, other_view)

        def cross(pairs: np.ndarray) -> np.ndarray:
            return (pairs[:, 0] < n) != (pairs[:, 1] < n)

        joined = JoinedLoader(PixelLoader.for_workspace(workspace), loader)
        table_, parts, regions, _, _ = find_relations(both, view, options, progress, allowed=cross, loader=joined)
    pairs = table_.pairs()
    found = np.isin(table_.relation, [COPY, OVERLAP])
    kinds = np.where(table_.relation[found] == COPY, "near", "overlap")
    a, b = pairs[found, 0], pairs[found, 1]
    corr = table_.results[found, 0]
    if len(parts.row):
        a = np.concatenate([a, parts.row])
        b = np.concatenate([b, parts.field])
        kinds = np.concatenate([kinds, np.full(len(parts.row), "part")])
        corr = np.concatenate([corr, parts.results[:, 0]])
    if len(regions.row):  # regions carry keypoint inliers, not a correlation
        a = np.concatenate([a, regions.row])
        b = np.concatenate([b, regions.field])
        kinds = np.concatenate([kinds, np.full(len(regions.row), "part")])
        corr = np.concatenate([corr, np.full(len(regions.row), np.nan, np.float32)])
    tr, ev = np.where(a < n, a, b), np.where(a < n, b, a) - n
    leaks = pd.DataFrame({"train": tr, "eval": ev, "kind": kinds, "correlation": corr})
    # a training field leaks through its crops; exact copies of a leaking row leak too
    ids = train.frame["sample_id"].to_numpy(object)
    parent = pd.Index(ids).get_indexer(train.frame["parent_id"].to_numpy(object))
    crops = pd.DataFrame({"train": np.flatnonzero(parent >= 0), "field": parent[parent >= 0]})
    via_field = leaks.merge(crops, left_on="train", right_on="field", suffixes=("_f", ""))
    leaks = pd.concat([leaks, via_field[["train", "eval", "kind", "correlation"]]], ignore_index=True)
    members = pd.DataFrame({"train": np.arange(n), "rep": train.rep})
    leaks = leaks.rename(columns={"train": "rep"}).merge(members, on="rep")[["train", "eval", "kind", "correlation"]]
    leaks = leaks[~train.is_field[leaks["train"].to_numpy(np.int64)]]
    leaks = leaks.sort_values(["train", "correlation"], ascending=[True, False]).drop_duplicates("train")
    eval_ids = other.frame["sample_id"].to_numpy(object)
    leaks["eval_id"] = eval_ids[leaks["eval"].to_numpy(np.int64)]
    leaks["distance"] = 0
    leaks["transform"] = np.where(other.is_field[leaks["eval"].to_numpy(np.int64)], "evaluation field", "")
    leaks = leaks[LEAK_COLUMNS].reset_index(drop=True)
    train_rows = leaks["train"].to_numpy(np.int64)
    return leaks.assign(
        sample_id=ids[train_rows],
        source=train.frame["source"].to_numpy(object)[train_rows],
        eval_source=other.frame["source"].to_numpy(object)[leaks["eval"].to_numpy(np.int64)],
    )


def load_against(path: Path, workers: int = 0) -> pd.DataFrame:
    """Usable rows of an evaluation set (a manifest file or an imagefolder folder), for callers that only read."""
    with opened_against(path, workers) as (table, _):
        frame = manifest.to_frame(table.drop_columns(["thumb"]) if "thumb" in table.column_names else table)
    return frame[is_usable(frame)].reset_index(drop=True)
