"""The ``wbc-data`` command line: parses arguments, calls the library, renders results with rich.

No logic lives here. Every user-facing error is a :class:`UserError` subclass from the library and is
printed as one line naming the file and the reason (exit code 2); Ctrl-C exits with 130.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from wbc_data import summary
from wbc_data.errors import USER_ERRORS
from wbc_data.workspace import Workspace

app = typer.Typer(
    name="wbc-data",
    help="Harmonise public white-blood-cell datasets into one 13-class manifest (WBCBench 2026 classes).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(width=None if sys.stdout.isatty() else 160)  # logs and pipes get the wide tables whole
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

WorkspaceOpt = Annotated[
    Path | None,
    typer.Option("--workspace", "-w", help="Where outputs go (default ./wbc-workspace or $WBC_WORKSPACE)."),
]


def friendly_errors(func: F) -> F:
    """Turn library errors into one red line and a non-zero exit instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except USER_ERRORS as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]: nothing was overwritten; re-run to resume")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def progress_bar(description: str) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    )


def frame_table(frame: pd.DataFrame, title: str | None = None, index: bool = False) -> Table:
    table = Table(title=title, title_justify="left", show_lines=False)
    columns = ([frame.index.name or ""] if index else []) + [str(c) for c in frame.columns]
    for i, column in enumerate(columns):
        numeric = (not index or i > 0) and pd.api.types.is_numeric_dtype(frame[frame.columns[i - index]])
        table.add_column(column, justify="right" if numeric else "left")
    for key, row in frame.iterrows():
        cells = [str(key)] if index else []
        cells += [f"{v:,}" if isinstance(v, int) else str(v) for v in row.tolist()]
        table.add_row(*cells)
    return table


@app.command()
@friendly_errors
def sources() -> None:
    """List every source the tool knows: citation, licence, download address and expected layout."""
    from wbc_data.sources.definition import load_definitions

    for definition in load_definitions().values():
        console.rule(f"[bold]{definition.name}[/] — {definition.title}")
        console.print(f"[bold]licence[/]  {definition.licence}")
        console.print(f"[bold]cite[/]     {definition.citation}", soft_wrap=True)
        console.print(f"[bold]download[/] {definition.download}", soft_wrap=True)
        console.print("[bold]layout[/]")
        console.print(definition.layout, highlight=False)
    console.print("\nIngest with: [bold]wbc-data ingest <source> <path>[/]")


