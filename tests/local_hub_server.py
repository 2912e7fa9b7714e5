"""A small HTTP server on 127.0.0.1 speaking the Hub endpoints ``huggingface_hub`` uses to commit.

It answers ``POST /api/repos/create``, ``POST /api/validate-yaml``, ``POST /api/{type}s/{repo}/preupload/{rev}``
(always ``uploadMode: regular``, so files travel inline as base64 and no LFS/Xet transfer starts) and
``POST /api/{type}s/{repo}/commit/{rev}`` (ndjson), and records every request and every commit it
receives so tests can assert the files and bytes that arrived. ``fail_with`` makes matching requests
fail with a status code; ``delay_s`` makes them hang, to test timeouts.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

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
    fail_path: str = ""  # fail only requests whose path contains this ("" = all)
    delay_s: float = 0.0
    requests: list[RecordedRequest] = field(default_factory=list)
    commits: list[RecordedCommit] = field(default_factory=list)
    created: list[dict[str, Any]] = field(default_factory=list)


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
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            hub.requests.append(RecordedRequest(self.command, self.path, dict(self.headers), body))
            if hub.fail_with is not None and hub.fail_path in self.path:
                if hub.delay_s:
                    threading.Event().wait(hub.delay_s)
                message = {401: "Invalid credentials in Authorization header", 404: "Repository not found"}.get(
                    hub.fail_with, "Internal Error"
                )
                self._send(hub.fail_with, {"error": message}, {"X-Error-Message": message})
                return
            if hub.delay_s:
                threading.Event().wait(hub.delay_s)
            if self.path.startswith("/api/repos/create"):
                request = json.loads(body)
                hub.created.append(request)
                prefix = {"dataset": "datasets/", "space": "spaces/"}.get(request.get("type"), "")
                self._send(200, {"url": f"{hub.url}/{prefix}{request['organization']}/{request['name']}"})
            elif self.path.startswith("/api/validate-yaml"):
                self._send(200, {"errors": [], "warnings": []})
            elif match := _PREUPLOAD.match(self.path):
                files = json.loads(body)["files"]
                self._send(
                    200,
                    {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]},
                )
            elif match := _COMMIT.match(self.path):
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

        do_GET = do_POST = do_PUT = _handle

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
