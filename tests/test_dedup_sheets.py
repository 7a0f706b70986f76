"""The dedup report's contact sheets are as wide as the clusters they show: two copies fill a two-column sheet,
not the first quarter of an eight-column one (the demo's sheets were three quarters white); a cluster larger than
a row still gets the full eight columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image

from wbc_data.dedup.report import SHEET_COLS, contact_sheet


def _clusters(sizes: list[int]) -> tuple[pd.DataFrame, np.ndarray]:
    rows = []
    for cid, size in enumerate(sizes):
        for k in range(size):
            rows.append({"sample_id": f"c{cid}:{k}", "source": "pbc", "label": "MO", "label_status": "exact",
                         "dup_cluster": cid, "dup_keep": k == 0,
                         "dup_decision": f"keep: cluster {cid}" if k == 0 else "drop: copy", "linked_by": "near",
                         "dup_distance": k, "dup_transform": "rotate 30"})  # fmt: skip
    frame = pd.DataFrame(rows).astype({"dup_cluster": "Int64", "dup_keep": "boolean"})
    rng = np.random.default_rng(0)
    return frame, rng.integers(0, 255, (len(frame), 32, 32), dtype=np.uint8)


def test_a_sheet_is_as_wide_as_its_largest_cluster(tmp_path):
    frame, thumbs = _clusters([2, 2, 2])
    pairs = contact_sheet(frame, [0, 1, 2], tmp_path / "pairs.png", "pairs", thumbs=thumbs)
    frame, thumbs = _clusters([SHEET_COLS + 2, 2])
    wide = contact_sheet(frame, [0, 1], tmp_path / "wide.png", "wide", thumbs=thumbs)
    assert pairs is not None and wide is not None
    pairs_width, wide_width = Image.open(pairs).width, Image.open(wide).width
    assert pairs_width < 0.4 * wide_width, (pairs_width, wide_width)
    assert pairs_width > 1.5 * 1.9 * 100  # still two columns of tiles
