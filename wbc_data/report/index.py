"""One HTML report for a workspace: ``reports/index.html`` collects every stage's page (manifest, duplicates,
split, gap report, synthetic cells, classifiers, dataset card...) in road order, with a table of contents.

Each stage writes its own page through ``wbc_data.report.document``; the index takes the content between the
page's body markers, so every table and picture of every stage is in one self-contained file (pictures inline).
A page the index does not know is still included, after the known ones.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path

from wbc_data.atomic import atomic_write_text
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


def collect(directory: Path) -> list[Part]:
    """Every stage page in ``directory`` (not the index itself), in road order."""
    parts = []
    for page in sorted(Path(directory).glob("*.html"), key=lambda p: _rank(p.stem)):
        if page.name == INDEX:
            continue
        text = page.read_text(encoding="utf-8")
        start, end = text.find(BODY_START), text.find(BODY_END)
        if start < 0 or end < start:
            continue  # not a wbc-data page
        body = text[start + len(BODY_START) : end]
        title_match = re.search(r"<h1>(.*?)</h1>", body, re.S)
        title = html.unescape(title_match.group(1)) if title_match else page.stem
        body = re.sub(r"<h1>.*?</h1>", "", body, count=1, flags=re.S)
        body = re.sub(r"<(/?)h([23])>", lambda m: f"<{m.group(1)}h{int(m.group(2)) + 1}>", body)  # one level down
        parts.append(Part(re.sub(r"[^a-z0-9-]", "-", page.stem.lower()), title, body, page.name))
    return parts


def build_index(directory: Path, title: str = "wbc-data report", intro: str = "", preface: str = "") -> Path:
    """Write ``<directory>/index.html`` from the stage pages there; ``preface`` is HTML put before them (e.g. the
    demo's step table)."""
    parts = collect(directory)
    toc = "".join(f'<li><a href="#{p.anchor}">{html.escape(p.title)}</a></li>' for p in parts)
    sections = "".join(
        f'<section id="{p.anchor}"><h2>{html.escape(p.title)}</h2>'
        f'<p class="source">Stage page: <a href="{html.escape(p.source)}">{html.escape(p.source)}</a></p>'
        f"{p.body}</section>"
        for p in parts
    )
    page = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{html.escape(title)}</title>'
        f"<style>{STYLE} nav ol{{columns:2}} section{{border-top:2px solid #ddd;margin-top:2em}}"
        ".source{font-size:.85em;color:#666}</style></head><body>\n"
        f"<h1>{html.escape(title)}</h1>{f'<p>{html.escape(intro)}</p>' if intro else ''}{preface}"
        f"<nav><h2>Contents</h2><ol>{toc}</ol></nav>{sections}</body></html>\n"
    )
    path = Path(directory) / INDEX
    atomic_write_text(path, page)
    return path
