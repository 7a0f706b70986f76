"""Status per class: how far the real images available go towards the target.

coverage = available real images / target. ``coverage >= solved_at`` -> solved; ``>= partial_at`` -> partial;
below that -> critical gap. Defaults (1.0 and 0.5) read as "the target is met" and "at least half of it is";
both are options so a team can be stricter. Synthetic images never count: the status says what real data gives.
"""

from __future__ import annotations

from dataclasses import dataclass

from wbc_data.gap.errors import GapError

SOLVED = "solved"
PARTIAL = "partial"
CRITICAL = "critical gap"
NO_TARGET = "no target"
STATUSES = (SOLVED, PARTIAL, CRITICAL, NO_TARGET)


@dataclass(frozen=True)
class Thresholds:
    solved_at: float = 1.0
    partial_at: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.partial_at <= self.solved_at:
            raise GapError(
                f"thresholds: need 0 < --partial-at ({self.partial_at:g}) <= --solved-at ({self.solved_at:g})"
            )


def coverage(available: int, target: int | None) -> float | None:
    """available/target; None when there is no target (or a target of 0, which is met by anything)."""
    if not target:
        return None
    return available / target


def classify(available: int, target: int | None, thresholds: Thresholds) -> str:
    if target is None:
        return NO_TARGET
    if target == 0:
        return SOLVED
    ratio = available / target
    if ratio >= thresholds.solved_at:
        return SOLVED
    if ratio >= thresholds.partial_at:
        return PARTIAL
    return CRITICAL
