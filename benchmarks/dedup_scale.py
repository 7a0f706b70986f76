"""Issue 9's dedup at scale: peak RSS, time and accuracy of the whole ``wbc-data dedup`` on a dense case, and its
search + linkage at a million rows. Called by ``benchmarks/dedup.py --case dense|million`` (or run directly).

dense: ``--cells`` real PBC cells (seeded random, the six leukocyte folders) each with ``--copies`` augmented copies
(``augment.Augmentation``: any angle, black/white fill, shift 10%, zoom 0.85-1.2, mirror, 0.5-1x, JPEG 70-95) in
an imagefolder source, plus the whole real PBC folder (the originals and every other cell: look-alikes of the same
classes). ``dedup`` runs cold (signatures computed) in a fresh process, so its peak RSS (VmHWM) is its own. The
baseline, measured in the same run on the same manifest, is issue 4's path rebuilt from this package's modules:
dihedral pHash radius 8 + crop hashes radius 10, thumbnail correlation >= 0.90, single-link clusters.

million: synthetic signatures (no pixels: decoding and registering a million images takes hours on 2 cores):
blocky random 32x32 thumbnails and random unit 128-d word embeddings, 10% of rows planted as noisy copies of
another row. Runs the candidate search (hash index + IVF word neighbours) and copy-set linkage with a stand-in
registration (planted pairs are copies) in a fresh process; registration time is extrapolated from the dense run.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import shutil
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd

if str(Path(__file__).resolve().parents[1]) not in sys.path:
    sys.path.append(str(Path(__file__).resolve().parents[1]))

from benchmarks.augment import ACCURACY_LABEL_MAP, PBC_CLASSES, Augmentation, augment, load_rgb

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
PBC_PARENT = SHARED / "pbc"
PBC = PBC_PARENT / "PBC_dataset_normal_DIB"


def cpu_name() -> str:
    import subprocess

    out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    names = [line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")]
    return names[0] if names else "?"


def peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class PhaseClock:
    """A ``wbc_data.core.progress.Progress`` that only times the phases (a repeated phase adds to its total)."""

    def __init__(self) -> None:
        self.marks: list[tuple[str, float]] = []

    def phase(self, name: str, total: int | None = None) -> None:
        self.marks.append((name, time.perf_counter()))

    def advance(self, done: int, total: int | None = None, **stats: float) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def seconds(self, end: float) -> dict[str, float]:
        marks = [*self.marks, ("end", end)]
        out: dict[str, float] = {}
        for (name, t), (_, after) in pairwise(marks):
            out[name] = out.get(name, 0.0) + after - t
        return out


def in_child(target, *args):
    """Run ``target(*args)`` in a fresh spawned process; return its result (it reports its own peak RSS)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_child, args=(target, args, queue))
    child.start()
    result = queue.get()
    child.join()
    return result


def _child(target, args, queue) -> None:
    queue.put(target(*args))


def in_tree(src: str, root: str) -> dict:
    """``run_dedup(root)`` (cold) with the ``wbc_data`` of another source tree (e.g. ``git archive main``), in a
    fresh process: the "before" of a before/after comparison on the same manifest."""
    import pickle
    import subprocess

    out = Path(root).parent / "before.pkl"
    code = (f"import sys; sys.path.insert(0, {src!r}); sys.path.insert(1, {str(Path(__file__).parent)!r}); "
            f"import pickle, dedup_scale; r = dedup_scale.run_dedup({root!r}); "
            f"open({str(out)!r}, 'wb').write(pickle.dumps(r))")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True)
    result = pickle.loads(out.read_bytes())
    out.unlink()
    return result


# --------------------------------------------------------------------------- dense


def _write_copies(job: tuple[Path, Path, int, int]) -> list[tuple[str, str]]:
    src, out, copies, seed = job
    rng = np.random.default_rng(seed)
    rgb = load_rgb(src)
    rows = []
    for c in range(copies):
        source_path = f"{src.parent.name}/{src.stem}_aug{c:02d}.jpg"
        (out / source_path).write_bytes(augment(rgb, Augmentation.draw(rng)))
        rows.append((f"imagefolder:{source_path}", f"pbc:{src.parent.name}/{src.name}"))
    return rows


