"""``wbc-data dedup``: read the unified manifest, find and cluster copies, choose keepers, audit leakage, and
write the dedup columns as this stage's own results (``stages/dedup.parquet``, joined when the manifest is read)
plus the reports. The manifest itself is never rewritten; Ctrl-C at any point leaves the previous results as they
were (signatures computed so far stay cached).

Steps: participants (usable rows and field images, exact copies collapsed) -> signatures (:mod:`extract`, cached)
-> candidates (hash search + bag-of-words neighbours) -> registration of the candidates that can change the copy
sets (:mod:`spanning`, on every core through :mod:`confirm`) -> copy sets verified against their leader
(:mod:`linkage`) -> parts of field images (:mod:`relations`) -> clusters, keep
and decisions (:mod:`outcome`) -> leakage -> stage file and report.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wbc_data.core import manifest
from wbc_data.core.errors import DedupError
from wbc_data.core.progress import Progress, or_null
from wbc_data.core.stages import set_aside_if_damaged, write_stage
from wbc_data.core.workspace import Workspace
from wbc_data.dedup import keypoints
from wbc_data.dedup import participants as participants_mod
from wbc_data.dedup.confirm import as_match, column
from wbc_data.dedup.dihedral import dihedral_phashes
from wbc_data.dedup.extract import Job, extract, window_key
from wbc_data.dedup.linkage import COPY, MIN_CORRELATION, OVERLAP, PairTable, copy_relation, copy_sets
from wbc_data.dedup.outcome import decide
from wbc_data.dedup.pairs import PAIR_COLUMNS, member_distance
from wbc_data.dedup.participants import Participants
from wbc_data.dedup.policy import KeepPolicy, default_policy
from wbc_data.dedup.regions import RegionMatches, find_regions
from wbc_data.dedup.relations import (
    Parts,
    SignatureView,
    field_windows,
    find_candidates,
    find_parts,
    register_pairs,
)
from wbc_data.dedup.signature import CANVAS
from wbc_data.dedup.spanning import similarity, verify_candidates
from wbc_data.dedup.spectra import RowSpectra
from wbc_data.dedup.store import SignatureStore
from wbc_data.dedup.windows import grid_windows
from wbc_data.dedup.zoom import CROP_GRID, zoomed_phashes
from wbc_data.io.locks import check_workspace_folder, writer_lock
from wbc_data.io.pixels import PixelLoader, RowOpener, row_refs

DEFAULT_THRESHOLD = 8
"""Hamming radius on 64-bit pHashes for the hash candidates. Measured on the shared real data (PBC half + Kaggle
val, 9,487 images): recompression (q50-95), resizing (50-150%), brightness/contrast +-15% and dihedral transforms
moved the pHash by at most 4 bits (see benchmarks/README.md, dedup). Registration decides, not the distance."""

DEFAULT_CROP_THRESHOLD = 10
"""Hamming radius for matches against the zoomed (cropped) hashes of ``zoom.CROP_GRID``: crops removing up to 10%
of the width and of the height land within 10 bits of the nearest grid box (see benchmarks/README.md, dedup)."""

DEFAULT_MIN_CORRELATION = MIN_CORRELATION
DEFAULT_NEIGHBOURS = 4
"""Bag-of-words neighbours registered per row (image and mirror image each): an augmented copy of a real PBC cell
has its original among the 4 nearest of 9,387 cells in 99.6% of cases, and at least one of its sibling copies in
100% (benchmarks/README.md, dedup)."""

WINDOW_NEIGHBOURS = 3
DEDUP_COLUMNS = ["dup_cluster", "dup_distance", "dup_transform", "dup_keep", "dup_decision", "leak_match",
                 "dup_derived_from"]  # fmt: skip
STAGE = "dedup"
SYNTHETIC_DECISION = "keep: synthetic (checked by the synth guards, not deduplicated)"


@dataclass
class DedupOptions:
    threshold: int = DEFAULT_THRESHOLD
    crop_threshold: int | None = DEFAULT_CROP_THRESHOLD  # None: no crop search
    min_correlation: float = DEFAULT_MIN_CORRELATION
    policy: KeepPolicy = field(default_factory=default_policy)
    against: Path | None = None
    exclude_leaks: bool = False
    workers: int = 0
    index: str = "auto"
    reports: bool = True
    neighbours: int = DEFAULT_NEIGHBOURS
    fields: bool = True  # search crops inside field images (their windows)
    regions: bool = True  # with fields: keypoint matching for zoomed, rotated, sheared regions of fields
    engine: str = "batched"  # registration: "batched" (array passes) or "reference" (one pair at a time)
    cache_pairs: bool = True  # reuse registration results of earlier runs (workspace cache)
    all_pairs: bool = False  # register every candidate pair, also those inside one copy set (see dedup.spanning;
    # the leader search still reaches linkage.HOPS = 12, not the 3 of the code before issue 21's tenth session)
    device: str = "auto"  # batched registration's log-polar stage: auto (a CUDA GPU if torch sees one), cpu, cuda
    executor: Any = None  # a concurrent.futures-style executor (e.g. Dask's client.get_executor()): signature and
    # registration batches run there as independent tasks instead of this machine's worker pool

    def check(self) -> None:
        for name, value in (("--threshold", self.threshold), ("--crop-threshold", self.crop_threshold)):
            if value is not None and not 0 <= value <= 32:
                raise DedupError(f"{name} {value}: use a Hamming distance between 0 and 32 bits")
        if not 0.0 < self.min_correlation < 1.0:
            raise DedupError(f"--min-correlation {self.min_correlation}: use a correlation between 0 and 1")
        from wbc_data.dedup.confirm import ENGINES

        if self.engine not in ENGINES:
            raise DedupError(f"registration engine {self.engine!r}: use one of {', '.join(ENGINES)}")
        if not 1 <= self.neighbours <= 64:
            raise DedupError(f"--neighbours {self.neighbours}: use 1 to 64 candidates per row")
        if not re.fullmatch(r"auto|cpu|torch-cpu|cuda(:\d+)?", self.device):
            raise DedupError(f"--device {self.device}: use auto, cpu or cuda (cuda:N for one GPU of several)")


@dataclass
class DedupResult:
    stage_path: Path  # stages/dedup.parquet: this stage's own results
    frame: pd.DataFrame  # the participating rows with dedup columns (no thumbnails)
    pairs: pd.DataFrame  # sample_id_a, sample_id_b, source_a, source_b, kind, distance, transform, correlation
    leaks: pd.DataFrame
    report_paths: list[Path] = field(default_factory=list)
    findings: dict[str, int] = field(default_factory=dict)  # what the run saw: blank, unreadable, capped...
    warnings: list[str] = field(default_factory=list)  # e.g. its own damaged result, moved aside

    @property
    def clusters(self) -> int:
        return int(self.frame["dup_cluster"].nunique())

    @property
    def dropped(self) -> int:
        return int((self.frame["dup_keep"] == False).sum())  # noqa: E712 (fields have no keep)

    def summary(self) -> pd.DataFrame:
        kinds = self.pairs["kind"].value_counts()
        fields = int(self.findings.get("field images", 0))
        return pd.DataFrame(
            [
                {
                    "rows": len(self.frame) - fields,
                    "field images": fields,
                    "clusters": self.clusters,
                    "dropped": self.dropped,
                    "file pairs": int(kinds.get("file", 0)),
                    "pixel pairs": int(kinds.get("pixels", 0)),
                    "near pairs": int(kinds.get("near", 0)),
                    "part / overlap": int(kinds.get("part", 0) + kinds.get("overlap", 0)),
                }
            ]
        )

    def notes(self) -> list[str]:
        """One line per unusual finding, for the CLI and the report."""
        f = self.findings
        out = list(self.warnings)
        if f.get("blank"):
            out.append(f"{f['blank']:,} blank image(s) (one flat colour): only exact copies were looked for")
        if f.get("unreadable"):
            out.append(f"{f['unreadable']:,} image(s) could not be opened here: only exact copies were looked for "
                       "(re-point their source with `wbc-data manifest --root`)")  # fmt: skip
        if f.get("largest exact group", 0) > 1000:
            out.append(f"one image is repeated {f['largest exact group']:,} times (identical pixels)")
        if f.get("capped"):
            out.append(f"{f['capped']:,} hash match(es) beyond the per-row cap were not examined")
        if f.get("label conflicts"):
            out.append(f"{f['label conflicts']:,} set(s) of copies carry labels no one class fits (see the report)")
        return out


def compute_signatures(
    parts: Participants, workspace: Workspace, options: DedupOptions, progress: Progress | None = None,
    loader: PixelLoader | None = None, store: SignatureStore | None = None,
) -> tuple[SignatureView, dict[str, str]]:  # fmt: skip
    """Signatures of every representative row (computed where the cache lacks them); {key: reason} for images
    that could not be opened. Computing them is the phase "signatures"."""
    store = store or SignatureStore.for_workspace(workspace.root)
    reps = parts.reps
    keys = parts.frame["pixel_hash"].to_numpy(object)
    index = store.index().index
    width, height = parts.frame["width"].to_numpy(), parts.frame["height"].to_numpy()

    def lacks(r: int) -> bool:
        if not isinstance(keys[r], str):
            return False
        if keys[r] not in index:
            return True
        if not (options.fields and parts.is_field[r]):
            return False
        boxes = grid_windows(int(width[r]), int(height[r]))
        return any(window_key(keys[r], tuple(int(v) for v in box)) not in index for box in boxes)

    missing = [r for r in reps if lacks(r)]
    failed: dict[str, str] = {}
    if missing:
        loader = loader or PixelLoader.for_workspace(workspace)
        refs = row_refs(parts.frame.iloc[missing])
        fields = parts.is_field[missing] & options.fields
        thumbs = [parts.thumbs[r] if parts.thumbs[r].any() else None for r in missing]  # zeros: none stored
        jobs = [Job(keys[r], ref, bool(f), t) for r, ref, f, t in zip(missing, refs, fields, thumbs, strict=True)]
        progress = or_null(progress)
        progress.phase("signatures", len(jobs))
        failed = extract(jobs, store, loader, options.workers, progress, options.executor)
    return SignatureView.load(store, keys, parts.thumbs, reps), failed


def _exact_pairs(parts: Participants) -> pd.DataFrame:
    """Star pairs inside each exact group (representative, member): kind file when the bytes match, else pixels."""
    members = np.flatnonzero(parts.rep != np.arange(len(parts.rep)))
    rep = parts.rep[members]
    sha = parts.frame["sha256"].to_numpy(object)
    same_file = pd.notna(sha[members]) & (sha[members] == sha[rep])
    return pd.DataFrame({"a": rep, "b": members, "kind": np.where(same_file, "file", "pixels"), "distance": 0,
                         "transform": "identity", "correlation": 1.0, "texture": 1.0})  # fmt: skip


def _describe(results: np.ndarray) -> np.ndarray:
    return np.array([as_match(r).describe() for r in results], dtype=object)


def _pair_frame(parts: Participants, table: PairTable, found_parts: Parts, regions: RegionMatches,
                hashes: np.ndarray) -> pd.DataFrame:  # fmt: skip
    """All found pairs: exact (file/pixels), near copies, overlapping views, parts and regions of fields."""
    frames = [_exact_pairs(parts)]
    pairs = table.pairs()
    for relation, kind in ((COPY, "near"), (OVERLAP, "overlap")):
        pick = np.flatnonzero(table.relation == relation)
        if len(pick):
            a, b = pairs[pick, 0], pairs[pick, 1]
            frames.append(pd.DataFrame({"a": a, "b": b, "kind": kind, "distance": _hash_distance(hashes, a, b),
                                        "transform": _describe(table.results[pick]),
                                        "correlation": column(table.results[pick], "correlation").astype(float),
                                        "texture": column(table.results[pick], "texture").astype(float)}))  # fmt: skip
    if len(found_parts.row):
        boxes = [f" in window {list(map(int, box))}" for box in found_parts.box]
        frames.append(pd.DataFrame({"a": found_parts.row, "b": found_parts.field, "kind": "part",
                                    "distance": _hash_distance(hashes, found_parts.row, found_parts.field),
                                    "transform": _describe(found_parts.results) + np.array(boxes, dtype=object),
                                    "correlation": column(found_parts.results, "correlation").astype(float),
                                    "texture": column(found_parts.results, "texture").astype(float)}))  # fmt: skip
    if len(regions.row):
        frames.append(pd.DataFrame({"a": regions.row, "b": regions.field, "kind": "part",
                                    "distance": _hash_distance(hashes, regions.row, regions.field),
                                    "transform": [keypoints.describe(r) for r in regions.results],
                                    "correlation": np.nan, "texture": np.nan}))  # fmt: skip
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=PAIR_COLUMNS)


def _hash_distance(hashes: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest Hamming distance between any dihedral transform of a and b's pHash."""
    if not len(a):
        return np.zeros(0, np.int32)
    return np.bitwise_count(hashes[a] ^ hashes[b, :1]).min(axis=1).astype(np.int32)


