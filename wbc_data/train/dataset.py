"""A PyTorch ``Dataset`` over manifest rows: pixels through the one loader, label index in the fixed 13-class order.

Images are opened on demand in ``__getitem__`` (nothing is preloaded), so it works on any number of rows with any
number of ``DataLoader`` workers; the dataset holds only light row references and pickles cheaply.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
from torch.utils.data import Dataset

from wbc_data.core.rows import label_indices
from wbc_data.io.pixels import PixelLoader, RowRef, row_refs


class ManifestDataset(Dataset):
    """``dataset[i]`` is ``(image, label)``, or ``(image, label, meta)`` with ``return_meta``: ``image`` the row's
    RGB pixels (a PIL image, or whatever ``transform`` makes of it), ``label`` its class index (-1: none) and
    ``meta`` ``{"sample_id", "source", "index"}`` (no None values, so the default collate works)."""

    def __init__(
        self,
        frame: pd.DataFrame,
        loader: PixelLoader,
        transform: Callable[[Any], Any] | None = None,
        return_meta: bool = False,
        verify: bool = False,
    ) -> None:
        self.refs: list[RowRef] = row_refs(frame)
        self.labels = label_indices(frame["label"]).tolist()
        self.sources = frame["source"].astype(str).tolist()
        self.loader = loader
        self.transform = transform
        self.return_meta = return_meta
        self.verify = verify

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        image: Any = self.loader.open(self.refs[index], self.verify)
        if self.transform is not None:
            image = self.transform(image)
        if self.return_meta:
            meta = {"sample_id": self.refs[index].sample_id, "source": self.sources[index], "index": index}
            return image, self.labels[index], meta
        return image, self.labels[index]

    @classmethod
    def from_workspace(
        cls,
        workspace: Any,
        splits: list[str] | None = None,
        transform: Callable[[Any], Any] | None = None,
        return_meta: bool = False,
        **select: Any,
    ) -> ManifestDataset:
        """Rows of ``splits`` of a workspace (exact labels, kept by dedup, by default; see ``select_rows``)."""
        from wbc_data.core.rows import select_rows
        from wbc_data.core.stages import load_view

        view = load_view(workspace)
        if splits is not None:
            view.require("split", "a dataset of splits")
        frame = select_rows(view.frame, splits, **select)
        return cls(frame, PixelLoader.for_workspace(workspace), transform, return_meta)
