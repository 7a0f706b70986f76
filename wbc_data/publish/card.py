"""The dataset card (README.md): YAML front matter the Hub reads, and a body a person reads.

The front matter is built with the libraries that define it (``huggingface_hub.DatasetCardData`` for licence, task,
size and source fields; ``datasets``' ``DatasetInfosDict`` and ``MetadataConfigs`` for ``dataset_info`` and
``configs``, exactly as ``push_to_hub`` writes them). The body is a :class:`wbc_data.report.document.Report`:
licence decision, splits, per-class and per-source tables, the gap-report chart, dedup statistics, the statement on
synthetic rows, columns, and every source's citation. Nothing in it depends on the clock or on this machine's
paths, so unchanged data gives an unchanged card.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from wbc_data.core.rows import is_synthetic
from wbc_data.core.taxonomy import CLASSES
from wbc_data.publish import facts
from wbc_data.publish.licences import LicenceDecision
from wbc_data.publish.rows import PublishRows
from wbc_data.publish.shards import DATA_DIR, SplitShards
from wbc_data.report.document import Report, Section, to_markdown
from wbc_data.sources.definition import SourceDefinition

TAGS = ["biology", "medical", "hematology", "white-blood-cells", "microscopy", "wbc-data"]

COLUMN_NOTES = {
    "image": "the image: a whole file's original bytes (not re-encoded), or a crop as lossless PNG",
    "label": f"the class, a ClassLabel over the 13 WBCBench 2026 codes in this order: {', '.join(CLASSES)}",
    "sample_id": "stable id of the row in the wbc-data manifest (`source:path`)",
    "source": "which source dataset the row comes from (see Sources)",
    "source_version": "version of the source definition",
    "source_path": "the file inside the source dataset, relative to its root",
    "source_label": "the source's own label, untouched",
    "source_split": "the source's own split, where it has one",
    "label_status": "how the label was derived (always `exact` here: one class, annotators agree)",
    "annotator_labels": "every annotator's label, where the source has several",
    "group_id": "rows of one group (patient, field image) never straddle splits",
    "patient_id": "the source's patient id, where it publishes one",
    "parent_id": "for a crop: the sample_id of the field image it was cut from",
    "crop_box": "for a crop: [left, top, right, bottom] in the parent image's pixels",
    "width": "image width in pixels",
    "height": "image height in pixels",
    "sha256": "sha256 of the source file (empty for a crop: its field image is `parent_id`)",
    "pixel_hash": "hash of the decoded RGB pixels (what dedup compares)",
    "licence": "the source's licence, as its definition states it",
    "citation": "how to cite the source",
    "generator_id": "synthetic rows: the generator that made the image",
    "seed": "synthetic rows: the sampling seed",
    "guidance": "synthetic rows: the classifier-free guidance scale",
    "fold": "cross-validation fold over train + validation, where the split made folds",
    "label_candidates": "the classes the source's label allows (one, for an exact label)",
    "is_synthetic": "true for generated images, false for real micrographs",
}


@dataclass
class CardInputs:
    """Everything the card states, gathered by :mod:`wbc_data.publish.run`."""

    repo_id: str
    rows: PublishRows
    decision: LicenceDecision
    splits: Sequence[SplitShards]
    features: Any  # datasets.Features
    definitions: Mapping[str, SourceDefinition | None]
    workspace_frame: pd.DataFrame  # the whole manifest view (dedup statistics cover every source)
    stage_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # dedup / split parameters
    shard_sizes: Mapping[str, int] = field(default_factory=dict)  # split -> bytes of its parquet files
    gap_chart: Path | None = None  # a copy inside the folder being built
    gap_target: str | None = None


def front_matter(inputs: CardInputs) -> str:
    """The YAML block between ``---`` lines."""
    from datasets.info import DatasetInfo, DatasetInfosDict
    from datasets.splits import SplitDict, SplitInfo
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCardData

    rows = inputs.rows
    synthetic = is_synthetic(rows.frame) if "is_synthetic" in rows.frame else None
    real = rows.frame if synthetic is None else rows.frame[~synthetic]
    sources = sorted(real["source"].unique())  # generated rows extend no dataset: they are "original"
    data = DatasetCardData(
        license=inputs.decision.licence_id,
        pretty_name=inputs.repo_id.split("/")[-1],
        task_categories=["image-classification"],
        size_categories=[facts.size_category(len(rows.frame))],
        source_datasets=[f"extended|{s}" for s in sources] + (["original"] if len(real) < len(rows.frame) else []),
        tags=list(TAGS),
    )
    if inputs.decision.licence_id == "other":
        data.license_name = "mixed-source-licences"
        data.license_link = "README.md#licence"
    splits = SplitDict()
    for shard in inputs.splits:
        splits.add(SplitInfo(name=shard.split, num_bytes=shard.num_bytes, num_examples=shard.num_examples))
    info = DatasetInfo(
        features=inputs.features,
        splits=splits,
        download_size=sum(inputs.shard_sizes.values()),
        dataset_size=sum(s.num_bytes for s in inputs.splits),
    )
    DatasetInfosDict({"default": info}).to_dataset_card_data(data)
    files = [{"split": s.split, "path": f"{DATA_DIR}/{s.split}-*"} for s in inputs.splits]
    MetadataConfigs({"default": {"data_files": files}}).to_dataset_card_data(data)
    return data.to_yaml()


def body(inputs: CardInputs, folder: Path) -> str:
    rows, decision = inputs.rows, inputs.decision
    total = len(rows.frame)
    sources = sorted(rows.frame["source"].unique())
    name = inputs.repo_id.split("/")[-1]
    report = Report(
        title=name,
        intro=(
            f"{facts.n(total)} images of white blood cells from {len(sources)} source dataset(s) "
            f"({', '.join(sources)}), with labels harmonised to the 13 classes of WBCBench 2026, duplicates removed "
            "across sources, and train / validation / test splits in which no patient, field image or duplicate "
            "cluster straddles two splits. Every row says where it comes from (source, path, licence, citation). "
            "Built with `wbc-data publish`."
        ),
    )
    report.add(Section("Load it", _load_snippet(inputs.repo_id)))
    report.add(Section("Licence", decision.statement(), tables=[("", facts.licence_table(decision))]))
    files = {s.split: len(s.paths) for s in inputs.splits}
    report.add(Section("Splits", _split_text(inputs.stage_params.get("split", {})),
                       tables=[("", facts.split_table(rows, files))]))  # fmt: skip
    report.add(Section("Classes", "Images per class and split (a zero means no source offers that class here).",
                       tables=[("", facts.class_table(rows))]))  # fmt: skip
    report.add(Section("Sources", tables=[("", facts.source_table(rows, decision, inputs.definitions))]))
    report.add(_gap_section(inputs))
    dedup_text, dedup_table = facts.dedup_facts(inputs.workspace_frame)
    params = inputs.stage_params.get("dedup", {})
    if params:
        shown = ", ".join(f"{k} {v}" for k, v in sorted(params.items()) if k in ("threshold", "crop_threshold"))
        dedup_text += f" Hamming thresholds: {shown}." if shown else ""
    report.add(Section("Duplicates", dedup_text, tables=[("", dedup_table)] if not dedup_table.empty else []))
    report.add(_synthetic_section(inputs))
    if rows.left_out:
        report.add(Section(
            "What is not here",
            "Usable images of the workspace that this dataset leaves out, by reason (each counted once).",
            tables=[("", facts.left_out_table(rows))],
        ))  # fmt: skip
    report.add(Section("Columns", tables=[("", _columns_table(inputs.features))]))
    report.add(Section("Citations", _citations(rows.frame, inputs.definitions)))
    return to_markdown(report, relative_to=folder)


def card_text(inputs: CardInputs, folder: Path) -> str:
    """The whole README.md."""
    return f"---\n{front_matter(inputs)}\n---\n\n{body(inputs, folder)}"


def _load_snippet(repo_id: str) -> str:
    return (
        "```python\n"
        "from datasets import load_dataset\n\n"
        f'ds = load_dataset("{repo_id}")\n'
        'names = ds["train"].features["label"].names  # the 13 class codes, in the fixed order\n'
        'image, label = ds["train"][0]["image"], ds["train"][0]["label"]\n'
        "```"
    )


def _split_text(params: Mapping[str, Any]) -> str:
    text = (
        "Splits come from `wbc-data split`: whole leak units (a patient where the source names patients, else a "
        "field image and its crops, or one image) go to one split, stratified by class as far as units allow; "
        "duplicate clusters stay together; validation and test hold real, exact-label images only."
    )
    if params:
        text += (
            f" Parameters: validation {params.get('val', '?')}, test {params.get('test', '?')}, seed "
            f"{params.get('seed', '?')}, units by {params.get('by', '?')}"
            + (", official source splits kept" if params.get("keep_source_splits") else "")
            + "."
        )
    return text


def _gap_section(inputs: CardInputs) -> Section:
    if inputs.gap_chart is None:
        return Section("Class gaps", "No gap report in the workspace (run `wbc-data gap-report` to chart one here).")
    target = f" against {inputs.gap_target}" if inputs.gap_target else ""
    return Section(
        "Class gaps",
        f"From `wbc-data gap-report` on the workspace this dataset was built from (all of its sources){target}: "
        "which of the 13 classes the pooled public data covers, and which stay rare.",
        figures=[("Images per class: own data, external sources, target (log scale)", inputs.gap_chart)],
    )


def _synthetic_section(inputs: CardInputs) -> Section:
    table = facts.synthetic_facts(inputs.rows)
    if table.empty:
        extra = ""
        if inputs.rows.synthetic_available:
            extra = (
                f" The workspace holds {facts.n(inputs.rows.synthetic_available)} synthetic images that were left out "
                "(`wbc-data publish --include-synthetic` adds them, to train only)."
            )
        return Section("Synthetic rows", "None: every image is a real micrograph from the sources below." + extra)
    return Section(
        "Synthetic rows",
        "Some training images are generated, not photographed: `is_synthetic` is true for them, and `generator_id`, "
        "`seed` and `guidance` say how each was made (a class-conditional diffusion model that `wbc-data synth train` "
        "trained on the real training split, sampled with `wbc-data synth`, whose memorisation and diversity guards "
        "reject samples too close to a real training image; their figures are in the synth report of the workspace "
        "that made each generator below). They sit in train only: validation and test hold real images only. "
        'Leave them out with `ds["train"].filter(lambda r: not r["is_synthetic"])`.',
        tables=[("Synthetic images per generator", table)],
    )


def _columns_table(features: Any) -> pd.DataFrame:
    rows = []
    for name, feature in features.items():
        kind = type(feature).__name__
        if hasattr(feature, "dtype") and kind == "Value":
            kind = feature.dtype
        elif kind in ("List", "Sequence", "LargeList"):
            kind = f"list of {getattr(getattr(feature, 'feature', None), 'dtype', '?')}"
        rows.append({"column": f"`{name}`", "type": kind, "meaning": COLUMN_NOTES.get(name, "")})
    return pd.DataFrame(rows)


def _citations(frame: pd.DataFrame, definitions: Mapping[str, SourceDefinition | None]) -> str:
    lines = ["Cite every source whose images you use:", ""]
    for source in sorted(frame["source"].unique()):
        citations = sorted({str(c) for c in frame.loc[frame["source"] == source, "citation"].dropna().unique()})
        definition = definitions.get(source)
        if not citations and definition is not None:
            citations = [definition.citation]
        for citation in citations or ["(no citation recorded)"]:
            lines.append(f"- **{source}**: {' '.join(citation.split())}")
    return "\n".join(lines)
