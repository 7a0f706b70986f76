"""Issue 18's one stage shape: ``Options`` (the only place the defaults live) -> ``run(workspace, options,
progress) -> Result`` for ingest, merge and train, and the CLI passes only what the user gave."""

from __future__ import annotations

import dataclasses

import pytest

from wbc_data.core.errors import UserError
from wbc_data.ingest.engine import IngestOptions, ingest, run_ingest
from wbc_data.io.resources import sample_dir
from wbc_data.manifest.merge import MergeOptions, merge, run_merge


class Recorded:
    def __init__(self) -> None:
        self.phases: list[str] = []

    def phase(self, name: str, total: int | None = None) -> None:
        self.phases.append(name)

    def advance(self, done: int, total: int | None = None, **stats: float) -> None:
        pass

    def note(self, text: str) -> None:
        pass


def test_ingest_and_merge_run_from_their_options(workspace):
    """run_ingest reads what to ingest from its options (ingest() is its shorthand, same rows); run_merge writes the
    unified manifest and its report, reporting its phases."""
    bccd = sample_dir() / "bccd"
    first = run_ingest(workspace, IngestOptions(source="bccd", path=bccd, workers=1))
    again = ingest("bccd", bccd, workspace, IngestOptions(workers=1))
    assert first.frame["sample_id"].tolist() == again.frame["sample_id"].tolist() and len(first.frame) > 10
    progress = Recorded()
    result = run_merge(workspace, MergeOptions(), progress)
    assert progress.phases == ["merge", "report"]
    assert [p.name for p in result.report_paths] == ["manifest.md", "manifest.html"]
    assert all(p.is_file() for p in result.report_paths)
    assert len(result.frame) == len(merge(workspace).frame) == len(first.frame)
    quiet = run_merge(workspace, MergeOptions(sources=["bccd"], reports=False))
    assert quiet.report_paths == [] and len(quiet.frame) == len(first.frame)
    with pytest.raises(UserError, match="no ingested source named nope"):
        run_merge(workspace, MergeOptions(sources=["nope"]))
    with pytest.raises(UserError, match="name a source"):
        run_ingest(workspace, IngestOptions(path=bccd))


def test_train_options_read_the_recipe_with_overrides_and_members():
    from wbc_data.train.run import TrainOptions

    recipe = TrainOptions(recipe="tiny-cpu", overrides=["data.batch_size=4"]).load_recipe()
    assert recipe.data.batch_size == 4 and len(recipe.members) >= 2
    one = TrainOptions(recipe="tiny-cpu", members=[recipe.members[1].name]).load_recipe()
    assert [m.name for m in one.members] == [recipe.members[1].name]
    assert TrainOptions(recipe=recipe).load_recipe() is recipe
    with pytest.raises(UserError, match="name a recipe"):
        TrainOptions().load_recipe()


@pytest.mark.parametrize(
    ("command", "options_class", "fields"),
    [
        ("ingest", "wbc_data.ingest.engine.IngestOptions", {"workers", "max_pixels"}),
        ("train", "wbc_data.train.run.TrainOptions", {"synthetic_ratio", "workers"}),
    ],
)
def test_the_cli_leaves_the_defaults_to_the_options(command, options_class, fields):
    """Options the library defaults are None in the CLI (not restated there): the dataclass decides."""
    import importlib

    import typer.main

    from wbc_data.cli import app

    module, name = options_class.rsplit(".", 1)
    defaults = {f.name: f.default for f in dataclasses.fields(getattr(importlib.import_module(module), name))}
    click_command = typer.main.get_command(app).commands[command]
    cli_defaults = {p.name: p.default for p in click_command.params}
    for field in fields:
        assert field in defaults and cli_defaults[field] is None, (field, cli_defaults[field])


def test_the_manifest_command_jobs_run_in_the_library(workspace, tmp_path):
    """run_manifest does the four jobs the command asks for: merge; explain only; re-point a root and check (no
    merge, every row missing, the CSV written); re-point back and the check passes."""
    from wbc_data.manifest.run import ManifestOptions, run_manifest

    bccd = sample_dir() / "bccd"
    run_ingest(workspace, IngestOptions(source="bccd", path=bccd, workers=1))
    merged = run_manifest(workspace, ManifestOptions(reports=False)).merged
    assert merged is not None and len(merged.frame) > 10
    explained = run_manifest(workspace, ManifestOptions(explain="bccd"))
    assert explained.explanation is not None and explained.merged is None and explained.check is None
    assert explained.explanation.source == "bccd" and len(explained.explanation.table)
    (tmp_path / "elsewhere").mkdir()
    moved = run_manifest(workspace, ManifestOptions(roots={"bccd": str(tmp_path / "elsewhere")}, check=True))
    assert moved.roots_file is not None and moved.roots_file.is_file() and moved.merged is None
    assert moved.check is not None and not moved.check.ok and moved.check_file is not None
    assert len(moved.check.problems) == moved.check.checked > 0 and moved.check_file.is_file()
    back = run_manifest(workspace, ManifestOptions(roots={"bccd": str(bccd)}, check=True))
    assert back.check is not None and back.check.ok and back.check_file is None
    with pytest.raises(UserError, match="no source of that name"):
        run_manifest(workspace, ManifestOptions(roots={"nope": str(bccd)}))


