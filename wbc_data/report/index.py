"""One HTML report for a workspace: ``reports/index.html`` collects every stage's page (manifest, duplicates,
split, gap report, synthetic cells, classifiers, dataset card...) in road order, with a table of contents.

Each stage writes its own page through ``wbc_data.report.document``; the index takes the content between the
page's body markers, so every table and picture of every stage is in one self-contained file (pictures inline).
A page the index does not know is still included, after the known ones.
"""

from __future__ import annotations

import base64
import html
import os
import re
from dataclasses import dataclass
from pathlib import Path

from wbc_data.io.atomic import atomic_write_text
from wbc_data.report.document import BODY_END, BODY_START, STYLE

ROAD_ORDER = ("manifest", "dedup", "split", "gap-report", "synth", "train", "evaluate", "compare", "publish", "card")
"""Stems (or stem prefixes) of stage pages, in the order of the data road."""

INDEX = "index.html"


@dataclass(frozen=True)
class Part:
    anchor: str
    title: str
    body: str
    source: str  # the stage page's file name (linked)


def _rank(stem: str) -> tuple[int, str]:
    for i, prefix in enumerate(ROAD_ORDER):
        if stem == prefix or stem.startswith(prefix + "-") or stem.startswith(prefix + "_"):
            return i, stem
    return len(ROAD_ORDER), stem


def page_part(page: Path, anchor: str | None = None, directory: Path | None = None) -> Part | None:
    """One wbc-data page as an index part (None for a page without the body markers); links relative to
    ``directory`` (where the index lives)."""
    text = page.read_text(encoding="utf-8")
    start, end = text.find(BODY_START), text.find(BODY_END)
    if start < 0 or end < start:
        return None
    body = text[start + len(BODY_START) : end]
    title_match = re.search(r"<h1>(.*?)</h1>", body, re.S)
    title = html.unescape(title_match.group(1)) if title_match else page.stem
    body = re.sub(r"<h1>.*?</h1>", "", body, count=1, flags=re.S)
    body = re.sub(r"<(/?)h([23])>", lambda m: f"<{m.group(1)}h{int(m.group(2)) + 1}>", body)  # one level down
    if directory is not None and page.parent.resolve() != Path(directory).resolve():
        body = _rebase(body, page.parent, Path(directory))
    link = os.path.relpath(page, directory) if directory else page.name
    return Part(_anchor(anchor or page.stem), title, body, Path(link).as_posix())


def _rebase(body: str, page_dir: Path, directory: Path) -> str:
    """Relative ``src``/``href`` of a page kept in another folder, rewritten to stay right from ``directory``."""

    def fix(match: re.Match[str]) -> str:
        attribute, target = match.group(1), match.group(2)
        if re.match(r"^([a-z][a-z0-9+.-]*:|#|/)", target, re.I):
            return match.group(0)  # absolute, data: or an anchor
        moved = Path(os.path.relpath(page_dir / target, directory)).as_posix()
        return f'{attribute}="{moved}"'

    return re.sub(r'\b(src|href)="([^"]*)"', fix, body)


def markdown_part(document: Path, title: str, anchor: str, directory: Path) -> Part:
    """A Markdown file (a dataset or model card) as an index part: YAML front matter shown as code, pictures the
    card links inlined so the index stays one self-contained file."""
    from markdown_it import MarkdownIt

    text = document.read_text(encoding="utf-8")
    front = ""
    if text.startswith("---\n") and "\n---\n" in text[4:]:
        head, text = text[4:].split("\n---\n", 1)
        front = f"<details><summary>Card metadata (YAML)</summary><pre>{html.escape(head)}</pre></details>"
    body = MarkdownIt("commonmark").enable("table").render(text)
    body = re.sub(r"<h([1-4])>", lambda m: f"<h{min(int(m.group(1)) + 2, 6)}>", body)
    body = re.sub(r"</h([1-4])>", lambda m: f"</h{min(int(m.group(1)) + 2, 6)}>", body)
    body = re.sub(r"<table>(.*?)</table>", r'<div class="table-wrap"><table>\1</table></div>', body, flags=re.S)
    body = re.sub(r'src="([^":]+\.png)"', lambda m: _inline(document.parent / m.group(1), m.group(0)), body)
    link = os.path.relpath(document, directory)
    return Part(_anchor(anchor), title, front + body, Path(link).as_posix())


def _inline(png: Path, original: str) -> str:
    if not png.is_file():
        return original
    return f'src="data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()}"'


def _anchor(text: str) -> str:
    return re.sub(r"[^a-z0-9-]", "-", text.lower())


def collect(directory: Path) -> list[Part]:
    """Every stage page in ``directory`` (not the index itself), in road order."""
    parts = []
    for page in sorted(Path(directory).glob("*.html"), key=lambda p: _rank(p.stem)):
        if page.name == INDEX:
            continue
        part = page_part(page, directory=Path(directory))
        if part is not None:
            parts.append(part)
    return parts


def build_index(
    directory: Path,
    title: str = "wbc-data report",
    intro: str = "",
    preface: str = "",
    extra: list[Part] | None = None,
) -> Path:
    """Write ``<directory>/index.html`` from the stage pages there and the ``extra`` parts (pages kept elsewhere,
    e.g. an evaluation or a dataset card), in road order; ``preface`` is HTML put before them."""
    parts = sorted([*collect(directory), *(extra or [])], key=lambda p: _rank(p.anchor))
    toc = "".join(f'<li><a href="#{p.anchor}">{html.escape(p.title)}</a></li>' for p in parts)
    sections = "".join(
        f'<section id="{p.anchor}"><h2>{html.escape(p.title)}</h2>'
        f'<p class="source">Page: <a href="{html.escape(p.source)}">{html.escape(p.source)}</a></p>'
        f"{p.body}</section>"
        for p in parts
    )
    page = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{html.escape(title)}</title>'
        f"<style>{STYLE} nav ol{{columns:2}} section{{border-top:2px solid #ddd;margin-top:2em}}"
        ".source{font-size:.85em;color:#666} pre{white-space:pre-wrap;overflow-wrap:anywhere}</style></head><body>\n"
        f"<h1>{html.escape(title)}</h1>{f'<p>{html.escape(intro)}</p>' if intro else ''}{preface}"
        f"<nav><h2>Contents</h2><ol>{toc}</ol></nav>{sections}</body></html>\n"
    )
    path = Path(directory) / INDEX
    atomic_write_text(path, page)
    return path
