"""The mistakes worth looking at: for the most frequent confusions (true class -> predicted class), the images the
model got wrong with the highest confidence, as one PNG sheet in the evaluation report.

A confusion matrix says how often band neutrophils are called segmented; only the cells say whether the model is
wrong or the label is (the fine boundaries, band/segmented and the myelocyte stages, are where morphologists
disagree too), or whether another lab's stain is what misleads it (``--test-source``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from wbc_data.core.errors import UserError
from wbc_data.core.taxonomy import CLASSES
from wbc_data.io.pixels import PixelLoader

CONFUSIONS = 6
"""Rows of the sheet: the most frequent confusions."""
PER_CONFUSION = 6
"""Images per row: the most confident mistakes of that confusion."""
TILE = 160
"""Side of a tile (the whole image, aspect kept, padded white)."""


def worst_mistakes(
    predictions: pd.DataFrame, confusions: int = CONFUSIONS, per_confusion: int = PER_CONFUSION
) -> pd.DataFrame:
    """The rows to show, from ``predictions`` (sample_id, source, label, predicted, confidence: evaluate's
    predictions table). Confusions by how often they happen (ties in taxonomy order), then within each the most
    confident mistakes first; ``count`` is how many images that confusion has in all."""
    columns = ["label", "predicted", "count", "sample_id", "source", "confidence"]
    columns += [c for c in ("source_path",) if c in predictions.columns]  # where to find the file to check its label
    wrong = predictions[predictions["label"] != predictions["predicted"]]
    if wrong.empty:
        return pd.DataFrame(columns=columns)
    order = {c: i for i, c in enumerate(CLASSES)}
    counts = wrong.groupby(["label", "predicted"]).size().rename("count").reset_index()
    counts = counts.assign(_t=counts["label"].map(order), _p=counts["predicted"].map(order))
    counts = counts.sort_values(["count", "_t", "_p"], ascending=[False, True, True]).head(confusions)
    shown = []
    for pair in counts.itertuples():
        group = wrong[(wrong["label"] == pair.label) & (wrong["predicted"] == pair.predicted)]
        group = group.sort_values(["confidence", "sample_id"], ascending=[False, True]).head(per_confusion)
        shown.append(group.assign(count=pair.count))
    return pd.concat(shown, ignore_index=True)[columns]


def tile(image: Image.Image, side: int = TILE) -> np.ndarray:
    """The whole image, aspect kept, on a white ``side`` x ``side`` square (what a person looks at, not the
    model's crop): the project's one letterbox, without its centre crop."""
    from wbc_data.train.augment import Letterbox

    return np.asarray(Letterbox(side, (255, 255, 255), "bicubic")(image))


@dataclass
class Sheet:
    path: Path
    unreadable: list[str] = field(default_factory=list)  # sample_ids whose file could not be opened any more


def mistakes_png(shown: pd.DataFrame, rows: pd.DataFrame, loader: PixelLoader, path: Path, title: str) -> Sheet | None:
    """One row per confusion (``shown``, from :func:`worst_mistakes`), its images captioned with confidence and
    source; ``rows`` are the evaluated manifest rows (to open the pixels). None when there is no mistake. A file
    that cannot be opened any more (moved or damaged since the predictions) is drawn as a tile that says so."""
    from wbc_data.report.figures import plt, save_png

    if shown.empty:
        return None
    by_id = rows.drop_duplicates("sample_id").set_index("sample_id", drop=False)
    groups = list(shown.groupby(["label", "predicted"], sort=False))
    columns = int(shown.groupby(["label", "predicted"]).size().max())
    unreadable: list[str] = []
    # at least as wide as the two-line title, whatever the number of columns
    fig, axes = plt.subplots(
        len(groups), columns, figsize=(max(1.75 * columns + 0.9, 6.4), 1.95 * len(groups) + 0.5), squeeze=False
    )
    try:
        for r, ((label, predicted), group) in enumerate(groups):
            for c in range(columns):
                ax = axes[r, c]
                ax.set_xticks([])
                ax.set_yticks([])
                if c >= len(group):
                    ax.axis("off")
                    continue
                item = group.iloc[c]
                try:
                    ax.imshow(tile(loader.open(by_id.loc[item["sample_id"]].to_dict())))
                except UserError:
                    unreadable.append(str(item["sample_id"]))
                    ax.imshow(np.full((TILE, TILE, 3), 235, np.uint8))
                    ax.text(TILE / 2, TILE / 2, "file not\nreadable", ha="center", va="center", fontsize=8)
                ax.set_title(f"{item['confidence']:.2f} {item['source']}", fontsize=7)
                for spine in ax.spines.values():
                    spine.set_color("#c62828")
            axes[r, 0].set_ylabel(f"{label} -> {predicted}\n({int(group['count'].iloc[0]):,} images)", fontsize=8)
        legend = "rows: true -> predicted; above each cell: the model's confidence, the source"
        fig.suptitle(f"{title}\n{legend}", fontsize=9)
        fig.tight_layout()
    except BaseException:
        plt.close(fig)
        raise
    return Sheet(save_png(fig, path, dpi=100, colours=256), unreadable)
