"""Label conflicts inside copy sets are judged in the 13-class space: a coarse label agrees with an exact one among
its candidates, two sources' names for a cell that is not a leukocyte agree, and only labels no one class fits are
reported (on the real PBC half, APL/AML, BCCD and the Kaggle re-upload, 105 copy sets were reported by raw name,
most of them "ERB" against "erythroblast"; 3 are conflicts)."""

from __future__ import annotations

import pandas as pd

from wbc_data.core.stages import load_view
from wbc_data.core.workspace import Workspace
from wbc_data.dedup.report import label_conflicts
from wbc_data.dedup.run import DedupOptions, dedup
from wbc_data.ingest.engine import IngestOptions, ingest
from wbc_data.io.resources import sample_dir
from wbc_data.manifest.merge import merge


def _copies(sets: dict[int, list[tuple[str, str | None, list[str] | None, str]]]) -> pd.DataFrame:
    """Rows of copy sets: set number -> (label status, label, candidates, the source's own label) per member."""
    rows = []
    for number, members in sets.items():
        for k, (status, label, candidates, raw) in enumerate(members):
            rows.append({"sample_id": f"s{number}:{k}", "dup_cluster": number, "copy_set": f"set{number}",
                         "dup_keep": k == 0, "label_status": status, "label": label, "label_candidates": candidates,
                         "source_label": raw})  # fmt: skip
    return pd.DataFrame(rows).astype({"dup_cluster": "Int64", "dup_keep": "boolean"})


def test_only_labels_no_class_fits_are_conflicts():
    frame = _copies({
        0: [("exact", "SNE", ["SNE"], "SNE"), ("coarse", None, ["SNE", "BNE"], "neutrophil")],  # agree
        1: [("not-leukocyte", None, None, "ERB"), ("not-leukocyte", None, None, "erythroblast")],  # agree
        2: [("exact", "MO", ["MO"], "monocyte"), ("not-leukocyte", None, None, "Smudge cells")],  # conflict
        3: [("exact", "MY", ["MY"], "MY"), ("exact", "PMY", ["PMY"], "PMY")],  # conflict
        4: [("exact", "BNE", ["BNE"], "BNE"), ("coarse", None, ["MY", "MMY", "PMY"], "IG")],  # conflict
        5: [("unlabelled", None, None, None), ("exact", "LY", ["LY"], "LY")],  # one label only
        6: [("conflict", None, ["SNE", "BL"], "SNE vs Blast"), ("exact", "BL", ["BL"], "Blast")],  # BL fits both
        7: [("unmapped", None, None, "Weird"), ("exact", "EO", ["EO"], "EO"), ("exact", "EO", ["EO"], "EO")],
        8: [("conflict", None, ["SNE", "BL"], "SNE vs Blast"), ("exact", "MO", ["MO"], "Monocyte")],  # conflict
        9: [("excluded", None, None, "Artefact"), ("exact", "LY", ["LY"], "LY"), ("exact", "LY", ["LY"], "LY")],
        10: [("coarse", None, ["SNE", "BNE"], "neutrophil"), ("exact", "SNE", ["SNE"], "SNE"),
             ("exact", "BNE", ["BNE"], "BNE")],  # each pair overlaps, the three share no class: conflict
        11: [("coarse", None, float("nan"), "neutrophil"), ("exact", "SNE", ["SNE"], "SNE")],  # no candidates stored
    })  # fmt: skip
    conflicts = label_conflicts(frame)
    assert sorted(conflicts["cluster"]) == [2, 3, 4, 8, 10]
    shown = conflicts.set_index("cluster")["labels"]
    assert shown[2] == "MO, not-leukocyte:Smudge cells" and shown[4] == "BNE, coarse:IG"


def test_real_kaggle_copies_of_pbc_erythroblasts_are_no_conflict_and_a_relabelled_copy_is(tmp_path):
    """The shipped sample: Kaggle's re-upload copies PBC's erythroblasts as "ERB" (PBC calls the folder
    "erythroblast"); both are not leukocytes, so the copy sets agree. A copy of a PBC leukocyte given another class
    disagrees."""
    ws = Workspace(tmp_path / "ws")
    ingest("pbc", sample_dir() / "pbc", ws, IngestOptions(workers=1))
    ingest("kaggle-cancer-mix", sample_dir() / "kaggle_cancer_mix", ws, IngestOptions(workers=1))
    merge(ws)
    result = dedup(ws, DedupOptions(workers=1, reports=True))
    frame = load_view(ws).frame
    erythroblasts = frame[(frame["label_status"] == "not-leukocyte") & frame["dup_cluster"].notna()]
    assert set(erythroblasts["source"]) == {"pbc", "kaggle-cancer-mix"}
    assert erythroblasts.groupby("dup_cluster")["source_label"].nunique().max() == 2  # ERB vs erythroblast
    assert label_conflicts(frame).empty and not result.findings.get("label conflicts")
    assert "0 set(s) of copies carry labels" in (ws.reports_dir / "dedup.md").read_text()

    leukocytes = frame[(frame["label_status"] == "exact") & frame["dup_cluster"].notna()]
    cluster = leukocytes.groupby("dup_cluster").filter(lambda g: g["source"].nunique() == 2)["dup_cluster"].iloc[0]
    copy = leukocytes.index[(leukocytes["dup_cluster"] == cluster) & (leukocytes["source"] == "kaggle-cancer-mix")]
    relabelled = frame.copy()
    relabelled.loc[copy, "label"] = "BL" if frame.loc[copy[0], "label"] != "BL" else "LY"
    relabelled.loc[copy, "label_candidates"] = pd.Series([[relabelled.loc[copy[0], "label"]]], index=copy)
    assert label_conflicts(relabelled)["cluster"].tolist() == [cluster]