@app.command()
@friendly_errors
def ingest(
    source: Annotated[str, typer.Argument(help="Source name (see `wbc-data sources`).")],
    path: Annotated[Path, typer.Argument(help="The unpacked dataset folder (or its parent).")],
    workspace: WorkspaceOpt = None,
    label_map: Annotated[
        Path | None,
        typer.Option("--label-map", help="YAML 'raw label: CLASS' map (imagefolder; overrides others)."),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", help="Name of this ingest in the workspace (default: the source name)."),
    ] = None,
    annotations: Annotated[
        Path | None,
        typer.Option("--annotations", help="Annotation table kept outside the image folder (aml-lmu)."),
    ] = None,
    licence: Annotated[str | None, typer.Option("--licence", help="Licence of this data (imagefolder).")] = None,
    citation: Annotated[str | None, typer.Option("--citation", help="How to cite this data (imagefolder).")] = None,
    option: Annotated[
        list[str] | None,
        typer.Option("--option", "-o", help="Adapter option KEY=VALUE, e.g. margin=0.1 (segpc, lisc), crop_size=200."),
    ] = None,
    label_column: Annotated[
        str | None, typer.Option("--label-column", help="Column holding the label (hub; default 'label').")
    ] = None,
    split: Annotated[str | None, typer.Option("--split", help="Only this split (hub; default: every split).")] = None,
    config: Annotated[str | None, typer.Option("--config", help="Dataset configuration name (hub).")] = None,
    workers: Annotated[int, typer.Option("--workers", "-j", help="Worker processes (0 = every core).")] = 0,
    max_pixels: Annotated[
        int, typer.Option("--max-pixels", help="Refuse larger images as decompression bombs.")
    ] = 100_000_000,
) -> None:
    """Read one dataset from its original layout into a per-source manifest in the workspace."""
    from wbc_data.ingest.engine import IngestOptions
    from wbc_data.ingest.engine import ingest as run_ingest
    from wbc_data.labelmap import LabelMap

    ws = Workspace.at(workspace)
    adapter_options: dict[str, Any] = {}
    if annotations is not None:
        adapter_options["annotations"] = annotations
    for key, value in (("label_column", label_column), ("split", split), ("config", config)):
        if value is not None:
            adapter_options[key] = value
    adapter_options.update(parse_options(option or []))
    options = IngestOptions(
        workers=workers,
        max_pixels=max_pixels,
        label_map=LabelMap.from_yaml(label_map) if label_map else None,
        name=name,
        licence=licence,
        citation=citation,
        adapter_options=adapter_options,
    )
    with progress_bar("ingest") as bar:
        task = bar.add_task(f"ingest {name or source}", total=None)
        result = run_ingest(
            source,
            path,
            ws,
            options,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    render_ingest(result)


def parse_options(items: list[str]) -> dict[str, Any]:
    """``--option KEY=VALUE`` pairs; values are read as YAML scalars (0.1 -> float, 200 -> int, text -> str)."""
    import yaml

    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--option")
        try:
            options[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            options[key.strip()] = value
    return options


def render_ingest(result: Any) -> None:
    frame = result.frame
    counts = summary.file_counts(frame)
    console.print(f"[bold]{result.name}[/] from {result.root}", highlight=False)
    head = pd.DataFrame([counts])
    console.print(frame_table(head))
    console.print(
        f"decoded {result.decoded:,} file(s) this run, {result.from_cache:,} from the resume cache",
        style="dim",
    )
    rejected = summary.rejection_table(frame)
    if not rejected.empty:
        console.print(frame_table(rejected, title="Rejected, by reason"))
    classes = summary.class_counts(frame)
    classes = classes[classes.drop(columns="class").sum(axis=1) > 0]
    console.print(frame_table(classes, title="Images per class (13-class space)"))
    statuses = summary.status_counts(frame)
    console.print("label status: " + ", ".join(f"{k} {v:,}" for k, v in statuses.items()), highlight=False)
    unmapped = frame[(frame["status"] == "ok") & (frame["label_status"] == "unmapped")]
    if len(unmapped):
        labels = unmapped["source_label"].value_counts()
        console.print(
            "[yellow]unmapped labels (add them to the label map):[/] "
            + ", ".join(f"{k!r} ({v})" for k, v in labels.items()),
            highlight=False,
        )
    from wbc_data.explain import rule_lines

    for line in rule_lines(frame):
        console.print(f"[cyan]label rule:[/] {line}", highlight=False)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    console.print(f"manifest: {result.manifest_path}", highlight=False)


@app.command("manifest")
@friendly_errors
def manifest_cmd(
    workspace: WorkspaceOpt = None,
    only: Annotated[list[str] | None, typer.Option("--source", help="Merge only these ingested sources.")] = None,
    explain: Annotated[
        str | None,
        typer.Option("--explain", help="Show how each raw label of this ingested source was mapped (no merge)."),
    ] = None,
) -> None:
    """Merge per-source manifests into the unified manifest and print class x source counts."""
    from wbc_data.merge import merge
    from wbc_data.report.manifest_report import build

    ws = Workspace.at(workspace)
    if explain is not None:
        render_explanation(explain, ws)
        return
    path, frame = merge(ws, only)
    console.print(frame_table(summary.class_by_source(frame), title="Images per class and source", index=True))
    console.print(f"unified manifest: {path} ({len(frame):,} rows)", highlight=False)
    _, html_path = build(frame, ws.reports_dir)
    console.print(f"report: {html_path}", highlight=False)


def render_explanation(name: str, ws: Workspace) -> None:
    from wbc_data.explain import RULES, explain_source

    result = explain_source(ws, name)
    console.print(frame_table(result.table, title=f"How {name}'s raw labels were mapped"))
    for status in result.statuses:
        console.print(f"[bold]{status}[/]: {RULES[status]}", highlight=False)


@app.command()
@friendly_errors
def demo(workspace: WorkspaceOpt = None, workers: Annotated[int, typer.Option("--workers", "-j")] = 0) -> None:
    """Run the main job on the real sample shipped with the tool: ingest, merge, dedup, gap report."""
    from wbc_data.demo import run_demo

    ws = Workspace.at(workspace)
    with progress_bar("demo") as bar:
        task = bar.add_task("ingest sample", total=None)
        result = run_demo(ws, workers, progress=lambda done, total: bar.update(task, completed=done, total=total))
    for ingested in result.ingests:
        render_ingest(ingested)
        console.print()
    console.print(
        frame_table(summary.class_by_source(result.manifest), title="Images per class and source", index=True)
    )
    console.print(f"unified manifest: {result.manifest_path} ({len(result.manifest):,} rows)", highlight=False)
    console.print(frame_table(result.dedup.summary(), title="Duplicates (the Kaggle copies of PBC files)"))
    render_gap_table(result.gap.gap)
    console.print(f"synth plan: {result.gap.plan_path}", highlight=False)
    for path in (result.report_path, *result.dedup.report_paths, result.gap.files.html):
        if str(path).endswith(".html"):
            console.print(f"report: {path}", highlight=False)


def render_gap_table(gap: Any) -> None:
    """The target and the per-class gap table (shared by `gap-report` and `demo`)."""
    from wbc_data.gap.report import display_table

    console.print(f"target: {gap.target.description}", highlight=False, soft_wrap=True)
    console.print(frame_table(display_table(gap, compact=True), title="Gap per class"))


@app.command("gap-report")
@friendly_errors
def gap_report(
    workspace: WorkspaceOpt = None,
    target: Annotated[
        str,
        typer.Option(
            "--target", "-t", help="A named target (manifests/targets) | uniform:N | min:N | a YAML file of counts."
        ),
    ] = "wbcbench",
    own: Annotated[
        list[str] | None,
        typer.Option("--own", help="Source(s) that are the user's own data (default: the target's, if ingested)."),
    ] = None,
    own_split: Annotated[
        list[str] | None,
        typer.Option(
            "--own-split", help="Count only these source_split values of own data (default: the target's train_splits)."
        ),
    ] = None,
    target_labels: Annotated[
        Path | None,
        typer.Option(
            "--target-labels",
            "--wbcbench-labels",
            help="Label files of the target's source to recount from (wbcbench: the folder of its label CSVs).",
        ),
    ] = None,
    solved_at: Annotated[float, typer.Option("--solved-at", help="available/target at or above: solved.")] = 1.0,
    partial_at: Annotated[float, typer.Option("--partial-at", help="available/target at or above: partial.")] = 0.5,
    quota: Annotated[
        Path | None, typer.Option("--quota", help="Write a synth plan YAML here (read by `wbc-data synth --plan`).")
    ] = None,
    max_synth_factor: Annotated[
        float, typer.Option("--max-synth-factor", help="At most this many synthetic images per real image of a class.")
    ] = 10.0,
) -> None:
    """Per class: own data, each external source, after dedup, coarse and synthetic apart, gain, status vs a target."""
    from wbc_data.gap import plan_frame, run_gap_report
    from wbc_data.gap.status import Thresholds

    ws = Workspace.at(workspace)
    result = run_gap_report(
        ws,
        target,
        own=own,
        own_splits=own_split,
        target_labels=target_labels,
        thresholds=Thresholds(solved_at=solved_at, partial_at=partial_at),
        quota=quota,
        max_synth_factor=max_synth_factor,
    )
    gap = result.gap
    render_gap_table(gap)
    sources = gap.sources[["source", "role", "licence", "publish", "commercial", "exact images", "after dedup"]]
    console.print(frame_table(sources, title="Sources"))
    for note in gap.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
    if result.plan is not None:
        console.print(frame_table(plan_frame(result.plan), title=f"Synth plan ({result.plan.total:,} images)"))
        console.print(f"synth plan: {result.plan_path}", highlight=False)
    console.print(f"report: {result.files.html}", highlight=False)


@app.command("dedup")
@friendly_errors
def dedup_cmd(
    workspace: WorkspaceOpt = None,
    threshold: Annotated[
        int | None, typer.Option("--threshold", "-t", help="Hamming radius on 64-bit pHashes (default 8).")
    ] = None,
    against: Annotated[
        Path | None, typer.Option("--against", help="Evaluation set to audit for leakage: a manifest or a folder.")
    ] = None,
    exclude_leaks: Annotated[
        bool, typer.Option("--exclude-leaks", help="Mark training rows with a copy in --against as not kept.")
    ] = False,
    policy: Annotated[
        Path | None, typer.Option("--policy", help="YAML keep policy (default: the source YAML's keep_priority/role).")
    ] = None,
    crop_threshold: Annotated[
        int, typer.Option("--crop-threshold", help="Hamming radius for cropped copies (default 10).")
    ] = 10,
    crops: Annotated[bool, typer.Option("--crops/--no-crops", help="Also search cropped copies (up to ~10%).")] = True,
    workers: Annotated[int, typer.Option("--workers", "-j", help="Worker processes for --against folders.")] = 0,
) -> None:
    """Find exact and near duplicates (any flip/rotation, small crops) across sources, keep one, audit leakage."""
    from wbc_data.dedup.policy import KeepPolicy, default_policy
    from wbc_data.dedup.run import DEFAULT_THRESHOLD, DedupOptions, dedup

    ws = Workspace.at(workspace)
    options = DedupOptions(
        threshold=DEFAULT_THRESHOLD if threshold is None else threshold,
        policy=KeepPolicy.from_yaml(policy) if policy else default_policy(),
        against=against,
        exclude_leaks=exclude_leaks,
        workers=workers,
        crop_threshold=crop_threshold if crops else None,
    )
    with progress_bar("dedup") as bar:
        task = bar.add_task("dedup", total=None)
        result = dedup(ws, options, step=lambda name: bar.update(task, description=f"dedup: {name}"))
    console.print(frame_table(result.summary(), title="Duplicates"))
    if against is not None:
        console.print(f"leakage: {len(result.leaks):,} training row(s) have a copy in {against}", highlight=False)
    console.print(f"manifest: {result.manifest_path}", highlight=False)
    for path in result.report_paths:
        console.print(f"report: {path}", highlight=False)


def main() -> None:  # pragma: no cover - console entry for `python -m wbc_data`
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
