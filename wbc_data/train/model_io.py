"""The classifier folder ``wbc-data train`` writes, and :func:`load_classifier`, which turns it back into an object
satisfying :class:`wbc_data.train.classifier.Classifier` (``classes``, ``predict_proba``, ``embed``).

A member folder holds ``classifier.json`` (``kind: member``: timm architecture, the 13 classes, the image spec) and
``model.safetensors``. An ensemble folder holds ``classifier.json`` (``kind: ensemble``: member sub-folders and
their soft-voting weights) plus the members under ``members/<name>/``. Both load with the same call.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from wbc_data.core.taxonomy import CLASSES
from wbc_data.io.atomic import atomic_write, atomic_write_text
from wbc_data.train.errors import ModelFolderError
from wbc_data.train.recipe import ImageSpec

FORMAT = "wbc-data-classifier"
VERSION = 1
CONFIG = "classifier.json"
WEIGHTS = "model.safetensors"
BATCH = 64


def image_spec_dict(image: ImageSpec) -> dict[str, Any]:
    return {
        "size": image.size,
        "mean": list(image.mean or ()),
        "std": list(image.std or ()),
        "interpolation": image.interpolation or "bilinear",
        "pad_fill": list(image.fill()),
        "centre": image.centre,
    }


def _image_spec(raw: Any, where: Path) -> ImageSpec:
    try:
        return ImageSpec(
            size=int(raw["size"]),
            mean=tuple(raw["mean"]),
            std=tuple(raw["std"]),
            interpolation=str(raw.get("interpolation", "bilinear")),  # models saved before it: bilinear
            pad_fill=tuple(int(v) for v in raw["pad_fill"]),
            centre=float(raw.get("centre", 1.0)),  # models saved before it: the whole image
        )
    except (KeyError, TypeError, ValueError):
        raise ModelFolderError(f"{where}: bad image spec in {CONFIG}") from None


# --------------------------------------------------------------------------- saving


def save_member(
    folder: Path,
    model: Any,
    *,
    name: str,
    architecture: str,
    image: ImageSpec,
    trained_classes: Sequence[str],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a member folder (weights first, config last: a folder with a config is complete)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(folder / WEIGHTS, lambda tmp: save_file(state, tmp, metadata={"format": "pt"}))
    config = {
        "format": FORMAT,
        "version": VERSION,
        "kind": "member",
        "name": name,
        "architecture": architecture,
        "classes": list(CLASSES),
        "trained_classes": [c for c in CLASSES if c in set(trained_classes)],
        "image": image_spec_dict(image),
        "weights": WEIGHTS,
        **(extra or {}),
    }
    atomic_write_text(folder / CONFIG, json.dumps(config, indent=2) + "\n")
    return folder


def save_ensemble(
    folder: Path,
    members: Sequence[str],
    weights: Sequence[float],
    image: ImageSpec,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write the ensemble's ``classifier.json`` over member folders relative to ``folder``."""
    config = {
        "format": FORMAT,
        "version": VERSION,
        "kind": "ensemble",
        "classes": list(CLASSES),
        "image": image_spec_dict(image),
        "members": [{"path": m, "weight": float(w)} for m, w in zip(members, weights, strict=True)],
        **(extra or {}),
    }
    atomic_write_text(folder / CONFIG, json.dumps(config, indent=2) + "\n")
    return folder


# --------------------------------------------------------------------------- loading


