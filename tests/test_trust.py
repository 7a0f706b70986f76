"""Hostile and damaged inputs (issue 16): dataset cells that point outside their root, a damaged stage file, two
writers on one workspace, a planted pickle in the resume cache, Ctrl-C and kills, read-only and file-as-workspace
paths, GIFs and decompression bombs. Each case was a traceback, a silent overwrite or a read outside the roots."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from tests.fixtures import noise, png_bytes
from wbc_data.core.labelmap import LabelMap
from wbc_data.ingest.engine import IngestOptions, ingest

LABEL_MAP = LabelMap.from_dict({"lymphocyte": "LY", "blast": "BL"})


# --------------------------------------------------------------------------- dataset cells that name files


def _parquet_with_paths(folder, paths):
    """A Hub-layout parquet whose ``image`` cells carry no bytes, only a ``path``, as ``datasets`` writes them."""
    import datasets

    features = datasets.Features(image=datasets.Image(), label=datasets.Value("string"))
    table = pa.table(
        {
            "image": pa.array(
                [{"bytes": None, "path": p} for p in paths], pa.struct([("bytes", pa.binary()), ("path", pa.string())])
            ),
            "label": ["lymphocyte"] * len(paths),
        }
    )
    metadata = json.dumps({"info": {"features": features.to_dict()}})
    table = table.replace_schema_metadata({"huggingface": metadata})
    (folder / "data").mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / "data" / "train-00000-of-00001.parquet")


def test_hub_cells_may_only_name_files_under_the_dataset_folder(tmp_path, workspace):
    root = tmp_path / "dataset"
    inside = root / "images"
    inside.mkdir(parents=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    secret = png_bytes(noise((20, 20), 1))
    (outside / "secret.png").write_bytes(secret)
    good = png_bytes(noise((20, 20), 2))
    (inside / "good.png").write_bytes(good)
    (inside / "link_out.png").symlink_to(outside / "secret.png")
    paths = [
        "/etc/passwd",
        str(outside / "secret.png"),  # absolute, outside
        "../elsewhere/secret.png",  # relative, climbing out of the dataset folder
        "../../elsewhere/secret.png",
        str(inside / "link_out.png"),  # a link inside the root that leads out of it
        str(inside / "good.png"),  # the one cell that may be read
    ]
    _parquet_with_paths(root, paths)
    options = IngestOptions(workers=1, label_map=LABEL_MAP, licence="test")
    frame = ingest("hub", root, workspace, options).frame.set_index("source_path")
    assert len(frame) == len(paths)
    ok = frame[frame["status"] == "ok"]
    assert list(ok.index) == ["train/5"] and ok["sha256"].iloc[0] == hashlib.sha256(good).hexdigest()
    refused = frame.drop(index="train/5")
    assert (refused["status"] == "rejected").all()
    assert refused["reason"].str.contains("outside the source root").all(), refused["reason"].tolist()
    assert refused["sha256"].isna().all()  # never read: nothing was hashed
    forbidden = {hashlib.sha256(secret).hexdigest(), hashlib.sha256(Path("/etc/passwd").read_bytes()).hexdigest()}
    assert not forbidden & set(frame["sha256"].dropna())


def test_parquet_rows_of_a_wbcbench_folder_may_not_name_files_outside_it(tmp_path):
    from wbc_data.sources.image_cells import OutsideRoot, image_cell_bytes

    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "outside.png").write_bytes(png_bytes(noise((8, 8), 3)))
    (root / "inside.png").write_bytes(png_bytes(noise((8, 8), 4)))
    assert image_cell_bytes({"bytes": None, "path": "inside.png"}, [root], root)
    for named in ("../outside.png", str(tmp_path / "outside.png"), "/etc/passwd"):
        with pytest.raises(OutsideRoot, match="outside the source root"):
            image_cell_bytes({"bytes": None, "path": named}, [root], root)


# --------------------------------------------------------------------------- a damaged stage file


@pytest.fixture
def staged(tmp_path):
    """The shipped PBC sample and its Kaggle copies: ingested, merged, deduplicated, split."""
    from tests.fixtures import sample_copy
    from wbc_data.core.workspace import Workspace
    from wbc_data.dedup.run import DedupOptions, dedup
    from wbc_data.io.resources import sample_dir
    from wbc_data.manifest.merge import merge
    from wbc_data.split import SplitOptions, run_split

    ws = Workspace(tmp_path / "ws")
    ingest("pbc", sample_copy(tmp_path / "pbc"), ws, IngestOptions(workers=1))
    ingest("kaggle-cancer-mix", sample_dir() / "kaggle_cancer_mix", ws, IngestOptions(workers=1))
    merge(ws)
    dedup(ws, DedupOptions(workers=1, reports=False))
    run_split(ws, SplitOptions(seed=3))
    return ws


def _cli(*args):
    from typer.testing import CliRunner

    from wbc_data.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_truncated_stage_file_is_rebuilt_by_its_stage_and_named_by_every_other_command(staged):
    from wbc_data.core.stages import load_view, read_stage

    ws = staged
    before = load_view(ws).frame.set_index("sample_id")[["dup_cluster", "dup_keep"]]
    dedup_file = ws.stage_path("dedup")
    _truncate(dedup_file)
    for args in (
        ["manifest", "-w", ws.root],
        ["split", "-w", ws.root],
        ["gap-report", "-w", ws.root],
        ["train", "-r", "tiny-cpu", "-w", ws.root],
    ):
        result = _cli(*args)
        assert result.exit_code == 2, (args, result.output)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert str(dedup_file) in result.output and "wbc-data dedup" in result.output, (args, result.output)
        assert "Traceback" not in result.output and len(lines) <= 3, (args, result.output)
    result = _cli("dedup", "-w", ws.root, "-j", "1")
    assert result.exit_code == 0, result.output
    kept = sorted(ws.stages_dir.glob("dedup.parquet.damaged-*"))
    assert len(kept) == 1 and kept[0].name in result.output and "moved aside" in result.output
    read_stage(dedup_file)  # rebuilt, readable
    after = load_view(ws).frame.set_index("sample_id")[["dup_cluster", "dup_keep"]]
    same = before["dup_keep"].astype(object).fillna("none") == after.loc[before.index, "dup_keep"].astype(
        object
    ).fillna("none")
    assert same.all() and (~before["dup_keep"].astype(object).fillna(True).astype(bool)).sum() == 6  # as before
    _truncate(ws.stage_path("split"))
    result = _cli("split", "-w", ws.root, "--seed", "3")
    assert result.exit_code == 0 and "moved aside" in result.output, result.output
    read_stage(ws.stage_path("split"))


# --------------------------------------------------------------------------- one writer at a time

HOLD_LOCK = """
import sys, time
from wbc_data.io.locks import writer_lock
with writer_lock(sys.argv[1], sys.argv[2], "wbc-data " + sys.argv[2] + " (held by the test)"):
    print("locked", flush=True)
    time.sleep(120)
