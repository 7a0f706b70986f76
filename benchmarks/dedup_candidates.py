"""Issue 21: could a cheaper rotation-invariant descriptor replace ORB's bag of words as dedup's candidate generator?

ORB (detection, descriptors of the image and of its mirror image, nearest words) is about 60% of a signature, and
signatures are most of a cold dedup. The contender: a Fourier-Mellin descriptor of the registration canvas, which
the signature computes anyway. The log-polar magnitude spectrum that registration starts from
(``register.polar_image``) turns a rotation into a cyclic shift along its angle axis; the magnitudes of its Fourier
transform along that axis (per band of log-radius) do not change under rotation, shift, or mirroring (a mirror
reverses the angles). Candidates are each row's k nearest descriptors by cosine (faiss, exact).

Scored on the dense benchmark's workspace (real PBC cells x augmented copies at any angle + the whole PBC half):
for each candidate graph, the pairs it proposes (registration's work) and how much of the truth it could recover,
as the share of true copy pairs joined by a path of true candidate edges (registration can only confirm what the
candidates connect). Per-row cost of each descriptor on one core: ORB from the decoded image, as the signature runs
it; the Fourier-Mellin descriptor from the stored canvas.

    uv run python benchmarks/dedup_scale.py dense --cells 200 --copies 30 --skip-single-link --keep --work /tmp/dense
    uv run python benchmarks/dedup_candidates.py --work /tmp/dense
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

if str(Path(__file__).resolve().parents[1]) not in sys.path:
    sys.path.append(str(Path(__file__).resolve().parents[1]))

from benchmarks.dedup_scale import PBC, cpu_name


def fourier_mellin(canvas: np.ndarray, bands: int = 10, harmonics: int = 24) -> np.ndarray:
    """Angular Fourier magnitudes of the canvas's log-polar spectrum, per band of log-radius."""
    from wbc_data.dedup.register import polar_image

    polar = polar_image(canvas)[:, 8:88]  # (angles over 180 degrees, log-radius), the extreme radii left out
    pooled = polar.reshape(polar.shape[0], bands, -1).mean(axis=2)
    return np.abs(np.fft.rfft(pooled, axis=0))[:harmonics].reshape(-1)


def unit(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-9), np.float32)


def knn_pairs(items: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    from wbc_data.dedup.neighbours import nearest, unique_pairs

    found, _ = nearest(items, queries, k + 1, exact=True)
    return unique_pairs(np.repeat(np.arange(len(queries)), found.shape[1]), found.ravel())


def connectivity(pairs: np.ndarray, group: np.ndarray) -> tuple[float, float]:
    """(share of true copy pairs joined by true candidate edges, share of copy groups left whole)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    true = pairs[group[pairs[:, 0]] == group[pairs[:, 1]]]
    n = len(group)
    graph = coo_matrix((np.ones(len(true)), (true[:, 0], true[:, 1])), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    sizes = np.bincount(group)
    multi = np.flatnonzero(sizes[group] > 1)
    frame = pd.DataFrame({"g": group[multi], "c": component[multi]})
    parts = frame.groupby(["g", "c"]).size()
    joined = int((parts * (parts - 1) // 2).sum())
    total = int((sizes[sizes > 1] * (sizes[sizes > 1] - 1) // 2).sum())
    return joined / total, float((frame.groupby("g")["c"].nunique() == 1).mean())


def orb_ms(images: int = 300) -> float:
    """ORB's part of a signature per image (descriptors of image and mirror, their words), one core."""
    import cv2
    from PIL import Image

    from wbc_data.dedup.signature import grey_and_valid, orb_descriptors
    from wbc_data.dedup.words import default_embedder

    cv2.setNumThreads(1)
    embedder = default_embedder()
    paths = sorted(p for p in PBC.glob("*/*.jpg") if not p.name.startswith("."))[::37][:images]
    decoded = [grey_and_valid(Image.open(p).convert("RGB")) for p in paths]
    start = time.perf_counter()
    for grey, valid in decoded:
        image, mirror = orb_descriptors(grey, valid)
        embedder.embed(image), embedder.embed(mirror)
    return (time.perf_counter() - start) / len(decoded) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, help="a dense benchmark folder (truth.json, ws/), deduplicated once")
    args = parser.parse_args()
    from wbc_data.core.workspace import Workspace
    from wbc_data.dedup.store import SignatureStore

    work = Path(args.work)
    truth = json.loads((work / "truth.json").read_text())
    frame = pd.read_parquet(work / "ws" / "manifest.parquet")
    frame = frame[frame["status"] == "ok"].drop_duplicates("pixel_hash").reset_index(drop=True)
    store = SignatureStore.for_workspace(Workspace(work / "ws").root)
    keys = frame["pixel_hash"].tolist()
    canvases, words = store.gather("canvas", keys), store.gather("words", keys).astype(np.float32)
    _, group = np.unique([truth.get(s, s) for s in frame["sample_id"]], return_inverse=True)
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, {cpu_name()}; {len(frame):,} distinct images, "
          f"{int((np.bincount(group) > 1).sum()):,} copy groups")  # fmt: skip

    start = time.perf_counter()
    fm = unit(np.stack([fourier_mellin(c) for c in canvases]))
    fm_ms = (time.perf_counter() - start) / len(canvases) * 1e3
    image, mirror = unit(words[:, 0]), unit(words[:, 1])
    print("\n| candidates | cost per row (ms, one core) | pairs | true pairs joined | copy groups whole |")
    print("|---|---:|---:|---:|---:|")
    k = 4
    orb_pairs = np.unique(np.concatenate([knn_pairs(image, image, k), knn_pairs(image, mirror, k)]), axis=0)
    joined, whole = connectivity(orb_pairs, group)
    print(f"| ORB words, {k} nearest of image and of mirror image (shipped) | {orb_ms():.2f} | {len(orb_pairs):,} | "
          f"{joined:.4f} | {whole:.4f} |")  # fmt: skip
    for k in (4, 6, 8, 12):
        pairs = knn_pairs(fm, fm, k)
        joined, whole = connectivity(pairs, group)
        print(f"| Fourier-Mellin, {k} nearest | {fm_ms:.2f} | {len(pairs):,} | {joined:.4f} | {whole:.4f} |")


if __name__ == "__main__":
    main()
