"""A workspace moved to another machine (here: another folder, its data moved too) opens after `--root`;
`manifest --check` fails with a clear table before and passes after; `--verify` catches changed pixels."""

from __future__ import annotations

import shutil

from typer.testing import CliRunner

from tests.fixtures import mini_bccd, noise, sample_copy
from wbc_data.cli import app
from wbc_data.core.roots import read_roots_file
from wbc_data.core.stages import load_view
from wbc_data.core.workspace import Workspace
from wbc_data.ingest.engine import IngestOptions, ingest
from wbc_data.io.pixels import PixelLoader, row_refs
from wbc_data.manifest.merge import merge

runner = CliRunner()


def usable_rows() -> int:
    """Usable rows of _build's workspace, counted from disk: the sample's PBC cells + mini_bccd's 6 crops."""
    from wbc_data.io.resources import sample_dir

    return sum(1 for p in sample_dir().joinpath("pbc").rglob("*.jpg") if not p.name.startswith(".DS_")) + 6


def _build(tmp_path):
    laptop = tmp_path / "laptop"
    pbc = sample_copy(laptop / "data" / "pbc")
    bccd = mini_bccd(laptop / "data" / "bccd")
    ws = Workspace(laptop / "ws")
    ingest("pbc", pbc, ws, IngestOptions(workers=1))
    ingest("bccd", bccd, ws, IngestOptions(workers=1))
    merge(ws)
    assert runner.invoke(app, ["dedup", "-w", str(ws.root)]).exit_code == 0
    assert runner.invoke(app, ["split", "-w", str(ws.root)]).exit_code == 0
    return laptop, ws


def test_moved_workspace_fails_check_then_opens_after_root(tmp_path):
    laptop, _ws = _build(tmp_path)
    server = tmp_path / "server"
    shutil.move(laptop, server)
    moved = Workspace(server / "ws")

    before = runner.invoke(app, ["manifest", "-w", str(moved.root), "--check"])
    assert before.exit_code == 1, before.output
    text = " ".join(before.output.split())
    assert "Rows that cannot be used here, by source" in text and "missing" in text
    usable = usable_rows()
    assert f"{usable} of {usable} usable rows cannot be used here: {usable} missing" in text
    assert (moved.reports_dir / "check.csv").read_text().count("\n") == usable + 1  # header + every failing row

    new_pbc = server / "data" / "pbc" / "PBC_dataset_normal_DIB"
    result = runner.invoke(app, ["manifest", "-w", str(moved.root), "--root", f"pbc={new_pbc}",
                                 "--root", "bccd=../data/bccd", "--check"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"all {usable} usable rows" in result.output
    assert read_roots_file(moved.root) == {"pbc": str(new_pbc), "bccd": "../data/bccd"}  # relative to the workspace
    assert runner.invoke(app, ["manifest", "-w", str(moved.root), "--check", "--verify", "-j", "2"]).exit_code == 0

    # the moved workspace is fully usable: every row reopens, and the stages' results came along
    loader = PixelLoader.for_workspace(moved)
    view = load_view(moved)
    usable = view.frame[view.frame["status"] == "ok"]
    assert all(loader.open(ref, verify=True) for ref in row_refs(usable))
    assert usable["split"].notna().all() and usable["dup_keep"].notna().all()
    assert all(s.fresh for s in view.stages)

    # a re-merge after the move keeps the roots and the stages
    merged = runner.invoke(app, ["manifest", "-w", str(moved.root)])
    assert merged.exit_code == 0 and "dedup: up to date" in merged.output and "split: up to date" in merged.output


def test_verify_catches_a_changed_file(tmp_path):
    laptop, ws = _build(tmp_path)
    victim = sorted((laptop / "data" / "pbc" / "PBC_dataset_normal_DIB" / "monocyte").glob("*.jpg"))[0]
    noise((360, 363), 1).save(victim, "JPEG")
    assert runner.invoke(app, ["manifest", "-w", str(ws.root), "--check"]).exit_code == 0  # still there
    result = runner.invoke(app, ["manifest", "-w", str(ws.root), "--check", "--verify", "-j", "1"])
    assert result.exit_code == 1 and "1 changed" in result.output and victim.name in result.output


def test_bad_roots_are_one_line(tmp_path):
    _laptop, ws = _build(tmp_path)
    result = runner.invoke(app, ["manifest", "-w", str(ws.root), "--root", "nosuch=/x"])
    assert result.exit_code == 2 and "no source of that name" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["manifest", "-w", str(ws.root), "--root", "pbc"])
    assert result.exit_code == 2 and "expected NAME=PATH" in result.output
    (ws.root / "roots.yaml").write_text("- just\n- a list\n")
    result = runner.invoke(app, ["manifest", "-w", str(ws.root), "--check"])
    assert result.exit_code == 2 and "roots.yaml" in result.output and "Traceback" not in result.output


def test_reingest_elsewhere_drops_a_stale_override(tmp_path):
    laptop, ws = _build(tmp_path)
    said = runner.invoke(app, ["manifest", "-w", str(ws.root), "--root", "pbc=/old/place"])
    assert said.exit_code == 0 and "no such folder here (saved anyway" in " ".join(said.output.split())
    moved = tmp_path / "pbc-here"
    shutil.copytree(laptop / "data" / "pbc", moved)
    ingest("pbc", moved, ws, IngestOptions(workers=1))
    assert "pbc" not in read_roots_file(ws.root)  # ingest just said where pbc lives
    merge(ws)
    assert runner.invoke(app, ["manifest", "-w", str(ws.root), "--check"]).exit_code == 0
