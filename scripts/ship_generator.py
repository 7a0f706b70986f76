"""Copy a trained generator into ``pretrained/<name>/`` (shipped inside the package), in half precision, with its
attribution: how ``pretrained/pbc-latent-32`` was made from a ``wbc-data synth train --recipe pbc-latent-32`` run.

    uv run python scripts/ship_generator.py <run>/generator pbc-latent-32

Weights are stored as float16 (half the size in git and in the wheel); every loader casts them back to float32.
The folder is written by the same ``save_generator`` as any run, so its content hash and training rows are checked
when it is used.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from wbc_data.synth.generator import load_generator, save_generator, training_rows  # noqa: E402

ATTRIBUTION = """# {name}: attribution

A wbc-data generator (diffusers pipeline: `WbcCellPipeline`, a class-conditional UNet on the latents of a small
`AutoencoderKL`), trained by `wbc-data synth train --recipe {recipe}` on {rows:,} real training images of the
PBC dataset (the shared half of it, train split of a 70/15/15 split, seed 0), per class: {counts}.

Training data: Acevedo A, Merino A, Alferez S, Molina A, Boldu L, Rodellar J. A dataset of microscopic peripheral
blood cell images for development of automatic recognition systems. Data in Brief 30 (2020) 105474.
doi:10.1016/j.dib.2020.105474. Licence of the data: CC BY 4.0. The weights are shipped under the same terms
(CC BY 4.0, attribution above); images sampled from it carry this citation in their manifest rows.

Trained {steps:,} steps ({seconds:.0f} s on {device}). Stored in float16.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("generator", type=Path)
    parser.add_argument("name")
    args = parser.parse_args()
    pipe, info = load_generator(args.generator)
    rows = training_rows(args.generator)
    out = REPO / "pretrained" / args.name
    half = {"unet": pipe.unet.half(), "vae": pipe.vae.half() if pipe.vae is not None else None}
    shipped = dataclasses.replace(info, name=args.name)
    shipped = save_generator(out, half["unet"], pipe.scheduler, shipped, rows, half["vae"])
    counts = ", ".join(f"{c} {n:,}" for c, n in info.class_counts.items() if n)
    (out / "ATTRIBUTION.md").write_text(
        ATTRIBUTION.format(
            name=args.name,
            recipe=info.name,
            rows=len(rows),
            counts=counts,
            steps=info.trained_steps,
            seconds=info.training_seconds,
            device=info.device,
        ),
        encoding="utf-8",
    )
    print(f"{out}: {shipped.id}")


if __name__ == "__main__":
    main()
