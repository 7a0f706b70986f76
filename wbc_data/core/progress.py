"""The one way a stage reports progress: phases, a position within the phase (with figures worth showing, such
as loss or images/s), and notes for the user. The library never draws anything: the CLI passes a rich
implementation, the demo its own, tests and library users pass nothing (:class:`NullProgress`)."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def phase(self, name: str, total: int | None = None) -> None:
        """A new phase of the work begins (``total`` items, or unknown)."""

    def advance(self, done: int, total: int | None = None, **stats: float) -> None:
        """``done`` items of the phase are finished (an absolute count); ``stats`` are figures to show."""

    def note(self, text: str) -> None:
        """A line the user should read (a finished epoch, a skipped file, a time estimate)."""


class NullProgress:
    """Progress that goes nowhere: the library default."""

    def phase(self, name: str, total: int | None = None) -> None:
        pass

    def advance(self, done: int, total: int | None = None, **stats: float) -> None:
        pass

    def note(self, text: str) -> None:
        pass


def or_null(progress: Progress | None) -> Progress:
    return progress if progress is not None else NullProgress()
