"""Shared fixtures. Tests that need the real data in ../shared skip with a reason where it is absent
(a user's clone); the core tests run on the sample shipped in the package and on generated fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # two test processes share the machine's cores (pyproject.toml): one compute thread each for torch, OpenMP and
    # BLAS (read when they load, after this), so the two do not oversubscribe the cores
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(variable, "1")

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("WBC_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_path(*parts: str) -> Path:
    """Path inside ../shared/data, or skip the test with a clear reason."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} (set WBC_SHARED_DATA to its folder)")
    return path


@pytest.fixture
def workspace(tmp_path: Path):
    from wbc_data.core.workspace import Workspace

    return Workspace(tmp_path / "ws")


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory):
    """`wbc-data demo --quick` run once for the session (about 1.5 minutes on 2 cores): (workspace, printed output).
    Tests that change the workspace work on a copy."""
    from typer.testing import CliRunner

    from wbc_data.cli import app

    ws = tmp_path_factory.mktemp("demo") / "ws"
    result = CliRunner().invoke(app, ["demo", "--quick", "-w", str(ws), "-j", "1"])
    assert result.exit_code == 0, result.output
    return ws, result.output


REAL_DEDUP_PBC_FOLDERS = ("basophil", "erythroblast", "monocyte", "lymphocyte")
"""The PBC folders the session's real dedup takes: the three the Kaggle re-upload copies, and lymphocytes, 2,631
files. The whole half (8,487) tripled the suite's costliest step without testing anything more; dedup at full scale
is measured in benchmarks/dedup.py --case pbc."""


@pytest.fixture(scope="session")
def real_deduped(tmp_path_factory: pytest.TempPathFactory):
    """Four folders of the shared PBC half (:data:`REAL_DEDUP_PBC_FOLDERS`, copied in PBC's own layout), the whole
    Kaggle re-upload and BCCD, ingested, merged and deduplicated once for the session (dedup on ~4,400 real rows is
    the suite's costliest step). Tests may add later stages (split), never re-merge."""
    import shutil

    from wbc_data.core.workspace import Workspace
    from wbc_data.dedup.run import DedupOptions, dedup
    from wbc_data.ingest.engine import IngestOptions, ingest
    from wbc_data.manifest.merge import merge

    pbc_half, kaggle, bccd = shared_path("pbc"), shared_path("kaggle_cancer_mix"), shared_path("bccd")
    root = tmp_path_factory.mktemp("real")
    pbc = root / "pbc"
    for folder in REAL_DEDUP_PBC_FOLDERS:
        shutil.copytree(pbc_half / "PBC_dataset_normal_DIB" / folder, pbc / "PBC_dataset_normal_DIB" / folder)
    ws = Workspace(root / "ws")
    for source, path in (("pbc", pbc), ("kaggle-cancer-mix", kaggle), ("bccd", bccd)):
        ingest(source, path, ws, IngestOptions(workers=2))
    merge(ws)
    # field windows off: what these tests check is copies of cells and leak units; copies inside real BCCD fields
    # are tested in test_dedup_augmented.py and test_dedup_regions.py at a size the suite can afford
    return ws, dedup(ws, DedupOptions(workers=2, fields=False))
