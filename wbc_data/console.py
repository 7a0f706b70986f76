"""The ``wbc-data`` console script: imports the CLI lazily so that Ctrl-C at any moment, start-up included (the
CLI imports pandas, rich and typer), is one line and exit code 130 rather than a traceback."""

from __future__ import annotations

import sys

INTERRUPTED_EXIT = 130


def main() -> None:
    try:
        from wbc_data.cli import app

        app()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted: nothing was overwritten; re-run to resume\n")
        sys.exit(INTERRUPTED_EXIT)
