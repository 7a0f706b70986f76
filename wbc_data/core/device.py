"""The one answer to "where does this run, and in what precision": every stage that computes with torch (synth,
train, dedup's batched registration) asks here. torch is imported only when asked."""

from __future__ import annotations

from typing import Any


def cuda_available() -> bool:
    """Whether torch sees a CUDA GPU (False where torch is not installed)."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def best_device(allow_mps: bool = False) -> str:
    """``cuda`` when there is a GPU, else Apple's ``mps`` where allowed and present, else ``cpu``."""
    if cuda_available():
        return "cuda"
    if allow_mps:
        import torch

        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
    return "cpu"


def mixed_precision(setting: str) -> str:
    """Accelerate's ``mixed_precision`` for a recipe's setting: ``auto`` is bf16 on GPUs that support it, fp16 on
    older GPUs, none on the CPU (where full precision is the fastest and exact)."""
    if setting != "auto":
        return setting
    if not cuda_available():
        return "no"
    import torch

    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def half_dtype(device: str) -> Any:
    """The reduced precision to run inference in on ``device`` (bf16, else fp16 on CUDA); None: float32."""
    if device != "cuda":
        return None
    import torch

    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
