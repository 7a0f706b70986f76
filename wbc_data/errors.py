"""The base of every error a user can cause (bad path, bad label map, bad manifest...).

The CLI prints any :class:`UserError` as one line naming the file and the reason, never a traceback. This module
imports nothing from the package, so every module can raise its own subclass without import cycles.
"""

from __future__ import annotations


class UserError(ValueError):
    """Base of user-facing errors: ``str(exc)`` is the whole message (file and reason)."""


class DedupError(UserError):
    """Bad dedup input: a policy file, an --against path or a threshold that cannot be used."""
