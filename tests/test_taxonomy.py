from __future__ import annotations

import pytest

from wbc_data.core.taxonomy import (
    CLASSES,
    FULL_NAMES,
    LabelStatus,
    MappedLabel,
    TaxonomyError,
    parse_map_value,
    resolve,
)


def test_thirteen_classes_with_full_names():
    assert len(CLASSES) == 13 and set(CLASSES) == set(FULL_NAMES)
    assert FULL_NAMES["PLY"] == "prolymphocyte"


@pytest.mark.parametrize(
    ("value", "status", "candidates"),
    [
        ("SNE", LabelStatus.EXACT, {"SNE"}),
        ("sne", LabelStatus.EXACT, {"SNE"}),
        (["SNE", "BNE"], LabelStatus.COARSE, {"SNE", "BNE"}),
        ("IG", LabelStatus.COARSE, {"MY", "MMY", "PMY"}),
        ("neutrophil", LabelStatus.COARSE, {"SNE", "BNE"}),
        (["IG", "BL"], LabelStatus.COARSE, {"MY", "MMY", "PMY", "BL"}),
        (None, LabelStatus.EXCLUDED, set()),
        ("not-leukocyte", LabelStatus.NOT_LEUKOCYTE, set()),
    ],
)
def test_parse_map_value(value, status, candidates):
    mapped = parse_map_value(value)
    assert mapped.status is status
    assert set(mapped.candidates) == candidates


@pytest.mark.parametrize("value", ["XYZ", ["SNE", 3], [], ["not-leukocyte", "SNE"]])
def test_parse_map_value_rejects_unknown(value):
    with pytest.raises(TaxonomyError):
        parse_map_value(value)


def _m(*codes):
    return parse_map_value(list(codes) if len(codes) > 1 else codes[0])


def test_resolve_agreement_is_exact():
    out = resolve([_m("BL"), _m("BL"), _m("BL")], ["MYO", "MYO", "MYO"])
    assert (out.label, out.status) == ("BL", LabelStatus.EXACT)


def test_resolve_disagreement_is_conflict_with_union():
    out = resolve([_m("BA"), _m("EO"), _m("EO")], ["BAS", "EOS", "EOS"])
    assert out.status is LabelStatus.CONFLICT and out.label is None
    assert out.candidates == ("EO", "BA")
    assert "BAS" in out.reason


def test_resolve_unassignable_is_conflict():
    out = resolve([_m("BA"), MappedLabel(LabelStatus.EXCLUDED), MappedLabel(LabelStatus.EXCLUDED)])
    assert out.status is LabelStatus.CONFLICT and out.candidates == ("BA",)


def test_resolve_unmapped_and_unlabelled():
    assert resolve([None], ["weird"]).status is LabelStatus.UNMAPPED
    assert resolve([]).status is LabelStatus.UNLABELLED


def test_resolve_coarse_kept_coarse():
    out = resolve([_m("IG")], ["IG"])
    assert out.status is LabelStatus.COARSE and out.candidates == ("MY", "MMY", "PMY")
