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
