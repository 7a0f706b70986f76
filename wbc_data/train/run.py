"""``wbc-data train``: choose the rows, train every member of the recipe, fit the soft-voting weights on validation,
save the classifier folder and its model card.

The output folder (default ``<workspace>/models/<recipe>``)::

    classifier.json   the ensemble (members and weights): ``load_classifier(folder)``
    members/<name>/   classifier.json + model.safetensors + history.csv, one per member
    README.md         the model card (card.json: the same facts for programs)
    recipe.yaml       the recipe as run (after --set overrides)
    run.json          options and a fingerprint of the data, checked by --resume
    data.parquet      sample_id, role (train / val / heldout), label, source, is_synthetic of every row used
    checkpoints/      per-member training state while training runs (removed when the run finishes)
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wbc_data.core.device import mixed_precision
from wbc_data.core.heap import retain_freed_memory
from wbc_data.core.progress import NullProgress, Progress, or_null
from wbc_data.core.rows import is_synthetic, label_indices
from wbc_data.core.stages import load_view
from wbc_data.core.taxonomy import CLASSES
from wbc_data.core.workspace import Workspace
from wbc_data.io.atomic import atomic_write, atomic_write_text
from wbc_data.io.locks import writer_lock
from wbc_data.train.data import TrainingData, select_training_data
from wbc_data.train.errors import TrainError, TrainingInterrupted
from wbc_data.train.metrics import Metrics
from wbc_data.train.recipe import Recipe, dump_recipe

RUN_FILE = "run.json"
DATA_FILE = "data.parquet"


@dataclass
class TrainOptions:
    """What to train and how; the defaults live here only (the CLI passes what the user gave)."""

    recipe: Recipe | str | None = None  # a Recipe, a recipe YAML or a shipped recipe's name
    overrides: list[str] = field(default_factory=list)  # key.path=value, applied when ``recipe`` is read from YAML
    members: list[str] | None = None  # train only these members of the recipe
    out: Path | None = None
    synthetic_ratio: float = 0.0
    sources: list[str] | None = None
    resume: bool = False
    hold_rare: dict[str, int] | None = None  # overrides the recipe's data.hold_rare
    workers: int | None = None  # DataLoader workers (None: the recipe's, auto: cores - 1)
    should_stop: Callable[[], bool] | None = None  # polled every batch: True stops as Ctrl-C does (checkpoint kept)

    def load_recipe(self) -> Recipe:
        """The recipe to run: read (with the overrides) when named, narrowed to ``members`` when given."""
        from wbc_data.train.recipe import load_recipe, select_members

        if self.recipe is None:
            raise TrainError("train: name a recipe (trainers/<name>.yaml or a shipped name)")
        recipe = self.recipe if isinstance(self.recipe, Recipe) else load_recipe(self.recipe, self.overrides)
        return select_members(recipe, self.members) if self.members else recipe


@dataclass
class TrainResult:
    out: Path
    data: TrainingData
    members: list[dict[str, Any]]
    weights: list[float]
    val: Metrics
    card: Path
    notes: list[str] = field(default_factory=list)
    main_process: bool = True  # False in the other processes of a multi-GPU run (they print nothing)


def default_out(workspace: Workspace, recipe: Recipe) -> Path:
    return workspace.model_dir(recipe.name)


def train(
    workspace: Workspace,
    recipe: Recipe,
    options: TrainOptions | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Shorthand for :func:`run_train` with ``recipe`` (and ``should_stop``) set in the options."""
    options = replace(options or TrainOptions(), recipe=recipe)
    if should_stop is not None:
        options.should_stop = should_stop
    return run_train(workspace, options, progress)


