from __future__ import annotations

import pytest

from wbc_data.core.labelmap import LabelMap, LabelMapError
from wbc_data.core.taxonomy import LabelStatus
from wbc_data.sources.definition import load_definitions


def test_plain_yaml_case_insensitive(tmp_path):
    path = tmp_path / "map.yaml"
    path.write_text("seg_neutrophil: SNE\nmyeloblast: BL\nneutrophil: [SNE, BNE]\nerythroblast: null\n")
    label_map = LabelMap.from_yaml(path)
    assert label_map.lookup("SEG_NEUTROPHIL").label == "SNE"
    assert label_map.lookup("Neutrophil").status is LabelStatus.COARSE
    assert label_map.lookup("erythroblast").status is LabelStatus.EXCLUDED
    assert label_map.lookup("platelet") is None


def test_unknown_class_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("blast: BLAST\n")
    with pytest.raises(LabelMapError, match=r"bad\.yaml.*BLAST"):
        LabelMap.from_yaml(path)


def test_contradicting_duplicate_keys(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("Mono: MO\nmono: LY\n")
    with pytest.raises(LabelMapError, match="twice"):
        LabelMap.from_yaml(path)


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "a: [\n"])
def test_malformed_files(tmp_path, text):
    path = tmp_path / "m.yaml"
    path.write_text(text)
    with pytest.raises(LabelMapError, match=r"m\.yaml"):
        LabelMap.from_yaml(path)


def test_every_shipped_definition_loads_and_is_complete():
    definitions = load_definitions()
    assert {"pbc", "aml-lmu", "raabin", "imagefolder"} <= set(definitions)
    for definition in definitions.values():
        assert definition.citation and definition.licence and definition.download and definition.layout
