"""Leakage audit: which training rows have a copy (exact or near, any dihedral transform) in an evaluation set."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from wbc_data import manifest
from wbc_data.errors import DedupError
from wbc_data.manifest import ManifestError

LOAD_COLUMNS = ["sample_id", "source", "source_root", "source_path", "crop_box", "status", "label", "label_status",
                "sha256", "pixel_hash", "phash", "thumb", "width", "height"]  # fmt: skip


def load_against(path: Path, workers: int = 0) -> pd.DataFrame:
    """Usable rows of the evaluation set: a manifest file, or a folder ingested with the imagefolder adapter."""
    path = Path(path).expanduser()
    if path.is_file():
        try:
            frame = manifest.read_frame(path)
        except ManifestError as exc:
            raise DedupError(f"--against {path}: {exc}") from None
    elif path.is_dir():
        from wbc_data.ingest.engine import IngestOptions, ingest
        from wbc_data.workspace import Workspace

        with tempfile.TemporaryDirectory(prefix="wbc-against-") as tmp:
            result = ingest("imagefolder", path, Workspace(Path(tmp)), IngestOptions(workers=workers, use_cache=False))
            frame = manifest.read_frame(result.manifest_path)
    else:
        raise DedupError(f"--against {path}: no such manifest file or folder")
    frame = frame[frame["status"] == "ok"]
    return frame[[c for c in LOAD_COLUMNS if c in frame.columns]].reset_index(drop=True)


def leak_matches(pairs: pd.DataFrame, n_train: int, eval_ids: pd.Series) -> pd.DataFrame:
    """From pairs over [train rows; eval rows], the closest eval copy of each leaking training row."""
    cross = pairs[(pairs["a"] < n_train) != (pairs["b"] < n_train)].copy()
    cross["train"] = cross[["a", "b"]].min(axis=1)
    cross["eval"] = cross[["a", "b"]].max(axis=1) - n_train
    cross = cross.sort_values(["train", "distance", "correlation"], ascending=[True, True, False])
    cross = cross.drop_duplicates("train")
    cross["eval_id"] = eval_ids.to_numpy()[cross["eval"].to_numpy()]
    return cross[["train", "eval", "eval_id", "kind", "distance", "transform", "correlation"]]
