"""``wbc-data evaluate``: a trained classifier on real images it never saw, with scikit-learn's metrics.

The rows are the split's real, exact-label, deduplicated rows (``test`` by default), plus, for ``test``, the rows the
model's run held out to keep a class rare. Rows the model trained or validated on are never scored (they could be,
if the split was re-run since training: they are dropped and counted). ``--by source`` repeats every figure per
source (train on some, test on another: the domain-shift table); ``--compare`` scores a second model on exactly the
same rows and puts the two side by side, class by class.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wbc_data.core.errors import UserError
from wbc_data.core.progress import Progress, or_null
from wbc_data.core.rows import label_indices, select_rows
from wbc_data.core.stages import load_view
from wbc_data.core.taxonomy import CLASSES
from wbc_data.core.workspace import Workspace
from wbc_data.io.atomic import atomic_write, atomic_write_text
from wbc_data.io.pixels import PixelLoader
from wbc_data.report.document import Report, Section, write, write_csv
from wbc_data.train.bootstrap import Difference, paired_bootstrap
from wbc_data.train.metrics import Metrics, classification_metrics
from wbc_data.train.run import read_roles, read_run

SPLITS = ("train", "val", "test")
VERBS = {"train": "trained", "val": "validated"}


class EvaluateError(UserError):
    pass


@dataclass
class EvalOptions:
    split: str = "test"
    by_source: bool = False
    compare: Path | None = None
    out: Path | None = None
    tta: bool = False
    batch_size: int = 64
    workers: int | None = None
    test_sources: list[str] | None = None  # also every unseen row of these sources, on the classes the model knows


@dataclass
class ModelScore:
    name: str
    folder: Path
    metrics: Metrics
    by_source: pd.DataFrame | None = None  # source, n, correct, macro_f1, balanced_accuracy, accuracy
    by_source_classes: pd.DataFrame | None = None  # source, class, support, precision, recall, f1, accuracy
    rules: dict[str, float] = field(default_factory=dict)  # macro-F1 under the prior correction and thresholds
    coarse: dict[str, float] = field(default_factory=dict)  # macro-F1 and accuracy at the literature's granularity


@dataclass
class EvalResult:
    rows: pd.DataFrame  # sample_id, source, label, predicted, confidence (+ "predicted <name>", "confidence <name>"
    # of the second model with --compare)
    scores: list[ModelScore]
    out: Path
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    comparison: pd.DataFrame | None = None
    difference: Difference | None = None  # with --compare: second - first in macro-F1, paired bootstrap


def model_workspace(model: Path, workspace: Path | None) -> Workspace:
    """The workspace given, else the one the model was trained on (if it is still there), else the default."""
    if workspace is not None:
        return Workspace.at(workspace)
    recorded = read_run(model).get("workspace")
    if recorded and Path(recorded).is_dir():
        return Workspace(Path(recorded))
    return Workspace.at(None)


def evaluation_rows(frame: pd.DataFrame, model: Path, split: str) -> tuple[pd.DataFrame, list[str]]:
    """Real, exact, kept rows of ``split`` (+ the model's held-out rows for test), minus any it trained on (and,
    for test, validated on)."""
    if split not in SPLITS:
        raise EvaluateError(f"--split {split}: use one of {', '.join(SPLITS)}")
    notes = []
    rows = select_rows(frame, [split], synthetic=False)
    roles = read_roles(model)
    if split == "test":
        held = roles.loc[roles["role"] == "heldout", "sample_id"]
        extra = select_rows(frame, None, synthetic=False)
        extra = extra[extra["sample_id"].isin(set(held))]
        if len(extra):
            notes.append(f"{len(extra):,} row(s) the run held out (hold_rare) scored with the test split")
            rows = pd.concat([rows, extra], ignore_index=True).drop_duplicates("sample_id")
    excluded_roles = {"train": [], "val": ["train"], "test": ["train", "val"]}[split]
    seen = set(roles.loc[roles["role"].isin(excluded_roles), "sample_id"])
    used = rows["sample_id"].isin(seen).to_numpy()
    if used.any():
        verbs = " or ".join(VERBS[r] for r in excluded_roles)
        notes.append(f"{int(used.sum()):,} {split} row(s) left out: the model {verbs} on them (split re-run since)")
        rows = rows[~used]
    if split == "train":
        notes.append("scored on training rows: these figures say how well it fits, not how well it generalises")
    return rows.reset_index(drop=True), notes


def source_rows(
    frame: pd.DataFrame, model: Path, sources: list[str], known: set[str]
) -> tuple[pd.DataFrame, list[str]]:
    """Every real, exact-label row of ``sources`` (any split) the model never trained or validated on, of the
    classes it was trained on: a domain-shift test set."""
    present = set(frame["source"].dropna().astype(str))
    unknown = [s for s in sources if s not in present]
    if unknown:
        raise EvaluateError(
            f"--test-source {', '.join(unknown)}: not in the manifest (has {', '.join(sorted(present))})"
        )
    rows = select_rows(frame, None, synthetic=False, sources=sources)
    roles = read_roles(model)
    seen = set(roles.loc[roles["role"].isin(["train", "val"]), "sample_id"])
    used = rows["sample_id"].isin(seen).to_numpy()
    other = ~rows["label"].isin(known).to_numpy()
    notes = [
        f"--test-source {', '.join(sources)}: {len(rows) - int(used.sum()) - int((other & ~used).sum()):,} row(s) "
        f"of every split scored ({int(used.sum()):,} the model trained or validated on left out, "
        f"{int((other & ~used).sum()):,} of classes it never learned left out)"
    ]
    return rows[~used & ~other].reset_index(drop=True), notes


def scored_rows(frame: pd.DataFrame, model: Path, options: EvalOptions) -> tuple[pd.DataFrame, list[str]]:
    """The rows ``model`` is scored on: the split's (:func:`evaluation_rows`), with every unseen row of
    ``options.test_sources`` in place of those sources' split rows (:func:`source_rows`)."""
    rows, notes = evaluation_rows(frame, model, options.split)
    if options.test_sources:
        extra, extra_notes = source_rows(frame, model, options.test_sources, set(classifier_classes(model)))
        rows = pd.concat([rows[~rows["source"].isin(options.test_sources)], extra], ignore_index=True)
        notes += extra_notes
    return rows, notes