def read_config(folder: Path) -> dict[str, Any]:
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelFolderError(f"{folder}: no such model folder")
    path = folder / CONFIG
    if not path.is_file():
        raise ModelFolderError(
            f"{folder}: not a wbc-data classifier folder (no {CONFIG}; train one with `wbc-data train`)"
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelFolderError(f"{path}: unreadable classifier config ({exc})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelFolderError(f"{path}: not a wbc-data classifier config (format is not {FORMAT!r})")
    if config.get("version", 0) > VERSION:
        raise ModelFolderError(f"{path}: written by a newer wbc-data (format version {config['version']})")
    if tuple(config.get("classes", ())) != CLASSES:
        raise ModelFolderError(f"{path}: classes differ from the 13 WBCBench classes in their fixed order")
    return config


class TimmClassifier:
    """One trained member: a timm model and the transform it was trained with."""

    def __init__(self, folder: Path, config: dict[str, Any], model: Any) -> None:
        from wbc_data.train.augment import eval_transform

        self.folder = folder
        self.config = config
        self.name: str = config.get("name", folder.name)
        self.classes: tuple[str, ...] = CLASSES
        self.image = _image_spec(config.get("image"), folder)
        self.transform = eval_transform(self.image)
        self.model = model

    def tensor_proba(self, x: Any, tta: bool = False) -> Any:
        from wbc_data.train.inference import probabilities

        return probabilities(self.model, x, tta)

    def tensor_embed(self, x: Any) -> Any:
        from wbc_data.train.inference import features
        from wbc_data.train.models import embed

        return features(self.model, x, embed)

    def predict_proba(self, images: Sequence[Image.Image], tta: bool = False) -> np.ndarray:
        return _batched(self, images, lambda x: self.tensor_proba(x, tta), len(self.classes))

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        return _batched(self, images, self.tensor_embed, None)


class EnsembleClassifier:
    """Soft voting: the weighted mean of the members' class probabilities; embeddings side by side."""

    def __init__(self, folder: Path, config: dict[str, Any], members: list[TimmClassifier], weights: list[float]):
        self.folder = folder
        self.config = config
        self.classes: tuple[str, ...] = CLASSES
        self.members = members
        total = float(sum(weights))
        self.weights = [w / total for w in weights]
        self.image = members[0].image
        self.transform = members[0].transform

    def tensor_proba(self, x: Any, tta: bool = False) -> Any:
        out = None
        for member, weight in zip(self.members, self.weights, strict=True):
            p = member.tensor_proba(x, tta) * weight
            out = p if out is None else out + p
        return out

    def tensor_embed(self, x: Any) -> Any:
        import torch

        return torch.cat([m.tensor_embed(x) for m in self.members], dim=1)

    def predict_proba(self, images: Sequence[Image.Image], tta: bool = False) -> np.ndarray:
        return _batched(self, images, lambda x: self.tensor_proba(x, tta), len(self.classes))

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        return _batched(self, images, self.tensor_embed, None)


def _batched(classifier: Any, images: Sequence[Image.Image], run: Any, width: int | None) -> np.ndarray:
    import torch

    outputs = []
    for start in range(0, len(images), BATCH):
        batch = torch.stack([classifier.transform(im.convert("RGB")) for im in images[start : start + BATCH]])
        outputs.append(run(batch).numpy())
    if not outputs:
        return np.zeros((0, width or 0), dtype=np.float32)
    return np.concatenate(outputs).astype(np.float32)


def load_member(folder: Path, config: dict[str, Any] | None = None, device: Any = None) -> TimmClassifier:
    import timm
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from wbc_data.train.inference import best_device

    config = config or read_config(folder)
    if config.get("kind") != "member":
        raise ModelFolderError(f"{folder / CONFIG}: expected a member, found kind {config.get('kind')!r}")
    architecture = config.get("architecture")
    if not isinstance(architecture, str) or not timm.is_model(architecture):
        raise ModelFolderError(f"{folder / CONFIG}: unknown timm architecture {architecture!r}")
    weights = folder / str(config.get("weights", WEIGHTS))
    if not weights.is_file():
        raise ModelFolderError(f"{weights}: weights file missing")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFolderError(f"{weights}: unreadable weights ({' '.join(str(exc).split())[:160]})") from None
    model = timm.create_model(architecture, pretrained=False, num_classes=len(CLASSES))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0][:160]
        raise ModelFolderError(f"{weights}: does not fit {architecture} ({first})") from None
    device = device or best_device()
    model = model.to(device).eval()
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return TimmClassifier(folder, config, model)


def load_classifier(path: Path | str) -> TimmClassifier | EnsembleClassifier:
    """A member or ensemble folder written by ``wbc-data train``; one clear line when it cannot load."""
    folder = Path(path)
    config = read_config(folder)
    if config.get("kind") == "member":
        return load_member(folder, config)
    if config.get("kind") != "ensemble":
        raise ModelFolderError(f"{folder / CONFIG}: unknown kind {config.get('kind')!r}")
    entries = config.get("members") or []
    if not entries:
        raise ModelFolderError(f"{folder / CONFIG}: an ensemble without members")
    members = [load_member(folder / str(e.get("path", ""))) for e in entries]
    sizes = {m.image for m in members}
    if len(sizes) > 1:
        raise ModelFolderError(f"{folder / CONFIG}: members were trained on different image specs; cannot vote")
    weights = [float(e.get("weight", 1.0)) for e in entries]
    if min(weights) < 0 or sum(weights) <= 0:
        raise ModelFolderError(f"{folder / CONFIG}: member weights must be >= 0 and not all 0")
    return EnsembleClassifier(folder, config, members, weights)
