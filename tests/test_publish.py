"""`wbc-data publish` offline: the folder loads back with `datasets.load_dataset`, pixel-identical; the card says
what the Hub and a person need; licences refuse and relabel before anything is written; bad input is one line.
Built from the real sample shipped in the package and generated fixtures (no ../shared needed)."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.publish_workspaces import add_source, add_synthetic, finish, permissive_workspace
from wbc_data.cli import app
from wbc_data.core.progress import NullProgress
from wbc_data.core.stages import load_view
from wbc_data.core.taxonomy import CLASSES
from wbc_data.core.workspace import Workspace
from wbc_data.imaging.decode import decode_rgb
from wbc_data.imaging.signatures import pixel_hash
from wbc_data.ingest.engine import IngestOptions, ingest
from wbc_data.io.pixels import PixelLoader, row_ref
from wbc_data.io.resources import sample_dir
from wbc_data.publish import LicenceRefused, PublishError, PublishOptions, build_folder, plan_publish, publish
from wbc_data.publish.folder import MARKER
from wbc_data.publish.rows import choose_rows

runner = CliRunner()


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Workspace:
    return permissive_workspace(tmp_path_factory.mktemp("publish"))


@pytest.fixture(scope="module")
def built(ws, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "repo"
    return publish(ws, PublishOptions("my-lab/wbc-test", dry_run=True, out=out))


def load(folder):
    import datasets

    datasets.disable_progress_bars()
    return datasets.load_dataset(str(folder), cache_dir=str(folder.parent / "hf-cache"))


# --------------------------------------------------------------------------- the folder


def _plain(value):
    return None if value is None or (not isinstance(value, (list, np.ndarray)) and pd.isna(value)) else value


def test_folder_loads_back_with_every_row_pixel_identical(ws, built):
    import datasets

    dd = load(built.built.out)
    view = load_view(ws)
    expected = choose_rows(view, include_synthetic=False)
    assert isinstance(dd, datasets.DatasetDict) and list(dd) == ["train", "validation", "test"]
    for split in dd:
        want = expected.split(split)
        assert dd[split].num_rows == len(want) > 0
        assert dd[split]["sample_id"] == want["sample_id"].tolist()
        assert dd[split].features["label"].names == list(CLASSES)
        assert dd[split]["label"] == [CLASSES.index(c) for c in want["label"]]
    train = dd["train"]
    provenance = ["source", "source_label", "label_status", "label_candidates", "group_id", "patient_id",
                  "is_synthetic", "licence", "citation", "source_path", "crop_box", "parent_id"]  # fmt: skip
    assert set(provenance) <= set(train.column_names)
    assert not {"source_root", "thumb", "extra", "split"} & set(train.column_names)  # no paths, no thumbnails
    frame = view.frame.set_index("sample_id")
    loader = PixelLoader.for_workspace(ws)
    kinds = set()
    for split in dd:
        raw = dd[split].cast_column("image", datasets.Image(decode=False))
        for i, row in enumerate(raw):
            manifest_row = frame.loc[row["sample_id"]]
            for column in ("source", "licence", "citation", "patient_id", "group_id", "source_label", "source_path"):
                assert row[column] == _plain(manifest_row[column]), (column, row["sample_id"])
            data = row["image"]["bytes"]
            rgb = decode_rgb(data).rgb
            assert pixel_hash(rgb) == manifest_row["pixel_hash"], row["sample_id"]  # what ingest hashed
            if manifest_row["crop_box"] is None:
                assert hashlib.sha256(data).hexdigest() == manifest_row["sha256"]  # the very bytes of the source
                kinds.add(f"file:{Image.open(io.BytesIO(data)).format}:{Image.open(io.BytesIO(data)).mode}")
            else:
                assert Image.open(io.BytesIO(data)).format == "PNG"
                assert row["crop_box"] == list(manifest_row["crop_box"])
                kinds.add("crop")
            expected_pixels = np.asarray(loader.open(row_ref(manifest_row.to_dict() | {"sample_id": row["sample_id"]})))
            decoded = dd[split][i]["image"]
            if decoded.mode == "RGB":  # what load_dataset hands a user is the same array
                assert np.array_equal(np.asarray(decoded), expected_pixels)
    assert {"crop", "file:JPEG:RGB", "file:PNG:RGB", "file:TIFF:RGBA"} <= kinds, kinds


def test_shards_follow_the_hub_layout_with_small_row_groups(built):
    from wbc_data.publish.shards import ROWS_PER_ROW_GROUP

    files = [f.path for f in built.built.files]
    assert files == sorted(files) and "README.md" in files and "images/gap-report-classes.png" in files
    shards = [f for f in files if f.startswith("data/")]
    assert shards == [f"data/{s}-00000-of-00001.parquet" for s in ("test", "train", "validation")]
    for shard in shards:
        meta = pq.ParquetFile(built.built.out / shard).metadata
        assert all(meta.row_group(g).num_rows <= ROWS_PER_ROW_GROUP for g in range(meta.num_row_groups))
        assert b"huggingface" in meta.metadata  # the features travel with the file
    text = "\n".join(str(p) for p in (built.built.out / "data").iterdir())
    assert ".partial" not in text and not (built.built.out.parent / f".{built.built.out.name}.building").exists()


def test_many_shards_and_row_groups_stream(ws, tmp_path, monkeypatch):
    """A split larger than the shard size is cut into -of-N files of small row groups, loaded back in order."""
    import datasets

    from wbc_data.publish import shards
    from wbc_data.publish.hfdata import PUBLISHED_COLUMNS, features

    monkeypatch.setattr(shards, "ROWS_PER_ROW_GROUP", 3)
    rows = choose_rows(load_view(ws), include_synthetic=False).split("train")
    columns = [c for c in PUBLISHED_COLUMNS if c in rows.columns]
    seen = []
    result = shards.write_split(rows, PixelLoader.for_workspace(ws), columns, features(columns), tmp_path / "data",
                                "train", advance=seen.append, max_shard_bytes=60_000)  # fmt: skip
    count = len(result.paths)
    assert count >= 3 and sum(seen) == len(rows) == result.num_examples
    assert [p.name for p in result.paths] == [f"train-{i:05d}-of-{count:05d}.parquet" for i in range(count)]
    for path in result.paths:
        meta = pq.ParquetFile(path).metadata
        assert all(meta.row_group(g).num_rows <= 3 for g in range(meta.num_row_groups))
    loaded = datasets.Dataset.from_parquet([str(p) for p in result.paths], cache_dir=str(tmp_path / "cache"))
    assert loaded["sample_id"] == rows["sample_id"].tolist()
    assert loaded.features["label"].names == list(CLASSES)


def test_same_data_gives_the_same_bytes(ws, built, tmp_path):
    again = publish(ws, PublishOptions("my-lab/wbc-test", dry_run=True, out=tmp_path / "again"))
    assert [(f.path, f.sha256) for f in again.built.files] == [(f.path, f.sha256) for f in built.built.files]


def test_nothing_names_this_machine(ws, built):
    """No absolute path of the workspace or of the sources ends up in the shards or the card."""
    needles = [str(ws.root.parent).encode(), str(sample_dir()).encode()]
    for f in built.built.files:
        data = (built.built.out / f.path).read_bytes()
        assert not any(n in data for n in needles), f.path


# --------------------------------------------------------------------------- the card


def test_card_front_matter_is_what_the_hub_reads(built):
    from huggingface_hub import DatasetCard

    card = DatasetCard.load(built.built.out / "README.md")
    data = card.data.to_dict()
    assert data["license"] == "cc-by-4.0" and data["task_categories"] == ["image-classification"]
    assert data["size_categories"] == ["n<1K"]
    assert set(data["source_datasets"]) == {"extended|bccd", "extended|hub", "extended|odd", "extended|pbc"}
    info = data["dataset_info"]
    label = next(f for f in info["features"] if f["name"] == "label")
    assert list(label["dtype"]["class_label"]["names"].values()) == list(CLASSES)
    counts = {s["name"]: s["num_examples"] for s in info["splits"]}
    assert counts == {s.split: s.num_examples for s in built.built.splits}
    assert data["configs"] == [{"config_name": "default", "data_files": [
        {"split": s, "path": f"data/{s}-*"} for s in ("train", "validation", "test")]}]  # fmt: skip


def test_card_body_tells_a_person_what_is_inside(ws, built):
    text = (built.built.out / "README.md").read_text(encoding="utf-8")
    body = text.split("\n---\n", 1)[1]
    for heading in ("Load it", "Licence", "Splits", "Classes", "Sources", "Class gaps", "Duplicates",
                    "Synthetic rows", "What is not here", "Columns", "Citations"):  # fmt: skip
        assert f"\n## {heading}\n" in body, heading
    assert 'load_dataset("my-lab/wbc-test")' in body
    assert "![" in body and "(images/gap-report-classes.png)" in body
    assert (built.built.out / "images" / "gap-report-classes.png").stat().st_size > 1000
    view = load_view(ws)
    dropped = int((~view.frame["dup_keep"].fillna(True).astype(bool)).sum())
    assert dropped > 0 and f"{dropped} copies were dropped" in body
    assert "| kaggle-cancer-mix |" in body  # the re-upload whose copies dedup dropped
    assert "None: every image is a real micrograph" in body
    for source in ("pbc", "bccd", "hub", "odd"):
        citation = view.frame.loc[view.frame["source"] == source, "citation"].iloc[0]
        assert f"- **{source}**: {' '.join(citation.split())}" in body
    for code in CLASSES:
        assert f"| {code} |" in body  # every class has a row, zeros included
    assert "Licence of the published dataset: cc-by-4.0" in body


# --------------------------------------------------------------------------- licences, end to end


@pytest.fixture(scope="module")
def mixed_ws(tmp_path_factory) -> Workspace:
    """PBC sample, WBCBench in its Hub parquet form (CC BY-NC 4.0 line, but its Hub card forbids redistribution:
    declared in its YAML), a CC BY-NC-SA lab set, and synthetic rows: one source without a licence line (its terms
    come from the training data), one whose line names its terms."""
    from tests.fixtures import wbcbench_parquet

    tmp = tmp_path_factory.mktemp("mixed")
    ws = Workspace(tmp / "ws")
    ingest("pbc", sample_dir() / "pbc", ws, IngestOptions(workers=1))
    ingest("wbcbench", wbcbench_parquet(tmp / "wbcbench", rows=12), ws, IngestOptions(workers=1))
    add_source(ws, tmp, "nc-lab", "CC BY-NC-SA 4.0", seed=500)
    finish(ws, gap=False)
    add_synthetic(ws, tmp, "synth-a", None, seed=700)
    add_synthetic(ws, tmp, "synth-b", "CC BY-NC-SA 4.0 (generated from nc-lab and pbc)", seed=800)
    from wbc_data.manifest.merge import merge

    merge(ws)
    return ws


def test_forbidden_source_is_refused_before_anything_is_written(mixed_ws, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(LicenceRefused) as caught:
        plan_publish(mixed_ws, PublishOptions("lab/mix", dry_run=True, out=out))
    message = str(caught.value)
    assert "wbcbench: redistribution forbidden" in message and "its Hub card" in message
    assert "--exclude-source wbcbench" in message and "\n" not in message
    assert not out.exists()
    result = runner.invoke(app, ["publish", "-w", str(mixed_ws.root), "--repo-id", "lab/mix", "--dry-run",
                                 "--out", str(out)])  # fmt: skip
    assert result.exit_code == 2 and "--exclude-source wbcbench" in result.output
    assert "Traceback" not in result.output and not out.exists()


def test_non_commercial_and_share_alike_carry_over(mixed_ws, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["publish", "-w", str(mixed_ws.root), "--repo-id", "lab/mix", "--dry-run",
                                 "--out", str(out), "--exclude-source", "wbcbench"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Licence of the published dataset: cc-by-nc-sa-4.0" in result.output
    assert "Non-commercial use only, because nc-lab (cc-by-nc-sa-4.0)" in " ".join(result.output.split())
    assert "would be uploaded to lab/mix; nothing was sent" in result.output
    card = (out / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\nlicense: cc-by-nc-sa-4.0\n")
    assert "Share-alike carries over from nc-lab (cc-by-nc-sa-4.0)" in card
    assert "| synthetic (publish with --include-synthetic) | 8 |" in card  # left out, and said so
    dd = load(out)
    assert not any(dd["train"]["is_synthetic"]) and "wbcbench" not in set(dd["train"]["source"])


def test_synthetic_rows_inherit_the_terms_of_the_training_data(mixed_ws, tmp_path):
    # synth-a has no licence line: its generator learnt from the train split, which holds wbcbench rows
    options = PublishOptions("lab/mix", dry_run=True, out=tmp_path / "a", include_synthetic=True,
                             exclude_sources=("wbcbench",))  # fmt: skip
    refusal = (r"synth-a: synthetic rows derived from nc-lab, pbc, wbcbench: redistribution forbidden"
               r".*--exclude-source synth-a.*--include-synthetic")  # fmt: skip
    with pytest.raises(LicenceRefused, match=refusal):
        plan_publish(mixed_ws, options)
    # synth-b's licence line says what it is: published, in train only, marked
    options.exclude_sources = ("wbcbench", "synth-a")
    options.out = tmp_path / "b"
    result = publish(mixed_ws, options)
    assert result.plan.decision.licence_id == "cc-by-nc-sa-4.0"
    dd = load(options.out)
    train = dd["train"].to_pandas()
    synth = train[train["is_synthetic"]]
    assert len(synth) == 4 and set(synth["source"]) == {"synth-b"} and set(synth["generator_id"]) == {"synth-b-gen"}
    assert sorted(synth["seed"]) == [0, 1, 2, 3] and set(synth["guidance"]) == {3.0}
    assert all(not any(dd[s]["is_synthetic"]) for s in ("validation", "test"))
    card = (options.out / "README.md").read_text(encoding="utf-8")
    assert "| synth-b-gen | 4 | PLY 4 | 3 | 0-3 |" in card and "Synthetic rows of synth-b" in card
    from huggingface_hub import DatasetCard

    assert DatasetCard(card).data.source_datasets == ["extended|nc-lab", "extended|pbc", "original"]


# --------------------------------------------------------------------------- the rules, one by one


def _licences(rows: list[tuple[str, str]], synthetic: tuple[str, ...] = (), training=None):
    from wbc_data.publish.licences import decide, source_licences
    from wbc_data.sources.definition import load_definitions

    frame = pd.DataFrame(rows, columns=["source", "licence"])
    frame["is_synthetic"] = frame["source"].isin(synthetic)
    known = load_definitions()
    return decide(source_licences(frame, {s: known.get(s) for s in frame["source"]}, training))


def _line(name: str) -> str:
    from wbc_data.sources.definition import load_definitions

    return load_definitions()[name].licence


@pytest.mark.parametrize("source", ["wbcbench", "lisc", "all-idb", "apl-aml", "raabin", "leukemia-attri"])
def test_sources_that_may_not_be_redistributed_are_refused(source):
    decision = _licences([("pbc", _line("pbc")), (source, _line(source))])
    with pytest.raises(LicenceRefused, match=rf"{source}: (redistribution forbidden|licence not confirmed).*"
                                             rf"--exclude-source {source}"):  # fmt: skip
        decision.check()
    assert [s.source for s in decision.allowed] == ["pbc"]


def test_segpc_makes_the_dataset_non_commercial_and_share_alike():
    decision = _licences([(s, _line(s)) for s in ("pbc", "bccd", "segpc", "aml-lmu", "kaggle-cancer-mix")])
    decision.check()
    assert decision.licence_id == "cc-by-nc-sa-4.0"
    assert [s.source for s in decision.non_commercial] == ["segpc"] == [s.source for s in decision.share_alike]
    statement = decision.statement()
    assert "Non-commercial use only, because segpc (cc-by-nc-sa-4.0)" in statement
    assert "Share-alike carries over from segpc" in statement


def test_open_sources_stay_open():
    assert _licences([(s, _line(s)) for s in ("pbc", "bccd", "aml-lmu", "bm-lmu")]).licence_id == "cc-by-4.0"
    assert _licences([("bccd", _line("bccd"))]).licence_id == "mit"


def test_licence_lines_without_declared_terms_are_read():
    from wbc_data.publish.licences import hub_licence_id

    assert _licences([("pbc", _line("pbc")), ("lab", "CC BY-NC 4.0")]).licence_id == "cc-by-nc-4.0"
    # a --licence that differs from the definition's line is the user's statement: it is read, not overridden
    assert _licences([("wbcbench", "CC BY 4.0")]).licence_id == "cc-by-4.0"
    for text, expected in [("CC BY-NC-SA 4.0", "cc-by-nc-sa-4.0"), ("cc-by 3.0", "cc-by-3.0"), ("MIT", "mit"),
                           ("CC0 1.0", "cc0-1.0"), ("Apache License 2.0", "apache-2.0"),
                           ("TCIA terms", "other"), ("CC BY-ND 4.0", "cc-by-nd-4.0")]:  # fmt: skip
        assert hub_licence_id(text) == expected, text


def test_licences_that_cannot_be_combined_are_refused():
    with pytest.raises(LicenceRefused, match="share-alike licences that cannot be combined"):
        _licences([("a", "CC BY-SA 4.0"), ("b", "CC BY-NC-SA 4.0")]).check()
    with pytest.raises(LicenceRefused, match=r"a \(cc-by-sa-4.0\) must stay share-alike.*--exclude-source a"):
        _licences([("a", "CC BY-SA 4.0"), ("b", "CC BY-NC 4.0")]).check()
    with pytest.raises(LicenceRefused, match=r"no-derivatives licence cc-by-nd-4\.0"):
        _licences([("a", "CC BY-ND 4.0")]).check()
    with pytest.raises(LicenceRefused, match="licence not confirmed"):
        _licences([("a", "")]).check()


def test_synthetic_terms_follow_their_training_data():
    from wbc_data.publish.licences import source_terms
    from wbc_data.sources.definition import load_definitions

    known = load_definitions()
    training = {s: source_terms(_line(s), known[s]) for s in ("pbc", "segpc")}
    decision = _licences([("pbc", _line("pbc")), ("synth", "")], synthetic=("synth",), training=training)
    decision.check()
    synth = next(s for s in decision.sources if s.synthetic)
    assert synth.derived_from == ("pbc", "segpc") and synth.non_commercial and synth.terms.share_alike
    assert decision.licence_id == "cc-by-nc-sa-4.0"
    assert "Synthetic rows of synth take the terms of the data their generator learnt from" in decision.statement()
    with pytest.raises(LicenceRefused, match="licence not confirmed"):  # nothing known about its training data
        _licences([("synth", "")], synthetic=("synth",), training={}).check()


def test_licence_terms_in_a_source_yaml_are_checked(tmp_path):
    from wbc_data.sources.definition import SourceDefinition, SourceError

    base = "name: x\ntitle: X\ncitation: c\nlicence: l\ndownload: d\nlayout: l\n"
    for terms, message in [
        ("licence_terms: yes\n", "must be a mapping"),
        ("licence_terms:\n  id: mit\n  redistribution: maybe\n  commercial: allowed\n", "redistribution must be"),
        ("licence_terms:\n  redistribution: allowed\n  commercial: allowed\n", "id must be"),
        ("licence_terms:\n  id: mit\n  redistribution: allowed\n  commercial: allowed\n  sa: true\n", "unknown key"),
    ]:
        path = tmp_path / "x.yaml"
        path.write_text(base + terms)
        with pytest.raises(SourceError, match=message) as caught:
            SourceDefinition.from_yaml(path)
        assert str(path) in str(caught.value)


# --------------------------------------------------------------------------- bad input: one line each


def test_bad_input_is_one_line(ws, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    base = ["publish", "-w", str(ws.root)]
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    cases = [
        (["--repo-id", "no-slash", "--dry-run"], "expected ORG/NAME"),
        (["--repo-id", "lab/x", "--dry-run", "--exclude-source", "nope"], "--exclude-source nope: no source of"),
        (["--repo-id", "lab/x", "--dry-run", "--out", str(foreign)], "did not write"),
        (["--repo-id", "lab/x"], "no Hugging Face token"),
    ]
    for args, message in cases:
        result = runner.invoke(app, base + args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "Traceback" not in result.output, result.output
    assert (foreign / "notes.txt").read_text() == "mine" and not (foreign / MARKER).exists()


def test_publish_needs_fresh_dedup_and_split(tmp_path):
    from wbc_data.manifest.merge import merge

    ws = Workspace(tmp_path / "ws")
    ingest("pbc", sample_dir() / "pbc", ws, IngestOptions(workers=1))
    merge(ws)
    result = runner.invoke(app, ["publish", "-w", str(ws.root), "--repo-id", "lab/x", "--dry-run"])
    assert result.exit_code == 2 and "needs `wbc-data dedup` to have run first" in result.output
    assert not (ws.root / "publish").exists()


def test_an_interrupted_build_leaves_the_previous_output(ws, built, tmp_path, monkeypatch):
    out = tmp_path / "out"
    plan = plan_publish(ws, PublishOptions("my-lab/wbc-test", dry_run=True, out=out))
    build_folder(plan)
    before = {p.name: p.read_bytes() for p in (out / "data").iterdir()}

    class Stop(NullProgress):
        def advance(self, done, total=None, **stats):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_folder(plan, Stop())
    assert {p.name: p.read_bytes() for p in (out / "data").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging folder left behind
    with pytest.raises(PublishError, match="did not write"):
        (out / MARKER).unlink()
        (out / "mine.txt").write_text("x")
        plan_publish(ws, PublishOptions("my-lab/wbc-test", dry_run=True, out=out))
