"""The ``wbc-data`` command line. Each command group lives in its own module and registers itself on the Typer app
of :mod:`wbc_data.cli.common`; they are imported in the order of the data road, which is the order
``wbc-data --help`` lists them in.

The console script is :func:`main`, and the app is built on first use (``from wbc_data.cli import app``), so that
Ctrl-C at any moment, start-up included (the commands import pandas, rich and typer), is one line and exit code
130 rather than a traceback."""

from __future__ import annotations

import importlib
import sys
from typing import Any

COMMAND_MODULES = ("data", "dedup", "split", "gap", "synth", "train", "experiment", "publish", "demo")
INTERRUPTED_EXIT = 130

__all__ = ["app", "main"]


def load_app() -> Any:
    """The Typer app with every command group registered."""
    from wbc_data.cli.common import app

    for module in COMMAND_MODULES:
        importlib.import_module(f"wbc_data.cli.{module}")
    return app


def main() -> None:
    """The ``wbc-data`` console script."""
    try:
        load_app()()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted: nothing was overwritten; re-run to resume\n")
        sys.exit(INTERRUPTED_EXIT)


def __getattr__(name: str) -> Any:
    if name == "app":
        return load_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
