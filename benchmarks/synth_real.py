"""The real-data road for ``wbc-data synth`` on whatever device is here (CPU in the recorded run): the shared PBC
half with one class held rare, a generator trained for a time budget, samples of the rare class through the guards,
and fidelity measured by a small judge CNN trained here.

Run (after ``wbc-data ingest pbc <PBC> && wbc-data manifest && wbc-data dedup && wbc-data split`` in WORKSPACE):

    uv run python benchmarks/synth_real.py --workspace W [--hold PMY=13] [--recipe cpu-32] [--minutes 15]
        [--n 300] [--compare EO=100] [--docs-grid docs/synth-pmy-cpu32.png]

Steps, each printed with its figures:
1. hold the class rare: keep ``N`` of its training images (whole leak units, seeded), move the rest of its train
   rows to test, and write the split stage again (so the rest of the class is a real test set the generator never
   saw; val keeps its share);
2. train the recipe (``wbc_data.synth.train.train``, the code behind ``wbc-data synth train``) for ``--minutes``;
3. train the judge: a small CNN on the train + val split at the generator's resolution (class-balanced, the 8
   flips/rotations), a stand-in for a ``wbc-data train`` model (which this branch does not have); it implements
   ``wbc_data.train.classifier.Classifier``; its accuracy on the real test images of each class is printed, so its
   agreement on synthetic images can be read against its agreement on real ones;
4. sample ``--n`` images of the rare class (and of ``--compare`` classes) with ``run_synth`` (the code behind
   ``wbc-data synth``), the judge as the agreement classifier and the test split as the reference of the fidelity
   numbers (KID, precision/recall in an ImageNet embedding, beside real-vs-real and noise).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from wbc_data.core.progress import NullProgress  # noqa: E402
from wbc_data.core.rows import label_indices, select_rows  # noqa: E402
from wbc_data.core.stages import load_view, read_stage, write_stage  # noqa: E402
from wbc_data.core.taxonomy import CLASSES  # noqa: E402
from wbc_data.core.workspace import Workspace  # noqa: E402
from wbc_data.io.pixels import PixelLoader  # noqa: E402
from wbc_data.synth.data import derive_seed, pixel_cache, to_resolution  # noqa: E402
from wbc_data.synth.recipe import load_recipe  # noqa: E402
from wbc_data.synth.sample import SynthOptions, run_synth  # noqa: E402
from wbc_data.synth.train import train  # noqa: E402


class PrintedProgress(NullProgress):
    """Notes, and the position in each phase at most once a minute, printed (the benchmark runs for hours)."""

    def __init__(self) -> None:
        self.last = 0.0

    def advance(self, done: int, total: int | None = None, **stats: float) -> None:
        if time.perf_counter() - self.last > 60:
            self.last = time.perf_counter()
            figures = " ".join(f"{k} {v:.4g}" for k, v in stats.items())
            print(f"  {done:,}/{total or 0:,} {figures}", flush=True)

    def note(self, text: str) -> None:
        print(text, flush=True)


def hold_rare(ws: Workspace, label: str, keep: int, seed: int) -> dict[str, int]:
    """Keep ``keep`` training images of ``label`` (whole split units), move its other train rows to test."""
    stage = read_stage(ws.stage_path("split"))
    view = load_view(ws)
    frame = view.frame
    eligible = select_rows(frame, ["train"], synthetic=False)
    units = eligible[eligible["label"] == label].groupby("split_unit")["sample_id"].apply(list)
    order = np.random.default_rng(seed).permutation(len(units))
    kept: list[str] = []
    for i in order:
        if len(kept) + len(units.iloc[i]) <= keep:
            kept += units.iloc[i]
    moved_units = set(units.index) - {u for u in units.index if set(units[u]) <= set(kept)}
    table = stage.table.copy()
    move = table["split_unit"].isin(moved_units) & (table["split"] == "train")
    table.loc[move, "split"] = "test"
    table.loc[move, "split_note"] = f"held out: {label} kept rare ({keep} training images)"
    inputs = frame[frame["sample_id"].isin(table["sample_id"])]
    write_stage(
        ws,
        "split",
        table.drop(columns=["input_digest"]),
        inputs,
        command=f"benchmarks/synth_real.py --hold {label}={keep}",
        upstream=["dedup"],
        defaults_for_synthetic={"split": "train"},
    )
    after = select_rows(load_view(ws).frame, None, synthetic=False)
    return after[after["label"] == label]["split"].value_counts().to_dict()


class Judge:
    """A small CNN classifier over the 13 classes at a fixed resolution (implements the Classifier protocol)."""

    classes = tuple(CLASSES)

    def __init__(self, size: int) -> None:
        self.size = size
        torch.manual_seed(0)
        conv = lambda i, o: [torch.nn.Conv2d(i, o, 3, padding=1), torch.nn.BatchNorm2d(o), torch.nn.ReLU()]  # noqa: E731
        self.features = torch.nn.Sequential(
            *conv(3, 32),
            torch.nn.MaxPool2d(2),
            *conv(32, 64),
            torch.nn.MaxPool2d(2),
            *conv(64, 128),
            torch.nn.AdaptiveAvgPool2d(1),
            torch.nn.Flatten(),
        )
        self.head = torch.nn.Linear(128, len(CLASSES))

    def _batch(self, images: list) -> torch.Tensor:
        arrays = [np.asarray(to_resolution(im, self.size), dtype=np.float32) / 127.5 - 1 for im in images]
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)

    def fit(self, pixels: np.ndarray, labels: np.ndarray, epochs: int) -> None:
        params = [*self.features.parameters(), *self.head.parameters()]
        optimizer = torch.optim.AdamW(params, lr=2e-3, weight_decay=1e-4)
        counts = np.bincount(labels, minlength=len(CLASSES)).astype(float)
        p = counts[labels] ** -1.0
        p /= p.sum()
        steps = epochs * len(labels) // 64
        self.features.train()
        for step in range(steps):
            idx = np.random.default_rng(derive_seed(7, step)).choice(len(labels), 64, p=p)
            x = torch.from_numpy(pixels[idx]).permute(0, 3, 1, 2).float().div(127.5).sub(1)
            k = step % 8
            x = torch.rot90(x, k % 4, (2, 3))
            x = torch.flip(x, (3,)) if k >= 4 else x
            loss = torch.nn.functional.cross_entropy(self.head(self.features(x)), torch.from_numpy(labels[idx]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        self.features.eval()

    def embed(self, images: list) -> np.ndarray:
        with torch.no_grad():
            return self.features(self._batch(images)).numpy()

    def predict_proba(self, images: list) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(self.head(self.features(self._batch(images))), dim=1).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--hold", default="PMY=13")
    parser.add_argument("--recipe", default="cpu-32")
    parser.add_argument("--steps", type=int, default=None, help="override the recipe's steps")
    parser.add_argument("--batch-size", type=int, default=None, help="override the recipe's batch size")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 is faster on a busy box)")
    parser.add_argument("--minutes", type=float, default=15.0, help="training time budget")
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--scheduler", default=None, help="sampling scheduler (default: the recipe's)")
    parser.add_argument("--sample-steps", type=int, default=None, help="sampling steps (default: the recipe's)")
    parser.add_argument("--compare", default="EO=100", help="also sample these classes (CLS=N,...; '' for none)")
    parser.add_argument("--judge-epochs", type=int, default=6)
    parser.add_argument("--docs-grid", type=Path, default=None, help="copy the sample grid here")
    parser.add_argument("--skip-train", action="store_true", help="reuse the generator already trained")
    args = parser.parse_args()
    ws = Workspace(args.workspace)
    if args.threads:
        torch.set_num_threads(args.threads)
    label, keep = args.hold.split("=")
    summary: dict = {"device": "cuda" if torch.cuda.is_available() else "cpu", "threads": torch.get_num_threads()}

    summary_path = ws.reports_dir / "synth-real-summary.json"
    if args.skip_train and summary_path.is_file():
        summary = {**json.loads(summary_path.read_text()), **summary}
    summary["held"] = hold_rare(ws, label, int(keep), seed=0)
    print(f"{label} rows per split after holding it rare: {summary['held']}", flush=True)

    recipe = load_recipe(args.recipe).with_overrides(steps=args.steps, batch_size=args.batch_size)
    out = ws.root / "generators" / recipe.name
    if not args.skip_train:
        shutil.rmtree(out, ignore_errors=True)
        result = train(ws, recipe, out, max_minutes=args.minutes, progress=PrintedProgress())
        summary["train"] = {
            "steps": result.steps,
            "planned": result.total_steps,
            "minutes": result.seconds / 60,
            "images_per_s": result.images_per_second,
            "loss": result.loss,
            "images": sum(result.info.class_counts.values()),
            "class_counts": result.info.class_counts,
            "generator": result.info.id,
        }
        print(json.dumps(summary["train"], indent=1), flush=True)
        ws.reports_dir.mkdir(parents=True, exist_ok=True)
        summary_path.write_text(json.dumps(summary, indent=1, default=str))

    view = load_view(ws)
    loader = PixelLoader.for_workspace(ws)
    judge_rows = select_rows(view.frame, ["train", "val"], synthetic=False)
    started = time.perf_counter()
    pixels = pixel_cache(
        judge_rows, loader, recipe.resolution, ws.root / "cache", f"judge-{len(judge_rows)}", workers=2
    )
    judge = Judge(recipe.resolution)
    judge.fit(np.asarray(pixels), label_indices(judge_rows["label"]), args.judge_epochs)
    test = select_rows(view.frame, ["test"], synthetic=False)
    test_pixels = pixel_cache(test, loader, recipe.resolution, ws.root / "cache", f"judge-test-{len(test)}", workers=2)
    from PIL import Image

    predicted = []
    for start in range(0, len(test), 256):
        batch = [Image.fromarray(a) for a in np.asarray(test_pixels[start : start + 256])]
        predicted.append(judge.predict_proba(batch).argmax(axis=1))
    truth = label_indices(test["label"])
    predicted = np.concatenate(predicted)
    per_class = {c: float((predicted[truth == i] == i).mean()) for i, c in enumerate(CLASSES) if (truth == i).any()}
    summary["judge"] = {
        "train_rows": len(judge_rows),
        "test_rows": len(test),
        "test_accuracy": float((predicted == truth).mean()),
        "test_recall": per_class,
        "minutes": (time.perf_counter() - started) / 60,
    }
    print(json.dumps(summary["judge"], indent=1), flush=True)

    counts = {label: args.n}
    for part in filter(None, args.compare.split(",")):
        cls, n = part.split("=")
        counts[cls] = int(n)
    options = SynthOptions(
        counts=counts,
        classifier=judge,
        reference_splits=["test"],
        name=f"real-{label}",
        scheduler=args.scheduler,
        steps=args.sample_steps,
    )
    result = run_synth(ws, out / "generator", options, PrintedProgress())
    summary["sample"] = {"device": result.device, "seconds": result.seconds, "settings": result.settings}
    for o in result.outcomes:
        summary["sample"][o.label] = {
            "requested": o.requested,
            "accepted": o.accepted,
            "rejected": o.rejected,
            "draws": o.attempts,
            "threshold": o.calibration.threshold,
            "copies_max": o.calibration.copies_max,
            "distinct_low": o.calibration.distinct_low,
            "distinct_median": o.calibration.distinct_median,
            "nearest_median": float(np.median(o.accepted_distances)) if o.accepted_distances else None,
            "nearest_min": float(np.min(o.accepted_distances + o.rejected_distances)),
            "diversity_ratio": o.diversity.ratio if o.diversity else None,
            "near_duplicates": o.diversity.near_duplicates if o.diversity else None,
            "collapsed": o.diversity.collapsed if o.diversity else None,
            "rejected_not_plausible": o.implausible,
            "gate_radius": o.gate.radius if o.gate else None,
            "agreement": o.agreement.agreement if o.agreement else None,
            "judge_called_them": o.agreement.predicted if o.agreement else None,
            "fidelity": {name: vars(c) for name, c in o.fidelity.rows()} if o.fidelity else None,
            "seconds": o.seconds,
        }
    print(json.dumps(summary["sample"], indent=1, default=str), flush=True)
    summary_path.write_text(json.dumps(summary, indent=1, default=str))
    print(f"report: {result.report_paths[-1]}; grid: {result.grid_path}")
    if args.docs_grid and result.grid_path:
        args.docs_grid.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(result.grid_path, args.docs_grid)


if __name__ == "__main__":
    main()