def build_dense(work: Path, cells: int, copies: int, seed: int = 0):
    from multiprocessing import Pool

    from wbc_data.core.labelmap import LabelMap
    from wbc_data.core.workspace import Workspace
    from wbc_data.ingest.engine import IngestOptions, ingest
    from wbc_data.manifest.merge import merge

    files = sorted(p for cls in PBC_CLASSES for p in (PBC / cls).glob("*.jpg") if not p.name.startswith("."))
    rng = np.random.default_rng(seed)
    picked = [files[k] for k in rng.choice(len(files), cells, replace=False)]
    up = work / "reupload"
    for cls in PBC_CLASSES:
        (up / cls).mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with Pool(2) as pool:
        jobs = [(p, up, copies, seed * 100_003 + k) for k, p in enumerate(picked)]
        truth = dict(row for rows in pool.imap_unordered(_write_copies, jobs, chunksize=8) for row in rows)
    made = time.perf_counter() - start
    ws = Workspace(work / "ws")
    start = time.perf_counter()
    ingest("pbc", PBC_PARENT, ws, IngestOptions(workers=2))
    label_map = LabelMap.from_dict({k: v for k, v in ACCURACY_LABEL_MAP.items() if k in PBC_CLASSES})
    ingest("imagefolder", up, ws, IngestOptions(workers=2, label_map=label_map))
    merge(ws)
    return ws, truth, made, time.perf_counter() - start


def run_dedup(root: str, cold: bool = True, **options) -> dict:
    """One ``dedup`` of the workspace at ``root`` (cold: its caches removed first), timed by phase."""
    import os

    from wbc_data.core.workspace import Workspace
    from wbc_data.dedup.run import DedupOptions, dedup

    if cold:
        shutil.rmtree(Path(root) / "cache", ignore_errors=True)
    load = os.getloadavg()[0]
    clock = PhaseClock()
    start = time.perf_counter()
    result = dedup(Workspace(Path(root)), DedupOptions(reports=False, workers=2, **options), clock)
    seconds = time.perf_counter() - start
    import resource

    used = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    cpu = sum(u.ru_utime + u.ru_stime for u in used)  # this process and its (joined) pool workers
    worker_mb = used[1].ru_maxrss / 1024  # the largest joined worker's peak (kB on Linux)
    phases = clock.seconds(start + seconds)
    frame = result.frame
    return {"seconds": seconds, "peak_mb": peak_mb(), "worker_mb": worker_mb, "phases": phases,
            "findings": result.findings,
            "load": (load, os.getloadavg()[0]), "cpu": cpu,
            "ids": frame["sample_id"].to_numpy(object),
            "cluster": frame["dup_cluster"].to_numpy("float64", na_value=np.nan),
            "label": frame["label"].to_numpy(object), "status": frame["label_status"].to_numpy(object)}  # fmt: skip


