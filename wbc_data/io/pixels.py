"""The one way back from a manifest row to its pixels: every later stage (dedup pictures, splits, synth, train,
publish) opens images through :class:`PixelLoader` and nothing else.

A row is reopened exactly as ingest decoded and hashed it: the same bytes (a file under its named root, or a Hub
or parquet row read by the source's adapter), the same decode to 8-bit RGB (:func:`decode_rgb`: RGBA composited
on white, 16-bit scaled, CMYK converted), then the same crop box. ``verify=True`` recomputes the pixel hash and
refuses pixels that changed since ingest.

Images are opened one at a time, on demand; the last few decoded parents are kept (bounded by pixel count) so
that the crops of one field image decode it once.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
from PIL import Image

from wbc_data.core.errors import UserError
from wbc_data.core.roots import Roots, RootsError
from wbc_data.imaging.decode import DEFAULT_MAX_PIXELS, ImageRejected, decode_rgb
from wbc_data.imaging.signatures import pixel_hash
from wbc_data.io import paths

ROW_COLUMNS = ["sample_id", "source_root", "source_path", "crop_box", "pixel_hash", "extra"]
"""The manifest columns a :class:`RowRef` is built from (select them to keep frames small)."""

BOX_CROP = "wbc_data.box_crop"
"""Key of ``Image.info`` that :meth:`PixelLoader.open` sets: ``True`` for a row framed on its cell as an annotated
box is (a crop cut from a BCCD detection box, or a synthetic cell drawn in such a source's style: :func:`box_framed`),
``False`` for a whole file. The classifier's letterbox keeps such a row whole where it keeps only the centre of a
whole image (``image.centre``)."""

FRAMING = "framing"
"""Key of a row's ``extra`` that frames a whole file as a box crop (value ``"box"``): set by sources whose files
are framed on one cell as a detection box is, such as synthetic cells drawn in a box-crop source's style. Without it
a whole file is framed as a whole image."""

PARENT_CACHE_PIXELS = 48_000_000
"""Decoded parent images kept for the next crop of the same field (about 150 MB of RGB at most)."""


class PixelError(UserError):
    """A row's pixels cannot be reopened: unknown root, missing or unreadable file, or not an image any more."""


class PixelMissing(PixelError):
    """The row's file (or dataset row) is not where its named root points."""


class PixelMismatch(PixelError):
    """The pixels reopened differ from those ingest hashed (the file changed, or the root points elsewhere)."""


class RowOpener(Protocol):
    """Anything that reopens rows as :class:`PixelLoader` does (e.g. one that joins two sets' loaders)."""

    def open(self, ref: RowRef) -> Image.Image: ...


@dataclass(frozen=True)
class RowRef:
    """What it takes to reopen one row: light and picklable (a PyTorch Dataset holds one per row)."""

    sample_id: str
    root: str  # the named source root (``source_root``)
    source_path: str  # the name to read under the root, exactly as on disk (surrogate escapes for non-UTF-8 names)
    crop_box: tuple[int, int, int, int] | None = None
    pixel_hash: str | None = None
    box_framed: bool = False  # framed on its cell as an annotated box is (:func:`box_framed`; a crop always is)

    @property
    def shown(self) -> str:
        """The row's file for messages: ``root:path`` (plus the crop box)."""
        box = f" crop {list(self.crop_box)}" if self.crop_box else ""
        return f"{self.root}:{paths.display_name(self.source_path)}{box}"


def crop_box_of(value: Any) -> tuple[int, int, int, int] | None:
    """A manifest ``crop_box`` value as a box, or None for a whole file (the one reading of that column)."""
    return None if value is None or len(value) != 4 else tuple(int(v) for v in value)  # type: ignore[return-value]


def extra_field(extra: Any, key: str) -> Any:
    """One field of a manifest row's ``extra`` (a JSON object string), or None (parsed only when the key occurs)."""
    if not isinstance(extra, str) or f'"{key}"' not in extra:
        return None
    try:
        parsed = json.loads(extra)
    except ValueError:
        return None
    return parsed.get(key) if isinstance(parsed, dict) else None


def box_framed(crop_box: Any, extra: Any) -> bool:
    """Whether a row's pixels are framed on one cell as an annotated box is: a crop cut from a box, or a whole file
    whose ``extra`` says so (:data:`FRAMING`). The one reading, for the loader's mark and the training cache's keys."""
    return crop_box_of(crop_box) is not None or extra_field(extra, FRAMING) == "box"


def row_ref(row: Mapping[str, Any]) -> RowRef:
    """A :class:`RowRef` from a manifest row (a dict, a pandas Series or a namedtuple's ``_asdict()``)."""
    source_path = row["source_path"]
    extra = row.get("extra")
    name_hex = extra_field(extra, "source_path_bytes_hex")
    if name_hex is not None:  # a file name that is not UTF-8
        source_path = paths.from_bytes_hex(name_hex)
    crop = crop_box_of(row.get("crop_box"))
    digest = row.get("pixel_hash")
    return RowRef(
        sample_id=str(row["sample_id"]),
        root=str(row["source_root"]),
        source_path=source_path,
        crop_box=crop,
        pixel_hash=digest if isinstance(digest, str) else None,
        box_framed=box_framed(crop, extra),
    )


def row_refs(frame: pd.DataFrame) -> list[RowRef]:
    """One :class:`RowRef` per row of a manifest frame (needs the :data:`ROW_COLUMNS`)."""
    missing = [c for c in ROW_COLUMNS if c not in frame.columns]
    if missing:
        raise PixelError(f"manifest frame lacks column(s) {', '.join(missing)} needed to reopen images")
    columns = {c: frame[c].tolist() for c in ROW_COLUMNS}
    return [row_ref({c: columns[c][i] for c in ROW_COLUMNS}) for i in range(len(frame))]


class PixelLoader:
    """Reopen rows of a manifest. Build it with :meth:`for_workspace` (or :meth:`for_manifest`) so named roots
    resolve on this machine; it pickles without its open readers, so DataLoader workers each open their own."""

    def __init__(self, roots: Roots, parent_cache_pixels: int = PARENT_CACHE_PIXELS) -> None:
        self.roots = roots
        self.parent_cache_pixels = parent_cache_pixels
        self._readers: dict[str, Callable[[str], bytes]] = {}
        self._parents: OrderedDict[tuple[str, str], Image.Image] = OrderedDict()

    @classmethod
    def for_workspace(cls, workspace: Any, overrides: Mapping[str, str] | None = None) -> PixelLoader:
        from wbc_data.core.workspace import workspace_roots

        return cls(workspace_roots(workspace, overrides))

    @classmethod
    def for_manifest(cls, path: Path, overrides: Mapping[str, str] | None = None) -> PixelLoader:
        """For a unified manifest on its own (its metadata names each root); ``overrides`` re-point them."""
        from wbc_data.core.roots import read_manifest_infos

        return cls(Roots(read_manifest_infos(path), dict(overrides or {}), Path(path).parent))

    def __getstate__(self) -> dict[str, Any]:
        return {"roots": self.roots, "parent_cache_pixels": self.parent_cache_pixels}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["roots"], state["parent_cache_pixels"])  # type: ignore[misc]

    # ------------------------------------------------------------------ bytes

    def reader(self, root: str) -> Callable[[str], bytes]:
        """The adapter's reader for one named root, opened once per process."""
        found = self._readers.get(root)
        if found is None:
            from wbc_data.sources.base import load_adapter
            from wbc_data.sources.definition import get_definition

            try:
                info = self.roots.info(root)
                location = self.roots.location(root)
                adapter = load_adapter(get_definition(info.definition))  # unknown: one line (a UserError)
                found = adapter.open_reader(location, info.options)
            except RootsError:
                raise
            except UserError as exc:
                raise PixelError(f"source root {root!r}: {exc}") from None
            self._readers[root] = found
        return found

    def encoded(self, ref: RowRef | Mapping[str, Any]) -> bytes:
        """The encoded bytes ingest read for this row (the whole file, for a crop too)."""
        ref = ref if isinstance(ref, RowRef) else row_ref(ref)
        try:
            return self.reader(ref.root)(ref.source_path)
        except FileNotFoundError:
            raise PixelMissing(f"{self._where(ref)}: file not found (re-point the source with --root)") from None
        except IsADirectoryError:
            raise PixelError(f"{self._where(ref)}: is a folder, not an image file") from None
        except OSError as exc:
            raise PixelError(f"{self._where(ref)}: unreadable ({exc.strerror or exc})") from None

    def _where(self, ref: RowRef) -> str:
        """The row's file as it resolves here, for messages."""
        try:
            location = self.roots.location(ref.root)
        except RootsError:
            return ref.shown
        box = f" (crop {list(ref.crop_box)})" if ref.crop_box else ""
        return f"{location.rstrip('/')}/{paths.display_name(ref.source_path)}{box}"

    # ------------------------------------------------------------------ pixels

    def open(self, ref: RowRef | Mapping[str, Any], verify: bool = False) -> Image.Image:
        """The row's 8-bit RGB pixels as ingest hashed them (``info[BOX_CROP]`` says whether they are framed as an
        annotated box is); ``verify`` checks the pixel hash too."""
        ref = ref if isinstance(ref, RowRef) else row_ref(ref)
        image = self._decoded(ref)
        if ref.crop_box is not None:
            image = image.crop(ref.crop_box)
        elif self._parents.get((ref.root, ref.source_path)) is image:
            image = image.copy()  # the cached field stays intact whatever the caller does to it (thumbnail())
        if verify:
            if ref.pixel_hash is None:
                raise PixelMismatch(f"{self._where(ref)}: the manifest has no pixel hash to verify against")
            if pixel_hash(image) != ref.pixel_hash:
                raise PixelMismatch(f"{self._where(ref)}: pixels differ from those ingested (the file changed)")
        image.info[BOX_CROP] = ref.box_framed or ref.crop_box is not None
        return image

    def _decoded(self, ref: RowRef) -> Image.Image:
        key = (ref.root, ref.source_path)
        cached = self._parents.get(key)
        if cached is not None:
            self._parents.move_to_end(key)
            return cached
        info_pixels = self.roots.infos.get(ref.root)
        max_pixels = (info_pixels.max_pixels if info_pixels else None) or DEFAULT_MAX_PIXELS
        try:
            image = decode_rgb(self.encoded(ref), max_pixels).rgb
        except ImageRejected as exc:
            raise PixelError(f"{self._where(ref)}: {exc}") from None
        if ref.crop_box is not None:  # a field image: its other crops are likely next
            self._parents[key] = image
            total = sum(im.width * im.height for im in self._parents.values())
            while len(self._parents) > 1 and total > self.parent_cache_pixels:
                _, dropped = self._parents.popitem(last=False)
                total -= dropped.width * dropped.height
        return image

    def iter_open(self, refs: Iterable[RowRef], verify: bool = False) -> Iterable[tuple[RowRef, Image.Image]]:
        for ref in refs:
            yield ref, self.open(ref, verify)
