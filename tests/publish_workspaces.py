"""Workspaces for the publish tests, built from the real sample shipped in the package and generated fixtures (no
../shared needed): every row kind (JPEG files, crops of fields, Hub parquet rows, odd image modes and a non-UTF-8
name), duplicates for dedup to drop, and synthetic rows."""

from __future__ import annotations

from pathlib import Path

from tests.fixtures import hub_folder, mini_bccd, noise, odd_images
from wbc_data.core import manifest
from wbc_data.core.labelmap import LabelMap
from wbc_data.core.workspace import Workspace
from wbc_data.dedup.run import DedupOptions, dedup
from wbc_data.gap import GapOptions, run_gap_report
from wbc_data.ingest.engine import IngestOptions, ingest
from wbc_data.io.resources import sample_dir
from wbc_data.manifest.merge import merge
from wbc_data.split import SplitOptions, run_split


def label_map(mapping: dict[str, str]) -> LabelMap:
    return LabelMap.from_dict(mapping, origin="test label map")


def permissive_workspace(tmp: Path) -> Workspace:
    """PBC sample (CC BY 4.0) and its Kaggle copies, generated BCCD fields (MIT, crops), a Hub dataset given
    ``--licence "CC BY 4.0"`` and odd image modes given ``--licence "CC0 1.0"``: all publishable."""
    ws = Workspace(tmp / "ws")
    one = IngestOptions(workers=1)
    ingest("pbc", sample_dir() / "pbc", ws, one)
    ingest("kaggle-cancer-mix", sample_dir() / "kaggle_cancer_mix", ws, one)
    ingest("bccd", mini_bccd(tmp / "bccd", fields=8), ws, one)
    hub_options = IngestOptions(workers=1, label_map=label_map({"lymphocyte": "LY", "blast": "BL"}),
                                licence="CC BY 4.0", citation="A test Hub dataset (generated).",
                                adapter_options={"label_column": "label"})  # fmt: skip
    ingest("hub", hub_folder(tmp / "hub", n_train=6, n_test=2), ws, hub_options)
    odd_options = IngestOptions(workers=1, name="odd", label_map=label_map({"lymphocyte": "LY", "monocyte": "MO"}),
                                licence="CC0 1.0", citation="Generated test images in odd modes.")  # fmt: skip
    ingest("imagefolder", odd_images(tmp / "odd"), ws, odd_options)
    finish(ws)
    return ws


def finish(ws: Workspace, gap: bool = True) -> None:
    """Merge, dedup, split (and the gap report whose chart the card embeds)."""
    merge(ws)
    dedup(ws, DedupOptions(workers=1, reports=False))
    run_split(ws, SplitOptions(val=0.25, test=0.25, seed=0))
    if gap:
        run_gap_report(ws, GapOptions(target="wbcbench"))


def generated_folder(root: Path, folder: str, count: int, seed: int) -> Path:
    (root / folder).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        noise((28, 28), seed + i).save(root / folder / f"img{i:03d}.png")
    return root


def add_source(ws: Workspace, tmp: Path, name: str, licence: str, seed: int, count: int = 6) -> None:
    """A generated image folder of lymphocytes, ingested as ``name`` with the given licence line."""
    root = generated_folder(tmp / name, "lymphocyte", count, seed)
    options = IngestOptions(workers=1, name=name, label_map=label_map({"lymphocyte": "LY"}), licence=licence,
                            citation=f"{name}: generated test images.")  # fmt: skip
    ingest("imagefolder", root, ws, options)


def add_synthetic(ws: Workspace, tmp: Path, name: str, licence: str | None, seed: int, count: int = 4) -> None:
    """Rows the way ``wbc-data synth`` adds them: a source whose rows are synthetic PLY cells with a generator id,
    seed and guidance (``licence`` None: the synth stage wrote none). Merge afterwards; stages need no re-run."""
    root = generated_folder(tmp / name, "PLY", count, seed)
    options = IngestOptions(workers=1, name=name, label_map=label_map({"PLY": "PLY"}), licence=licence or "")
    ingest("imagefolder", root, ws, options)
    path = ws.source_manifest(name)
    meta = manifest.read_metadata(path)
    frame = manifest.to_frame(manifest.read(path))
    frame["is_synthetic"] = True
    frame["generator_id"] = f"{name}-gen"
    frame["seed"] = range(len(frame))
    frame["guidance"] = 3.0
    if licence is None:
        frame["licence"] = None
    manifest.write(frame, path, **meta)
