"""`demo`: the whole road on the real sample shipped with the tool, one HTML report at the end."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.text import Text

from wbc_data.cli.common import RichProgress, WorkspaceOpt, app, console, friendly_errors, labelled
from wbc_data.core.workspace import Workspace


@app.command()
@friendly_errors
def demo(
    workspace: WorkspaceOpt = None,
    workers: Annotated[int, typer.Option("--workers", "-j", min=0, help="Worker processes (0 = every core).")] = 0,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Start over (re-running otherwise reuses finished steps).")
    ] = False,
    quick: Annotated[
        bool, typer.Option("--quick", help="The smallest setting (under a minute; what the tests run).")
    ] = False,
) -> None:
    """Run the whole road on the real sample shipped with the tool, into one HTML report.

    Ingest, merge, dedup, split, gap report, synth, train without and with synthetic cells, compare, publish (dry
    run)."""
    from wbc_data.demo.run import DemoSettings, run_demo

    progress = RichProgress("demo")

    def started(step: Any, index: int, total: int) -> None:
        console.rule(f"[bold]{index}/{total}[/] {step.title}", align="left")
        console.print(Text(f"$ {step.shown}", style="cyan"), highlight=False, soft_wrap=True)
        progress.phase(step.key)

    def finished(step: Any, outcome: Any) -> None:
        when = "reused from the last run" if outcome.reused else f"{outcome.seconds:.1f} s"
        console.print(labelled("done", "green", f"({when}) {outcome.summary}"), highlight=False, soft_wrap=True)

    ws = Workspace.at(workspace)
    with progress:
        result = run_demo(ws, DemoSettings(quick=quick, workers=workers), fresh, started, finished, progress)
    console.rule("[bold]demo finished[/]", align="left")
    ran = [s for s in result.steps if not s.reused]
    console.print(f"{len(ran)} step(s) run in {result.seconds:.0f} s, {len(result.steps) - len(ran)} reused",
                  highlight=False)  # fmt: skip
    console.print(f"report: {result.report}", highlight=False)
