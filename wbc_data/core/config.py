"""One way to read a recipe, for classifiers and generators alike: a YAML file (or a shipped recipe found by name)
becomes checked dataclasses, ``--set key.path=value`` overrides any value first, and :func:`dump` gives the YAML
copy each run saves beside its outputs (as timm's ``train.py`` saves its args).

Every problem is one line naming the file and the dotted key, raised as the caller's own error type (a recipe
error of the train stage, a synth error of the generator) so that each stage keeps its own ``except`` clauses.
"""

from __future__ import annotations

import contextlib
import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from wbc_data.io.yamlfile import read_yaml

Error = type[Exception]


def find(name_or_path: str | Path, folder: Path, error: Error) -> Path:
    """A recipe file: an existing path, else a recipe shipped in ``folder`` by name (``tiny-cpu``)."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    shipped = folder / (path.name if path.suffix in (".yaml", ".yml") else f"{path.name}.yaml")
    if shipped.is_file() and len(path.parts) <= 2:
        return shipped
    known = ", ".join(sorted(p.stem for p in folder.glob("*.yaml"))) or "none"
    raise error(f"{path}: no such recipe file (shipped recipes: {known})")


def read(path: Path, error: Error, kind: str, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The file's YAML mapping with ``overrides`` applied."""
    raw = read_yaml(path, error, kind)
    if not isinstance(raw, dict):
        raise error(f"{path}: a {kind} must be a YAML mapping")
    for item in overrides:
        override(raw, item, str(path), error)
    return raw


def override(raw: dict[str, Any], item: str, where: str, error: Error) -> None:
    """``members.0.model=resnet18`` sets one value (parsed as YAML) in the raw recipe."""
    key, sep, text = item.partition("=")
    if not sep or not key:
        raise error(f"--set {item!r}: use key.path=value (e.g. image.size=64)")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        raise error(f"--set {item!r}: the value is not valid YAML") from None
    node: Any = raw
    parts = key.split(".")
    for part in parts[:-1]:
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict):
            node = node.setdefault(part, {})
        else:
            raise error(f"{where}: --set {key}: no {part!r} there")
    last = parts[-1]
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise error(f"{where}: --set {key}: no {last!r} there")


def build(cls: type, raw: Any, where: str, error: Error, key: str = "") -> Any:
    """A dataclass from a mapping: unknown keys, missing keys and wrong types are one clear line."""
    if not isinstance(raw, Mapping):
        raise error(f"{where}: {key or 'the recipe'} must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in raw if k not in fields]
    if unknown:
        raise error(f"{where}: unknown key {key}{unknown[0]} (known: {', '.join(fields)})")
    values = {}
    for name, f in fields.items():
        if name in raw:
            values[name] = convert(hints[name], raw[name], where, error, f"{key}{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise error(f"{where}: missing key {key}{name}")
    return cls(**values)


KINDS = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}


def convert(hint: Any, value: Any, where: str, error: Error, key: str) -> Any:
    """``value`` as ``hint`` (dataclasses, unions, tuples, dicts, int, float, bool, str, Any)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return build(hint, value, where, error, f"{key}.")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return convert(arg, value, where, error, key)
            except error as exc:  # type: ignore[misc]
                errors.append(str(exc))
        raise error(errors[0] if errors else f"{where}: {key}: {value!r} not allowed")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise error(f"{where}: {key} must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:  # each item named by its index, as --set names it
            return tuple(convert(args[0], v, where, error, f"{key}.{i}") for i, v in enumerate(value))
        if len(value) != len(args):
            raise error(f"{where}: {key} must have {len(args)} values, got {len(value)}")
        pairs = enumerate(zip(args, value, strict=True))
        return tuple(convert(a, v, where, error, f"{key}.{i}") for i, (a, v) in pairs)
    if origin is dict:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise error(f"{where}: {key} must be a mapping, got {value!r}")
        return {str(k): convert(args[1], v, where, error, f"{key}.{k}") for k, v in value.items()}
    if hint is Any:
        return value
    if hint is float and isinstance(value, str):  # PyYAML reads 1e-4 (no dot) as text
        with contextlib.suppress(ValueError):
            value = float(value)
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if (hint is bool and isinstance(value, bool)) or (hint is str and isinstance(value, str)):
        return value
    if hint in KINDS:
        raise error(f"{where}: {key} must be {KINDS[hint]}, got {value!r}")
    return value


def plain(value: Any) -> Any:
    """Dataclasses, tuples and paths as plain YAML/JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def dump(recipe: Any) -> str:
    """The YAML a run saves beside its outputs: reading it back gives the same recipe."""
    return yaml.safe_dump(plain(recipe), sort_keys=False, allow_unicode=True)
