"""A local stand-in for the Hugging Face Hub API on 127.0.0.1, for the upload tests (the real Hub is not reachable
where this project is built and tested).

It answers the calls ``huggingface_hub`` makes to publish a dataset, as its client code sends them (``hf_api.py``,
``_commit_api.py``, ``lfs.py``):

- ``POST /api/repos/create``; ``GET /api/datasets/{id}[/revision/{rev}]``;
- ``GET /api/datasets/{id}/tree/{rev}`` (with ``lfs`` info per file); ``POST /api/validate-yaml``;
- ``POST /api/datasets/{id}/preupload/{rev}``; the LFS batch API ``POST /datasets/{id}.git/info/lfs/objects/batch``
  (basic transfer; upload actions only for objects it lacks) and the ``PUT`` of each object to its pre-signed href;
- the NDJSON ``POST /api/datasets/{id}/commit/{rev}``, with ``parentCommit`` checked.

A commit applies whole or not at all, as on the Hub. Every request is recorded (the Authorization header is never
stored, only whether it carried the expected token) and any request can be made to fail, to test recovery. Xet
transfers are not spoken here: the tests turn Xet off, so the client uploads through LFS.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

LFS_PATTERNS = ["*.parquet", "*.png", "*.jpg", "*.arrow", "*.bin"]
GITATTRIBUTES = "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in LFS_PATTERNS).encode()


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class StoredFile:
    content: bytes
    lfs: bool


@dataclass
class Commit:
    oid: str
    summary: str
    parent: str | None
    added: dict[str, bytes] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)


@dataclass
class Repo:
    repo_id: str
    private: bool
    files: dict[str, StoredFile] = field(default_factory=dict)
    commits: list[Commit] = field(default_factory=list)

    @property
    def head(self) -> str:
        return self.commits[-1].oid


@dataclass
class Request:
    method: str
    path: str
    status: int
    authorized: bool  # the Authorization header carried the expected token
    body_size: int
    headers: dict[str, str]  # without Authorization


@dataclass
class Fault:
    method: str
    path_pattern: str  # regex on the path
    status: int
    times: int = 1
    skip: int = 0  # let this many matching requests through first
    drop: bool = False  # close the connection without answering
    echo_auth: bool = False  # a careless server that quotes the Authorization header in its error


class FakeHub:
    """``with FakeHub(token) as hub: ...`` serves on ``hub.url`` until the block ends."""

    def __init__(self, token: str, user: str = "tester") -> None:
        self.token = token
        self.user = user
        self.repos: dict[str, Repo] = {}
        self.lfs: dict[str, bytes] = {}
        self.requests: list[Request] = []
        self.bodies: list[bytes] = []  # every request body, for "the token never leaves the header" checks
        self.faults: list[Fault] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fail(self, method: str, path_pattern: str, status: int = 500, **how: Any) -> None:
        """Make matching requests fail (``times``, after ``skip``; ``drop`` the connection; ``echo_auth``)."""
        self.faults.append(Fault(method, path_pattern, status, **how))

    def calls(self, method: str, pattern: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and re.search(pattern, r.path)]

    # ------------------------------------------------------------------ state changes

    def create(self, repo_id: str, private: bool) -> Repo:
        repo = Repo(repo_id, private)
        repo.files[".gitattributes"] = StoredFile(GITATTRIBUTES, False)
        repo.commits.append(Commit(_oid("initial", repo_id), "initial commit", None, {".gitattributes": GITATTRIBUTES}))
        self.repos[repo_id] = repo
        return repo

    def commit(self, repo: Repo, lines: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
        header = next((item["value"] for item in lines if item["key"] == "header"), {})
        parent = header.get("parentCommit")
        if parent is not None and parent != repo.head:
            return 412, {"error": "parent commit is not the head of the branch"}
        files = dict(repo.files)
        commit = Commit("", header.get("summary", ""), repo.head)
        for item in lines:
            key, value = item["key"], item["value"]
            if key == "file":
                content = base64.b64decode(value["content"])
                files[value["path"]] = StoredFile(content, False)
                commit.added[value["path"]] = content
            elif key == "lfsFile":
                if value["oid"] not in self.lfs:
                    return 422, {"error": f"LFS object {value['oid']} was never uploaded"}
                files[value["path"]] = StoredFile(self.lfs[value["oid"]], True)
                commit.added[value["path"]] = self.lfs[value["oid"]]
            elif key in ("deletedFile", "deletedFolder"):
                path = value["path"].rstrip("/")
                gone = [p for p in files if p == path or p.startswith(path + "/")]
                if not gone:
                    return 404, {"error": f"A file with this name doesn't exist: {path}"}
                for p in gone:
                    del files[p]
                commit.deleted += gone
        commit.oid = _oid(repo.head, json.dumps(lines, sort_keys=True))
        repo.files = files  # the commit applies whole, or (any error above) not at all
        repo.commits.append(commit)
        return 200, {"commitUrl": f"{self.url}/datasets/{repo.repo_id}/commit/{commit.oid}", "commitOid": commit.oid,
                     "success": True, "pullRequestUrl": None}  # fmt: skip


def _oid(*parts: str) -> str:
    return hashlib.sha1("\x1f".join(parts).encode()).hexdigest()


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_PUT(self) -> None:
            self._serve("PUT")

        # -------------------------------------------------------------- plumbing

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                return b"".join(chunks)
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _serve(self, method: str) -> None:
            url = urlsplit(self.path)
            path, query = unquote(url.path), parse_qs(url.query)
            body = self._body()
            auth = self.headers.get("Authorization")
            authorized = auth == f"Bearer {hub.token}"
            with hub.lock:
                hub.bodies.append(body)
                fault = next((f for f in hub.faults if f.method == method and f.times > 0
                              and re.search(f.path_pattern, path)), None)  # fmt: skip
                if fault is not None and fault.skip > 0:
                    fault.skip -= 1
                    fault = None
                if fault is not None:
                    fault.times -= 1
                    echoed = f" (you sent {auth})" if fault.echo_auth else ""
                    status, payload = fault.status, {"error": f"injected failure{echoed}"}
                else:
                    status, payload = self._route(method, path, query, body, authorized)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "authorization"}
                hub.requests.append(Request(method, path, status, authorized, len(body), headers))
            if fault is not None and fault.drop:
                self.close_connection = True
                self.connection.shutdown(2)
                return
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == 404 and isinstance(payload, dict) and payload.get("code"):
                self.send_header("X-Error-Code", payload["code"])
            self.end_headers()
            self.wfile.write(data)

        # -------------------------------------------------------------- the API

        def _route(self, method: str, path: str, query: dict, body: bytes, authorized: bool) -> tuple[int, Any]:
            if not authorized and not path.startswith("/lfs-objects/"):  # LFS hrefs are pre-signed, as on S3
                return 401, {"error": "Invalid credentials in Authorization header"}
            if method == "POST" and path == "/api/validate-yaml":
                return 200, {"errors": [], "warnings": []}
            if method == "POST" and path == "/api/repos/create":
                spec = json.loads(body)
                repo_id = f"{spec.get('organization') or hub.user}/{spec['name']}"
                if spec.get("type") != "dataset":
                    return 400, {"error": "this stand-in only hosts datasets"}
                if repo_id in hub.repos:
                    return 409, {
                        "error": "You already created this dataset repo",
                        "url": f"{hub.url}/datasets/{repo_id}",
                    }
                hub.create(repo_id, spec.get("visibility") == "private" or bool(spec.get("private")))
                return 200, {"url": f"{hub.url}/datasets/{repo_id}", "name": repo_id}
            m = re.fullmatch(r"/api/datasets/([^/]+/[^/]+?)(?:/revision/([^/]+))?", path)
            if method == "GET" and m:
                repo = hub.repos.get(m.group(1))
                if repo is None:
                    return 404, {"error": "Repository not found", "code": "RepoNotFound"}
                siblings = [{"rfilename": p} for p in sorted(repo.files)]
                return 200, {"id": repo.repo_id, "sha": repo.head, "private": repo.private, "siblings": siblings}
            m = re.fullmatch(r"/api/datasets/([^/]+/[^/]+)/tree/([^/]+)(?:/(.*))?", path)
            if method == "GET" and m:
                repo = hub.repos.get(m.group(1))
                if repo is None:
                    return 404, {"error": "Repository not found", "code": "RepoNotFound"}
                if m.group(2) not in ("main", repo.head):
                    return 404, {"error": "Revision not found", "code": "RevisionNotFound"}
                return 200, _tree(repo, m.group(3) or "", query.get("recursive", ["False"])[0].lower() == "true")
            m = re.fullmatch(r"/api/datasets/([^/]+/[^/]+)/preupload/([^/]+)", path)
            if method == "POST" and m:
                repo = hub.repos.get(m.group(1))
                if repo is None:
                    return 404, {"error": "Repository not found", "code": "RepoNotFound"}
                files = []
                for item in json.loads(body)["files"]:
                    lfs = any(fnmatch.fnmatch(item["path"], p) for p in LFS_PATTERNS)
                    there = repo.files.get(item["path"])
                    oid = None
                    if there is not None:
                        oid = hashlib.sha256(there.content).hexdigest() if there.lfs else git_sha1(there.content)
                    files.append({"path": item["path"], "uploadMode": "lfs" if lfs else "regular",
                                  "shouldIgnore": False, "oid": oid})  # fmt: skip
                return 200, {"files": files, "commitOid": repo.head}
            m = re.fullmatch(r"/datasets/([^/]+/[^/]+)\.git/info/lfs/objects/batch", path)
            if method == "POST" and m:
                objects = []
                for obj in json.loads(body)["objects"]:
                    entry: dict[str, Any] = {"oid": obj["oid"], "size": obj["size"]}
                    if obj["oid"] not in hub.lfs:  # what the Hub already holds is not asked for again
                        entry["actions"] = {"upload": {"href": f"{hub.url}/lfs-objects/{obj['oid']}"}}
                    objects.append(entry)
                return 200, {"transfer": "basic", "objects": objects}
            m = re.fullmatch(r"/lfs-objects/([0-9a-f]{64})", path)
            if method == "PUT" and m:
                if hashlib.sha256(body).hexdigest() != m.group(1):
                    return 400, {"error": "content does not match its sha256"}
                hub.lfs[m.group(1)] = body
                return 200, {}
            m = re.fullmatch(r"/api/datasets/([^/]+/[^/]+)/commit/([^/]+)", path)
            if method == "POST" and m:
                repo = hub.repos.get(m.group(1))
                if repo is None:
                    return 404, {"error": "Repository not found", "code": "RepoNotFound"}
                lines = [json.loads(line) for line in body.splitlines() if line.strip()]
                return hub.commit(repo, lines)
            return 404, {"error": f"the stand-in does not serve {method} {path}"}

    return Handler


def _tree(repo: Repo, prefix: str, recursive: bool) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    folders: set[str] = set()
    base = prefix.rstrip("/") + "/" if prefix else ""
    for path in sorted(repo.files):
        if not path.startswith(base):
            continue
        rest = path[len(base) :]
        if "/" in rest and not recursive:
            folders.add(base + rest.split("/")[0])
            continue
        for i in range(rest.count("/")):
            folders.add(base + "/".join(rest.split("/")[: i + 1]))
        stored = repo.files[path]
        entry: dict[str, Any] = {"type": "file", "path": path, "size": len(stored.content)}
        if stored.lfs:
            digest = hashlib.sha256(stored.content).hexdigest()
            pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{digest}\nsize {len(stored.content)}\n"
            entry["oid"] = git_sha1(pointer.encode())
            entry["lfs"] = {"oid": hashlib.sha256(stored.content).hexdigest(), "size": len(stored.content),
                            "pointerSize": len(pointer)}  # fmt: skip
        else:
            entry["oid"] = git_sha1(stored.content)
        entries.append(entry)
    entries += [{"type": "directory", "path": f, "oid": _oid(f), "size": 0} for f in sorted(folders)]
    return entries