"""


def _holder(root, part):
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(root), part], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


@pytest.mark.parametrize("part", ["dedup", "source-pbc"])
def test_a_second_writer_refuses_naming_the_first_and_a_killed_holder_leaves_no_lock(staged, part):
    import signal

    ws = staged
    args = ["dedup", "-w", ws.root, "-j", "1"] if part == "dedup" else ["ingest", "pbc", _pbc_folder(ws), "-w", ws.root]
    stage_file = ws.stage_path("dedup") if part == "dedup" else ws.source_manifest("pbc")
    written = stage_file.read_bytes()
    holder = _holder(ws.root, part)
    try:
        refused = _cli(*args)
        assert refused.exit_code == 2, refused.output
        assert f"pid {holder.pid}" in refused.output and f"wbc-data {part} (held by the test)" in refused.output
        assert "Traceback" not in refused.output
        assert stage_file.read_bytes() == written  # the refused run wrote nothing
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    result = _cli(*args)  # the lock of a killed process is no obstacle
    assert result.exit_code == 0, result.output


def _pbc_folder(ws):
    from wbc_data.core.workspace import workspace_roots

    return workspace_roots(ws).location("pbc")


def test_writers_of_different_parts_run_side_by_side(tmp_path):
    from wbc_data.core.errors import WorkspaceBusy
    from wbc_data.io.locks import writer_lock

    with (
        writer_lock(tmp_path, "source-a"),
        writer_lock(tmp_path, "source-b"),
        pytest.raises(WorkspaceBusy, match="is writing source-a"),
        writer_lock(tmp_path, "source-a"),
    ):
        pass


# --------------------------------------------------------------------------- the resume cache holds data only


class _Payload:
    """Unpickling this creates a file: the proof that a planted pickle was executed."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_a_pickle_planted_in_the_resume_cache_is_never_executed(tmp_path, workspace):
    import pickle
    import sqlite3

    from tests.fixtures import sample_copy

    data = sample_copy(tmp_path / "pbc")
    first = ingest("pbc", data, workspace, IngestOptions(workers=1)).frame
    marker = tmp_path / "executed"
    with sqlite3.connect(workspace.cache_path("pbc")) as conn:
        planted = conn.execute("UPDATE results SET payload = ?", (pickle.dumps(_Payload(marker)),)).rowcount
    assert planted > 100
    again = ingest("pbc", data, workspace, IngestOptions(workers=1))
    assert not marker.exists()
    assert again.decoded == planted  # every planted row was a miss and was recomputed
    columns = ["sample_id", "status", "sha256", "pixel_hash", "phash"]
    assert again.frame[columns].equals(first[columns])
    resumed = ingest("pbc", data, workspace, IngestOptions(workers=1))
    assert resumed.decoded == 0  # the cache it rewrote is used


