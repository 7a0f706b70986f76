"""Degradation augmentation that mimics the corruptions of WBCBench 2026's test images: Gaussian and Poisson
(shot) noise, motion and defocus blur, JPEG artefacts, uneven illumination and colour casts, each at a severity from
1 (mild) to 5 (severe), in the spirit of ImageNet-C.

Works on uint8 ``(3, H, W)`` tensors inside the DataLoader workers and draws from torch's RNG only, so a seeded
epoch is reproducible (resume gives the same images).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from wbc_data.train.recipe import DegradeSpec

# parameter per severity 1..5
GAUSSIAN_SIGMA = (0.02, 0.04, 0.06, 0.09, 0.12)  # share of the full range
POISSON_PHOTONS = (500.0, 250.0, 120.0, 60.0, 30.0)  # photons at full brightness: fewer, noisier
MOTION_LENGTH = (3, 5, 7, 9, 13)  # kernel length in pixels at 224 px (scaled with the image)
DEFOCUS_RADIUS = (1.0, 1.5, 2.0, 3.0, 4.0)  # disk radius in pixels at 224 px (scaled with the image)
JPEG_QUALITY = (60, 40, 25, 15, 8)
ILLUMINATION_AMPLITUDE = (0.1, 0.2, 0.3, 0.4, 0.5)  # gain difference across the image
COLOUR_SHIFT = (0.05, 0.1, 0.15, 0.2, 0.3)  # per-channel gain spread


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand(()))


def _scaled(pixels_at_224: float, image: torch.Tensor) -> float:
    return max(1.0, pixels_at_224 * max(image.shape[-2:]) / 224)


def _as_float(image: torch.Tensor) -> torch.Tensor:
    return image.float() / 255.0


def _as_uint8(image: torch.Tensor) -> torch.Tensor:
    return (image.clamp(0, 1) * 255.0).round().to(torch.uint8)


def _conv(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Depthwise convolution with reflect padding, same size out."""
    k = kernel / kernel.sum()
    pad_h, pad_w = k.shape[0] // 2, k.shape[1] // 2
    x = F.pad(_as_float(image)[None], (pad_w, pad_w, pad_h, pad_h), mode="reflect")
    weight = k[None, None].expand(image.shape[0], 1, *k.shape)
    return _as_uint8(F.conv2d(x, weight, groups=image.shape[0])[0])


def gaussian_noise(image: torch.Tensor, severity: int) -> torch.Tensor:
    x = _as_float(image)
    return _as_uint8(x + torch.randn_like(x) * GAUSSIAN_SIGMA[severity - 1])


def poisson_noise(image: torch.Tensor, severity: int) -> torch.Tensor:
    photons = POISSON_PHOTONS[severity - 1]
    return _as_uint8(torch.poisson(_as_float(image) * photons) / photons)


def motion_blur(image: torch.Tensor, severity: int) -> torch.Tensor:
    length = max(3, round(_scaled(MOTION_LENGTH[severity - 1], image)) | 1)  # never a no-op on small images
    angle = _uniform(0.0, math.pi)
    size = length
    kernel = torch.zeros(size, size)
    centre = size // 2
    for t in torch.linspace(-centre, centre, 2 * size):
        x = round(centre + float(t) * math.cos(angle))
        y = round(centre + float(t) * math.sin(angle))
        kernel[y, x] = 1.0
    return _conv(image, kernel)


def defocus_blur(image: torch.Tensor, severity: int) -> torch.Tensor:
    radius = _scaled(DEFOCUS_RADIUS[severity - 1], image)
    half = math.ceil(radius)
    grid = torch.arange(-half, half + 1, dtype=torch.float32)
    kernel = ((grid[None] ** 2 + grid[:, None] ** 2) <= radius**2).float()
    return _conv(image, kernel)


def jpeg(image: torch.Tensor, severity: int) -> torch.Tensor:
    """Encode and decode with PIL's JPEG at a low quality: block and ringing artefacts."""
    buffer = io.BytesIO()
    TF.to_pil_image(image).save(buffer, "JPEG", quality=JPEG_QUALITY[severity - 1])
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return TF.pil_to_tensor(decoded.convert("RGB"))


def illumination(image: torch.Tensor, severity: int) -> torch.Tensor:
    """Uneven lighting: a linear gain ramp in a random direction, plus a global brightness change."""
    amplitude = ILLUMINATION_AMPLITUDE[severity - 1]
    h, w = image.shape[-2:]
    angle = _uniform(0.0, 2 * math.pi)
    ys = torch.linspace(-0.5, 0.5, h)[:, None]
    xs = torch.linspace(-0.5, 0.5, w)[None]
    ramp = xs * math.cos(angle) + ys * math.sin(angle)
    gain = 1.0 + amplitude * ramp + _uniform(-amplitude, amplitude) / 2
    return _as_uint8(_as_float(image) * gain)


def colour_shift(image: torch.Tensor, severity: int) -> torch.Tensor:
    """A stain or white-balance cast: each channel's gain and offset moved a little."""
    spread = COLOUR_SHIFT[severity - 1]
    gains = 1.0 + (torch.rand(3, 1, 1) * 2 - 1) * spread
    offsets = (torch.rand(3, 1, 1) * 2 - 1) * spread / 3
    return _as_uint8(_as_float(image) * gains + offsets)


CORRUPTIONS: dict[str, Callable[[torch.Tensor, int], torch.Tensor]] = {
    "gaussian_noise": gaussian_noise,
    "poisson_noise": poisson_noise,
    "motion_blur": motion_blur,
    "defocus_blur": defocus_blur,
    "jpeg": jpeg,
    "illumination": illumination,
    "colour_shift": colour_shift,
}


def corrupt(image: torch.Tensor, kind: str, severity: int) -> torch.Tensor:
    """One corruption of a uint8 ``(3, H, W)`` image at severity 1..5."""
    if not 1 <= severity <= 5:
        raise ValueError(f"severity {severity}: 1 to 5")
    return CORRUPTIONS[kind](image, severity)


class Degrade:
    """With probability ``p``, one corruption drawn from ``kinds`` at a severity drawn from ``severity``."""

    def __init__(self, spec: DegradeSpec) -> None:
        self.p = spec.p
        self.kinds: Sequence[str] = tuple(spec.kinds)
        self.severity = spec.severity

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if self.p <= 0 or float(torch.rand(())) >= self.p:
            return image
        kind = self.kinds[int(torch.randint(len(self.kinds), ()))]
        severity = int(torch.randint(self.severity[0], self.severity[1] + 1, ()))
        return corrupt(image, kind, severity)

    def __repr__(self) -> str:
        return f"Degrade(p={self.p}, severity={list(self.severity)}, kinds={list(self.kinds)})"
