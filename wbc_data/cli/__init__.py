"""The ``wbc-data`` command line. Each command group lives in its own module and registers itself on ``app``;
they are imported in the order of the data road, which is the order ``wbc-data --help`` lists them in."""

from __future__ import annotations

import importlib
import sys

from wbc_data.cli.app import app

COMMAND_MODULES = ("data", "dedup", "split", "gap", "synth", "train", "publish", "demo")
for _module in COMMAND_MODULES:
    importlib.import_module(f"wbc_data.cli.{_module}")

__all__ = ["app", "main"]


def main() -> None:  # pragma: no cover - console entry for `python -m wbc_data`
    sys.exit(app())