def test_a_cache_of_the_old_pickle_format_is_emptied_unread(tmp_path):
    import pickle
    import sqlite3

    from wbc_data.ingest.cache import ResultCache

    path = tmp_path / "c.sqlite"
    marker = tmp_path / "executed"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE results (rel BLOB PRIMARY KEY, size INTEGER, mtime_ns INTEGER, job_key TEXT, payload BLOB)"
        )
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        conn.execute("INSERT INTO meta VALUES ('root', '/data')")
        conn.execute("INSERT INTO results VALUES (?, 1, 2, 'k', ?)", (b"a.jpg", pickle.dumps(_Payload(marker))))
    cache = ResultCache(path, "/data")
    assert cache.load() == {} and not marker.exists()
    cache.put("b.jpg", 1, 2, "k", {"file": {"thumb": b"\x00\xff", "phash": 2**64 - 1}, "crops": {}})
    cache.close()
    reopened = ResultCache(path, "/data")
    hit = reopened.get(reopened.load(), "b.jpg", 1, 2, "k")
    assert hit == {"file": {"thumb": b"\x00\xff", "phash": 2**64 - 1}, "crops": {}}
    reopened.close()


# --------------------------------------------------------------------------- Ctrl-C and kills


def test_ctrl_c_is_one_line_and_exit_130_in_every_stage(tmp_path, monkeypatch):
    from tests.fixtures import sample_copy
    from wbc_data.core.workspace import Workspace
    from wbc_data.manifest.merge import merge

    data = sample_copy(tmp_path / "pbc")
    ws = Workspace(tmp_path / "ws")

    def interrupt(*_args, **_kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr("wbc_data.ingest.engine.process", interrupt)
        stopped = _cli("ingest", "pbc", data, "-w", ws.root, "-j", "1")
    assert stopped.exit_code == 130, stopped.output
    assert "interrupted" in stopped.output and "Traceback" not in stopped.output
    assert not ws.source_manifest("pbc").exists()  # nothing half-written
    assert _cli("ingest", "pbc", data, "-w", ws.root, "-j", "1").exit_code == 0
    merge(ws)
    with monkeypatch.context() as patch:
        patch.setattr("wbc_data.dedup.extract.compute", interrupt)
        stopped = _cli("dedup", "-w", ws.root, "-j", "1")
    assert stopped.exit_code == 130 and "interrupted" in stopped.output, stopped.output
    assert not ws.stage_path("dedup").exists()
    with monkeypatch.context() as patch:  # any other command, at any point
        patch.setattr("wbc_data.manifest.merge.merge", interrupt)
        stopped = _cli("manifest", "-w", ws.root)
    assert stopped.exit_code == 130 and "Traceback" not in stopped.output, stopped.output


def test_ctrl_c_during_start_up_is_one_line_and_exit_130(tmp_path):
    import subprocess
    import sys

    script = (
        "import builtins\n"
        "real = builtins.__import__\n"
        "def slow_import(name, *args, **kwargs):\n"
        "    if name == 'wbc_data.cli.common':\n"
        "        raise KeyboardInterrupt\n"
        "    return real(name, *args, **kwargs)\n"
        "builtins.__import__ = slow_import\n"
        "from wbc_data.cli import main\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 130
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


WORKERS_OF_A_KILLED_PARENT = """
import time
from wbc_data.io.parallel import worker_pool

def work(_):
    time.sleep(300)

with worker_pool(2) as pool:
    pool.map_async(work, range(2))
    time.sleep(0.5)
    print(" ".join(str(p.pid) for p in pool._pool), flush=True)
    time.sleep(300)
"""


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads process states from /proc (Linux)")
def test_workers_end_when_their_parent_is_killed():
    import signal
    import subprocess
    import sys
    import time

    parent = subprocess.Popen([sys.executable, "-c", WORKERS_OF_A_KILLED_PARENT], stdout=subprocess.PIPE, text=True)
    workers = [int(pid) for pid in parent.stdout.readline().split()]
    assert len(workers) == 2 and all(_running(pid) for pid in workers)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_running(pid) for pid in workers)


# --------------------------------------------------------------------------- workspaces that cannot be one


def test_a_file_given_as_workspace_is_named_as_such(tmp_path):
    from wbc_data.io.resources import sample_dir

    not_a_folder = tmp_path / "ws"
    not_a_folder.write_text("x")
    for args in (
        ["ingest", "kaggle-cancer-mix", sample_dir() / "kaggle_cancer_mix", "-w", not_a_folder],
        ["manifest", "-w", not_a_folder],
        ["dedup", "-w", not_a_folder],
        ["split", "-w", not_a_folder],
    ):
        result = _cli(*args)
        assert result.exit_code == 2, (args, result.output)
        assert f"{not_a_folder}: is a file, not a workspace folder" in result.output, (args, result.output)
    assert not_a_folder.read_text() == "x"


def test_a_read_only_workspace_is_one_line(tmp_path, monkeypatch):
    """Root ignores permission bits, so the read-only file system is simulated where the workspace is probed."""
    import errno
    import pathlib

    from wbc_data.io.resources import sample_dir

    real_touch = pathlib.Path.touch

    def read_only(self, *args, **kwargs):
        if "ws" in self.parts:
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_touch(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "touch", read_only)
    result = _cli("ingest", "kaggle-cancer-mix", sample_dir() / "kaggle_cancer_mix", "-w", tmp_path / "ws")
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "the workspace is not writable (Read-only file system)" in result.output


# --------------------------------------------------------------------------- GIFs and decompression bombs


def _gif(frames: int) -> bytes:
    images = [noise((30, 24), seed, "RGB").convert("P") for seed in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, "GIF", save_all=frames > 1, append_images=images[1:])
    return buffer.getvalue()


def test_still_gifs_are_read_and_animated_ones_refused_with_the_reason(tmp_path, workspace):
    from tests.fixtures import sample_copy

    data = sample_copy(tmp_path / "pbc")
    folder = data / "PBC_dataset_normal_DIB" / "lymphocyte"
    still = _gif(1)
    (folder / "LY_still.gif").write_bytes(still)
    (folder / "LY_moving.gif").write_bytes(_gif(3))
    frame = ingest("pbc", data, workspace, IngestOptions(workers=1)).frame.set_index("source_path")
    row = frame.loc["lymphocyte/LY_still.gif"]
    assert row["status"] == "ok" and row["label"] == "LY" and (row["width"], row["height"]) == (30, 24)
    assert row["sha256"] == hashlib.sha256(still).hexdigest()
    moving = frame.loc["lymphocyte/LY_moving.gif"]
    assert moving["status"] == "rejected" and moving["reason"] == "animated GIF (3 frames): not a still image"


def test_the_pixel_limit_is_the_users_not_pillows(monkeypatch):
    from wbc_data.imaging.decode import ImageRejected, decode_rgb

    data = png_bytes(noise((100, 100), 5))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow's own limit far below the image
    assert decode_rgb(data, max_pixels=1_000_000).width == 100  # --max-pixels allows it: read
    with pytest.raises(ImageRejected) as refused:
        decode_rgb(data, max_pixels=5_000)
    assert str(refused.value) == "decompression bomb: 100x100 = 10,000 pixels exceeds the limit of 5,000 (--max-pixels)"
