"""The model card saved beside a trained classifier: what it is, how it was trained, on which data (sources and
images per class and role), and how well it did on validation, in Markdown with Hugging Face-style YAML front
matter, plus the same facts as ``card.json`` for programs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from wbc_data.io.atomic import atomic_write_text
from wbc_data.report.document import Report, Section, to_markdown
from wbc_data.train.data import TrainingData
from wbc_data.train.metrics import Metrics
from wbc_data.train.recipe import Recipe


@dataclass
class CardFacts:
    recipe: Recipe
    data: TrainingData
    members: list[dict[str, Any]]  # name, model, weight, best_val_macro_f1, epochs, pretrained
    val: Metrics  # the ensemble on validation
    synthetic_ratio: float
    sources: list[str] | None
    workspace: str
    split_run: str
    device: str
    created: str


def _members_table(members: list[dict[str, Any]]) -> pd.DataFrame:
    table = pd.DataFrame(members)
    table["pretrained"] = table["pretrained"].map({True: "yes", False: "no"})
    table["best_val_macro_f1"] = table["best_val_macro_f1"].map(lambda v: f"{v:.4f}")
    return table


def write_card(folder: Path, facts: CardFacts) -> Path:
    """``README.md`` (model card) and ``card.json`` in ``folder``."""
    counts = facts.data.counts()
    by_source = facts.data.source_counts()
    summary = {
        "recipe": facts.recipe.name,
        "members": facts.members,
        "synthetic_ratio": facts.synthetic_ratio,
        "sources": facts.sources or "all",
        "workspace": facts.workspace,
        "split_run": facts.split_run,
        "device": facts.device,
        "created": facts.created,
        "validation": facts.val.summary(),
        "images_per_class": counts.to_dict(orient="index"),
        "images_per_source": by_source.to_dict(orient="index"),
        "notes": facts.data.notes,
    }
    atomic_write_text(folder / "card.json", json.dumps(summary, indent=2, default=str) + "\n")
    front = {
        "library_name": "timm",
        "tags": ["image-classification", "white-blood-cells", "wbcbench-2026", "wbc-data"],
        "metrics": ["f1", "balanced_accuracy"],
        "model-index": [
            {
                "name": facts.recipe.name,
                "results": [
                    {
                        "task": {"type": "image-classification"},
                        "metrics": [
                            {"type": "f1", "name": "validation macro-F1", "value": round(facts.val.macro_f1, 4)},
                            {
                                "type": "balanced_accuracy",
                                "name": "validation balanced accuracy",
                                "value": round(facts.val.balanced_accuracy, 4),
                            },
                        ],
                    }
                ],
            }
        ],
    }
    usage = "\n".join(
        [
            "```python",
            "from wbc_data.train.classifier import load_classifier",
            'model = load_classifier("<this folder>")           # the ensemble (members/<name>: one member)',
            "probabilities = model.predict_proba(pil_images)      # (n, 13), columns in model.classes order",
            "features = model.embed(pil_images)                   # (n, d), e.g. for Fréchet distances",
            "```",
            "",
            "`wbc-data evaluate --model <this folder>` scores it on the test split (plus held-out rows); "
            "`wbc-data predict --model <this folder> <folder|manifest>` writes probabilities and a WBCBench "
            "submission.",
        ]
    )
    sources = ", ".join(facts.sources) if facts.sources else "all"
    notes = "\n".join(f"- {note}" for note in facts.data.notes)
    report = Report(
        f"{facts.recipe.name}: white-blood-cell classifier (13 WBCBench 2026 classes)",
        facts.recipe.description.strip() or "A soft-voting ensemble of timm classifiers trained by `wbc-data train`.",
    )
    report.add(Section("Use", usage))
    report.add(
        Section(
            "Members",
            f"Soft voting: the weighted mean of the members' probabilities (weights: {facts.recipe.ensemble.weights}).",
            tables=[("", _members_table(facts.members))],
        )
    )
    report.add(
        Section(
            "Data",
            f"Workspace `{facts.workspace}`, split run `{facts.split_run}`; sources: {sources}; synthetic share "
            f"of each batch: {facts.synthetic_ratio:g}. Validation holds real, exact-label, deduplicated rows only; "
            f"synthetic rows are used in training only.\n\n{notes}",
            tables=[("Images per class", counts.reset_index()), ("Images per source", by_source.reset_index())],
        )
    )
    report.add(
        Section(
            "Validation (the ensemble)",
            f"macro-F1 {facts.val.macro_f1:.4f} · balanced accuracy {facts.val.balanced_accuracy:.4f} · accuracy "
            f"{facts.val.accuracy:.4f} · {facts.val.n:,} images. Validation chose the epochs (early stopping) and the "
            "ensemble weights, so it flatters the model: `wbc-data evaluate` gives the honest test figures.",
            tables=[("", facts.val.per_class.round(4))],
        )
    )
    report.add(
        Section(
            "Training",
            f"Recipe `{facts.recipe.name}` (saved as `recipe.yaml` in this folder), seed {facts.recipe.seed}, "
            f"{facts.recipe.image.size} px with aspect-preserving padding{_centre(facts.recipe.image.centre)}, "
            f"trained on {facts.device}.",
        )
    )
    report.add(
        Section(
            "Limitations",
            "Scores hold for images like the training sources (stain, scanner, magnification): test on your own source "
            "before relying on it (`wbc-data evaluate --by source`). Classes absent from training cannot be predicted "
            "meaningfully. Not a medical device.",
        )
    )
    text = f"---\n{yaml.safe_dump(front, sort_keys=False).strip()}\n---\n{to_markdown(report)}"
    path = folder / "README.md"
    atomic_write_text(path, text)
    return path


def _centre(fraction: float) -> str:
    if fraction >= 1.0:
        return ""
    return f" (the centred {fraction:.0%} of each side kept; crops cut from annotated boxes kept whole)"
