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
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

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
# emoji off: a user's ":abc:" (``--target uniform:abc:``) must print as typed, not as a picture
console = Console(width=None if sys.stdout.isatty() else 160, emoji=False)  # logs and pipes get wide tables whole
err_console = Console(stderr=True, emoji=False)


def labelled(label: str, style: str, text: str) -> Text:
    """``label: text`` with only the label styled: the text (paths, labels, a user's input) is printed as it is,
    never read as markup. A text that already starts with the label's word ("interrupted after ...", "warning:
    ...") gets that word styled instead of a second one."""
    word = label.rstrip(":")
    for prefix in (f"{word}: ", f"{word} "):
        if text.lower().startswith(prefix):
            return Text.assemble((text[: len(prefix) - 1], style), text[len(prefix) - 1 :])
    return Text.assemble((label, style), " ", text)


def print_note(note: str) -> None:
    """A stage's note; one that starts with "warning:" is shown as a warning."""
    if note.lower().startswith("warning:"):
        console.print(labelled("warning:", "bold yellow", note), highlight=False, soft_wrap=True)
    else:
        console.print(labelled("note:", "yellow", note), highlight=False, soft_wrap=True)


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
            err_console.print(labelled("interrupted:", "yellow", str(exc)), highlight=False, soft_wrap=True)
            raise typer.Exit(INTERRUPTED_EXIT) from None
        except USER_ERRORS as exc:
            err_console.print(labelled("error:", "bold red", str(exc)), highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]: nothing was overwritten; re-run to resume")
            raise typer.Exit(INTERRUPTED_EXIT) from None

    return wrapper  # type: ignore[return-value]


def given(**values: Any) -> dict[str, Any]:
    """The options the user set (those not None), as keyword arguments for a stage's ``Options``: the defaults
    live in the library's dataclass only."""
    return {key: value for key, value in values.items() if value is not None}


class RateColumn(ProgressColumn):
    """Items per second of the current phase (rows/s, pairs/s, images/s)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f}/s" if speed else "", style="progress.data.speed")


class RichProgress:
    """The CLI's implementation of :class:`wbc_data.core.progress.Progress`: one bar on stderr (drawn only on a
    terminal) with the phase, count, rate, figures such as loss, and time left; notes as dim lines on stdout."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            RateColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeRemainingColumn(),
            console=err_console,
            transient=True,
            disable=not err_console.is_terminal,
        )
        self.task: TaskID | None = None

    def __enter__(self) -> RichProgress:
        self.bar.__enter__()
        self.task = self.bar.add_task(self.title, total=None, stats="")
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)  # type: ignore[arg-type]

    def phase(self, name: str, total: int | None = None) -> None:
        if self.task is not None:
            self.bar.reset(self.task, total=total, description=f"{self.title}: {name}", stats="")

    def advance(self, done: int, total: int | None = None, **stats: float) -> None:
        if self.task is None:
            return
        shown = "  ".join(f"{key.replace('_', ' ')} {_figure(value)}" for key, value in stats.items())
        if total is None:
            self.bar.update(self.task, completed=done, stats=shown)
        else:
            self.bar.update(self.task, completed=done, total=total, stats=shown)

    def note(self, text: str) -> None:
        console.print(Text(text, style="dim"), highlight=False, soft_wrap=True)


def _figure(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


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
