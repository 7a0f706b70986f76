"""Errors a user can cause in the gap report (bad target, bad plan file): one line naming the input."""

from __future__ import annotations

from wbc_data.core.errors import UserError


class GapError(UserError):
    """A bad --target / --own / threshold value, or a label table that cannot be read."""


class PlanError(GapError):
    """A synth plan file that is missing, malformed or asks for more than its own cap allows."""
