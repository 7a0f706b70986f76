"""Shared fixtures. Tests that need the real data in ../shared skip with a reason where it is absent
(a user's clone); the core tests run on the sample shipped in the package and on generated fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
    from wbc_data.workspace import Workspace

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
