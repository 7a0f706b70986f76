"""Where the shipped YAML (source definitions, recipes) and the demo sample live, in a checkout or a wheel."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent.parent  # wbc_data/


def _first_existing(*candidates: Path) -> Path:
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return candidates[0]


def manifests_dir() -> Path:
    """``manifests/``: the top-level folder in a checkout, bundled into the package in a wheel."""
    return _first_existing(_PACKAGE_DIR / "_bundled" / "manifests", _PACKAGE_DIR.parent / "manifests")


def generators_dir() -> Path:
    """``generators/``: the generator recipes (YAML), top-level in a checkout, bundled into the package in a wheel."""
    return _first_existing(_PACKAGE_DIR / "_bundled" / "generators", _PACKAGE_DIR.parent / "generators")


def sample_dir() -> Path:
    """The small attributed real sample the demo runs on (shipped inside the package)."""
    return _PACKAGE_DIR / "sample"


def trainers_dir() -> Path:
    """``trainers/``: the trainer recipes (top-level in a checkout, bundled into the package in a wheel)."""
    return _first_existing(_PACKAGE_DIR / "_bundled" / "trainers", _PACKAGE_DIR.parent / "trainers")


def pretrained_dir() -> Path:
    """``pretrained/``: generators shipped with the tool (each with its attribution), top-level in a checkout,
    bundled into the package in a wheel."""
    return _first_existing(_PACKAGE_DIR / "_bundled" / "pretrained", _PACKAGE_DIR.parent / "pretrained")
