"""Building publish shards: wbc-data's streamed writer against ``datasets.Dataset.from_dict(...).to_parquet`` on the
same rows, same features and same parquet options (content-defined chunking, page index), in the same run.

Run: ``uv run python benchmarks/publish.py [--root PATH] [--sizes 2000,0] [--repeat 2]``

The PBC half is ingested once into a temporary workspace; every usable row is a row of the shard (size 0 = all).
Both contenders read each image's original bytes through the same pixel loader, so the comparison is the writing:
wbc-data streams rows into 100-row row groups; the baseline gathers every row into a dict, builds an in-memory
``Dataset`` with ``from_dict`` and writes it with ``to_parquet``. Rows/s and MB/s (image bytes in) are the best of
``--repeat`` runs, contenders alternating, page cache warm. Peak memory is each contender's own peak RSS (VmHWM) in
a fresh process, at each size: flat in the number of rows means the writer holds a row group, not the dataset.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from wbc_data import manifest  # noqa: E402
from wbc_data.core.workspace import Workspace  # noqa: E402
from wbc_data.io.pixels import PixelLoader  # noqa: E402
from wbc_data.publish.hfdata import PUBLISHED_COLUMNS, features, iter_examples  # noqa: E402
from wbc_data.publish.shards import write_split  # noqa: E402

DEFAULT_ROOT = REPO.parent / "shared" / "data" / "pbc"


def rows(ws: Workspace, limit: int):
    frame = manifest.read_frame(ws.unified_manifest)
    frame = frame[frame["status"] == "ok"].sort_values("source_path").reset_index(drop=True)
    return frame.head(limit) if limit else frame


def ours(ws: Workspace, frame, out: Path) -> int:
    columns = [c for c in PUBLISHED_COLUMNS if c in frame.columns]
    result = write_split(frame, PixelLoader.for_workspace(ws), columns, features(columns), out, "train")
    return sum(p.stat().st_size for p in result.paths)


def baseline(ws: Workspace, frame, out: Path) -> int:
    import datasets

    columns = [c for c in PUBLISHED_COLUMNS if c in frame.columns]
    feats = features(columns)
    examples = list(iter_examples(frame, PixelLoader.for_workspace(ws), columns))  # the same rows, all in memory
    table = {name: [e[name] for e in examples] for name in feats}
    path = out / "train.parquet"
    out.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict(table, features=feats).to_parquet(str(path))
    return path.stat().st_size


CONTENDERS = {"wbc-data write_split (streamed)": ours, "datasets from_dict + to_parquet": baseline}


def child(args: argparse.Namespace) -> None:
    """One contender, one size, in this fresh process (the parent reads its peak RSS)."""
    import datasets

    datasets.disable_progress_bars()
    ws = Workspace(Path(args.workspace))
    frame = rows(ws, args.limit)
    before = _status_mib("VmRSS")
    with tempfile.TemporaryDirectory(prefix="wbc-bench-publish-") as tmp:
        size = CONTENDERS[args.child](ws, frame, Path(tmp))
    print(json.dumps({"rows": len(frame), "file_bytes": size, "start_mib": before, "peak_mib": _status_mib("VmHWM")}))


def _status_mib(key: str) -> float:
    """This process's own memory figure from /proc (VmHWM: peak RSS since exec, unlike ru_maxrss, which keeps the
    forking parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss(name: str, ws: Workspace, limit: int) -> tuple[int, float, float]:
    """Rows, RSS once the rows are loaded, and peak RSS, of one contender in a fresh process."""
    cmd = [sys.executable, __file__, "--child", name, "--workspace", str(ws.root), "--limit", str(limit)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{name} at {limit} rows failed: {done.stderr[-2000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return report["rows"], report["start_mib"], report["peak_mib"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--sizes", default="2000,0", help="row counts for the memory runs (0: all usable rows)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--child", choices=list(CONTENDERS), help=argparse.SUPPRESS)
    parser.add_argument("--workspace", help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    import datasets

    from wbc_data.ingest.engine import IngestOptions, ingest
    from wbc_data.manifest.merge import merge

    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory(prefix="wbc-bench-publish-") as tmp:
        ws = Workspace(Path(tmp) / "ws")
        ingest("pbc", args.root, ws, IngestOptions(workers=2))
        merge(ws)
        frame = rows(ws, 0)
        loader = PixelLoader.for_workspace(ws)
        payload = sum(len(loader.encoded(r)) for r in frame.to_dict("records"))  # also warms the page cache
        best: dict[str, float] = {}
        sizes: dict[str, int] = {}
        for i in range(args.repeat):
            for name, run in CONTENDERS.items():
                start = time.perf_counter()
                sizes[name] = run(ws, frame, Path(tmp) / f"run{i}-{list(CONTENDERS).index(name)}")
                seconds = time.perf_counter() - start
                best[name] = min(best.get(name, float("inf")), seconds)
        memory = {name: [peak_rss(name, ws, int(n)) for n in args.sizes.split(",")] for name in CONTENDERS}

    print(f"{len(frame):,} usable PBC rows, {payload / 1e6:,.1f} MB of images, best of {args.repeat} runs, "
          f"datasets {datasets.__version__}, {os.cpu_count()} CPUs")  # fmt: skip
    print(f"| {'writer':<34} | {'seconds':>7} | {'rows/s':>7} | {'MB/s':>6} | {'file MB':>7} |")
    print(f"|{'-' * 36}|{'-' * 9}|{'-' * 9}|{'-' * 8}|{'-' * 9}|")
    for name, seconds in best.items():
        print(f"| {name:<34} | {seconds:>7.2f} | {len(frame) / seconds:>7,.0f} | {payload / 1e6 / seconds:>6.1f} "
              f"| {sizes[name] / 1e6:>7.1f} |")  # fmt: skip
    first, second = list(best)
    print(f"ratio rows/s {first} / {second}: {best[second] / best[first]:.2f}x")
    print("peak RSS (fresh process each):")
    for name, runs in memory.items():
        shown = ", ".join(f"{n:,} rows: peak {peak:,.0f} MiB ({peak - start:+,.0f} over the loaded rows)"
                          for n, start, peak in runs)  # fmt: skip
        print(f"  {name}: {shown}; peak growth {runs[-1][2] - runs[0][2]:+,.0f} MiB")


if __name__ == "__main__":
    main()
