"""Small real workspaces for the train-stage tests: a few dozen PBC cells per class copied from ../shared/data
(ingested, deduplicated and split like a user's), and a synthetic source standing in for `wbc-data synth` rows."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import shared_path
from tests.fixtures import noise
from wbc_data.core import manifest
from wbc_data.core.labelmap import LabelMap
from wbc_data.core.workspace import Workspace
from wbc_data.dedup.run import DedupOptions, dedup
from wbc_data.ingest.engine import IngestOptions, ingest
from wbc_data.manifest.merge import merge
from wbc_data.split import SplitOptions, run_split


@pytest.fixture(autouse=True)
def one_thread():
    """Two cores shared by several people: one intra-op thread runs these tiny models several times faster than two
    threads spinning against each other (import this fixture into a test module to use it)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


FOLDERS = ("eosinophil", "basophil", "lymphocyte", "monocyte")  # one exact class each: EO, BA, LY, MO


def pbc_subset(dest: Path, per_class: int, folders: tuple[str, ...] = FOLDERS, skip: int = 0) -> Path:
    """``dest/PBC_dataset_normal_DIB/<folder>/`` with ``per_class`` real PBC files of each folder (after ``skip``)."""
    source = shared_path("pbc", "PBC_dataset_normal_DIB")
    for folder in folders:
        (dest / "PBC_dataset_normal_DIB" / folder).mkdir(parents=True, exist_ok=True)
        for path in sorted((source / folder).glob("*.jpg"))[skip : skip + per_class]:
            shutil.copy(path, dest / "PBC_dataset_normal_DIB" / folder / path.name)
    return dest


def synthetic_folder(root: Path, n: int, folder: str = "lymphocyte") -> Path:
    """Generated images in an imagefolder tree, to be marked synthetic after ingest."""
    (root / folder).mkdir(parents=True)
    for i in range(n):
        noise((48, 48), 900 + i).save(root / folder / f"synth_{i:03d}.png")
    return root


def mark_synthetic(path: Path, generator: str = "test-generator") -> None:
    """Turn a per-source manifest's rows into synthetic rows (as `wbc-data synth` writes them)."""
    table = manifest.read(path)
    n = table.num_rows
    values = {"is_synthetic": [True] * n, "generator_id": [generator] * n, "seed": list(range(n)),
              "guidance": [3.0] * n}  # fmt: skip
    for name, column in values.items():
        array = manifest.column_array(name, column)
        if name in table.column_names:
            table = table.set_column(table.column_names.index(name), name, array)
        else:
            table = table.append_column(name, array)
    manifest.write(table, path)


def real_workspace(
    tmp: Path, per_class: int = 40, synthetic: int = 0, val: float = 0.2, test: float = 0.2
) -> Workspace:
    """Ingested, merged, deduplicated and split: PBC cells of four classes (+ ``synthetic`` synthetic LY rows)."""
    ws = Workspace(tmp / "ws")
    ingest("pbc", pbc_subset(tmp / "pbc", per_class), ws, IngestOptions(workers=1))
    if synthetic:
        label_map = LabelMap.from_dict({"lymphocyte": "LY"})
        result = ingest("imagefolder", synthetic_folder(tmp / "synth", synthetic), ws,
                        IngestOptions(workers=1, label_map=label_map, name="synth-test"))  # fmt: skip
        mark_synthetic(result.manifest_path)
    merge(ws)
    if synthetic:
        # dedup at f9d9e56 fails on a manifest with an is_synthetic column ("output array is read-only" in
        # dedup/run.py, owned by the dedup work); the split stage's own --without-dedup road is used instead
        run_split(ws, SplitOptions(val=val, test=test, seed=0, without_dedup=True))
        return ws
    dedup(ws, DedupOptions(workers=1, reports=False))
    run_split(ws, SplitOptions(val=val, test=test, seed=0))
    return ws
