"""`sources`, `ingest`, `manifest`: read datasets into per-source manifests and merge them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.text import Text

from wbc_data.cli.common import (
    RichProgress,
    WorkspaceOpt,
    app,
    console,
    frame_table,
    friendly_errors,
    given,
    labelled,
    print_note,
)
from wbc_data.core.rows import is_usable
from wbc_data.core.workspace import Workspace
from wbc_data.manifest import summary


@app.command()
@friendly_errors
def sources(
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the supported-sources table as Markdown (the README's).")
    ] = False,
) -> None:
    """List every source the tool knows: citation, licence, download address and expected layout."""
    from wbc_data.sources.definition import load_definitions

    if markdown:
        from wbc_data.sources.catalogue import sources_markdown

        print(sources_markdown())
        return

    from wbc_data.sources.base import load_adapter

    for definition in load_definitions().values():
        console.rule(f"[bold]{definition.name}[/] — {definition.title}")
        console.print(labelled("licence ", "bold", definition.licence), highlight=False)
        console.print(labelled("cite    ", "bold", definition.citation), highlight=False, soft_wrap=True)
        console.print(labelled("download", "bold", definition.download), highlight=False, soft_wrap=True)
        for key, what in load_adapter(definition).options.items():
            console.print(labelled(f"option   -o {key}=...", "bold", what), highlight=False, soft_wrap=True)
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
        typer.Option(
            "--annotations",
            help="Annotation table kept apart (aml-lmu's annotations.dat, bccd's labels.csv, wbcbench's label tables).",
        ),
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
    workers: Annotated[
        int | None, typer.Option("--workers", "-j", min=0, help="Worker processes (default 0 = every core).")
    ] = None,
    max_pixels: Annotated[
        int | None, typer.Option("--max-pixels", help="Refuse larger images as decompression bombs (default 1e8).")
    ] = None,
) -> None:
    """Read one dataset from its original layout into a per-source manifest in the workspace."""
    from wbc_data.core.labelmap import LabelMap
    from wbc_data.ingest.engine import IngestOptions, run_ingest

    ws = Workspace.at(workspace)
    adapter_options: dict[str, Any] = {}
    if annotations is not None:
        adapter_options["annotations"] = annotations
    for key, value in (("label_column", label_column), ("split", split), ("config", config)):
        if value is not None:
            adapter_options[key] = value
    adapter_options.update(parse_options(option or []))
    options = IngestOptions(
        source=source,
        path=path,
        label_map=LabelMap.from_yaml(label_map) if label_map else None,
        name=name,
        licence=licence,
        citation=citation,
        adapter_options=adapter_options,
        **given(workers=workers, max_pixels=max_pixels),
    )
    with RichProgress(f"ingest {name or source}") as progress:
        result = run_ingest(ws, options, progress)
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
    console.print(Text.assemble((result.name, "bold"), f" from {result.root}"), highlight=False)
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
    statuses = summary.status_counts(frame)
    if is_usable(frame).any():
        console.print(frame_table(classes, title="Images per class (13-class space)"))
        console.print("label status: " + ", ".join(f"{k} {v:,}" for k, v in statuses.items()), highlight=False)
    else:
        console.print(labelled("no image used:", "bold yellow", "see the notes and rejections for why"))
    unmapped = frame[is_usable(frame) & (frame["label_status"] == "unmapped")]
    if len(unmapped):
        labels = unmapped["source_label"].value_counts()
        console.print(
            "[yellow]unmapped labels (add them to the label map):[/] "
            + ", ".join(f"{k!r} ({v})" for k, v in labels.items()),
            highlight=False,
        )
    if result.proposal_path is not None:
        console.print(
            f"[yellow]label map proposed[/] for them (review it, nothing was applied): {result.proposal_path}\n"
            f"  then re-run this ingest with --label-map {result.proposal_path}",
            highlight=False,
            soft_wrap=True,
        )
    from wbc_data.manifest.explain import rule_lines

    for line in rule_lines(frame):
        console.print(labelled("label rule:", "cyan", line), highlight=False)
    for note in result.notes:
        print_note(note)
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
    root: Annotated[
        list[str] | None,
        typer.Option(
            "--root", help="Re-point a source: NAME=PATH (saved in <workspace>/roots.yaml).", metavar="NAME=PATH"
        ),
    ] = None,
    check: Annotated[
        bool,
        typer.Option("--check", help="Report every usable row whose file is missing or unreadable here (no merge)."),
    ] = False,
    verify: Annotated[
        bool, typer.Option("--verify", help="With --check: also decode every row and compare its pixel hash.")
    ] = False,
    workers: Annotated[
        int | None, typer.Option("--workers", "-j", min=0, help="Worker processes for --verify (0 = every core).")
    ] = None,
) -> None:
    """Merge per-source manifests into the unified manifest; re-point source roots; check that rows open here."""
    from wbc_data.core.roots import parse_root_options
    from wbc_data.manifest.run import ManifestOptions, run_manifest

    options = ManifestOptions(sources=only, explain=explain, roots=parse_root_options(root or []), check=check,
                              verify=verify, **given(workers=workers))  # fmt: skip
    with RichProgress("manifest") as progress:
        result = run_manifest(Workspace.at(workspace), options, progress)
    if result.explanation is not None:
        render_explanation(result.explanation)
    for name, location in result.roots.items():
        console.print(f"root {name} -> {location} (saved in {result.roots_file})", highlight=False)
    for note in result.notes:
        print_note(note)
    if result.check is not None:
        render_check(result.check, result.check_file)
    if result.merged is not None:
        render_merge(result.merged)


def render_merge(result: Any) -> None:
    frame = result.frame
    console.print(frame_table(summary.class_by_source(frame), title="Images per class and source", index=True))
    console.print(f"unified manifest: {result.path} ({len(frame):,} rows)", highlight=False)
    for status in result.stages:
        style = "green" if status.fresh else "yellow"
        console.print(labelled("stage", style, status.message()), highlight=False, soft_wrap=True)
    for path in result.report_paths:
        if path.suffix == ".html":
            console.print(f"report: {path}", highlight=False)


def render_check(result: Any, csv_path: Path | None) -> None:
    """The check's per-source table, the first failing rows and a one-line summary; exit 1 on problems."""
    if result.ok:
        console.print(labelled("ok:", "green", result.summary()), highlight=False)
        return
    console.print(frame_table(result.by_source(), title="Rows that cannot be used here, by source"))
    shown = result.problems.head(20)[["sample_id", "problem", "file"]]
    console.print(frame_table(shown, title=f"First {len(shown)} of {len(result.problems):,}"))
    said = f"{result.summary()} (all rows: {csv_path})"
    console.print(labelled("problems:", "red", said), highlight=False, soft_wrap=True)
    console.print("re-point a source with `wbc-data manifest --root NAME=PATH`", highlight=False)
    raise typer.Exit(1)


def render_explanation(result: Any) -> None:
    from wbc_data.manifest.explain import RULES

    console.print(frame_table(result.table, title=f"How {result.source}'s raw labels were mapped"))
    for status in result.statuses:
        console.print(f"[bold]{status}[/]: {RULES[status]}", highlight=False)
