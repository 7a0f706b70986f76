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


def synthetic_verdict(evaluation: Path, rare: str) -> str:
    """One plain sentence: did the synthetic cells help the classifier on the real test images, judged as
    ``wbc-data experiment`` judges (a paired bootstrap interval of the change that excludes zero), or not."""
    import pandas as pd

    from wbc_data.train.bootstrap import paired_bootstrap, verdict

    try:
        rows = pd.read_parquet(evaluation / "predictions.parquet")
        real_only, with_synth = rows["predicted"], rows["predicted with-synthetic"]
    except (OSError, ValueError, KeyError):
        return ""
    table = paired_bootstrap(rows["label"], real_only, with_synth, resamples=2000).set_index("class")
    macro = table.loc["macro"]
    said = {"helped": "helped", "hurt": "hurt", "no detectable change": "made no detectable change",
            "seeds disagree": "made no consistent change"}  # fmt: skip
    rare_text = (
        f"; {rare} F1 {table.loc[rare, 'f1 with']:.2f} with them against {table.loc[rare, 'f1 without']:.2f} without"
        if rare in table.index
        else ""
    )
    return (
        f"<p><b>Did the synthetic {rare} cells help?</b> They {said[verdict(macro)]} here: on the same {len(rows)} "
        f"real test images, macro-F1 {macro['f1 with']:.2f} with them against {macro['f1 without']:.2f} without "
        f"(change {macro['change']:+.2f}, 95% paired bootstrap interval {macro['change low']:+.3f} to "
        f"{macro['change high']:+.3f}){rare_text}. With this few test images the interval is wide: the demo shows "
        "the road; `wbc-data experiment` asks the question on real data.</p>"
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
    from wbc_data.demo.run import RARE

    verdict = synthetic_verdict(directory / "evaluate-compare", RARE)
    return build_index(directory, "wbc-data demo", intro, steps_table(result) + verdict, extra_parts(result, directory))
