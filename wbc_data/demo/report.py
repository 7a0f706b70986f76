"""The demo's one HTML report: the steps it ran (command, time, result) before every stage's page, the
classifier comparison and the dataset card, all in ``<workspace>/reports/index.html``."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from wbc_data.report.index import Part, build_index, markdown_part, page_part


def steps_table(result: Any) -> str:
    rows = []
    for number, step in enumerate(result.steps, start=1):
        when = f"{step.seconds:.1f} s" + (" (an earlier run; reused)" if step.reused else "")
        rows.append(
            f"<tr><td class='n'>{number}</td><td>{html.escape(step.title)}<br>"
            f"<code class='cmd'>{html.escape(step.command)}</code></td><td class='n'>{when}</td>"
            f"<td>{html.escape(step.summary)}</td></tr>"
        )
    return (
        "<h2>Steps</h2><p>Each step is a command you can run on your own data (replace the sample paths). Total "
        f"time of the steps: {sum(step.seconds for step in result.steps):.0f} s ({result.seconds:.0f} s of it in "
        "this run; the rest reused from an earlier one).</p>"
        "<style>code.cmd{white-space:pre-wrap;overflow-wrap:anywhere} table.steps{table-layout:fixed;width:100%}"
        " table.steps td{overflow-wrap:anywhere;white-space:normal}</style>"
        "<div class='table-wrap'><table class='steps'><colgroup><col style='width:3em'><col style='width:52%'>"
        "<col style='width:7em'><col></colgroup><thead><tr><th>#</th><th>step and command</th><th>time</th>"
        f"<th>result</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def extra_parts(result: Any, directory: Path) -> list[Part]:
    parts: list[Part] = []
    evaluation = result.workspace.reports_dir / "evaluate-compare" / "report.html"
    if evaluation.is_file():
        part = page_part(evaluation, "evaluate-compare", directory)
        if part is not None:
            parts.append(part)
    cards = sorted((result.workspace.publish_dir).glob("*/README.md"))
    for card in cards:
        parts.append(markdown_part(card, f"Dataset card ({card.parent.name.replace('__', '/')})", "publish-card",
                                   directory))  # fmt: skip
    return parts


def write_index(result: Any) -> Path:
    directory = result.workspace.reports_dir
    intro = (
        "Everything wbc-data does, run on the small real sample shipped with the tool: PBC, BCCD and a Kaggle "
        "re-upload in their own layouts, plus augmented copies. Sizes are tiny so that it runs in minutes on a CPU; "
        "the numbers show the road works, not what real data and GPUs reach."
    )
    return build_index(directory, "wbc-data demo", intro, steps_table(result), extra_parts(result, directory))
