"""The command line as a user meets it: help, sources, demo, ingest, manifest, and one-line errors."""

from __future__ import annotations

from typer.testing import CliRunner

from wbc_data.cli import app
from wbc_data.io.resources import sample_dir

runner = CliRunner()


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("sources", "ingest", "manifest", "demo"):
        assert command in result.output


def test_sources_lists_every_definition():
    result = runner.invoke(app, ["sources"])
    assert result.exit_code == 0
    for name in ("pbc", "aml-lmu", "raabin", "imagefolder"):
        assert name in result.output
    assert "CC BY 4.0" in result.output and "doi:10.17632/snkd93bnjr.1" in result.output
    assert "-o top_level=..." in result.output and "-o master=..." in result.output  # each adapter's options


def test_ingest_prints_summary(tmp_path):
    result = runner.invoke(app, ["ingest", "pbc", str(sample_dir() / "pbc"), "-w", str(tmp_path), "-j", "1"])
    assert result.exit_code == 0, result.output
    assert "files seen" in result.output and "coarse" in result.output


def _one_line_error(result, *needles):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    text = " ".join(lines)
    assert text.startswith("error:"), text
    for needle in needles:
        assert needle in text, (needle, text)


def test_bad_inputs_are_one_line_errors(tmp_path):
    _one_line_error(runner.invoke(app, ["ingest", "pbc", str(tmp_path / "missing"), "-w", str(tmp_path)]),
                    "missing", "no such folder")  # fmt: skip
    _one_line_error(runner.invoke(app, ["ingest", "nosuch", str(tmp_path)]), "unknown source")
    bad_map = tmp_path / "map.yaml"
    bad_map.write_text("neutrophil: NEUT\n")
    _one_line_error(
        runner.invoke(app, ["ingest", "imagefolder", str(tmp_path), "--label-map", str(bad_map)]), "map.yaml", "NEUT"
    )
    _one_line_error(runner.invoke(app, ["manifest", "-w", str(tmp_path / "empty-ws")]), "nothing ingested")


def test_dedup_finds_a_cropped_copy_only_with_crop_search(tmp_path):
    """A real sample cell and an 8%-cropped, rotated copy of it: found by the crop hashes, and (issue 9) by the
    any-angle search too when crop hashes are off; the manifest names the crop either way."""
    from PIL import Image

    from wbc_data.core.stages import load_view
    from wbc_data.core.workspace import Workspace

    src = next((sample_dir() / "pbc" / "PBC_dataset_normal_DIB" / "eosinophil").glob("EO_*.jpg"))
    root = tmp_path / "folder"
    (root / "eo").mkdir(parents=True)
    with Image.open(src) as image:
        image.save(root / "eo" / "original.png")
        w, h = image.size
        image.crop((int(0.06 * w), int(0.02 * h), w, int(0.94 * h))).rotate(90, expand=True).save(root / "eo" / "c.png")
    ws = tmp_path / "ws"
    assert runner.invoke(app, ["ingest", "imagefolder", str(root), "-w", str(ws), "-j", "1"]).exit_code == 0
    assert runner.invoke(app, ["manifest", "-w", str(ws)]).exit_code == 0

    def dropped(*flags):
        result = runner.invoke(app, ["dedup", "-w", str(ws), *flags])
        assert result.exit_code == 0, result.output
        frame = load_view(Workspace(ws), ["source_path"]).frame
        return frame[frame.dup_keep.eq(False).fillna(False)]

    for flags in ((), ("--no-crops",)):
        found = dropped(*flags)
        assert len(found) == 1 and "crop" in found.dup_transform.iloc[0], flags


def test_readme_sources_table_is_the_definitions_table():
    """The README's supported-sources table is `wbc-data sources --markdown`: it cannot drift from the YAML files."""
    from pathlib import Path

    from wbc_data.sources.catalogue import sources_markdown

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    table = sources_markdown()
    assert table in readme, "README's sources table is stale: paste `wbc-data sources --markdown`"
    result = runner.invoke(app, ["sources", "--markdown"])
    assert result.exit_code == 0 and result.output.strip() == table
    assert table.count("\n| `") == len(list((Path(__file__).resolve().parent.parent / "manifests").glob("*.yaml")))


def test_messages_print_what_the_user_typed_and_say_a_word_once():
    """A user's text in an error or note is not read as Rich markup or emoji codes (``uniform:abc:`` became an
    emoji, ``[abc]`` would vanish), and a message that starts with its label's word does not get a second one."""
    import io

    from rich.console import Console

    from wbc_data.cli.common import console, err_console, labelled

    assert not console._emoji and not err_console._emoji  # Rich keeps the setting private
    typed = "--target uniform:abc: is not a target [abc] [bold]x[/bold]"
    out = io.StringIO()
    Console(file=out, emoji=False, width=200).print(labelled("error:", "bold red", typed), highlight=False)
    assert out.getvalue().strip() == f"error: {typed}"
    said = "interrupted after 12 of 40 files"
    assert labelled("interrupted:", "yellow", said).plain == said
    assert labelled("note:", "yellow", "warning: no master.csv").plain == "note: warning: no master.csv"


def test_an_unknown_adapter_option_is_one_line_naming_what_the_adapter_takes(tmp_path):
    args = ["ingest", "pbc", str(sample_dir() / "pbc"), "-w", str(tmp_path / "ws"), "-o", "bogus=1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "pbc: no option 'bogus' (its options: none)" in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_bad_values_are_one_line_before_any_work(tmp_path):
    """Inputs a user mistypes are refused up front, in one line naming the option (these were a traceback, or
    accepted and ignored)."""
    ws = str(tmp_path / "ws")
    cases = [
        (["train", "-w", ws, "--recipe", "demo-lite0", "--hold-rare", "XYZ=3"], "--hold-rare: unknown class(es) XYZ"),
        (["dedup", "-w", ws, "--device", "gpu"], "--device gpu: use auto, cpu or cuda"),
        (["gap-report", "-w", ws, "--quota", str(tmp_path)], f"--quota {tmp_path}: a folder"),
    ]
    for args, said in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert said in " ".join(result.output.split()) and "Traceback" not in result.output, result.output


def test_a_path_that_looks_like_markup_is_printed_as_typed(tmp_path):
    """Through the CLI's own error path: a folder named like a Rich closing tag used to raise MarkupError (a
    traceback), and ``[copy]`` vanished."""
    for name in ("x[/old]", "cells [copy]"):
        missing = tmp_path / name
        result = runner.invoke(app, ["ingest", "pbc", str(missing), "-w", str(tmp_path / "ws")])
        assert result.exit_code == 2, result.output
        assert f"{missing}: no such folder" in " ".join(result.output.split()) and "Traceback" not in result.output
