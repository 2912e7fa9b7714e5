"""A small HTTP server on 127.0.0.1 speaking the Hub endpoints ``huggingface_hub`` uses to commit.

It answers ``GET /api/{type}s/{repo}`` (repo info: 404 ``RepoNotFound`` unless the repo exists),
``POST /api/repos/create``, ``DELETE /api/repos/delete``, ``POST /api/validate-yaml``,
``POST /api/{type}s/{repo}/preupload/{rev}`` (always ``uploadMode: regular``, so files travel inline as
base64 and no LFS/Xet transfer starts) and ``POST /api/{type}s/{repo}/commit/{rev}`` (ndjson; 404 when
the repo does not exist *when the commit is processed*, as on the Hub), and records every request,
repo and commit so tests can assert the files and bytes that arrived and what was left behind.
``fail_with`` makes matching requests fail with a status code (``echo_token`` puts the request's token,
transformed, into that error message); ``delay_s`` makes requests whose path contains ``delay_path`` hang
before they are processed, to test timeouts.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_REPO_INFO = re.compile(r"^/api/(models|datasets|spaces)/([^/]+/[^/?]+)/?(?:\?.*)?$")
_PREUPLOAD = re.compile(r"^/api/(models|datasets|spaces)/([^/]+/[^/]+)/preupload/([^/?]+)")
_COMMIT = re.compile(r"^/api/(models|datasets|spaces)/([^/]+/[^/]+)/commit/([^/?]+)")
COMMIT_OID = "0" * 39 + "1"


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class RecordedCommit:
    repo_type: str
    repo_id: str
    revision: str
    summary: str
    files: dict[str, bytes]


@dataclass
class LocalHub:
    """State shared with the handler: behaviour knobs in, recorded traffic out."""

    url: str = ""
    fail_with: int | None = None
    fail_path: str | tuple[str, ...] = ""  # fail only requests whose path contains this (or one of these)
    delay_s: float = 0.0
    delay_path: str = ""  # delay only requests whose path contains this ("" = all)
    #: What a failing request's error message echoes of the request's token (e.g. ``str.lower``), as careless
    #: servers and proxies do; None: nothing.
    echo_token: Callable[[str], str] | None = None
    requests: list[RecordedRequest] = field(default_factory=list)
    commits: list[RecordedCommit] = field(default_factory=list)
    created: list[dict[str, Any]] = field(default_factory=list)
    deleted: list[dict[str, Any]] = field(default_factory=list)
    #: Repos that exist now, as ("datasets" | "spaces" | "models", "user/name"); tests may add some first.
    repos: set[tuple[str, str]] = field(default_factory=set)
    handled: int = 0  # requests fully processed (answered), delayed ones included


def _handler(hub: LocalHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            return

        def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def _handle(self) -> None:
            try:
                self._answer()
            except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting: nothing to answer
                pass
            finally:
                hub.handled += 1

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            hub.requests.append(RecordedRequest(self.command, self.path, dict(self.headers), body))
            if hub.delay_s and hub.delay_path in self.path:
                threading.Event().wait(hub.delay_s)
            fail_paths = (hub.fail_path,) if isinstance(hub.fail_path, str) else hub.fail_path
            if hub.fail_with is not None and any(path in self.path for path in fail_paths):
                message = {401: "Invalid credentials in Authorization header", 404: "Repository not found"}.get(
                    hub.fail_with, "Internal Error"
                )
                if hub.echo_token is not None:
                    token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                    message += f" for token {hub.echo_token(token)}"
                self._send(hub.fail_with, {"error": message}, {"X-Error-Message": message})
                return
            if self.path.startswith("/api/repos/create"):
                request = json.loads(body)
                hub.created.append(request)
                kind = {"dataset": "datasets", "space": "spaces"}.get(request.get("type"), "models")
                hub.repos.add((kind, f"{request['organization']}/{request['name']}"))
                prefix = "" if kind == "models" else f"{kind}/"
                self._send(200, {"url": f"{hub.url}/{prefix}{request['organization']}/{request['name']}"})
            elif self.path.startswith("/api/repos/delete"):
                request = json.loads(body)
                kind = {"dataset": "datasets", "space": "spaces"}.get(request.get("type"), "models")
                key = (kind, f"{request['organization']}/{request['name']}")
                if key not in hub.repos:
                    self._repo_not_found()
                    return
                hub.repos.discard(key)
                hub.deleted.append(request)
                self._send(200, {})
            elif self.command == "GET" and (match := _REPO_INFO.match(self.path)):
                if match.groups() not in hub.repos:
                    self._repo_not_found()
                    return
                self._send(200, {"id": match.group(2), "sha": COMMIT_OID, "private": False, "siblings": []})
            elif self.path.startswith("/api/validate-yaml"):
                self._send(200, {"errors": [], "warnings": []})
            elif match := _PREUPLOAD.match(self.path):
                files = json.loads(body)["files"]
                self._send(
                    200,
                    {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]},
                )
            elif match := _COMMIT.match(self.path):
                if match.groups()[:2] not in hub.repos:
                    self._repo_not_found()
                    return
                lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
                header = next(item["value"] for item in lines if item["key"] == "header")
                files = {
                    item["value"]["path"]: base64.b64decode(item["value"]["content"])
                    for item in lines
                    if item["key"] == "file"
                }
                repo_type, repo_id, revision = match.groups()
                hub.commits.append(RecordedCommit(repo_type, repo_id, revision, header["summary"], files))
                self._send(
                    200, {"commitUrl": f"{hub.url}/{repo_type}/{repo_id}/commit/{COMMIT_OID}", "commitOid": COMMIT_OID}
                )
            else:
                self._send(404, {"error": f"local hub does not serve {self.command} {self.path}"})

        def _repo_not_found(self) -> None:
            self._send(
                404,
                {"error": "Repository not found"},
                {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"},
            )

        do_GET = do_POST = do_PUT = do_DELETE = _handle

    return Handler


@contextmanager
def local_hub() -> Iterator[LocalHub]:
    """Serve a fresh :class:`LocalHub` on a free port of 127.0.0.1 for the duration of the block."""
    hub = LocalHub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    server.daemon_threads = True
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
