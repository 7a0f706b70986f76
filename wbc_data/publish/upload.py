"""Upload a built dataset folder with ``huggingface_hub``: create the repo if needed, send only what changed, in one
commit.

What changed is known before anything is sent: the repo's tree (``list_repo_tree``) gives each file's sha256 (LFS and
Xet files) or git blob id (regular files), compared with the folder's. Changed and new files are committed together
with the deletion of stale shards (``data/`` and ``images/`` are publish's own), on top of the revision that was
compared (``parent_commit``), so a repo that moved meanwhile makes the commit fail instead of mixing two publishes.
The Hub applies a commit whole or not at all: a failure before it leaves the repo as it was, and uploaded LFS/Xet
content stays on the Hub, so a re-run sends only what is still missing and then commits.

The token comes from ``huggingface_hub`` itself (``HF_TOKEN`` or the saved login) and goes only into its request
headers: this module never prints, logs or stores it, and looks at it only to scrub it from error text (a server
that quotes a request back), as a last guard.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wbc_data.publish.folder import LocalFile
from wbc_data.publish.rows import PublishError

OWNED_PREFIXES = ("data/", "images/")
"""Folders of the repo that publish writes: files there that the new build lacks are deleted."""

TRANSPORT_MODULES = {"httpx", "httpx2", "httpcore", "httpcore2"}
"""Where huggingface_hub's HTTP stack raises connection, timeout and protocol errors from."""

PROGRAMMING_ERRORS = (TypeError, AttributeError, NameError, AssertionError)
"""Raised as they are: a bug should show its traceback; anything else from the Hub stage is one line."""


@dataclass
class UploadPlan:
    upload: list[LocalFile] = field(default_factory=list)  # new or changed
    unchanged: list[LocalFile] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)  # stale files of publish's own folders

    @property
    def empty(self) -> bool:
        return not (self.upload or self.delete)

    @property
    def upload_bytes(self) -> int:
        return sum(f.size for f in self.upload)


@dataclass
class UploadResult:
    repo_id: str
    url: str
    plan: UploadPlan
    created: bool = False
    commit_url: str | None = None  # None: nothing changed, no commit
    notes: list[str] = field(default_factory=list)


def require_token() -> None:
    """Fail early (before anything is built) when no token is available; the token itself is never looked at."""
    from huggingface_hub import get_token

    if get_token() is None:
        raise PublishError(
            "no Hugging Face token: log in with `hf auth login` or set HF_TOKEN (use --dry-run to build without one)"
        )


def plan_upload(local: Sequence[LocalFile], remote: Mapping[str, Any]) -> UploadPlan:
    """Compare the folder with the repo's files (``RepoFile`` by path)."""
    plan = UploadPlan()
    for f in local:
        there = remote.get(f.path)
        same = there is not None and (
            (there.lfs is not None and there.lfs.sha256 == f.sha256)
            or (there.lfs is None and there.blob_id == f.git_sha1)
        )
        (plan.unchanged if same else plan.upload).append(f)
    names = {f.path for f in local}
    plan.delete = sorted(p for p in remote if p.startswith(OWNED_PREFIXES) and p not in names)
    return plan


def upload_folder_changes(
    folder: Path,
    files: Sequence[LocalFile],
    repo_id: str,
    private: bool = False,
    commit_message: str = "Publish with wbc-data",
    commit_description: str = "",
    show_progress: bool = False,
) -> UploadResult:
    """Create ``repo_id`` (a dataset repo) if it does not exist, then commit what differs from ``folder``."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, get_token
    from huggingface_hub.errors import RepositoryNotFoundError
    from huggingface_hub.hf_api import RepoFile

    api = HfApi(library_name="wbc-data", library_version=_version())
    secret = get_token()
    try:
        with _hub_progress(show_progress):
            created = False
            try:
                info = api.repo_info(repo_id, repo_type="dataset")
            except RepositoryNotFoundError:
                api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
                info, created = api.repo_info(repo_id, repo_type="dataset"), True
            remote = {
                f.path: f
                for f in api.list_repo_tree(repo_id, repo_type="dataset", recursive=True, revision=info.sha)
                if isinstance(f, RepoFile)
            }
            plan = plan_upload(files, remote)
            result = UploadResult(repo_id, f"{api.endpoint}/datasets/{repo_id}", plan, created)
            if private and not created and not info.private:
                result.notes.append(f"{repo_id} already exists and is public: --private only applies when creating it")
            if plan.empty:
                return result
            operations: list[Any] = [CommitOperationAdd(f.path, str(folder / f.path)) for f in plan.upload]
            operations += [CommitOperationDelete(p) for p in plan.delete]
            commit = api.create_commit(
                repo_id,
                operations,
                commit_message=commit_message,
                commit_description=commit_description,
                repo_type="dataset",
                parent_commit=info.sha,
            )
            result.commit_url = commit.commit_url
            return result
    except PROGRAMMING_ERRORS:
        raise
    except Exception as exc:
        raise PublishError(_scrub(failure_line(repo_id, api.endpoint, exc), secret)) from None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("wbc-data")
    except PackageNotFoundError:
        return "unknown"


def failure_line(repo_id: str, endpoint: str, exc: BaseException) -> str:
    """One line for any failure of the Hub stage: what happened and that a re-run repairs it."""
    reason = _reason(exc, endpoint)
    return (
        f"could not publish {repo_id}: {reason}. Nothing is half-published (the Hub applies a commit whole or not "
        "at all); re-run the same command to finish: it sends only what the Hub does not have yet"
    )


def _reason(exc: BaseException, endpoint: str) -> str:
    from huggingface_hub.errors import HfHubHTTPError

    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, HfHubHTTPError) and cause.__cause__ is not None:
        cause = cause.__cause__  # an LFS upload wraps the HTTP error in a RuntimeError
    if isinstance(cause, HfHubHTTPError) and cause.response is not None:
        status = cause.response.status_code
        if status == 401:
            return "the Hub refused the token (401): log in again with `hf auth login` or set HF_TOKEN"
        if status == 403:
            return "the token may not write there (403): use a token with write access to that namespace"
        if status == 412:
            return "the repository changed on the Hub while publishing (412)"
        message = " ".join((cause.server_message or "").split()) or cause.response.reason_phrase
        return f"the Hub answered {status} ({message}) to {cause.response.request.method} {_path(cause, endpoint)}"
    inner = cause if cause is not None else exc
    text = " ".join(str(inner).split()).rstrip(".") or type(inner).__name__
    if type(inner).__module__.split(".")[0] in TRANSPORT_MODULES or isinstance(inner, ConnectionError):
        return f"cannot reach the Hub at {endpoint} ({type(inner).__name__}: {text})"
    return f"{type(inner).__name__}: {text}"


def _path(error: Any, endpoint: str) -> str:
    url = str(error.response.request.url)
    return url[len(endpoint) :] if url.startswith(endpoint) else url.split("?")[0]


def _scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


@contextmanager
def _hub_progress(show: bool) -> Any:
    """huggingface_hub's own upload bars on a terminal, silence elsewhere (logs, pipes, tests)."""
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was_disabled = are_progress_bars_disabled()
    if not show:
        disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            enable_progress_bars()
