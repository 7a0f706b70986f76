"""``wbc-data predict``: class probabilities for a folder of images or a manifest's rows, and the WBCBench
submission file (``ID,labels``), optionally averaged over the 8 flips/rotations (test-time augmentation).

Folder images are decoded exactly as ingest decodes them (RGBA on white, 16-bit scaled, CMYK converted), so a model
sees at prediction time the pixels it saw in training. The ``ID`` is the file's path inside the folder (the bare file
name for a flat folder such as WBCBench's test set), or a manifest row's file name.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from torch.utils.data import Dataset

from wbc_data.core.errors import UserError
from wbc_data.core.progress import Progress, or_null
from wbc_data.core.rows import is_usable
from wbc_data.core.taxonomy import CLASSES
from wbc_data.imaging.decode import IMAGE_EXTENSIONS, ImageRejected, decode_rgb
from wbc_data.io.atomic import atomic_write


class PredictError(UserError):
    pass


@dataclass
class PredictOptions:
    out: Path | None = None
    tta: bool = False
    split: str | None = None  # for a workspace or its manifest: only rows of this split
    batch_size: int = 64
    workers: int | None = None


@dataclass
class PredictResult:
    probabilities: pd.DataFrame  # ID, the 13 classes, predicted, confidence (+ sample_id, source for manifests)
    submission: Path
    probabilities_path: Path
    notes: list[str] = field(default_factory=list)


class FolderImages(Dataset):
    """Image files decoded like ingest does; a file that is not an image yields its reason instead of a tensor
    (raised by the caller as one line: worker processes would wrap it in a traceback)."""

    def __init__(self, paths: list[Path], transform: Callable[[Any], Any], size: int) -> None:
        self.paths = paths
        self.transform = transform
        self.size = size  # a placeholder of the right shape stands in for a file that failed

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Any, str]:
        import torch

        try:
            image = decode_rgb(self.paths[index].read_bytes()).rgb
        except (ImageRejected, OSError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            return torch.zeros(3, self.size, self.size), f"{self.paths[index]}: {reason}"
        return self.transform(image), ""


def folder_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` by extension, hidden files (``.DS_*``) skipped, in name order."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [
            Path(root) / f
            for f in sorted(files)
            if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_EXTENSIONS
        ]
    return found


def _manifest_rows(source: Path, split: str | None) -> tuple[pd.DataFrame, Any, list[str]]:
    """Usable rows of a manifest file, or of a workspace's unified manifest (which can be narrowed to a split)."""
    from wbc_data.core import manifest
    from wbc_data.core.stages import load_view
    from wbc_data.core.workspace import Workspace
    from wbc_data.io.pixels import PixelLoader

    notes = []
    if source.is_dir():
        workspace = Workspace(source)
        view = load_view(workspace)
        loader = PixelLoader.for_workspace(workspace)
        frame = view.frame
        if split:
            view.require("split", "predict --split")
    else:
        frame = manifest.read_frame(source)
        loader = PixelLoader.for_manifest(source)
        if split:
            if not (source.name == "manifest.parquet" and (source.parent / "stages").is_dir()):
                raise PredictError(f"{source}: --split needs a workspace's manifest (its splits live in stages/)")
            view = load_view(Workspace(source.parent))
            view.require("split", "predict --split")
            frame = view.frame
    frame = frame[is_usable(frame)]
    if split:
        names = sorted(frame["split"].dropna().astype(str).unique())
        if split not in names:
            has = ", ".join(names) or "none"
            raise PredictError(f"{source}: --split {split}: no such split (the manifest has {has})")
        frame = frame[frame["split"] == split]
        notes.append(f"rows of the {split} split only")
    frame = frame.reset_index(drop=True)
    ids = frame["source_path"].astype(str).map(lambda p: p.rsplit("/", 1)[-1])
    if ids.duplicated().any():
        notes.append("file names repeat across rows (crops, several sources): IDs are sample_ids")
        ids = frame["sample_id"].astype(str)
    return frame.assign(ID=ids.to_numpy()), loader, notes


def predict(
    model: Path, source: Path, options: PredictOptions | None = None, progress: Progress | None = None
) -> PredictResult:
    """Probabilities and a submission for ``source`` (a folder of images, a manifest file or a workspace); the
    images are one phase (``predict``) of ``progress``."""
    from torch.utils.data import DataLoader

    from wbc_data.train.classifier import load_classifier
    from wbc_data.train.errors import one_line_worker_errors
    from wbc_data.train.inference import default_workers

    options = options or PredictOptions()
    source = Path(source)
    if not source.exists():
        raise PredictError(f"{source}: no such folder or manifest")
    classifier = load_classifier(model)
    notes: list[str] = []
    is_manifest = source.suffix == ".parquet" or (source / "manifest.parquet").is_file()
    if is_manifest:
        from wbc_data.train.dataset import ManifestDataset

        frame, loader, notes = _manifest_rows(source, options.split)
        dataset: Dataset = ManifestDataset(frame, loader, classifier.transform)
        ids = frame["ID"].tolist()
    else:
        if options.split:
            raise PredictError(f"{source}: --split applies to a workspace or manifest, not a folder of images")
        paths = folder_images(source)
        others = sum(1 for p in source.rglob("*") if p.is_file()) - len(paths)
        if others:
            notes.append(f"{others:,} file(s) in {source} skipped: hidden, or not an image by extension")
        frame = None
        dataset = FolderImages(paths, classifier.transform, classifier.image.size)
        ids = [p.relative_to(source).as_posix() for p in paths]
    if not ids:
        raise PredictError(f"{source}: no images to predict ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    workers = default_workers() if options.workers is None else options.workers
    loader_ = DataLoader(dataset, batch_size=options.batch_size, shuffle=False, num_workers=workers)
    progress = or_null(progress)
    progress.phase("predict", len(ids))
    chunks, done = [], 0
    with one_line_worker_errors():
        for images, extra in loader_:
            if not is_manifest:
                errors = [e for e in extra if e]
                if errors:
                    raise PredictError(errors[0])
            chunks.append(classifier.tensor_proba(images, options.tta).numpy())
            done += len(images)
            progress.advance(done, len(ids))
    probabilities = np.concatenate(chunks)
    table = pd.DataFrame(probabilities, columns=list(CLASSES))
    table.insert(0, "ID", ids)
    if frame is not None:
        table.insert(1, "sample_id", frame["sample_id"].to_numpy())
        table.insert(2, "source", frame["source"].to_numpy())
    table["predicted"] = [CLASSES[k] for k in probabilities.argmax(1)]
    table["confidence"] = probabilities.max(1)
    out = Path(options.out) if options.out else Path(model) / "predictions" / (source.stem or "input")
    probabilities_path = out / "probabilities.csv"
    submission = out / "submission.csv"
    atomic_write(probabilities_path, lambda tmp: table.to_csv(tmp, index=False, float_format="%.6f"))
    sub = table[["ID", "predicted"]].rename(columns={"predicted": "labels"})
    atomic_write(submission, lambda tmp: sub.to_csv(tmp, index=False))
    if options.tta:
        notes.append("probabilities averaged over the 8 flips/rotations")
    return PredictResult(table, submission, probabilities_path, notes)
