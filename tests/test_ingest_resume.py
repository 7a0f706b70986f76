"""Interrupted runs: Ctrl-C or a kill leaves the previous manifest intact, and a re-run resumes."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap

import pytest
from PIL import Image

from wbc_data.core import manifest
from wbc_data.core.labelmap import LabelMap
from wbc_data.core.progress import NullProgress
from wbc_data.ingest.engine import IngestInterrupted, IngestOptions, ingest

LABELS = LabelMap.from_dict({"a": "LY", "b": "MO"})


def _make_tree(root, n):
    for i in range(n):
        folder = root / ("a" if i % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        Image.new("RGB", (24, 24), (i % 256, (7 * i) % 256, (13 * i) % 256)).save(buf, "PNG")
        (folder / f"{i:04d}.png").write_bytes(buf.getvalue())


@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_keeps_old_manifest_and_resumes(tmp_path, workspace, workers):
    root = tmp_path / "data"
    _make_tree(root, 40)
    first = ingest("imagefolder", root, workspace, IngestOptions(workers=workers, label_map=LABELS))
    before = first.manifest_path.read_bytes()
    _make_tree(root / "more", 80)  # the folder grows; the second run is interrupted part-way

    class Interrupt(NullProgress):
        def advance(self, done, total=None, **stats):
            if done >= 70:
                raise KeyboardInterrupt

    with pytest.raises(IngestInterrupted, match="re-run to resume"):
        ingest("imagefolder", root, workspace, IngestOptions(workers=workers, label_map=LABELS), progress=Interrupt())
    assert first.manifest_path.read_bytes() == before, "the previous manifest must be untouched"
    resumed = ingest("imagefolder", root, workspace, IngestOptions(workers=workers, label_map=LABELS))
    assert resumed.from_cache >= 70 and resumed.decoded == 120 - resumed.from_cache
    assert len(resumed.frame) == 120 and (resumed.frame.status == "ok").all()
    fresh = ingest("imagefolder", root, workspace, IngestOptions(workers=1, label_map=LABELS, use_cache=False))
    assert resumed.frame.equals(fresh.frame)


def test_changed_file_is_decoded_again(tmp_path, workspace):
    root = tmp_path / "data"
    _make_tree(root, 6)
    ingest("imagefolder", root, workspace, IngestOptions(workers=1, label_map=LABELS))
    target = root / "a" / "0001.png"
    Image.new("RGB", (30, 30), (1, 1, 1)).save(target, "PNG")
    again = ingest("imagefolder", root, workspace, IngestOptions(workers=1, label_map=LABELS))
    assert again.decoded == 1 and again.from_cache == 5
    assert again.frame.set_index("source_path").loc["a/0001.png", "width"] == 30


def test_kill_mid_run(tmp_path):
    """A SIGKILL part-way: no manifest is half-written, and the re-run decodes only what was lost."""
    root, ws = tmp_path / "data", tmp_path / "ws"
    _make_tree(root, 60)
    script = textwrap.dedent(
        f"""
        import os, signal
        from wbc_data.ingest import cache
        from wbc_data.core.progress import NullProgress
        from wbc_data.ingest.engine import IngestOptions, ingest
        from wbc_data.core.labelmap import LabelMap
        from wbc_data.core.workspace import Workspace
        cache.ResultCache.put_orig = cache.ResultCache.put
        def put(self, *a):
            self.put_orig(*a)
            self.commit()
        cache.ResultCache.put = put
        class Kill(NullProgress):
            def advance(self, done, total=None, **stats):
                if done >= 25:
                    os.kill(os.getpid(), signal.SIGKILL)
        ingest("imagefolder", {str(root)!r}, Workspace({str(ws)!r}),
               IngestOptions(workers=1, label_map=LabelMap.from_dict({{"a": "LY", "b": "MO"}})), progress=Kill())
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    from wbc_data.core.workspace import Workspace

    workspace = Workspace(ws)
    assert not workspace.source_manifest("imagefolder").exists()
    assert not list(workspace.sources_dir.glob(".*.tmp")) if workspace.sources_dir.exists() else True
    resumed = ingest("imagefolder", root, workspace, IngestOptions(workers=1, label_map=LABELS))
    assert resumed.from_cache >= 25 and resumed.from_cache + resumed.decoded == 60
    manifest.read(resumed.manifest_path)
