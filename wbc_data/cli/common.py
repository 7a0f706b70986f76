"""The Typer app and what every command shares: one-line errors, progress bars, rich tables.

The CLI only parses arguments and calls the library. Every user-facing error is a :class:`UserError` from the
library and is printed as one line naming the file and the reason (exit code 2); Ctrl-C exits with 130.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from wbc_data.cli import INTERRUPTED_EXIT
from wbc_data.core.errors import Interrupted, UserError

USER_ERRORS: tuple[type[BaseException], ...] = (
    UserError,
    FileNotFoundError,
    NotADirectoryError,
    PermissionError,
)

app = typer.Typer(
    name="wbc-data",
    help="Harmonise public white-blood-cell datasets into one 13-class manifest (WBCBench 2026 classes).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(width=None if sys.stdout.isatty() else 160)  # logs and pipes get the wide tables whole
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

WorkspaceOpt = Annotated[
    Path | None,
    typer.Option("--workspace", "-w", help="Where outputs go (default ./wbc-workspace or $WBC_WORKSPACE)."),
]


def friendly_errors(func: F) -> F:
    """Turn library errors into one red line and a non-zero exit instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Interrupted as exc:  # a stage stopped safely and says what it kept
            err_console.print(f"[yellow]interrupted:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(INTERRUPTED_EXIT) from None
        except USER_ERRORS as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]: nothing was overwritten; re-run to resume")
            raise typer.Exit(INTERRUPTED_EXIT) from None

    return wrapper  # type: ignore[return-value]


def progress_bar(description: str = "", *extra: TextColumn) -> Progress:
    """The CLI's progress bar (on stderr, only on a terminal); ``extra`` columns go before the time left."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *extra,
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    )


def frame_table(frame: pd.DataFrame, title: str | None = None, index: bool = False) -> Table:
    table = Table(title=title, title_justify="left", show_lines=False)
    columns = ([frame.index.name or ""] if index else []) + [str(c) for c in frame.columns]
    for i, column in enumerate(columns):
        numeric = (not index or i > 0) and pd.api.types.is_numeric_dtype(frame[frame.columns[i - index]])
        table.add_column(column, justify="right" if numeric else "left")
    for key, row in frame.iterrows():
        cells = [str(key)] if index else []
        cells += [f"{v:,}" if isinstance(v, int) else str(v) for v in row.tolist()]
        table.add_row(*cells)
    return table
