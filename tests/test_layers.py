"""The package's layers point one way: the CLI calls stages, stages call core/io, and nothing below imports
anything above it (lazy imports inside functions included). The layout is the architecture: a new module that
breaks this fails here, not in a review."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "wbc_data"

LAYERS = {
    "core": 0, "io": 0, "imaging": 0, "sources": 0, "report": 0,  # what every stage shares
    "ingest": 1, "manifest": 1, "dedup": 1, "split": 1, "gap": 1, "synth": 1, "train": 1, "publish": 1, "demo": 1,
    "experiment": 1,
    "cli": 2,
}  # fmt: skip
"""Top-level package -> layer (0 base, 1 stages, 2 CLI)."""


def package_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "wbc_data" else None


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every wbc_data import in the file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names if node.module == "wbc_data"]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
    return [(line, module) for line, module in found if module.startswith("wbc_data")]


def test_every_top_level_package_has_a_layer():
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages == set(LAYERS), "give each package a layer in LAYERS"
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert not loose, f"modules belong in a package: {loose}"


def test_no_module_imports_from_a_layer_above_its_own():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        own = package_of(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
        if own is None or own not in LAYERS:
            continue
        for line, module in imports(path):
            target = package_of(module)
            if target in LAYERS and LAYERS[target] > LAYERS[own]:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({own}) imports {module}")
    assert not wrong, "\n".join(wrong)


def test_the_check_sees_an_upward_import(tmp_path):
    """The test above can fail: an upward import in a module is found."""
    module = tmp_path / "probe.py"
    module.write_text("def f():\n    from wbc_data.cli.common import app\n")
    assert imports(module) == [(2, "wbc_data.cli.common")]