def run_train(workspace: Workspace, options: TrainOptions, progress: Progress | None = None) -> TrainResult:
    """Train the recipe on the workspace's splits; Ctrl-C leaves a checkpoint that ``resume=True`` continues."""
    from wbc_data.train.models import check_weights
    from wbc_data.train.recipe import check_hold_rare

    recipe = options.load_recipe()
    should_stop = options.should_stop or (lambda: False)
    progress = or_null(progress)
    hold = options.hold_rare if options.hold_rare is not None else recipe.data.hold_rare
    if options.hold_rare is not None:
        check_hold_rare(options.hold_rare, "--hold-rare")
    # a missing weights file fails now, not after an hour of the first member; said once the data is known good
    weights = {m.name: (m.model, check_weights(m)) for m in recipe.members if m.pretrained}
    view = load_view(workspace)
    split = view.require("split", "wbc-data train")
    data = select_training_data(
        view.frame,
        str(view.path),
        sources=options.sources,
        synthetic_ratio=options.synthetic_ratio,
        hold_rare=hold,
        max_per_class=recipe.data.max_per_class,
        seed=recipe.seed if recipe.data.select_seed is None else recipe.data.select_seed,
    )
    for name, (model, found) in weights.items():
        progress.note(f"{name}: ImageNet weights of {model} from {found}")
    out = Path(options.out) if options.out else default_out(workspace, recipe)
    with writer_lock(workspace.root, f"model-{out.name}"):
        run = {
            "recipe": recipe.to_dict(),
            "synthetic_ratio": options.synthetic_ratio,
            "sources": options.sources,
            "hold_rare": dict(hold),
            "split_run": split.run_id,
            "data": _fingerprint(data),
        }
        from accelerate import Accelerator

        retain_freed_memory()  # 1.25x a CPU epoch: activations reuse the heap instead of faulting in fresh pages
        accelerator = Accelerator(mixed_precision=mixed_precision(recipe.train.mixed_precision))
        if not accelerator.is_main_process:  # one voice under `accelerate launch`
            progress = NullProgress()
        for note in data.notes:
            progress.note(note)
        _prepare_out(out, run, options.resume, progress)
        accelerator.wait_for_everyone()  # every process has checked the folder before the main one writes to it
        if accelerator.is_main_process:
            atomic_write_text(out / RUN_FILE, json.dumps({**run, "workspace": str(workspace.root)}, indent=2) + "\n")
            atomic_write_text(out / "recipe.yaml", dump_recipe(recipe))
            roles = data.roles()
            atomic_write(out / DATA_FILE, lambda tmp: roles.to_parquet(tmp, index=False))
        accelerator.wait_for_everyone()
        device = _describe_device(accelerator)
        progress.note(f"training on {device}, mixed precision {accelerator.mixed_precision}")

        from wbc_data.io.pixels import PixelLoader

        loader = PixelLoader.for_workspace(workspace)
        cached = _build_cache(accelerator, workspace, recipe, data, loader, options, progress)
        members: list[dict[str, Any]] = []
        try:
            for member in recipe.members:
                members.append(
                    _train_one(
                        accelerator, recipe, member, data, loader, out, options, progress, should_stop, device, cached
                    )
                )
        except KeyboardInterrupt:
            raise TrainingInterrupted(
                f"{out}: training interrupted; every finished epoch is checkpointed: re-run with --resume to continue"
            ) from None
        result = _finish(accelerator, recipe, data, loader, out, members, run, workspace, device, progress)
        accelerator.wait_for_everyone()
        return result