def score(
    rows: pd.DataFrame,
    probabilities: np.ndarray,
    name: str,
    folder: Path,
    by_source: bool,
    decision: dict[str, Any] | None = None,
) -> ModelScore:
    from wbc_data.train.metrics import coarse_summary, decide, macro_f1

    truth = label_indices(rows["label"])
    predicted = probabilities.argmax(1)
    result = ModelScore(name, folder, classification_metrics(truth, predicted), coarse=coarse_summary(truth, predicted))
    if decision:
        result.rules = {
            f"macro_f1 {rule}": macro_f1(truth, decide(probabilities, rule, decision))
            for rule in ("prior", "thresholds")
        }
    if by_source:
        result.by_source, result.by_source_classes = per_source(rows, truth, predicted)
    return result


def summary_table(scores: list[ModelScore]) -> pd.DataFrame:
    """One row per model: the headline figures, the decision rules beside the argmax, the coarse figures."""
    return pd.DataFrame([{"model": s.name, **s.metrics.summary(), **s.rules, **s.coarse} for s in scores])


def per_source(rows: pd.DataFrame, truth: np.ndarray, predicted: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every figure per source, plus an ``all`` row: the counts of the source rows add up to it."""
    summary, classes = [], []
    sources = rows["source"].astype(str).to_numpy()
    for source in [*sorted(set(sources)), "all"]:
        mask = np.ones(len(rows), dtype=bool) if source == "all" else sources == source
        m = classification_metrics(truth[mask], predicted[mask])
        summary.append(
            {
                "source": source,
                "n": m.n,
                "correct": int((truth[mask] == predicted[mask]).sum()),
                "classes": len(m.per_class),
                "macro_f1": m.macro_f1,
                "balanced_accuracy": m.balanced_accuracy,
                "accuracy": m.accuracy,
            }
        )
        classes.append(m.per_class.assign(source=source))
    per_class = pd.concat(classes, ignore_index=True)
    return pd.DataFrame(summary), per_class[["source", *[c for c in per_class.columns if c != "source"]]]


RESAMPLES = 2000
CONFIDENCE = 0.95
"""The paired bootstrap of ``--compare`` (seeded: a report does not change between runs)."""


def compare_table(first: ModelScore, second: ModelScore, changes: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per-class support, precision, recall and F1 of both models on the same rows, and the change in F1 (with its
    paired bootstrap interval from ``changes``, :func:`~wbc_data.train.bootstrap.paired_bootstrap`'s table)."""
    a = first.metrics.per_class.set_index("class")
    b = second.metrics.per_class.set_index("class")
    table = pd.DataFrame({"class": a.index, "support": a["support"].to_numpy()})
    for metric in ("precision", "recall", "f1"):
        table[f"{metric} {first.name}"] = a[metric].to_numpy()
        table[f"{metric} {second.name}"] = b[metric].reindex(a.index).to_numpy()
    table["f1 change"] = table[f"f1 {second.name}"] - table[f"f1 {first.name}"]
    if changes is not None:
        interval = changes.set_index("class").reindex(table["class"])
        table["change low"] = interval["change low"].to_numpy()
        table["change high"] = interval["change high"].to_numpy()
    return table


def evaluate(
    workspace: Workspace, model: Path, options: EvalOptions | None = None, progress: Progress | None = None
) -> EvalResult:
    """Score ``model`` (and ``options.compare``) on the rows of ``options.split``; write the report files. Each
    model's predictions are a phase (``predict <name>``) of ``progress``."""
    from wbc_data.train.classifier import load_classifier

    options = options or EvalOptions()
    model = Path(model)
    classifier = load_classifier(model)
    view = load_view(workspace)
    view.require("split", "wbc-data evaluate")
    rows, notes = scored_rows(view.frame, model, options)
    if options.test_sources:
        options.by_source = True
    other = None
    if options.compare is not None:
        other = load_classifier(options.compare)
        other_rows, other_notes = scored_rows(view.frame, Path(options.compare), options)
        common = set(rows["sample_id"]) & set(other_rows["sample_id"])
        if len(common) < max(len(rows), len(other_rows)):
            why = "never trained on" + ("; of classes both learned" if options.test_sources else "")
            notes.append(
                f"compared on the {len(common):,} row(s) both models can be scored on ({why}; "
                f"{len(rows):,} and {len(other_rows):,} eligible apart)"
            )
        rows = rows[rows["sample_id"].isin(common)].reset_index(drop=True)
        notes += [n for n in other_notes if n not in notes]
    if rows.empty:
        raise EvaluateError(f"{view.path}: no real, exact-label rows in the {options.split} split to evaluate on")
    names = _names(model, options.compare)
    probabilities = [_predict(classifier, rows, workspace, options, progress, names[0])]
    if other is not None:
        probabilities.append(_predict(other, rows, workspace, options, progress, names[1]))
    folders = [model] + ([Path(options.compare)] if options.compare is not None else [])
    scores = [
        score(rows, p, n, f, options.by_source, _decision(f))
        for p, n, f in zip(probabilities, names, folders, strict=True)
    ]
    out = Path(options.out) if options.out else _default_out(model, options, names)
    result = EvalResult(_prediction_rows(rows, probabilities, names), scores, out, notes=notes)
    if other is not None:
        arms = (names[0], names[1])
        predicted = [[CLASSES[i] for i in p.argmax(1)] for p in probabilities]
        changes = paired_bootstrap(rows["label"], predicted[0], predicted[1], RESAMPLES, CONFIDENCE, arms=arms)
        result.comparison = compare_table(scores[0], scores[1], changes)
        result.difference = Difference.from_table(changes, arms, RESAMPLES, CONFIDENCE)
    result.files = _write(result, options, rows, PixelLoader.for_workspace(workspace))
    return result


def _decision(folder: Path) -> dict[str, Any] | None:
    from wbc_data.train.model_io import read_config

    try:
        return read_config(folder).get("decision")
    except UserError:
        return None


def classifier_classes(folder: Path) -> list[str]:
    """The classes a model (or each member of an ensemble) was trained on."""
    from wbc_data.train.model_io import read_config

    config = read_config(folder)
    if config.get("kind") == "ensemble":
        return sorted({c for m in config["members"] for c in classifier_classes(Path(folder) / m["path"])})
    return list(config.get("trained_classes") or CLASSES)


def model_name(folder: Path) -> str:
    """A model's name in tables: its folder, or ``<run>.<member>`` for a member of a training run."""
    folder = Path(folder).resolve()
    return f"{folder.parent.parent.name}.{folder.name}" if folder.parent.name == "members" else folder.name


def _names(model: Path, compare: Path | None) -> list[str]:
    first = model_name(model)
    if compare is None:
        return [first]
    second = model_name(Path(compare))
    return [first, second] if first != second else [f"{first} (1)", f"{second} (2)"]


def _default_out(model: Path, options: EvalOptions, names: list[str]) -> Path:
    folder = options.split + ("-by-source" if options.by_source else "") + ("-tta" if options.tta else "")
    if options.test_sources:  # not the folder of a plain --by source run, which it would overwrite
        folder += "-with-" + "-".join(options.test_sources)
    if len(names) > 1:
        folder += f"-vs-{names[1]}"
    return model / "evaluation" / folder


def _predict(
    classifier: Any,
    rows: pd.DataFrame,
    workspace: Workspace,
    options: EvalOptions,
    progress: Progress | None,
    name: str,
) -> np.ndarray:
    from wbc_data.train.dataset import ManifestDataset
    from wbc_data.train.inference import predict_dataset

    dataset = ManifestDataset(rows, PixelLoader.for_workspace(workspace), classifier.transform)
    progress = or_null(progress)
    progress.phase(f"predict {name}", len(rows))
    return predict_dataset(classifier, dataset, options.tta, options.batch_size, options.workers, progress)


def _prediction_rows(rows: pd.DataFrame, probabilities: list[np.ndarray], names: list[str]) -> pd.DataFrame:
    out = rows[["sample_id", "source", "label"]].copy().reset_index(drop=True)
    for i, (p, name) in enumerate(zip(probabilities, names, strict=True)):
        suffix = "" if i == 0 else f" {name}"
        out[f"predicted{suffix}"] = [CLASSES[k] for k in p.argmax(1)]
        out[f"confidence{suffix}"] = p.max(1)
    return out


def _csv(path: Path, frame: pd.DataFrame) -> Path:
    return write_csv(path, frame, float_format="%.4f")


def _model_predictions(result: EvalResult, index: int) -> pd.DataFrame:
    """The predictions table of the ``index``-th model, with plain ``predicted`` and ``confidence`` columns."""
    if index == 0:
        return result.rows
    name = result.scores[index].name
    return result.rows.drop(columns=["predicted", "confidence"]).rename(
        columns={f"predicted {name}": "predicted", f"confidence {name}": "confidence"}, errors="raise"
    )


def _write(result: EvalResult, options: EvalOptions, rows: pd.DataFrame, loader: PixelLoader) -> list[Path]:
    from wbc_data.train.mistakes import mistakes_png, worst_mistakes
    from wbc_data.train.plots import compare_png, confusion_png

    out = result.out
    out.mkdir(parents=True, exist_ok=True)
    files = []
    report = Report(
        f"Evaluation on {options.split}: {' vs '.join(s.name for s in result.scores)}",
        f"{len(result.rows):,} real images (exact labels, deduplicated, never trained on); metrics from "
        "scikit-learn, averaged over the classes present. " + " ".join(result.notes),
    )
    summary = summary_table(result.scores)
    report.add(
        Section(
            "Summary",
            "macro-F1 is the WBCBench 2026 metric (scikit-learn's macro average over the classes present), from the "
            "argmax; beside it (where the model saved them) the prior-corrected argmax (undoing the balanced "
            "sampler's class prior) and per-class thresholds fitted on validation.",
            tables=[("", summary)],
        )
    )
    metrics_json: dict[str, Any] = {"split": options.split, "tta": options.tta, "notes": result.notes, "models": {}}
    for index, s in enumerate(result.scores):
        tag = "" if index == 0 else f"-{index + 1}"
        files.append(_csv(out / f"per_class{tag}.csv", s.metrics.per_class))
        files.append(_csv(out / f"confusion{tag}.csv", s.metrics.confusion.reset_index()))
        png = confusion_png(s.metrics.confusion, out / f"confusion{tag}.png", f"{s.name} on {options.split}")
        files.append(png)
        section = report.add(
            Section(
                f"{s.name}", tables=[("Per class", s.metrics.per_class.round(4))], figures=[("Confusion matrix", png)]
            )
        )
        predictions = _model_predictions(result, index).merge(
            rows[["sample_id", "source_path"]].drop_duplicates("sample_id"), on="sample_id", how="left"
        )
        shown = worst_mistakes(predictions)
        files.append(_csv(out / f"mistakes{tag}.csv", shown))
        sheet = mistakes_png(
            shown, rows, loader, out / f"mistakes{tag}.png", f"{s.name} on {options.split}: the most confident mistakes"
        )
        if sheet is None:
            (out / f"mistakes{tag}.png").unlink(missing_ok=True)  # a sheet of an earlier run is not this one's
        else:
            files.append(sheet.path)
            section.figures.append(("The most confident mistakes of the most frequent confusions", sheet.path))
            if sheet.unreadable:
                more = " ..." if len(sheet.unreadable) > 3 else ""
                note = (
                    f"{s.name}'s sheet of mistakes: {len(sheet.unreadable):,} file(s) no longer readable, drawn "
                    f"blank ({', '.join(sheet.unreadable[:3])}{more})"
                )
                result.notes.append(note)  # printed, and in metrics.json
                report.intro += f" {note}."
        metrics_json["models"][s.name] = {
            **s.metrics.summary(),
            **s.rules,
            **s.coarse,
            "folder": str(s.folder),
            "per_class": s.metrics.per_class.to_dict(orient="records"),
        }
        if s.by_source is not None and s.by_source_classes is not None:
            files.append(_csv(out / f"by_source{tag}.csv", s.by_source))
            files.append(_csv(out / f"by_source_per_class{tag}.csv", s.by_source_classes))
            section.tables += [
                ("Per source (the source rows add up to all)", s.by_source.round(4)),
                ("Per source and class", s.by_source_classes.round(4)),
            ]
            metrics_json["models"][s.name]["by_source"] = s.by_source.to_dict(orient="records")
    if result.comparison is not None:
        names = (result.scores[0].name, result.scores[1].name)
        files.append(_csv(out / "compare.csv", result.comparison))
        png = compare_png(
            result.comparison,
            names,
            out / "compare.png",
            f"Per-class F1 on the same {len(result.rows):,} real {options.split} images",
        )
        files.append(png)
        report.sections.insert(
            1,
            Section(
                "Side by side",
                f"F1 change = {names[1]} - {names[0]}. "
                + (result.difference.describe() + "." if result.difference is not None else ""),
                tables=[("", result.comparison.round(4))],
                figures=[("Per-class F1", png)],
            ),
        )
        metrics_json["comparison"] = result.comparison.to_dict(orient="records")
        if result.difference is not None:
            metrics_json["difference"] = result.difference.as_dict()
    atomic_write(out / "predictions.parquet", lambda tmp: result.rows.to_parquet(tmp, index=False))
    atomic_write_text(out / "metrics.json", json.dumps(metrics_json, indent=2, default=float) + "\n")
    files += [out / "predictions.parquet", out / "metrics.json", *write(report, out, "report")]
    return files