def test_each_demo_step_calls_what_its_printed_command_says(tmp_path, monkeypatch):
    """The demo's printed argv, parsed by the real CLI, holds the values its library call receives (ingest, dedup,
    split, train: the stage entry points are replaced by recorders, nothing runs)."""
    from pathlib import Path

    import typer.main

    from wbc_data.cli import app
    from wbc_data.core.workspace import Workspace
    from wbc_data.demo.run import DemoSettings, plan_steps

    calls: list[tuple[str, object]] = []
    for target, kind in (("wbc_data.ingest.engine.run_ingest", "ingest"), ("wbc_data.dedup.run.dedup", "dedup"),
                         ("wbc_data.split.run_split", "split"), ("wbc_data.train.run.run_train", "train")):  # fmt: skip
        monkeypatch.setattr(target, lambda ws, options, progress=None, kind=kind: calls.append((kind, options)))
    monkeypatch.setattr("wbc_data.demo.steps.synthetic_train_rows", lambda ws: 1)  # train-mix: as if samples passed
    commands = typer.main.get_command(app).commands
    checked = set()
    for step in plan_steps(Workspace(tmp_path / "ws"), DemoSettings(quick=True, workers=2)):
        name, *args = step.command.argv
        if name not in ("ingest", "dedup", "split", "train") or "--label-map" in args:
            continue  # the reviewed map does not exist before the demo proposes it
        calls.clear()
        step.run()
        (kind, options), params = calls[0], commands[name].make_context(name, list(args)).params
        assert kind == name and Path(params["workspace"]) == tmp_path / "ws"
        if name == "ingest":
            assert (options.source, options.path, options.name, options.licence, options.workers) == (
                params["source"],
                Path(params["path"]),
                params["name"],
                params["licence"],
                params["workers"],
            )
        elif name == "dedup":
            assert options.workers == params["workers"] == 2
        elif name == "split":
            assert (options.val, options.test, options.seed) == (params["val"], params["test"], params["seed"])
        else:
            assert (options.recipe, options.overrides, Path(options.out), options.synthetic_ratio) == (
                params["recipe"],
                params["overrides"],
                Path(params["out"]),
                params["synthetic_ratio"],
            )
        checked.add(step.key)
    assert {"ingest-pbc", "propose-map", "dedup", "split", "train-real", "train-mix"} <= checked


def test_report_csv_sidecars_hold_the_table_as_pandas_writes_it(tmp_path):
    """The one CSV sidecar writer (wbc_data.report.document.write_csv): the table's text exactly as pandas writes
    it, with or without the index, floats formatted when asked; folders are made."""
    import pandas as pd

    from wbc_data.report.document import write_csv

    table = pd.DataFrame({"class": ["SNE", "BA"], "f1": [0.123456, 1.0]}).set_index("class")
    plain = write_csv(tmp_path / "a" / "plain.csv", table.reset_index())
    assert plain.read_text() == "class,f1\nSNE,0.123456\nBA,1.0\n"
    indexed = write_csv(tmp_path / "indexed.csv", table, index=True, float_format="%.4f")
    assert indexed.read_text() == "class,f1\nSNE,0.1235\nBA,1.0000\n"


def test_synth_train_takes_options_whose_recipe_flags_fit_its_kind():
    """`wbc-data synth train` builds SynthTrainOptions and calls run_synth_train; the recipe logic (overrides, which
    flag fits which kind of recipe) lives in the options, not in the CLI."""
    import pytest

    from wbc_data.synth import SynthError
    from wbc_data.synth.train import SynthTrainOptions

    options = SynthTrainOptions(recipe="tiny-latent", steps=3, checkpoint_every=3, init_from="pretrained:x")
    built = options.build_recipe()
    assert (built.train.steps, built.train.checkpoint_every, built.init_from) == (3, 3, "pretrained:x")
    assert SynthTrainOptions(recipe="tiny-cpu", overrides=["train.batch_size=4"]).build_recipe().train.batch_size == 4
    with pytest.raises(SynthError, match="--base: recipe tiny-cpu"):
        SynthTrainOptions(recipe="tiny-cpu", base="some/model").build_recipe()
    with pytest.raises(SynthError, match="no recipe"):
        SynthTrainOptions().build_recipe()
