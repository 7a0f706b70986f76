"""timm models for the recipes: creation with local pretrained weights only, and staged unfreezing.

Weights never come from the network here: a recipe's ``weights:`` file, or timm's own weights when they already sit
in the local Hugging Face cache. Staged fine-tuning uses timm's ``freeze``/``unfreeze`` (batch-norm statistics frozen
with the layers) over the model's own ``group_matcher`` blocks, so "head" and "top N blocks" mean the same thing for
any timm architecture.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from wbc_data.core.taxonomy import CLASSES
from wbc_data.train.errors import TrainError, WeightsError
from wbc_data.train.recipe import MemberSpec, StageSpec

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")


def create_model(member: MemberSpec, num_classes: int = len(CLASSES)) -> Any:
    """The member's timm model with ``num_classes`` outputs, pretrained weights loaded where the recipe asks."""
    import timm

    if not timm.is_model(member.model):
        raise TrainError(f"member {member.name}: {member.model!r} is not a timm model name")
    kwargs: dict[str, Any] = {"num_classes": num_classes, "drop_rate": member.drop_rate}
    if not member.pretrained:
        return timm.create_model(member.model, pretrained=False, **kwargs)
    from safetensors import SafetensorError

    weights = local_weights(member)
    try:
        return timm.create_model(member.model, pretrained=True, pretrained_cfg_overlay={"file": str(weights)}, **kwargs)
    except (RuntimeError, OSError, ValueError, KeyError, SafetensorError, pickle.UnpicklingError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise WeightsError(f"{weights}: cannot load as {member.model} weights ({reason})") from None


def local_weights(member: MemberSpec) -> Path:
    """The weights file for a pretrained member: the recipe's file, else timm's weights in the local HF cache."""
    if member.weights:
        path = Path(member.weights).expanduser()
        if not path.is_file():
            raise WeightsError(
                f"{path}: weights file not found (member {member.name}, {member.model}; "
                "fix `weights:` or set `pretrained: false` to train from scratch)"
            )
        return path
    cached = cached_hub_weights(member.model)
    if cached is None:
        raise WeightsError(
            f"member {member.name}: no local pretrained weights for {member.model} (not in the Hugging Face cache, "
            "and nothing is downloaded): set `weights: /path/to/file.safetensors` or `pretrained: false`"
        )
    return cached


def cached_hub_weights(model_name: str) -> Path | None:
    """timm's default weights for ``model_name`` if they are already in the local Hugging Face cache."""
    import timm
    from huggingface_hub import try_to_load_from_cache

    cfg = timm.models.get_pretrained_cfg(model_name)
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not hub_id:
        return None
    for filename in WEIGHT_FILES:
        found = try_to_load_from_cache(hub_id, filename)
        if isinstance(found, str):
            return Path(found)
    return None


# --------------------------------------------------------------------------- staged unfreezing


def block_groups(model: Any) -> list[list[str]]:
    """Module names of each of the model's coarse block groups (stem first, head last), from timm."""
    from timm.models import group_modules

    try:
        groups = group_modules(model, model.group_matcher(coarse=True))
    except (AttributeError, NotImplementedError):
        raise TrainError(f"{type(model).__name__}: no timm group_matcher, so stages cannot name blocks") from None
    return [_outermost(names) for _, names in sorted(groups.items())]


def _outermost(names: list[str]) -> list[str]:
    """Drop names inside another listed module (``a.b`` when ``a`` is listed)."""
    kept: list[str] = []
    for name in sorted(set(names), key=lambda n: (n.count("."), n)):
        if not any(name.startswith(k + ".") for k in kept):
            kept.append(name)
    return kept


def apply_stage(model: Any, stage: StageSpec) -> int:
    """Freeze all but the stage's trainable part (head, head + top N groups, or all); return trainable parameters."""
    from timm.utils.model import freeze, unfreeze

    unfreeze(model)
    top = stage.top_groups()
    if top is not None:
        groups = block_groups(model)
        trainable = [name for group in groups[-(top + 1) :] for name in group]
        freeze(model)
        unfreeze(model, trainable)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def restore_all(model: Any) -> None:
    """Back to plain trainable modules (frozen batch norms converted back): the form a saved model has."""
    from timm.utils.model import unfreeze

    unfreeze(model)


def embed(model: Any, x: Any) -> Any:
    """The input of the classification head (pooled features), for Fréchet distances and retrieval."""
    return model.forward_head(model.forward_features(x), pre_logits=True)
