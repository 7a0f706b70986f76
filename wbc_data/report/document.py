"""A tiny report model shared by every stage (ingest summary, dedup, gap report): sections with text,
tables and PNG figures, written as Markdown and as one self-contained HTML file (images inlined)."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from jinja2 import Environment, select_autoescape

from wbc_data.io.atomic import atomic_write_text


@dataclass
class Section:
    heading: str
    text: str = ""
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)  # (caption, table)
    figures: list[tuple[str, Path]] = field(default_factory=list)  # (caption, PNG path)


@dataclass
class Report:
    title: str
    intro: str = ""
    sections: list[Section] = field(default_factory=list)

    def add(self, section: Section) -> Section:
        self.sections.append(section)
        return section


def to_markdown(report: Report, relative_to: Path | None = None) -> str:
    lines = [f"# {report.title}", ""]
    if report.intro:
        lines += [report.intro, ""]
    for section in report.sections:
        lines += [f"## {section.heading}", ""]
        if section.text:
            lines += [section.text, ""]
        for caption, table in section.tables:
            if caption:
                lines += [f"**{caption}**", ""]
            safe = _markdown_safe(table)
            lines += [safe.to_markdown(index=False) if _has_tabulate() else _plain_markdown(safe), ""]
        for caption, png in section.figures:
            target = png.relative_to(relative_to) if relative_to and png.is_relative_to(relative_to) else png
            lines += [f"![{caption}]({target.as_posix()})", ""]
    return "\n".join(lines)


def markdown_cell(text: str) -> str:
    """Text as a Markdown table cell shows it literally: ``<class>/<image>`` would otherwise be read as HTML tags
    (and vanish on the Hub), and a ``|`` would split the cell."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def _markdown_safe(table: pd.DataFrame) -> pd.DataFrame:
    """The table with every text cell through :func:`markdown_cell`."""
    out = table.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(lambda v: markdown_cell(v) if isinstance(v, str) else v)
    return out


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


def _plain_markdown(table: pd.DataFrame) -> str:
    columns = [str(c) for c in table.columns]
    out = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in table.itertuples(index=False):
        out.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(out)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
.table-wrap{overflow-x:auto;max-width:100%;margin:.5em 0 1.5em}
table{border-collapse:collapse;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;white-space:nowrap}
th{background:#f3f3f3} td.n{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;height:auto;border:1px solid #ddd;margin:.5em 0}
figcaption{font-size:.85em;color:#555}
p{overflow-wrap:anywhere}
"""
"""Shared by every stage page and the index: wide tables scroll inside their box, never the page."""

BODY_START, BODY_END = "<!-- wbc-data:body -->", "<!-- /wbc-data:body -->"
"""Markers around a page's content, so the index (``wbc_data.report.index``) can collect every stage page."""

_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{{ style }}</style></head><body>
<!-- wbc-data:body -->
<h1>{{ title }}</h1>
{% if intro %}<p>{{ intro }}</p>{% endif %}
{% for s in sections %}<h2>{{ s.heading }}</h2>
{% if s.text %}<p>{{ s.text }}</p>{% endif %}
{% for caption, table in s.tables %}{% if caption %}<h3>{{ caption }}</h3>{% endif %}{{ table | safe }}{% endfor %}
{% for caption, data in s.figures %}<figure><img alt="{{ caption }}" src="data:image/png;base64,{{ data }}">
<figcaption>{{ caption }}</figcaption></figure>{% endfor %}
{% endfor %}
<!-- /wbc-data:body -->
</body></html>
"""


def to_html(report: Report) -> str:
    env = Environment(autoescape=select_autoescape(default=True))
    sections = []
    for section in report.sections:
        tables = [(caption, _html_table(table)) for caption, table in section.tables]
        figures = [(caption, base64.b64encode(Path(png).read_bytes()).decode()) for caption, png in section.figures]
        sections.append({"heading": section.heading, "text": section.text, "tables": tables, "figures": figures})
    return env.from_string(_HTML).render(title=report.title, intro=report.intro, sections=sections, style=STYLE)


def _html_table(table: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    body = "".join(
        "<tr>" + "".join(f"<td{_numeric(v)}>{html.escape(_cell(v))}</td>" for v in row) + "</tr>"
        for row in table.itertuples(index=False)
    )
    return f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _numeric(value: object) -> str:
    """Numbers are right-aligned (so magnitudes line up), text left-aligned."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return ' class="n"' if is_number or type(value).__module__ == "numpy" else ""


def write_csv(path: Path, table: pd.DataFrame, index: bool = False, float_format: str | None = None) -> Path:
    """A report's CSV sidecar (the table behind it, for programs and spreadsheets), written atomically."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, table.to_csv(index=index, float_format=float_format))
    return Path(path)


def write(report: Report, directory: Path, stem: str) -> tuple[Path, Path]:
    """Write ``<stem>.md`` and ``<stem>.html`` into ``directory`` atomically; return both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    md_path, html_path = directory / f"{stem}.md", directory / f"{stem}.html"
    atomic_write_text(md_path, to_markdown(report, relative_to=directory))
    atomic_write_text(html_path, to_html(report))
    return md_path, html_path
