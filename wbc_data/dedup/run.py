"""``wbc-data dedup``: read the unified manifest, find and cluster copies, choose keepers, audit leakage, and
write the dedup columns as this stage's own results (``stages/dedup.parquet``, joined when the manifest is read)
plus the reports. The manifest itself is never rewritten."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from wbc_data import manifest
from wbc_data.dedup.cluster import clusters
from wbc_data.dedup.dihedral import dihedral_phashes, thumbs_from_bytes
from wbc_data.dedup.leakage import leak_matches, load_against
from wbc_data.dedup.pairs import PAIR_COLUMNS, exact_pairs, member_distance, near_pairs
from wbc_data.dedup.policy import KeepPolicy, choose_keepers, default_policy
from wbc_data.dedup.verify import normalise
from wbc_data.dedup.zoom import CROP_GRID, zoomed_phashes
from wbc_data.errors import DedupError
from wbc_data.stages import write_stage
from wbc_data.workspace import Workspace

DEFAULT_THRESHOLD = 8
"""Hamming radius on 64-bit pHashes. Measured on the shared real data (PBC half + Kaggle val, 9,487 images):
recompression (q50-95), resizing (50-150%), brightness/contrast +-15% and dihedral transforms moved the pHash by at
most 4 bits; the closest distinct pairs are 6 bits apart (20 pairs) and 8 bits (311 pairs), all with aligned
thumbnail correlation <= 0.83, so radius 8 plus correlation >= 0.90 keeps copies and rejects look-alikes.
See benchmarks/README.md (dedup) for how it was measured."""

DEFAULT_CROP_THRESHOLD = 10
"""Hamming radius for matches against the zoomed (cropped) hashes of ``zoom.CROP_GRID``: crops removing up to 10%
of the width and of the height land within 10 bits of the nearest grid box (see benchmarks/README.md, dedup);
the crop-refined correlation then separates them from distinct cells."""

DEFAULT_MIN_CORRELATION = 0.90
DEDUP_COLUMNS = ["dup_cluster", "dup_distance", "dup_transform", "dup_keep", "dup_decision", "leak_match"]
STAGE = "dedup"
SYNTHETIC_DECISION = "keep: synthetic (checked by the synth guards, not deduplicated)"
StepFn = Callable[[str], None]


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


@dataclass
class DedupResult:
    stage_path: Path  # stages/dedup.parquet: this stage's own results
    frame: pd.DataFrame  # the usable rows with dedup columns (no thumbnails)
    pairs: pd.DataFrame  # sample_id_a, sample_id_b, source_a, source_b, kind, distance, transform, correlation
    leaks: pd.DataFrame
    report_paths: list[Path] = field(default_factory=list)

    @property
    def clusters(self) -> int:
        return int(self.frame["dup_cluster"].nunique())

    @property
    def dropped(self) -> int:
        return int((~self.frame["dup_keep"].astype(bool)).sum())

    def summary(self) -> pd.DataFrame:
        kinds = self.pairs["kind"].value_counts()
        return pd.DataFrame(
            [
                {
                    "rows": len(self.frame),
                    "clusters": self.clusters,
                    "dropped": self.dropped,
                    "file pairs": int(kinds.get("file", 0)),
                    "pixel pairs": int(kinds.get("pixels", 0)),
                    "near pairs": int(kinds.get("near", 0)),
                }
            ]
        )


def find_pairs(
    frame: pd.DataFrame, options: DedupOptions, step: StepFn | None = None
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray | None]:
    """All exact and near pairs among ``frame``'s rows (positions), plus the (n, 8) dihedral hashes and the
    (n, k) zoomed hashes (None without crop search)."""
    for name, value in (("--threshold", options.threshold), ("--crop-threshold", options.crop_threshold)):
        if value is not None and not 0 <= value <= 32:
            raise DedupError(f"{name} {value}: use a Hamming distance between 0 and 32 bits")
    if step:
        step("hash")
    thumbs, has_thumb = thumbs_from_bytes(frame["thumb"].tolist())
    hashes = dihedral_phashes(thumbs)
    parts = [exact_pairs(frame["sha256"], "file"), exact_pairs(frame["pixel_hash"], "pixels")]
    rows = np.flatnonzero(has_thumb)
    near = near_pairs(hashes[rows], normalise(thumbs[rows]), options.threshold, options.min_correlation,
                      options.index, step, thumbs=thumbs[rows], crop_radius=options.crop_threshold)  # fmt: skip
    zoomed = None if options.crop_threshold is None else zoomed_phashes(thumbs)
    if zoomed is not None:
        zoomed[~has_thumb] = 0
    near["a"], near["b"] = rows[near["a"].to_numpy(np.int64)], rows[near["b"].to_numpy(np.int64)]
    parts.append(near)
    pairs = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts) else None
    if pairs is None:
        return pd.DataFrame(columns=PAIR_COLUMNS), hashes, zoomed
    # an exact pair hides the near pair of the same rows
    lo, hi = np.minimum(pairs["a"], pairs["b"]), np.maximum(pairs["a"], pairs["b"])
    pairs = pairs.assign(lo=lo, hi=hi, prio=pairs["kind"].map({"file": 0, "pixels": 1, "near": 2}))
    pairs = pairs.sort_values(["lo", "hi", "prio"]).drop_duplicates(["lo", "hi"])
    return pairs[PAIR_COLUMNS].reset_index(drop=True), hashes, zoomed


def dedup(workspace: Workspace, options: DedupOptions | None = None, step: StepFn | None = None) -> DedupResult:
    options = options or DedupOptions()
    path = workspace.unified_manifest
    if not path.is_file():
        raise DedupError(f"{path}: no unified manifest (run `wbc-data manifest` first)")
    full = manifest.to_frame(manifest.read(path))
    usable = (full["status"] == "ok").to_numpy().copy()  # pandas may hand out a read-only view
    if "is_synthetic" in full.columns:  # synthetic rows are checked by the synth guards, not deduplicated
        usable &= ~full["is_synthetic"].fillna(False).astype(bool).to_numpy()
    frame = full.iloc[np.flatnonzero(usable)].reset_index(drop=True)
    del full

    pairs, hashes, zoomed = find_pairs(frame, options, step)
    if step:
        step("cluster")
    cluster = clusters(len(frame), pairs)
    keeper = choose_keepers(frame, cluster, options.policy)
    members = np.flatnonzero(cluster >= 0)
    distance = np.full(len(frame), -1, dtype=np.int64)
    transform = np.full(len(frame), None, dtype=object)
    distance[members], transform[members] = member_distance(hashes, members, keeper[members], zoomed, CROP_GRID)

    out = frame.copy()
    ids = out["sample_id"].to_numpy()
    out["dup_cluster"] = pd.array(np.where(cluster >= 0, cluster, None), dtype="Int64")
    out["dup_distance"] = pd.array(np.where(distance >= 0, distance, None), dtype="Int32")
    out["dup_transform"] = transform
    keep = np.ones(len(frame), dtype=bool)
    keep[members] = keeper[members] == members
    decision = np.full(len(frame), "unique", dtype=object)
    decision[members] = np.where(keep[members], "keep: cluster representative", None)
    dropped = members[~keep[members]]
    decision[dropped] = ["drop: duplicate of " + ids[k] for k in keeper[dropped]]
    out["dup_keep"] = pd.array(keep, dtype="boolean")
    out["leak_match"] = None

    leaks = pd.DataFrame()
    if options.against is not None:
        if step:
            step("leakage")
        against = load_against(options.against, options.workers)
        both = pd.concat([frame[against.columns.intersection(frame.columns)], against], ignore_index=True)
        cross_pairs, _, _ = find_pairs(both, options)
        leaks = leak_matches(cross_pairs, len(frame), against["sample_id"])
        train = leaks["train"].to_numpy(np.int64)
        out.loc[train, "leak_match"] = leaks["eval_id"].to_numpy()
        if options.exclude_leaks:
            keep[train] = False
            decision[train] = ["drop: leak, copy in evaluation set " + e for e in leaks["eval_id"]]
            out["dup_keep"] = pd.array(keep, dtype="boolean")
        leaks = leaks.assign(
            sample_id=ids[train],
            source=out["source"].to_numpy()[train],
            eval_source=against["source"].to_numpy()[leaks["eval"].to_numpy(np.int64)],
        )
    out["dup_decision"] = decision

    # the stage's own results: one row per usable manifest row (others get empty dedup columns when joined)
    results = pd.DataFrame({"sample_id": ids})
    for column in DEDUP_COLUMNS:
        results[column] = out[column].to_numpy() if out[column].dtype == object else out[column].array
    stage_path, _ = write_stage(
        workspace,
        STAGE,
        results,
        frame.drop(columns=["thumb"]),
        command="wbc-data dedup",
        params={"threshold": options.threshold, "crop_threshold": options.crop_threshold,
                "policy": options.policy.describe(), "against": options.against},
        defaults_for_synthetic={"dup_keep": True, "dup_decision": SYNTHETIC_DECISION},
    )  # fmt: skip

    named = pairs.assign(
        sample_id_a=ids[pairs["a"].to_numpy(np.int64)],
        sample_id_b=ids[pairs["b"].to_numpy(np.int64)],
        source_a=out["source"].to_numpy()[pairs["a"].to_numpy(np.int64)],
        source_b=out["source"].to_numpy()[pairs["b"].to_numpy(np.int64)],
    )
    dedup_result = DedupResult(stage_path, out.drop(columns=["thumb"]), named, leaks)
    if options.reports:
        if step:
            step("report")
        from wbc_data.dedup.report import build
        from wbc_data.pixels import PixelLoader

        loader = PixelLoader.for_workspace(workspace)
        dedup_result.report_paths = build(dedup_result, out, workspace.reports_dir, options, loader)
    return dedup_result