def run_single_link(root: str) -> dict:
    """Issue 4's path: pHash candidates verified by thumbnail correlation >= 0.90, then connected components."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from wbc_data.core import manifest
    from wbc_data.core.workspace import Workspace
    from wbc_data.dedup.dihedral import dihedral_phashes
    from wbc_data.dedup.pairs import hash_candidates
    from wbc_data.dedup.participants import thumb_array

    start = time.perf_counter()
    table = manifest.read(Workspace(Path(root)).unified_manifest)
    ok = np.flatnonzero(table.column("status").to_numpy(zero_copy_only=False) == "ok")
    table = table.take(ok)
    thumbs = thumb_array(table.column("thumb"))
    found, _ = hash_candidates(dihedral_phashes(thumbs), thumbs, 8, 10)
    found = found[found["correlation"] >= 0.90]
    n = len(thumbs)
    a, b = found["a"].to_numpy(np.int64), found["b"].to_numpy(np.int64)
    _, comp = connected_components(coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n)), directed=False)
    size = np.bincount(comp)
    cluster = np.where(size[comp] > 1, comp, -1).astype("float64")
    cluster[cluster < 0] = np.nan
    return {"seconds": time.perf_counter() - start, "peak_mb": peak_mb(),
            "ids": np.asarray(table.column("sample_id").to_pylist(), object), "cluster": cluster,
            "label": np.asarray(table.column("label").to_pylist(), object),
            "status": np.asarray(table.column("label_status").to_pylist(), object)}  # fmt: skip


def _pairs(counts: pd.Series) -> int:
    return int((counts * (counts - 1) // 2).sum())


def scores(run: dict, truth: dict[str, str]) -> dict[str, float]:
    """Pair recall over (original + its copies) groups; precision over found pairs that involve a copy (PBC's own
    near-twins among the untouched folder are real duplicates, not counted either way); clusters with two
    picked originals; clusters with two exact labels; the largest cluster."""
    frame = pd.DataFrame({"id": run["ids"], "cluster": run["cluster"]})
    frame["group"] = frame["id"].map(truth)
    originals = set(truth.values())
    frame.loc[frame["id"].isin(originals), "group"] = frame["id"]
    frame["copy"] = frame["id"].isin(truth.keys())
    true_pairs = _pairs(frame.dropna(subset=["group"]).groupby("group").size())
    clustered = frame.dropna(subset=["cluster"])
    both = _pairs(clustered.dropna(subset=["group"]).groupby(["cluster", "group"]).size())
    with_copy = clustered.groupby("cluster").agg(n=("id", "size"), copies=("copy", "sum"))
    # found pairs that involve at least one copy: all pairs of the cluster minus pairs among its non-copies
    found_pairs = int((with_copy.n * (with_copy.n - 1) // 2 - (with_copy.n - with_copy.copies)
                       * (with_copy.n - with_copy.copies - 1) // 2).sum())  # fmt: skip
    mixed = int((clustered.dropna(subset=["group"]).groupby("cluster")["group"].nunique() > 1).sum())
    exact = pd.DataFrame({"cluster": run["cluster"], "label": run["label"], "status": run["status"]})
    exact = exact[(exact["status"] == "exact") & exact["cluster"].notna()]
    conflicts = int((exact.groupby("cluster")["label"].nunique() > 1).sum())
    largest = int(clustered.groupby("cluster").size().max()) if len(clustered) else 0
    return {"recall": both / max(1, true_pairs), "precision": both / max(1, found_pairs), "true pairs": true_pairs,
            "mixed originals": mixed, "label conflicts": conflicts, "largest": largest}  # fmt: skip


def dense(args: argparse.Namespace) -> None:
    import json
    import os

    work = Path(args.work or tempfile.mkdtemp(prefix="dedup-dense-"))
    try:
        if (work / "truth.json").is_file():  # --work of an earlier run: the same manifest again
            from wbc_data.core.workspace import Workspace

            ws, truth, made, ingested = Workspace(work / "ws"), json.loads((work / "truth.json").read_text()), 0, 0
        else:
            ws, truth, made, ingested = build_dense(work, args.cells, args.copies, args.seed)
            (work / "truth.json").write_text(json.dumps(truth))
        print(f"{time.strftime('%Y-%m-%d %H:%M')}, {cpu_name()}, {os.cpu_count()} cores")
        contenders = []
        if args.before and args.only != "after":
            contenders.append((f"before: {args.before_name} (cold)", in_tree(args.before, str(ws.root))))
        ours = contenders[0][1] if args.only == "before" else in_child(run_dedup, str(ws.root))
        if args.only != "before":
            contenders.append(("wbc-data dedup (cold: signatures + registration)", ours))
        if args.warm and args.only != "before":
            contenders.append(("wbc-data dedup (warm: nothing changed)", in_child(run_dedup, str(ws.root), False)))
        if not args.skip_single_link:
            contenders.append(("baseline: issue 4 pHash + thumb corr 0.90, single link",
                               in_child(run_single_link, str(ws.root))))  # fmt: skip
        rows = len(ours["ids"])
        print(f"dense case: {args.cells} real PBC cells x {args.copies} augmented copies + the real PBC folder: "
              f"{rows:,} rows (copies written in {made:.0f} s, ingest + merge {ingested:.0f} s)")  # fmt: skip
        print(f"\n{'method':58} {'seconds':>8} {'CPU s':>8} {'load':>9} {'peak MB':>8} {'recall':>7} "
              f"{'precision':>9} {'mixed':>6} {'label conflicts':>15} {'largest':>8}")  # fmt: skip
        for name, run in contenders:
            s = scores(run, truth)
            load = "{:.1f}-{:.1f}".format(*run["load"]) if "load" in run else ""
            cpu = f"{run['cpu']:.0f}" if "cpu" in run else ""
            print(f"{name:58} {run['seconds']:>8.1f} {cpu:>8} {load:>9} {run['peak_mb']:>8,.0f} {s['recall']:>7.4f} "
                  f"{s['precision']:>9.4f} {s['mixed originals']:>6} {s['label conflicts']:>15} "
                  f"{s['largest']:>8}")  # fmt: skip
        for name, run in contenders:
            if "phases" not in run:
                continue
            print(f"\n{name}\n  phases (s): " + ", ".join(f"{k} {v:.1f}" for k, v in run["phases"].items()))
            f = run["findings"]
            print("  findings: " + ", ".join(f"{k} {v:,}" for k, v in f.items()))
            if "worker_mb" in run:
                print(f"  largest worker's peak RSS: {run['worker_mb']:,.0f} MB")
            verified = f.get("registered", 0)
            verify_s = sum(v for k, v in run["phases"].items() if k.startswith("verify") or k == "copy sets")
            if verified and verify_s:
                print(f"  registration: {verified:,} pairs registered (field windows included) in {verify_s:.1f} s "
                      f"({verified / verify_s:,.0f} pairs/s, 2 workers)")  # fmt: skip
        import pickle

        (work / f"runs-{args.only or 'both'}.pkl").write_bytes(pickle.dumps(contenders))
        if args.before and not args.only:
            before = contenders[0][1]
            print(f"\nbefore / after (cold): {before['seconds'] / ours['seconds']:.2f}x")
            same = _same_clusters(before, ours)
            print(f"clusters equal to the before run: {same:.4f} of rows in identical clusters")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def _same_clusters(a: dict, b: dict) -> float:
    """Fraction of rows whose cluster (as a set of sample ids) is the same in both runs."""

    def sets(run: dict) -> dict[str, frozenset]:
        frame = pd.DataFrame({"id": run["ids"], "cluster": run["cluster"]}).dropna()
        groups = frame.groupby("cluster")["id"].apply(frozenset)
        return {i: groups[c] for i, c in zip(frame["id"], frame["cluster"], strict=True)}

    sa, sb = sets(a), sets(b)
    ids = set(a["ids"]) | set(b["ids"])
    return sum(sa.get(i, frozenset({i})) == sb.get(i, frozenset({i})) for i in ids) / max(1, len(ids))


# --------------------------------------------------------------------------- the real PBC half


def pbc(args: argparse.Namespace) -> None:
    """The real PBC half alone: ingest, dedup cold, dedup warm (nothing changed), then one new source (the Kaggle
    re-upload's validation split) ingested and dedup warm again: only the new rows' signatures and their pairs."""
    import os

    from wbc_data.core.workspace import Workspace
    from wbc_data.ingest.engine import IngestOptions, ingest
    from wbc_data.manifest.merge import merge

    work = Path(args.work or tempfile.mkdtemp(prefix="dedup-pbc-"))
    try:
        ws = Workspace(work / "ws")
        print(f"{time.strftime('%Y-%m-%d %H:%M')}, {cpu_name()}, {os.cpu_count()} cores")
        start, load = time.perf_counter(), os.getloadavg()[0]
        ingest("pbc", PBC_PARENT, ws, IngestOptions(workers=2))
        merge(ws)
        ingest_s = time.perf_counter() - start
        print(f"ingest + merge of the PBC half: {ingest_s:.1f} s (load {load:.1f})")
        runs = []
        if args.before:
            runs.append((f"before: {args.before_name}, cold", in_tree(args.before, str(ws.root))))
        runs.append(("cold", in_child(run_dedup, str(ws.root))))
        runs.append(("warm (nothing changed)", in_child(run_dedup, str(ws.root), False)))
        start = time.perf_counter()
        ingest("kaggle-cancer-mix", SHARED / "kaggle_cancer_mix", ws, IngestOptions(workers=2))
        merge(ws)
        print(f"new source (kaggle-cancer-mix val) ingest + merge: {time.perf_counter() - start:.1f} s")
        runs.append(("warm after adding kaggle-cancer-mix", in_child(run_dedup, str(ws.root), False)))
        for name, r in runs:
            f = r["findings"]
            print(f"{name:42} {r['seconds']:7.1f} s  load {r['load'][0]:.1f}-{r['load'][1]:.1f}  rows "
                  f"{len(r['ids']):,}  peak {r['peak_mb']:,.0f} MB  registered {f.get('registered', '?')} "
                  f"(cached {f.get('registration cached', 0):,}); "
                  + ", ".join(f"{k} {v:.1f}" for k, v in r["phases"].items()))  # fmt: skip
        cold = runs[-3][1]["seconds"]
        print(f"cold dedup / ingest: {cold / ingest_s:.1f}x")
        if args.before:
            print(f"before / after (cold): {runs[0][1]['seconds'] / cold:.2f}x; clusters equal to the before run: "
                  f"{_same_clusters(runs[0][1], runs[-3][1]):.4f} of rows in identical clusters")  # fmt: skip
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------- million


def run_million(n: int, neighbours: int, seed: int, crops: bool) -> dict:
    from wbc_data.dedup.confirm import RESULT_FIELDS
    from wbc_data.dedup.linkage import COPY, NONE, PairTable, copy_sets
    from wbc_data.dedup.relations import SignatureView, find_candidates

    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    thumbs = np.empty((n, 32, 32), np.uint8)
    words = np.empty((n, 2, 128), np.float32)
    for start in range(0, n, 65_536):
        m = min(n, start + 65_536) - start
        coarse = rng.integers(0, 256, (m, 8, 8), dtype=np.uint8)
        thumbs[start : start + m] = np.repeat(np.repeat(coarse, 4, axis=1), 4, axis=2)
        w = rng.standard_normal((m, 2, 128), dtype=np.float32)
        words[start : start + m] = w / np.linalg.norm(w, axis=-1, keepdims=True)
    copies = rng.choice(n, n // 10, replace=False)
    source = rng.integers(0, n, len(copies))
    keep = ~np.isin(source, copies) & (source != copies)
    copies, source = copies[keep], source[keep]
    for start in range(0, len(copies), 65_536):  # in chunks: the generator must not set the peak
        c, src = copies[start : start + 65_536], source[start : start + 65_536]
        noise = rng.integers(-6, 7, (len(c), 32, 32), dtype=np.int16)
        thumbs[c] = np.clip(thumbs[src].astype(np.int16) + noise, 0, 255).astype(np.uint8)
        w = words[src] + 0.05 * rng.standard_normal((len(c), 2, 128), dtype=np.float32)
        words[c] = w / np.linalg.norm(w, axis=-1, keepdims=True)
    rss_inputs = peak_mb()
    made = time.perf_counter() - t0
    view = SignatureView(None, np.full(n, "", object), np.ones(n, bool), words, thumbs, np.zeros(n, bool),
                         np.zeros(n, np.float32))  # type: ignore[arg-type]  # fmt: skip
    t1 = time.perf_counter()
    clock = PhaseClock()
    candidates = find_candidates(view, 8, 10 if crops else None, neighbours, progress=clock)
    search_s = time.perf_counter() - t1
    planted = set((np.minimum(copies, source) * n + np.maximum(copies, source)).tolist())
    lo, hi = candidates.pairs.min(axis=1), candidates.pairs.max(axis=1)
    codes = lo * n + hi
    found_planted = int(np.isin(np.fromiter(planted, np.int64), codes).sum())

    def fake_register(pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = np.minimum(pairs[:, 0], pairs[:, 1]) * n + np.maximum(pairs[:, 0], pairs[:, 1])
        hit = np.isin(c, np.fromiter(planted, np.int64))
        results = np.zeros((len(pairs), len(RESULT_FIELDS)), np.float32)
        results[:, 0] = np.where(hit, 0.97, 0.3)
        return np.where(hit, COPY, NONE).astype(np.int8), results

    t2 = time.perf_counter()
    table = PairTable.build(n, candidates.pairs, *fake_register(candidates.pairs))
    sets = copy_sets(np.arange(n), table, fake_register)
    link_s = time.perf_counter() - t2
    phases = clock.seconds(t1 + search_s)
    return {"rows": n, "made": made, "search_s": search_s, "phases": phases, "link_s": link_s, "peak_mb": peak_mb(),
            "inputs_mb": rss_inputs,
            "candidates": len(candidates.pairs), "hash": candidates.hash_pairs, "word": candidates.word_pairs,
            "capped": candidates.capped, "planted": len(planted), "planted_found": found_planted,
            "sets": int((sets.leader == np.arange(n)).sum()), "rounds": sets.rounds,
            "on_demand": sets.registered_on_demand}  # fmt: skip


def million(args: argparse.Namespace) -> None:
    print(f"million case: {args.rows:,} rows of synthetic signatures (no pixels), {args.neighbours} word neighbours, "
          f"crop hashes {'on' if args.crops else 'off (--crops to include them)'}")  # fmt: skip
    for n in sorted({max(10_000, args.rows // 10), args.rows} if args.tenth else {args.rows}):
        r = in_child(run_million, n, args.neighbours, args.seed, args.crops)
        print(f"{n:>10,} rows: generate {r['made']:.1f} s, candidate search {r['search_s']:.1f} s, linkage "
              f"{r['link_s']:.1f} s, peak RSS {r['peak_mb']:,.0f} MB (inputs made: {r['inputs_mb']:,.0f} MB); "
              f"{r['candidates']:,} candidate pairs "
              f"({r['hash']:,} hash, {r['word']:,} words, {r['capped']:,} capped); planted copies among candidates "
              f"{r['planted_found']:,}/{r['planted']:,}; {r['sets']:,} copy sets in {r['rounds']} round(s), "
              f"{r['on_demand']:,} pairs registered on demand")  # fmt: skip
        print(f"{'':>10}  search phases (s): " + ", ".join(f"{k} {v:.1f}" for k, v in r["phases"].items()))
        if args.pairs_per_s:
            total = r["candidates"] + r["on_demand"]
            print(
                f"{'':>10}  registration of those pairs at {args.pairs_per_s:,.0f} pairs/s (dense run): "
                f"~{total / args.pairs_per_s / 3600:.1f} h on 2 cores (extrapolated, not run)"
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("case", choices=("dense", "million", "pbc"))
    parser.add_argument("--cells", type=int, default=500)
    parser.add_argument("--copies", type=int, default=30)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--neighbours", type=int, default=4)
    parser.add_argument("--crops", action="store_true", help="million: also the crop-hash search (radius 10)")
    parser.add_argument("--tenth", action="store_true", help="million: also run at a tenth of --rows first")
    parser.add_argument("--pairs-per-s", type=float, default=0.0, help="registration speed from a dense run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--before", default=None, help="dense/pbc: also run the cold dedup of this source tree")
    parser.add_argument("--before-name", default="main", help="its name in the table")
    parser.add_argument("--warm", action="store_true", help="dense: also a warm re-run")
    parser.add_argument(
        "--only",
        choices=("before", "after"),
        default=None,
        help="dense: run one side only (two copies of one --work, run at once, share the load)",
    )
    parser.add_argument("--skip-single-link", action="store_true", help="dense: without issue 4's baseline")
    args = parser.parse_args(argv)
    {"dense": dense, "million": million, "pbc": pbc}[args.case](args)


if __name__ == "__main__":
    main()
