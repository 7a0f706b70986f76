"""The base of every error a user can cause (bad path, bad label map, bad manifest...).

The CLI prints any :class:`UserError` as one line naming the file and the reason, never a traceback. This module
imports nothing from the package, so every module can raise its own subclass without import cycles.
"""

from __future__ import annotations


class UserError(ValueError):
    """Base of user-facing errors: ``str(exc)`` is the whole message (file and reason)."""


class DedupError(UserError):
    """Bad dedup input: a policy file, an --against path or a threshold that cannot be used."""


class Interrupted(UserError):
    """Ctrl-C (or SIGTERM) stopped a command safely: ``str(exc)`` says what was kept and how to go on.

    Every stage raises a subclass; the CLI prints it as one line and exits with 130, as shells expect."""

    exit_code = 130


class WorkspaceBusy(UserError):
    """Another process is writing the same part of the workspace; the message names it."""
