"""``wbc-data manifest --check [--verify]``: can every usable row still be opened on this machine?

After a workspace moves (a laptop that curates, a GPU server that trains), each named root must point at its data.
The check reports every ``ok`` row whose file is missing or unreadable and, with ``verify``, every row whose pixels
no longer hash as they did at ingest, so a user fixes the roots before a long run fails half-way.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from wbc_data.core import manifest
from wbc_data.core.progress import Progress
from wbc_data.core.roots import RootsError
from wbc_data.core.rows import is_usable
from wbc_data.io import paths
from wbc_data.io.parallel import worker_pool
from wbc_data.io.pixels import ROW_COLUMNS, PixelError, PixelLoader, PixelMismatch, PixelMissing, RowRef, row_refs

PROBLEM_COLUMNS = ["sample_id", "source", "file", "problem", "reason"]


@dataclass
class CheckResult:
    checked: int  # usable rows checked
    files: int  # distinct files (or dataset rows) behind them
    problems: pd.DataFrame  # PROBLEM_COLUMNS, one row per failing manifest row
    verified: bool

    @property
    def ok(self) -> bool:
        return self.problems.empty

    def by_source(self) -> pd.DataFrame:
        if self.problems.empty:
            return pd.DataFrame(columns=["source", "problem", "rows"])
        counts = self.problems.groupby(["source", "problem"]).size().rename("rows").reset_index()
        return counts.sort_values(["source", "problem"]).reset_index(drop=True)

    def summary(self) -> str:
        what = "opened and hashed" if self.verified else "found"
        if self.ok:
            return f"all {self.checked:,} usable rows ({self.files:,} files) {what} on this machine"
        kinds = self.problems["problem"].value_counts()
        parts = ", ".join(f"{n:,} {k}" for k, n in kinds.items())
        return f"{len(self.problems):,} of {self.checked:,} usable rows cannot be used here: {parts}"


def check_manifest(
    path: Path,
    loader: PixelLoader,
    verify: bool = False,
    workers: int = 0,
    progress: Progress | None = None,
) -> CheckResult:
    table = manifest.read(path, columns=[*ROW_COLUMNS, "source", "status"])
    frame = manifest.to_frame(table)
    frame = frame[is_usable(frame)].reset_index(drop=True)
    refs = row_refs(frame)
    sources = frame["source"].tolist()
    if verify:
        outcomes = list(_verify_all(refs, loader, workers, progress))
        files = len({(r.root, r.source_path) for r in refs})
    else:
        outcomes, files = _find_all(refs, loader, progress)
    rows = [
        {"sample_id": refs[i].sample_id, "source": sources[i], "file": file, "problem": problem, "reason": reason}
        for i, (problem, file, reason) in enumerate(outcomes)
        if problem
    ]
    return CheckResult(len(refs), files, pd.DataFrame(rows, columns=PROBLEM_COLUMNS), verify)


Outcome = tuple[str | None, str, str]  # (problem kind or None, file shown, reason)


def _find_all(refs: list[RowRef], loader: PixelLoader, progress: Progress | None) -> tuple[list[Outcome], int]:
    """Each distinct file (the parent of a crop) is looked at once; its outcome holds for all its rows."""
    seen: dict[tuple[str, str], Outcome] = {}
    out = []
    for i, ref in enumerate(refs):
        key = (ref.root, ref.source_path)
        if key not in seen:
            seen[key] = _find(ref, loader)
        out.append(seen[key])
        if progress and (i % 2048 == 0 or i == len(refs) - 1):
            progress.advance(i + 1, len(refs))
    return out, len(seen)


def _find(ref: RowRef, loader: PixelLoader) -> Outcome:
    try:
        location = loader.roots.location(ref.root)
    except RootsError as exc:
        return "unknown root", ref.shown, str(exc)
    shown = f"{location.rstrip('/')}/{paths.display_name(ref.source_path)}"
    candidate = Path(location) / ref.source_path
    if candidate.is_file():
        if os.access(candidate, os.R_OK):
            return None, shown, ""
        return "unreadable", shown, "no read permission"
    try:  # not a plain file: a dataset row (Hub, parquet), or missing; the source's reader tells which
        data = loader.encoded(ref)
    except PixelMissing as exc:
        return "missing", shown, str(exc)
    except PixelError as exc:
        return "unreadable", shown, str(exc)
    return (None, shown, "") if data else ("unreadable", shown, "no bytes")


def _verify_all(refs: list[RowRef], loader: PixelLoader, workers: int, progress: Progress | None) -> Iterator[Outcome]:
    workers = workers or os.cpu_count() or 1
    chunks = [refs[i : i + 256] for i in range(0, len(refs), 256)]
    done = 0
    if workers == 1 or len(refs) < 64:
        for chunk in chunks:
            chunk_result = _verify_chunk((loader, chunk))
            done += len(chunk_result)
            if progress:
                progress.advance(done, len(refs))
            yield from chunk_result
        return
    with worker_pool(workers) as pool:
        for chunk_result in pool.imap(_verify_chunk, [(loader, chunk) for chunk in chunks]):
            done += len(chunk_result)
            if progress:
                progress.advance(done, len(refs))
            yield from chunk_result


def _verify_chunk(item: tuple[PixelLoader, list[RowRef]]) -> list[Outcome]:
    loader, refs = item
    out: list[Outcome] = []
    for ref in refs:
        try:
            loader.open(ref, verify=True)
            out.append((None, ref.shown, ""))
        except PixelMismatch as exc:
            out.append(("changed", ref.shown, str(exc)))
        except RootsError as exc:
            out.append(("unknown root", ref.shown, str(exc)))
        except PixelMissing as exc:
            out.append(("missing", ref.shown, str(exc)))
        except PixelError as exc:
            out.append(("unreadable", ref.shown, str(exc)))
    return out
