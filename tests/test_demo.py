"""`wbc-data demo` at its smallest setting (``--quick``): every step of the road runs on the shipped sample, each
printed command is one the CLI accepts and does what the demo did, the one report holds every section, re-running
reuses finished work, and the report reads in a real browser."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from wbc_data.cli import app
from wbc_data.io.resources import sample_dir

runner = CliRunner()
STEPS = 16


def printed_commands(output: str) -> list[list[str]]:
    """The ``$ wbc-data ...`` lines the demo printed, as argument lists (after ``wbc-data``)."""
    found = []
    for line in output.splitlines():
        if line.startswith("$ wbc-data "):
            found.append(shlex.split(line[len("$ wbc-data ") :]))
    return found


def parse(args: list[str]) -> typer.Context:
    """Parse ``args`` as the installed CLI would, without running anything: Typer's click raises a UsageError
    (NoSuchOption, BadParameter, MissingParameter...) on a command it would refuse."""
    command = typer.main.get_command(app)
    ctx = command.make_context("wbc-data", list(args))
    while hasattr(command, "get_command"):  # a group: what its own options leave names the subcommand, if any
        rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
        if not rest:
            return ctx  # a group run as a command itself (`wbc-data synth --cls PMY ...`)
        found = command.get_command(ctx, rest[0])
        assert found is not None, f"no command {rest[0]!r}"
        command, ctx = found, found.make_context(rest[0], rest[1:], parent=ctx)
    return ctx


def with_workspace(args: list[str], workspace: Path) -> list[str]:
    out = list(args)
    out[out.index("-w") + 1] = str(workspace)
    return out


def test_every_step_runs_and_the_report_holds_every_section(demo_run):
    ws, output = demo_run
    assert f"{STEPS} step(s) run in" in output and "0 reused" in output
    state = json.loads((ws / "demo" / "state.json").read_text())
    assert len(state["done"]) == STEPS and state["settings"]["quick"] is True
    index = (ws / "reports" / "index.html").read_text()
    sections = set(re.findall(r'<section id="([^"]+)"', index))
    expected = {"manifest", "dedup", "split", "gap-report", "synth-demo-pmy", "evaluate-compare", "publish-card"}
    assert expected <= sections
    verdict = re.search(r"Did the synthetic PMY cells help\?</b> They (helped|hurt|made no detectable change) here: "
                        r".*?interval ([-+0-9.]+) to ([-+0-9.]+)\)", index)  # fmt: skip
    assert verdict, "the report says plainly whether the synthetic cells helped"
    low, high = float(verdict.group(2)), float(verdict.group(3))
    expected = "helped" if low > 0 else "hurt" if high < 0 else "made no detectable change"
    assert verdict.group(1) == expected and low <= high
    for picture in (
        "Images per class and source",  # class distribution
        "Largest clusters",  # duplicate contact sheet
        "Own vs external vs target",  # gap chart
        "Real training images (left) and accepted samples (right)",  # synthetic grid next to real cells
        "Confusion matrix",
        "Per-class F1",  # the with/without comparison
        "The most confident mistakes",  # the cells behind the confusion matrix
    ):
        assert re.search(rf'<img alt="{re.escape(picture)}[^"]*" src="data:image/png;base64,', index), picture
    assert index.count("<code class='cmd'>wbc-data ") == STEPS  # the steps table: every command, with its time
    assert "Dataset card" in index and "Citations" in index


@dataclass(frozen=True)
class Transform:
    mirror: bool
    angle: float
    scale: float


def parse_transform(text: str) -> Transform:
    """``mirror rot 37 scale 1.09 shift 5,-4`` (dedup's ``dup_transform``) back into numbers."""
    found = re.fullmatch(r"(mirror )?rot (-?\d+)(?: scale ([\d.]+))?(?: shift -?\d+,-?\d+)?", text.strip())
    assert found, f"not a registration: {text!r}"
    return Transform(bool(found.group(1)), float(found.group(2)), float(found.group(3) or 1.0))


def angle_difference(a: float, b: float) -> float:
    """Degrees between two angles, the short way round."""
    return abs((a - b + 180) % 360 - 180)


def test_parse_transform_and_angle_difference():
    assert parse_transform("mirror rot 38 scale 1.09 shift 5,-4") == Transform(True, 38.0, 1.09)
    assert parse_transform("rot -121") == Transform(False, -121.0, 1.0)
    assert angle_difference(-121, 239) == 0 and angle_difference(38, 37) == 1 and angle_difference(179, -179) == 2
    assert angle_difference(37, -37) == 74  # a wrong angle still fails


def test_dedup_links_the_real_copies_and_the_augmented_copies_to_their_originals(demo_run):
    """The sample's Kaggle files copy PBC byte for byte; its re-upload holds PBC cells rotated 37 and -121 degrees
    with filled corners, shifted, zoomed and recompressed (wbc_data/sample/README.md): all are found and dropped,
    each in one cluster with its PBC original, which is kept."""
    from wbc_data.core.stages import load_view
    from wbc_data.core.workspace import Workspace

    frame = load_view(Workspace(demo_run[0])).frame
    dropped = frame[frame["dup_keep"].eq(False).fillna(False)]
    assert (dropped["source"] == "kaggle-cancer-mix").sum() == 6
    augmented = dropped[dropped["source"] == "reupload"].set_index("source_path")
    assert len(augmented) == 2
    copies = (  # (copy, original, flipped, angle, zoom) as wbc_data/sample/README.md says they were made
        ("train/Eosinophil/aug_37_EO_100213.jpg", "eosinophil/EO_100213.jpg", True, 37, 1.1),
        ("train/Metamyelocyte/aug_121_MMY_100949.jpg", "ig/MMY_100949.jpg", False, -121, 0.9),
    )
    for path, original_path, flipped, angle, zoom in copies:
        copy = augmented.loc[path]
        cluster = frame[frame["dup_cluster"] == copy["dup_cluster"]]
        original = cluster[cluster["source"] == "pbc"]
        assert len(cluster) == 2 and len(original) == 1 and bool(original["dup_keep"].iloc[0])
        assert original["source_path"].iloc[0].endswith(original_path)
        found = parse_transform(copy["dup_transform"])
        assert found.mirror == flipped, copy["dup_transform"]
        # the recovered angle is an FFT peak: right to a degree or two, not identical on every CPU
        assert angle_difference(found.angle, angle) <= 3, copy["dup_transform"]
        assert abs(found.scale - 1 / zoom) <= 0.05 or abs(found.scale - zoom) <= 0.05, copy["dup_transform"]


def test_the_rare_class_is_generated_and_compared_on_real_test_images(demo_run):
    from wbc_data.core import manifest
    from wbc_data.core.stages import load_view
    from wbc_data.core.workspace import Workspace

    ws = Workspace(demo_run[0])
    synthetic = manifest.read_frame(ws.source_manifest("synth-demo-pmy"))
    accepted = synthetic[synthetic["status"] == "ok"]
    assert len(accepted) == 6 and set(accepted["label"]) == {"PMY"}
    view = load_view(ws).frame
    assert set(view[view["is_synthetic"].fillna(False).astype(bool)]["split"]) == {"train"}
    metrics = json.loads((ws.reports_dir / "evaluate-compare" / "metrics.json").read_text())
    assert {"with-synthetic", "real-only"} <= set(json.dumps(metrics).split('"'))
    difference = metrics["difference"]  # how far the images can tell the two apart, said on the step's line
    assert (difference["first"], difference["second"]) == ("real-only", "with-synthetic")  # + when synthetic helped
    assert difference["low"] <= difference["change"] <= difference["high"]
    assert f"with-synthetic - real-only {difference['change']:+.3f}, 95% interval" in demo_run[1]
    published = next((ws.root / "publish").iterdir())
    import datasets

    loaded = datasets.load_dataset(str(published))
    assert sum(loaded["train"]["is_synthetic"]) == len(accepted)
    assert loaded["train"].features["label"].names[-1] == "PMY"


def test_every_printed_command_parses_and_repeats_the_step(demo_run, tmp_path):
    ws, output = demo_run
    commands = printed_commands(output)
    assert len(commands) == STEPS
    for args in commands:
        parse(args)  # raises click.UsageError / BadParameter on an option the CLI does not have
    for bad in (["split", "--no-such-option"], ["synth", "train", "--steps", "many"], ["ingest"]):
        with pytest.raises(Exception) as refused:  # the check can fail
            parse(bad)
        assert "UsageError" in [c.__name__ for c in type(refused.value).__mro__], bad
    # the printed commands do what the demo did: repeat ingest -> merge -> dedup -> split in a new workspace
    copy = tmp_path / "ws"
    for args in commands[:8]:
        if args[:2] == ["ingest", "imagefolder"] and "--label-map" not in args:
            continue  # the proposal step: its map is read from the demo's workspace below
        args = [str(ws / "label-maps" / "reupload.proposed.yaml") if a.endswith(".proposed.yaml") else a for a in args]
        result = runner.invoke(app, with_workspace(args, copy))
        assert result.exit_code == 0, (args, result.output)
    for stage in ("dedup", "split"):
        mine, theirs = (pd.read_parquet(w / "stages" / f"{stage}.parquet") for w in (copy, ws))
        keyed = [frame.sort_values("sample_id").reset_index(drop=True) for frame in (mine, theirs)]
        pd.testing.assert_frame_equal(*keyed)


def test_rerun_reuses_finished_steps_and_fresh_starts_over(demo_run, tmp_path):
    ws = tmp_path / "ws"
    shutil.copytree(demo_run[0], ws)
    again = runner.invoke(app, ["demo", "--quick", "-w", str(ws), "-j", "1"])
    assert again.exit_code == 0, again.output
    assert f"0 step(s) run in 0 s, {STEPS} reused" in again.output
    (ws / "reports" / "evaluate-compare" / "report.html").unlink()  # a lost output: that step and later ones redo
    redo = runner.invoke(app, ["demo", "--quick", "-w", str(ws), "-j", "1"])
    assert redo.exit_code == 0, redo.output
    assert "2 step(s) run" in redo.output and f"{STEPS - 2} reused" in redo.output
    assert (ws / "reports" / "evaluate-compare" / "report.html").is_file()

    other = tmp_path / "real-work"
    (other / "keep.txt").parent.mkdir()
    (other / "keep.txt").write_text("a user's file")
    for flags in ([], ["--fresh"]):
        refused = runner.invoke(app, ["demo", "--quick", "-w", str(other), *flags])
        assert refused.exit_code == 2, refused.output
        assert "not a demo workspace" in refused.output or "holds other work" in refused.output, refused.output
        assert "Traceback" not in refused.output and (other / "keep.txt").read_text() == "a user's file"


def test_demo_report_reads_in_chromium(demo_run, tmp_path):
    from browser import assert_readable, check_in_browser

    index = demo_run[0] / "reports" / "index.html"
    facts = check_in_browser(index, tmp_path / "index.png")
    assert_readable(facts, index.parent)
    assert {"manifest", "dedup", "split", "gap-report", "evaluate-compare", "publish-card"} <= set(facts["sections"])


def test_demo_then_manifest(demo_run, tmp_path):
    import hashlib
    import shutil

    from wbc_data.core.stages import load_view
    from wbc_data.core.workspace import Workspace

    ws = tmp_path / "ws"
    shutil.copytree(demo_run[0], ws)
    assert "1 rejected with a reason" in demo_run[1] and (ws / "manifest.parquet").is_file()
    # dedup ran: every Kaggle sample file that is byte-identical to a PBC sample file is a dropped duplicate
    pbc = {hashlib.sha256(p.read_bytes()).hexdigest() for p in (sample_dir() / "pbc").rglob("*.jpg")}
    copies = [p for p in (sample_dir() / "kaggle_cancer_mix").rglob("*.jpg")
              if hashlib.sha256(p.read_bytes()).hexdigest() in pbc]  # fmt: skip
    frame = load_view(Workspace(ws), ["source"]).frame
    dropped = frame[frame.dup_keep.eq(False).fillna(False)]
    assert len(copies) == 6 and (dropped.source == "kaggle-cancer-mix").sum() == len(copies)
    assert "pbc" not in set(dropped.source)  # the original is kept, the re-upload's copy dropped
    assert (ws / "reports" / "gap-report.html").is_file() and (ws / "reports" / "synth-plan.yaml").is_file()
    result = runner.invoke(app, ["manifest", "-w", str(ws)])
    assert result.exit_code == 0 and "kaggle-cancer-mix" in result.output and "pbc" in result.output


def test_manifest_report_written(demo_run):
    import numpy as np
    from PIL import Image

    from wbc_data.core.taxonomy import CLASSES

    ws = demo_run[0]
    png = ws / "reports" / "class-distribution.png"
    with Image.open(png) as image:
        assert image.size[0] > 500 and len(np.unique(np.asarray(image.convert("L")))) > 10  # a real chart, not blank
    html = (ws / "reports" / "manifest.html").read_text()
    assert all(f"<td>{c}</td>" in html for c in CLASSES) and "data:image/png;base64," in html
    assert "not an image" in (ws / "reports" / "manifest.md").read_text()
