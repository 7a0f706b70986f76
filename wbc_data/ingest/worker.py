"""Work done per file in the worker processes: read once, decode once, hash everything from that decode.

Kept free of manifest and adapter logic so that it pickles cheaply and can be benchmarked alone.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from wbc_data.imaging import lanczos
from wbc_data.imaging.decode import DEFAULT_MAX_PIXELS, ImageRejected, decode_rgb
from wbc_data.imaging.signatures import grey_thumbnail, phash_from_thumb, pixel_hash
from wbc_data.ingest import crops
from wbc_data.sources.base import CropSpec


@dataclass(frozen=True)
class FileJob:
    path: str  # absolute path (may hold surrogate escapes)
    whole: bool  # facts of the whole image are wanted (a plain sample, or a field image's own row)
    crops: tuple[CropSpec, ...] = ()
    root: str = ""  # for mask files named relative to the source root
    max_pixels: int = DEFAULT_MAX_PIXELS
    data: bytes | None = None  # for adapters whose samples are not plain files (e.g. Hub rows)


def image_facts(image: Image.Image) -> dict[str, Any]:
    thumb = grey_thumbnail(image)
    return {
        "width": image.width,
        "height": image.height,
        "pixel_hash": pixel_hash(image),
        "phash": phash_from_thumb(thumb),
        "thumb": thumb.tobytes(),
    }


def process(job: FileJob) -> dict[str, Any]:
    """Return ``{"file": facts | {"reason": ...}, "crops": {key: facts | {"reason": ...}}}``."""
    try:
        data = job.data if job.data is not None else Path(job.path).read_bytes()
    except OSError as exc:
        reason = f"unreadable file: {exc.strerror or exc}"
        return {"file": {"reason": reason}, "crops": {c.key: {"reason": reason} for c in job.crops}}
    file_facts: dict[str, Any] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    try:
        decoded = decode_rgb(data, job.max_pixels)
    except ImageRejected as exc:
        file_facts["reason"] = str(exc)
        parent = f"parent image unusable: {exc}"
        return {"file": file_facts, "crops": {c.key: {"reason": parent} for c in job.crops}}
    file_facts.update(mode=decoded.mode, format=decoded.format)
    if job.whole:
        file_facts.update(image_facts(decoded.rgb))
    else:
        file_facts.update(width=decoded.width, height=decoded.height)
    crop_results: dict[str, dict[str, Any]] = {}
    for spec in job.crops:
        try:
            box = resolve_box(spec, decoded.width, decoded.height, job.root)
        except crops.CropRejected as exc:
            crop_results[spec.key] = {"reason": str(exc)}
            continue
        facts = image_facts(decoded.rgb.crop(box))
        facts.update(crop_box=list(box), mode=decoded.mode, format=decoded.format)
        crop_results[spec.key] = facts
    return {"file": file_facts, "crops": crop_results}


def resolve_box(spec: CropSpec, width: int, height: int, root: str) -> crops.Box:
    if spec.box is not None:
        raw = spec.box
    elif spec.centroid is not None:
        if not spec.size:
            raise crops.CropRejected("centroid crop without a size")
        raw = crops.box_from_centroid(*spec.centroid, spec.size)
    elif spec.mask_path is not None:
        mask = crops.read_mask(Path(root) / spec.mask_path, (width, height))
        raw = crops.box_from_mask(mask, spec.mask_values)
    else:
        raise crops.CropRejected("crop has neither box, centroid nor mask")
    return crops.clamp(crops.with_margin(raw, spec.margin), width, height)


def init_worker() -> None:
    """Pool initializer: each worker keeps to one thread (BLAS pinned, so the exact matrix LANCZOS thumbnail can
    replace PIL's slower loop)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    lanczos.enable_in_worker()
