"""A source's own (official) splits, for ``--keep-source-splits``: WBCBench's eval/test, Raabin's TestA/TestB...

Each source definition may map its ``source_split`` values to train/val/test (``splits:`` in its YAML); values it
does not list are read by name (``train*`` -> train, ``val*``/``valid*``/``dev*``/``eval*`` -> val, ``test*`` ->
test), anything else is left free for the splitter.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

PREFIXES = (("train", "train"), ("valid", "val"), ("val", "val"), ("dev", "val"), ("eval", "val"), ("test", "test"))


def by_name(value: str) -> str | None:
    """train/val/test from a split name's last word (``phase2_train`` -> train, ``TestA`` -> test)."""
    words = [w for w in "".join(c if c.isalnum() else " " for c in value.lower()).split() if w]
    for word in reversed(words):
        for prefix, split in PREFIXES:
            if word.startswith(prefix):
                return split
    return None


def official_splits(frame: pd.DataFrame, maps: Mapping[str, Mapping[str, str]]) -> np.ndarray:
    """Per row: the split its source's own split maps to, or None. ``maps`` is ``{source: {raw: split}}``."""
    out = np.full(len(frame), None, dtype=object)
    sources = frame["source"].astype(object).to_numpy()
    raw = frame["source_split"].astype(object).to_numpy()
    cache: dict[tuple[str, str], str | None] = {}
    for i, (source, value) in enumerate(zip(sources, raw, strict=True)):
        if value is None or (isinstance(value, float) and value != value):
            continue
        key = (source, value)
        if key not in cache:
            mapped = maps.get(source, {}).get(value)
            cache[key] = mapped if mapped is not None else by_name(str(value))
        out[i] = cache[key]
    return out