def _fingerprint(data: TrainingData) -> str:
    roles = data.roles().sort_values(["role", "sample_id"])
    text = "\n".join(roles["role"] + "\t" + roles["sample_id"] + "\t" + roles["label"].astype(str))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _prepare_out(out: Path, run: dict[str, Any], resume: bool, progress: Progress) -> None:
    """Refuse to mix runs: a finished model is never overwritten, an unfinished one only continues with --resume
    and the same recipe and data."""
    run_file = out / RUN_FILE
    if run_file.is_file():
        if (out / "classifier.json").is_file():
            raise TrainError(f"{out}: already holds a trained model; choose another --out (or delete it)")
        if not resume:
            raise TrainError(f"{out}: holds an unfinished training run: pass --resume to continue it, or another --out")
        try:
            previous = json.loads(run_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise TrainError(f"{run_file}: unreadable; delete the folder to start again") from None
        changed = [k for k in run if previous.get(k) != run[k]]
        if changed:
            raise TrainError(
                f"{out}: --resume with a different {', '.join(changed)} than the interrupted run; "
                "use the same command, or another --out"
            )
        progress.note(f"resuming the run in {out}")
        return
    if out.exists() and any(out.iterdir()):
        raise TrainError(f"{out}: not empty and not a wbc-data training run; choose a new or empty --out")
    if resume:
        progress.note(f"--resume: nothing to resume in {out}; starting")


def _describe_device(accelerator: Any) -> str:
    import torch

    if accelerator.device.type == "cuda":
        name = torch.cuda.get_device_name(accelerator.device)
        return f"{accelerator.num_processes} x {name}" if accelerator.num_processes > 1 else name
    threads = torch.get_num_threads()
    return f"CPU ({threads} thread{'s' if threads > 1 else ''})"


def rare_labels(recipe: Recipe, data: TrainingData) -> set[int]:
    """Class indices that get the stronger augmentation: the recipe's list, or (auto) classes with fewer real
    training images than ``rare_below`` x the largest class."""
    if not isinstance(recipe.augment.rare_classes, str):
        return {CLASSES.index(c) for c in recipe.augment.rare_classes}
    synthetic = is_synthetic(data.train) if "is_synthetic" in data.train else None
    real = data.train if synthetic is None else data.train[~synthetic]
    counts = real["label"].value_counts()
    limit = recipe.augment.rare_below * counts.max()
    return {CLASSES.index(c) for c, n in counts.items() if n < limit}


def _workers(recipe: Recipe, options: TrainOptions) -> int:
    from wbc_data.train.inference import default_workers

    workers = options.workers if options.workers is not None else recipe.data.workers
    return default_workers() if workers == "auto" else int(workers)


def _build_cache(
    accelerator: Any,
    workspace: Workspace,
    recipe: Recipe,
    data: TrainingData,
    loader: Any,
    options: TrainOptions,
    progress: Progress,
) -> tuple[Any, Any] | None:
    """The training and validation rows in the training cache (decoded once by the main process; the others wait
    and read it): ``(train images, val images)``, or None with ``train.cache: false``."""
    if not recipe.train.cache:
        return None
    import time

    from wbc_data.train.cache import PixelCache

    cache = PixelCache.for_workspace(workspace.root, recipe.image)
    rows = pd.concat([data.train, data.val], ignore_index=True)
    if accelerator.is_main_process:
        before = len(cache.entries())
        start = time.perf_counter()
        with writer_lock(workspace.root, "train-cache"):
            cache.build(rows, loader, _workers(recipe, options))
        added = len(cache.entries()) - before
        if added:
            progress.note(
                f"training cache: {added:,} row(s) decoded and letterboxed to {recipe.image.size} px in "
                f"{time.perf_counter() - start:.1f} s ({cache.folder})"
            )
    accelerator.wait_for_everyone()
    images = cache.build(rows, loader)
    n = len(data.train)
    train = images.with_labels(label_indices(data.train["label"]).tolist())
    train.chunk, train.position = images.chunk[:n], images.position[:n]
    val = images.with_labels(label_indices(data.val["label"]).tolist())
    val.chunk, val.position = images.chunk[n:], images.position[n:]
    return train, val


def _train_one(
    accelerator: Any,
    recipe: Recipe,
    member: Any,
    data: TrainingData,
    loader: Any,
    out: Path,
    options: TrainOptions,
    progress: Progress,
    should_stop: Callable[[], bool],
    device: str,
    cached: tuple[Any, Any] | None = None,
) -> dict[str, Any]:
    from wbc_data.train import model_io
    from wbc_data.train.augment import LabelAwareAugment, eval_transform, train_transform
    from wbc_data.train.dataset import ManifestDataset
    from wbc_data.train.loop import MemberData, train_member

    folder = out / "members" / member.name
    summary = {"name": member.name, "model": member.model, "pretrained": member.pretrained}
    if (folder / model_io.CONFIG).is_file():
        config = model_io.read_config(folder)
        progress.note(f"{member.name}: already trained (best validation macro-F1 {config['best_val_macro_f1']:.4f})")
        return {**summary, "best_val_macro_f1": config["best_val_macro_f1"], "epochs": config["epochs"]}
    labels = label_indices(data.train["label"])
    synthetic = is_synthetic(data.train)
    augment = recipe.augment
    normalize = None
    if cached is not None:
        from wbc_data.train.augment import tensor_transform
        from wbc_data.train.cache import AugmentedImages, Normalize

        train_set: Any = AugmentedImages(
            cached[0],
            normal=tensor_transform(recipe.image, augment.normal, augment.degrade),
            rare=tensor_transform(recipe.image, augment.rare_strength(), augment.degrade),
            rare_labels=rare_labels(recipe, data),
            rank=accelerator.process_index,
            on_device=accelerator.device.type == "cuda",
        )
        val_set: Any = cached[1]
        normalize = Normalize(recipe.image.mean, recipe.image.std, recipe.train.channels_last)
    else:
        train_set = LabelAwareAugment(
            ManifestDataset(data.train, loader),
            labels.tolist(),
            normal=train_transform(recipe.image, augment.normal, augment.degrade),
            rare=train_transform(recipe.image, augment.rare_strength(), augment.degrade),
            rare_labels=rare_labels(recipe, data),
        )
        val_set = ManifestDataset(data.val, loader, eval_transform(recipe.image))
    member_data = MemberData(
        train_set,
        val_set,
        labels,
        synthetic,
        label_indices(data.val["label"]),
        options.synthetic_ratio,
        _workers(recipe, options),
        normalize=normalize,
        seeded=cached is not None,
    )
    result = train_member(
        accelerator, recipe, member, member_data, out / "checkpoints" / member.name, progress, should_stop
    )
    epochs = len(result.history)
    if accelerator.is_main_process:
        history = pd.DataFrame(result.history)
        model_io.save_member(
            folder,
            result.model,
            name=member.name,
            architecture=member.model,
            image=recipe.image,
            trained_classes=sorted(set(data.train["label"])),
            extra={"best_val_macro_f1": result.best_f1, "epochs": epochs, "device": device},
        )
        atomic_write(folder / "history.csv", lambda tmp: history.to_csv(tmp, index=False))
    accelerator.wait_for_everyone()
    return {**summary, "best_val_macro_f1": result.best_f1, "epochs": epochs}


def _finish(
    accelerator: Any,
    recipe: Recipe,
    data: TrainingData,
    loader: Any,
    out: Path,
    members: list[dict[str, Any]],
    run: dict[str, Any],
    workspace: Workspace,
    device: str,
    progress: Progress,
) -> TrainResult:
    """Soft-voting weights on validation, the ensemble config, the model card; checkpoints removed."""
    from wbc_data.train import model_io
    from wbc_data.train.augment import eval_transform
    from wbc_data.train.card import CardFacts, write_card
    from wbc_data.train.dataset import ManifestDataset
    from wbc_data.train.ensemble import fit_weights, soft_vote
    from wbc_data.train.inference import predict_dataset
    from wbc_data.train.metrics import classification_metrics

    truth = label_indices(data.val["label"])
    val_set = ManifestDataset(data.val, loader, eval_transform(recipe.image))
    probabilities = []
    for member in members:
        classifier = model_io.load_member(out / "members" / member["name"])
        probabilities.append(predict_dataset(classifier, val_set))
    weights = fit_weights(probabilities, truth) if recipe.ensemble.weights == "fit" else [1.0] * len(members)
    weights = (np.asarray(weights) / np.sum(weights)).tolist()
    for member, weight in zip(members, weights, strict=True):
        member["weight"] = round(weight, 4)
    voted = soft_vote(probabilities, weights)
    val = classification_metrics(truth, voted.argmax(1))
    decision = _decision(recipe, data, voted, truth)
    progress.note(
        f"ensemble of {len(members)} on validation: macro-F1 {val.macro_f1:.4f} (weights "
        f"{', '.join(f'{w:.2f}' for w in weights)}); prior-corrected {decision['val_macro_f1']['prior']:.4f}, "
        f"with per-class thresholds fitted on validation {decision['val_macro_f1']['thresholds']:.4f}"
    )
    card = out / "README.md"
    if accelerator.is_main_process:
        facts = CardFacts(
            recipe,
            data,
            members,
            val,
            run["synthetic_ratio"],
            run["sources"],
            str(workspace.root),
            run["split_run"],
            device,
            datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        card = write_card(out, facts)
        model_io.save_ensemble(
            out,
            [f"members/{m['name']}" for m in members],
            weights,
            recipe.image,
            extra={"recipe": recipe.name, "val": val.summary(), "decision": decision},
        )
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
    return TrainResult(out, data, members, weights, val, card, data.notes, accelerator.is_main_process)


def _decision(recipe: Recipe, data: TrainingData, voted: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """The decision rules shown beside the plain argmax: the prior correction that undoes the sampler's class
    balance, and per-class offsets (thresholds) fitted on validation."""
    from wbc_data.train.metrics import decide, fit_class_offsets, macro_f1, prior_weights

    synthetic = data.train["is_synthetic"].fillna(False).astype(bool) if "is_synthetic" in data.train else None
    real = data.train if synthetic is None else data.train[~synthetic]
    decision: dict[str, Any] = {
        "prior_weights": prior_weights(label_indices(real["label"]), recipe.data.sampling).round(6).tolist(),
        "offsets": fit_class_offsets(voted, truth).round(4).tolist(),
    }
    decision["val_macro_f1"] = {
        r: macro_f1(truth, decide(voted, r, decision)) for r in ("argmax", "prior", "thresholds")
    }
    return decision


def run_folder(model_folder: Path) -> Path:
    """The training run a model folder belongs to: itself, or for ``<run>/members/<name>`` its run."""
    folder = Path(model_folder)
    if (
        not (folder / RUN_FILE).is_file()
        and folder.parent.name == "members"
        and (folder.parent.parent / RUN_FILE).is_file()
    ):
        return folder.parent.parent
    return folder


def read_roles(model_folder: Path) -> pd.DataFrame:
    """The rows a trained model (or a member of one) used (train, val) and held out, from its run's ``data.parquet``."""
    path = run_folder(model_folder) / DATA_FILE
    if not path.is_file():
        return pd.DataFrame(columns=["sample_id", "role", "label", "source", "is_synthetic"])
    return pd.read_parquet(path)


def read_run(model_folder: Path) -> dict[str, Any]:
    path = run_folder(model_folder) / RUN_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
