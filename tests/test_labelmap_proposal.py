"""imagefolder without a label map proposes one from the taxonomy's synonyms: written to review, never applied."""

from __future__ import annotations

import shutil

from typer.testing import CliRunner

from tests.conftest import shared_path
from tests.fixtures import noise
from wbc_data.cli import app
from wbc_data.core.labelmap import LabelMap
from wbc_data.ingest.labelmap_proposal import normalise, propose, vocabulary

runner = CliRunner()


def _tree(root, folders):
    for i, folder in enumerate(folders):
        (root / folder).mkdir(parents=True)
        noise((24, 24), i).save(root / folder / f"{i}.png")
    return root


def test_proposal_written_not_applied_then_used(tmp_path):
    root = _tree(tmp_path / "data", ["seg_neutrophil", "03_Band cells", "Lymphocytes", "myeloblast", "PLT-giant",
                                     "Eosinophil", "erythroblast", "weird"])  # fmt: skip
    ws = tmp_path / "ws"
    first = runner.invoke(app, ["ingest", "imagefolder", str(root), "-w", str(ws), "--name", "mine", "-j", "1"])
    assert first.exit_code == 0, first.output
    proposal = ws / "label-maps" / "mine.proposed.yaml"
    assert "label map proposed" in first.output and str(proposal) in " ".join(first.output.split())
    from wbc_data.core import manifest

    rows = manifest.read_frame(ws / "sources" / "mine.parquet")
    assert (rows.loc[rows.status == "ok", "label_status"] == "unmapped").all()  # never applied silently
    text = proposal.read_text()
    assert "--label-map <this file> --name mine" in text
    mapped = LabelMap.from_yaml(proposal)
    expected = {"seg_neutrophil": "SNE", "03_band cells": "BNE", "lymphocytes": "LY", "myeloblast": "BL",
                "eosinophil": "EO"}  # fmt: skip
    for folder, code in expected.items():
        assert mapped.lookup(folder).label == code, folder
    assert mapped.lookup("erythroblast").status.value == "not-leukocyte"
    assert "weird" not in mapped and "# weird: ?" in text  # no match: left commented for the user
    assert "PLT-giant" not in mapped and "# PLT-giant: ?" in text
    again = runner.invoke(app, ["ingest", "imagefolder", str(root), "-w", str(ws), "--name", "mine", "-j", "1",
                                "--label-map", str(proposal)])  # fmt: skip
    assert again.exit_code == 0, again.output
    rows = manifest.read_frame(ws / "sources" / "mine.parquet").set_index("source_path")
    assert rows.loc["seg_neutrophil/0.png", "label"] == "SNE" and rows.loc["weird/7.png", "label_status"] == "unmapped"


def test_real_kaggle_folders_are_all_recognised(tmp_path):
    val = shared_path("kaggle_cancer_mix", "val")
    folders = sorted(p.name for p in val.iterdir() if p.is_dir())
    proposals = {p.raw: p.value for p in propose(folders)}
    assert proposals == {"basophil": "BA", "erythroblast": "not-leukocyte", "monocyte": "MO", "myeloblast": "BL",
                         "seg_neutrophil": "SNE"}  # fmt: skip


def test_ambiguous_names_are_left_to_the_user(tmp_path):
    from wbc_data.io.resources import manifests_dir

    vocab = tmp_path / "manifests"
    shutil.copytree(manifests_dir(), vocab)
    (vocab / "odd.yaml").write_text(
        "name: odd\ntitle: t\ncitation: c\nlicence: l\ndownload: d\nlayout: x\nlabel_map:\n  myb: BL\n"
    )
    known = vocabulary(vocab)
    (choice,) = propose(["MYB"], known)
    assert choice.value is None and "ambiguous" in choice.why and "MY" in choice.why and "BL" in choice.why
    assert normalise("03_Band Cells") == normalise("band cell") == "bandcell"
