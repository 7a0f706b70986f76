"""Reading the YAML files users hand the tool (label maps, source definitions, targets, plans, policies): one
place that turns every failure into a single line naming the file and the reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def read_yaml(path: Path, error: type[Exception], what: str) -> Any:
    """Parse ``path``; an unreadable file or invalid YAML raises ``error`` with a one-line message about ``what``."""
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise error(f"{path}: cannot read {what} ({reason})") from None
    except yaml.YAMLError as exc:
        raise error(f"{path}: cannot read {what}: not valid YAML ({yaml_problem(exc)})") from None


def yaml_problem(exc: yaml.YAMLError) -> str:
    """Where and what, e.g. ``line 3, column 7: mapping values are not allowed here`` (PyYAML's own text names
    the file ``<unicode string>``, since it parsed a string)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if mark is None or not problem:
        return " ".join(str(exc).split())
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
