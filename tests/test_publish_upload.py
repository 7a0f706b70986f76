"""The upload, with the real huggingface_hub client against a local stand-in for the Hub API (tests/fakehub.py): the
repo is created, one commit carries every file, unchanged data uploads nothing, changed data only what changed,
failures are one line and a re-run repairs them, and the token never shows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.fakehub import FakeHub
from tests.fixtures import mini_bccd
from tests.publish_workspaces import finish
from wbc_data.cli import app
from wbc_data.core.workspace import Workspace
from wbc_data.ingest.engine import IngestOptions, ingest
from wbc_data.io.resources import sample_dir
from wbc_data.publish import PublishError, PublishOptions, build_folder, plan_publish, publish

TOKEN = "hf_wbcDataTestSecret0123456789abcdefXYZ"
runner = CliRunner()
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")  # inside huggingface_hub


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Workspace:
    tmp = tmp_path_factory.mktemp("upload")
    ws = Workspace(tmp / "ws")
    ingest("pbc", sample_dir() / "pbc", ws, IngestOptions(workers=1))
    ingest("bccd", mini_bccd(tmp / "bccd", fields=8), ws, IngestOptions(workers=1))
    finish(ws)
    return ws


@pytest.fixture
def hub(monkeypatch):
    """The stand-in, with huggingface_hub pointed at it (as HF_ENDPOINT does) and Xet off (it speaks LFS only)."""
    import huggingface_hub.constants as constants

    with FakeHub(TOKEN) as server:
        monkeypatch.setattr(constants, "ENDPOINT", server.url)
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        yield server


def _local(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()
            and not p.name.startswith(".")}  # fmt: skip


def _repo_files(hub: FakeHub, repo_id: str) -> dict[str, bytes]:
    return {p: f.content for p, f in hub.repos[repo_id].files.items() if p != ".gitattributes"}


def _lfs_files(files: dict[str, bytes]) -> int:
    return sum(p.endswith((".parquet", ".png")) for p in files)


def test_first_publish_creates_the_repo_and_commits_every_file_once(ws, hub, tmp_path):
    import datasets

    out = tmp_path / "out"
    result = publish(ws, PublishOptions("lab/wbc", private=True, out=out))
    repo = hub.repos["lab/wbc"]
    assert repo.private and result.upload.created and len(hub.calls("POST", r"^/api/repos/create$")) == 1
    assert len(repo.commits) == 2  # the repo's initial commit, then one commit for the whole publish
    local = _local(out)
    assert repo.commits[1].added == local == _repo_files(hub, "lab/wbc")
    assert result.upload.commit_url.endswith(repo.head)
    assert {p for p, f in repo.files.items() if f.lfs} == {p for p in local if p != "README.md"}
    assert len(hub.calls("PUT", r"^/lfs-objects/")) == _lfs_files(local)
    assert "wbc-data publish:" in repo.commits[1].summary
    # every API call carried the token in its header, and nowhere else
    api = [r for r in hub.requests if r.path.startswith(("/api/datasets", "/api/repos", "/datasets/"))]
    assert api and all(r.authorized for r in api)
    assert not any(TOKEN.encode() in body for body in hub.bodies)
    # what the Hub now holds is a dataset that loads
    copy = tmp_path / "hub-copy"
    for path, content in _repo_files(hub, "lab/wbc").items():
        (copy / path).parent.mkdir(parents=True, exist_ok=True)
        (copy / path).write_bytes(content)
    dd = datasets.load_dataset(str(copy), cache_dir=str(tmp_path / "cache"))
    assert {s: dd[s].num_rows for s in dd} == {s.split: s.num_examples for s in result.built.splits}


def test_republishing_unchanged_data_uploads_nothing(ws, hub, tmp_path):
    publish(ws, PublishOptions("lab/same", out=tmp_path / "out"))
    seen = len(hub.requests)
    result = runner.invoke(app, ["publish", "-w", str(ws.root), "--repo-id", "lab/same", "--out", str(tmp_path / "o2")])
    assert result.exit_code == 0, result.output
    assert "lab/same is up to date: nothing uploaded" in result.output
    later = hub.requests[seen:]
    assert not [r for r in later if r.method in ("PUT", "POST")]  # no preupload, no LFS, no commit, no create
    assert len(hub.repos["lab/same"].commits) == 2


def test_changed_data_uploads_only_what_changed(ws, hub, tmp_path, monkeypatch):
    from wbc_data.publish import shards

    plan = plan_publish(ws, PublishOptions("lab/change", out=tmp_path / "probe"))
    sizes = {s.split: s.num_bytes for s in build_folder(plan).splits}
    assert sizes["train"] > sizes["validation"] and sizes["train"] > sizes["test"]
    # first publish: train cut into several shards
    monkeypatch.setattr(shards, "MAX_SHARD_BYTES", max(sizes["validation"], sizes["test"]) + 1)
    first = publish(ws, PublishOptions("lab/change", out=tmp_path / "out"))
    old_train = sorted(p for p in _repo_files(hub, "lab/change") if p.startswith("data/train-"))
    assert len(old_train) >= 2
    monkeypatch.undo()
    import huggingface_hub.constants as constants  # undo() restored these too: point at the stand-in again

    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    puts = len(hub.calls("PUT", r"^/lfs-objects/"))
    second = publish(ws, PublishOptions("lab/change", out=tmp_path / "out"))
    plan = second.upload.plan
    assert sorted(plan.delete) == old_train
    assert [f.path for f in plan.upload] == ["README.md", "data/train-00000-of-00001.parquet"]
    unchanged = {f.path for f in plan.unchanged}
    assert {"data/validation-00000-of-00001.parquet", "data/test-00000-of-00001.parquet",
            "images/gap-report-classes.png"} <= unchanged  # fmt: skip
    assert len(hub.calls("PUT", r"^/lfs-objects/")) - puts == 1  # only the new train shard travelled
    repo = hub.repos["lab/change"]
    assert len(repo.commits) == 3 and set(repo.commits[2].deleted) == set(old_train)
    assert _repo_files(hub, "lab/change") == _local(tmp_path / "out")
    assert first.upload.commit_url != second.upload.commit_url


def test_a_failure_midway_leaves_nothing_half_published_and_a_rerun_repairs(ws, hub, tmp_path):
    out = tmp_path / "out"
    hub.fail("PUT", r"^/lfs-objects/", 400, skip=1)  # the second upload of a file fails
    with pytest.raises(PublishError) as caught:
        publish(ws, PublishOptions("lab/fail", out=out))
    message = str(caught.value)
    assert "could not publish lab/fail" in message and "re-run the same command" in message and "\n" not in message
    repo = hub.repos["lab/fail"]
    assert len(repo.commits) == 1 and set(repo.files) == {".gitattributes"}  # nothing of this publish is visible
    uploaded = set(hub.lfs)
    total = _lfs_files(_local(out))
    assert 1 <= len(uploaded) < total
    before = len(hub.calls("PUT", r"^/lfs-objects/"))
    result = publish(ws, PublishOptions("lab/fail", out=out))
    resent = {r.path.rsplit("/", 1)[1] for r in hub.calls("PUT", r"^/lfs-objects/")[before:]}
    assert len(resent) == total - len(uploaded) and not resent & uploaded  # only what was missing
    assert len(repo.commits) == 2 and result.upload.commit_url
    assert _repo_files(hub, "lab/fail") == _local(out)


def test_a_failed_commit_then_a_rerun(ws, hub, tmp_path):
    out = tmp_path / "out"
    hub.fail("POST", r"/commit/main$", 500)
    result = runner.invoke(app, ["publish", "-w", str(ws.root), "--repo-id", "lab/commitfail", "--out", str(out)])
    assert result.exit_code == 2 and "the Hub answered 500" in result.output and "Traceback" not in result.output
    assert len(hub.repos["lab/commitfail"].commits) == 1
    puts = len(hub.calls("PUT", r"^/lfs-objects/"))
    result = runner.invoke(app, ["publish", "-w", str(ws.root), "--repo-id", "lab/commitfail", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(hub.calls("PUT", r"^/lfs-objects/")) == puts  # the Hub had every file already: only the commit
    assert len(hub.repos["lab/commitfail"].commits) == 2 and _repo_files(hub, "lab/commitfail") == _local(out)


def test_network_and_token_failures_are_one_line_without_the_token(ws, hub, tmp_path, monkeypatch):
    base = ["publish", "-w", str(ws.root), "--out", str(tmp_path / "out")]
    hub.fail("POST", r"/commit/main$", drop=True)
    dropped = runner.invoke(app, [*base, "--repo-id", "lab/drop"])
    assert dropped.exit_code == 2 and f"cannot reach the Hub at {hub.url}" in dropped.output, dropped.output[-700:]
    hub.fail("POST", r"^/api/repos/create$", 400, echo_auth=True)  # a server that quotes the header back
    echoed = runner.invoke(app, [*base, "--repo-id", "lab/echo"])
    assert echoed.exit_code == 2 and "Bearer ***" in echoed.output
    wrong = "hf_wrongTokenThatIsNotValid987654"
    monkeypatch.setenv("HF_TOKEN", wrong)
    refused = runner.invoke(app, [*base, "--repo-id", "lab/wrong"])
    assert refused.exit_code == 2 and "the Hub refused the token (401)" in refused.output
    for result in (dropped, echoed, refused):
        assert "Traceback" not in result.output and len(result.output.strip().splitlines()) < 40
        assert TOKEN not in result.output and wrong not in result.output


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wbc_data", *args], env=env, capture_output=True, text=True,
                          timeout=300, cwd=Path(__file__).resolve().parent.parent)  # fmt: skip


def test_cli_with_hf_endpoint_never_shows_or_stores_the_token(ws, tmp_path):
    """The real command in a fresh process: HF_ENDPOINT points at the stand-in, the token comes from HF_TOKEN and
    then from a saved login; it appears in no output and in no file the command wrote."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(HF_HUB_DISABLE_XET="1", HF_HOME=str(tmp_path / "hf-home"), WBC_WORKSPACE=str(ws.root))
    out = tmp_path / "out"
    with FakeHub(TOKEN) as hub:
        env["HF_ENDPOINT"] = hub.url
        first = _cli(["publish", "--repo-id", "lab/cli", "--out", str(out)], {**env, "HF_TOKEN": TOKEN})
        assert first.returncode == 0, first.stderr
        assert "created the dataset repo; published lab/cli in one commit" in " ".join(first.stdout.split())
        # the usual login: a token file in HF_HOME, no HF_TOKEN
        login_home = tmp_path / "login-home"
        login_home.mkdir()
        (login_home / "token").write_text(TOKEN)
        second = _cli(["publish", "--repo-id", "lab/cli", "--out", str(out)], {**env, "HF_HOME": str(login_home)})
        assert second.returncode == 0, second.stderr
        assert "lab/cli is up to date: nothing uploaded" in second.stdout
        assert len(hub.repos["lab/cli"].commits) == 2
    for result in (first, second):
        assert TOKEN not in result.stdout + result.stderr
    written = [p for p in [*tmp_path.rglob("*"), *ws.root.rglob("*")] if p.is_file() and login_home not in p.parents]
    assert written and not [p for p in written if TOKEN.encode() in p.read_bytes()]
