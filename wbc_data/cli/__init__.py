"""The ``wbc-data`` command line. Each command group lives in its own module and registers itself on ``app``."""

from __future__ import annotations

import sys

from wbc_data.cli import data, dedup, demo, gap, split, synth  # noqa: F401  (importing registers the commands)
from wbc_data.cli.app import app

__all__ = ["app", "main"]


def main() -> None:  # pragma: no cover - console entry for `python -m wbc_data`
    sys.exit(app())