def find_relations(
    parts: Participants, view: SignatureView, options: DedupOptions, progress: Progress | None = None,
    allowed: Callable[[np.ndarray], np.ndarray] | None = None, loader: RowOpener | None = None,
) -> tuple[PairTable, Parts, RegionMatches, dict[str, int], np.ndarray]:  # fmt: skip
    """Registered candidate pairs (copy sets formed over them), parts of fields (window registration) and regions
    of fields (keypoints, only with a ``loader`` to reopen rows); returns the table, the parts, the regions,
    counts, and the copy-set leader of every representative. The run's log-polar spectra (:mod:`spectra`) live as
    long as this call."""
    spectra = RowSpectra.beside(view.store.directory.parent, len(view.keys)) if view.store is not None else None
    try:
        return _find_relations(parts, view, options, progress, allowed, loader, spectra)
    finally:
        if spectra is not None:
            spectra.close()


def _find_relations(
    parts: Participants, view: SignatureView, options: DedupOptions, progress: Progress | None,
    allowed: Callable[[np.ndarray], np.ndarray] | None, loader: RowOpener | None, spectra: RowSpectra | None,
) -> tuple[PairTable, Parts, RegionMatches, dict[str, int], np.ndarray]:  # fmt: skip
    from wbc_data.dedup.batched import resolve_device

    progress = or_null(progress)
    n = len(parts.frame)
    labels = parts.exact_label(np.arange(n))
    torch_device = resolve_device(options.device) if options.engine == "batched" else None
    candidates = find_candidates(view, options.threshold, options.crop_threshold, options.neighbours,
                                 options.index, progress, allowed)  # fmt: skip

    def relate(pairs: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
        results = register_pairs(view, pairs, options.workers, progress, what, options.engine, torch_device,
                                 options.executor, spectra)  # fmt: skip
        relation = copy_relation(results, CANVAS, labels[pairs[:, 0]], labels[pairs[:, 1]], options.min_correlation)
        return relation, results

    progress.phase("verify")
    deferred = None
    if options.all_pairs:
        relation, results = relate(candidates.pairs, "verify candidates")
        table = PairTable.build(n, candidates.pairs, relation, results)
    else:
        weight = similarity(view.words, candidates.pairs)
        verified = verify_candidates(n, candidates.pairs, weight, lambda pairs: relate(pairs, "verify forest"),
                                     lambda pairs: relate(pairs, "verify candidates"))  # fmt: skip
        table, deferred = verified.table, verified.deferred
    progress.phase("copy sets")
    order = parts.reps[view.searchable[parts.reps]]
    sets = copy_sets(order, table, lambda pairs: relate(pairs, "verify against leaders"), deferred=deferred)
    leader = np.arange(n)
    leader[order] = sets.leader[order]
    found_parts = Parts.empty()
    regions = RegionMatches.empty()
    fields = parts.reps[parts.is_field[parts.reps]]
    if options.fields and len(fields):
        progress.phase("field windows")
        windows = field_windows(view, fields, parts.frame["width"].to_numpy(), parts.frame["height"].to_numpy())
        queries = parts.reps[~parts.is_field[parts.reps] & view.searchable[parts.reps]]
        ids = parts.frame["sample_id"].to_numpy(object)
        parent = parts.frame["parent_id"].to_numpy(object)

        def own_field(rows: np.ndarray, field_rows: np.ndarray) -> np.ndarray:
            return parent[rows] == ids[field_rows]

        found_parts = find_parts(view, windows, queries, WINDOW_NEIGHBOURS, options.min_correlation,
                                 options.workers, own_field, progress, options.engine, torch_device,
                                 options.executor)  # fmt: skip
        if allowed is not None and len(found_parts.row):
            keep = allowed(np.stack([found_parts.row, found_parts.field], axis=1))
            found_parts = Parts(found_parts.row[keep], found_parts.field[keep], found_parts.box[keep],
                                found_parts.results[keep])  # fmt: skip
        if options.regions and loader is not None:
            # rows not linked to a field yet: neither a part of one nor in a copy set with one
            field_sets = np.zeros(n, bool)
            field_sets[leader[fields]] = True
            open_rows = queries[~np.isin(queries, found_parts.row) & ~field_sets[leader[queries]]]
            parent_field = pd.Index(ids).get_indexer(parent)
            frame = parts.frame

            def refs(rows: np.ndarray) -> list:
                return row_refs(frame.iloc[rows])

            progress.phase("field regions")
            regions = find_regions(view, windows, open_rows, fields, parent_field, refs, loader, options.workers,
                                   progress, options.executor)  # fmt: skip
            if allowed is not None and len(regions.row):
                keep = allowed(np.stack([regions.row, regions.field], axis=1))
                regions = RegionMatches(regions.row[keep], regions.field[keep], regions.results[keep])
    counts = {"candidates": len(candidates.pairs), "hash candidates": candidates.hash_pairs,
              "word candidates": candidates.word_pairs, "capped": candidates.capped, "rounds": sets.rounds,
              "registered against leaders": sets.registered_on_demand,
              "deferred candidates registered": sets.deferred_registered,
              "candidates inside a copy set, not registered": sets.unregistered,
              "regions of fields": len(regions.row)}  # fmt: skip
    return sets.table, found_parts, regions, counts, leader


def dedup(workspace: Workspace, options: DedupOptions | None = None, progress: Progress | None = None) -> DedupResult:
    """Run the stage (phases: read, signatures, hash search, word neighbours, verify, copy sets, field windows,
    cluster, leakage, report)."""
    options = options or DedupOptions()
    options.check()
    path = workspace.unified_manifest
    if not path.is_file():
        check_workspace_folder(workspace.root)
        raise DedupError(f"{path}: no unified manifest (run `wbc-data manifest` first)")
    with writer_lock(workspace.root, STAGE):
        return _dedup(workspace, options, or_null(progress))


def _dedup(workspace: Workspace, options: DedupOptions, progress: Progress) -> DedupResult:
    path = workspace.unified_manifest
    progress.phase("read")
    healed = set_aside_if_damaged(workspace, STAGE)
    parts = participants_mod.build(manifest.read(path), options.policy)
    frame = parts.frame
    n = len(frame)
    progress.phase("signatures")
    loader = PixelLoader.for_workspace(workspace)
    view, _failed = compute_signatures(parts, workspace, options, progress, loader=loader)
    view.use_cache = options.cache_pairs
    table, found_parts, regions, counts, leader = find_relations(parts, view, options, progress, loader=loader)
    blank_rows = np.flatnonzero(view.blank[parts.rep])
    no_pixels = np.flatnonzero(~view.has[parts.rep] & frame["pixel_hash"].notna().to_numpy())
    skipped = {"blank image (one flat colour): only exact copies were looked for": blank_rows,
               "pixels not available here: only exact copies were looked for": no_pixels}  # fmt: skip
    progress.phase("cluster")
    part_of = (np.concatenate([found_parts.row, regions.row]), np.concatenate([found_parts.field, regions.field]))
    out = decide(parts, leader, table, part_of, skipped)

    # distance and transform to the kept row (or the set's leader for a set of fields)
    hashes = dihedral_phashes(view.thumbs)
    members = np.flatnonzero(out.cluster >= 0)
    anchor = np.where(out.keeper >= 0, out.keeper, out.copy_set)
    distance = np.full(n, -1, np.int64)
    transform = np.full(n, None, dtype=object)
    if len(members):
        rows = np.unique(np.concatenate([members, anchor[members]]))
        zoomed = np.zeros((n, len(CROP_GRID)), np.uint64)
        zoomed[rows] = zoomed_phashes(view.thumbs[rows])
        distance[members], transform[members] = member_distance(hashes, members, anchor[members], zoomed, CROP_GRID)
        # a copy the hashes do not explain (any angle, shift...) is described by its registration with the leader
        registered = table.find(members, out.copy_set[members])
        far = (distance[members] > (options.crop_threshold or options.threshold)) & (registered >= 0)
        transform[members[far]] = _describe(table.results[registered[far]])
    exact = parts.rep != np.arange(n)
    transform[exact & (out.cluster >= 0)] = "identity"
    distance[exact & (out.cluster >= 0)] = 0
    pairs = _pair_frame(parts, table, found_parts, regions, hashes)
    # a part of a field that is the only image of its kind says how it sits in the field, not "identity"
    found_in = pairs[pairs["kind"] == "part"].drop_duplicates("a")
    alone = found_in["a"].to_numpy(np.int64)
    alone_mask = anchor[alone] == alone
    transform[alone[alone_mask]] = found_in["transform"].to_numpy(object)[alone_mask]
    distance[alone[alone_mask]] = found_in["distance"].to_numpy(np.int64)[alone_mask]

    ids = frame["sample_id"].to_numpy(object)
    result_frame = frame.copy()
    result_frame["dup_cluster"] = pd.array(np.where(out.cluster >= 0, out.cluster, None), dtype="Int64")
    result_frame["dup_distance"] = pd.array(np.where(distance >= 0, distance, None), dtype="Int32")
    result_frame["dup_transform"] = transform
    result_frame["dup_keep"] = pd.array(out.keep, dtype="boolean")
    result_frame["dup_decision"] = out.decision
    result_frame["dup_derived_from"] = out.derived_from
    result_frame["leak_match"] = None
    result_frame["copy_set"] = ids[out.copy_set]  # not a stage column: the report's label conflicts use it
    result_frame["linked_by"] = out.linked_by

    leaks = pd.DataFrame()
    if options.against is not None:
        from wbc_data.dedup.leakage import audit

        progress.phase("leakage")
        leaks = audit(parts, view, options, workspace, progress)
        if len(leaks):
            train = leaks["train"].to_numpy(np.int64)
            result_frame.loc[train, "leak_match"] = leaks["eval_id"].to_numpy()
            if options.exclude_leaks:
                droppable = train[~parts.is_field[train]]
                result_frame.loc[droppable, "dup_keep"] = False
                eval_of = dict(zip(leaks["train"], leaks["eval_id"], strict=True))
                result_frame.loc[droppable, "dup_decision"] = [
                    "drop: leak, copy in evaluation set " + eval_of[t] for t in droppable
                ]

    findings = {
        "field images": int(parts.is_field.sum()),
        "blank": len(blank_rows),
        "unreadable": len(no_pixels),
        "largest exact group": int(np.bincount(parts.group).max()) if n else 0,
        **counts,
        **view.counts,
    }
    results = pd.DataFrame({"sample_id": ids})
    for name in DEDUP_COLUMNS:
        values = result_frame[name]
        results[name] = values.to_numpy() if values.dtype == object else values.array
    stage_path, _ = write_stage(
        workspace,
        STAGE,
        results,
        frame,
        command="wbc-data dedup",
        params={"threshold": options.threshold, "crop_threshold": options.crop_threshold,
                "min_correlation": options.min_correlation, "neighbours": options.neighbours,
                "fields": options.fields, "policy": options.policy.describe(), "against": options.against},
        defaults_for_synthetic={"dup_keep": True, "dup_decision": SYNTHETIC_DECISION},
    )  # fmt: skip

    sources = frame["source"].to_numpy(object)
    named = pairs.assign(
        sample_id_a=ids[pairs["a"].to_numpy(np.int64)],
        sample_id_b=ids[pairs["b"].to_numpy(np.int64)],
        source_a=sources[pairs["a"].to_numpy(np.int64)],
        source_b=sources[pairs["b"].to_numpy(np.int64)],
    )
    dedup_result = DedupResult(
        stage_path, result_frame, named, leaks, findings=findings, warnings=[healed] if healed else []
    )
    from wbc_data.dedup.report import label_conflicts

    dedup_result.findings["label conflicts"] = len(label_conflicts(result_frame))
    if options.reports:
        progress.phase("report")
        from wbc_data.dedup.report import build

        dedup_result.report_paths = build(dedup_result, result_frame, workspace.reports_dir, options, loader,
                                          parts.thumbs)  # fmt: skip
    return dedup_result
