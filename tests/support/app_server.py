"""The real app in its own process on 127.0.0.1, and a raw HTTP client for its API (tests and benchmarks).

A separate process so that its memory (``VmRSS``) is the server's alone, its temporary files live
under a folder the caller chooses (``GRADIO_TEMP_DIR``), and shutting it down is a real shutdown.
:func:`call` speaks Gradio's documented HTTP API (``POST /gradio_api/call/<api>`` then read the
event stream), the way any client or attacker can, without ``gradio_client``'s own checks.
"""

from __future__ import annotations

import http.client
import json
import os
import select
import signal
import socket
import subprocess
import sys
import textwrap
import time
import tracemalloc
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.paths import REPO

_BOOTSTRAP = textwrap.dedent(
    """
    import gc, os, signal, sys, tracemalloc
    exec(sys.argv[4])  # the caller's set-up code (serve_app's before_start), before the app is built
    if tracemalloc.is_tracing():  # started with trace_frames (PYTHONTRACEMALLOC): SIGUSR1 dumps a heap snapshot
        def dump(signum, frame, path=sys.argv[5]):
            gc.collect()  # unreachable cycles are not live memory
            tracemalloc.take_snapshot().dump(path + ".partial")
            os.replace(path + ".partial", path)
        signal.signal(signal.SIGUSR1, dump)
    from space.gradio_app import build_app, launch
    from space.gradio_app.config import SpaceConfig
    config = SpaceConfig.load(sys.argv[1])
    demo, _ = build_app(config, hub_reachable=sys.argv[3] == "online")
    launch(demo, port=int(sys.argv[2]), quiet=True)
    """
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class AppProcess:
    url: str
    process: subprocess.Popen
    gradio_temp: Path
    log: Path
    snapshot_file: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_mib(self) -> float:
        """The server's resident memory now (Linux ``/proc``)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def alive(self) -> bool:
        return self.process.poll() is None

    def heap_snapshot(self, timeout_s: float = 300) -> tracemalloc.Snapshot:
        """The server's live Python allocations now (a server started with ``trace_frames``; benchmarks only)."""
        self.snapshot_file.unlink(missing_ok=True)
        self.process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout_s
        while not self.snapshot_file.exists():
            if time.monotonic() > deadline or not self.alive():
                raise RuntimeError("the server wrote no heap snapshot (was it started with trace_frames?)")
            time.sleep(0.2)
        return tracemalloc.Snapshot.load(str(self.snapshot_file))


@contextmanager
def serve_app(
    config: dict[str, Any],
    folder: Path,
    *,
    online: bool = False,
    timeout_s: float = 180,
    before_start: str = "",
    trace_frames: int = 0,
) -> Iterator[AppProcess]:
    """Start the app with ``config`` (a dict written as the operator's JSON) and stop it (SIGINT) afterwards.

    ``online=True`` makes the app believe the Hub is reachable at start-up (typed model ids allowed)
    while every model load stays offline (``HF_HUB_OFFLINE=1``). ``before_start`` is Python code the app's
    process runs before it builds the app (a test injecting a failure into a handler). ``trace_frames`` > 0
    traces the server's Python allocations (that many frames each, ``PYTHONTRACEMALLOC``; several times
    slower) for :meth:`AppProcess.heap_snapshot`.
    """
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / "config.json"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    gradio_temp = folder / "gradio-temp"
    gradio_temp.mkdir(exist_ok=True)
    port = free_port()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "GRADIO_TEMP_DIR": str(gradio_temp),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        "PYTHONPATH": str(REPO),
        **({"PYTHONTRACEMALLOC": str(trace_frames)} if trace_frames else {}),
    }
    snapshot_file = folder / "heap.snapshot"
    log = folder / "server.log"
    arguments = [str(config_path), str(port), "online" if online else "offline", before_start, str(snapshot_file)]
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-c", _BOOTSTRAP, *arguments],
            cwd=REPO,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    app = AppProcess(f"http://127.0.0.1:{port}", process, gradio_temp, log, snapshot_file)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if not app.alive():
                raise RuntimeError(f"the app exited at start-up:\n{log.read_text(errors='replace')[-3000:]}")
            try:
                with urllib.request.urlopen(f"{app.url}/gradio_api/info", timeout=5):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    raise RuntimeError("the app did not start in time") from None
                time.sleep(0.5)
        yield app
    finally:
        stop(app)


def stop(app: AppProcess, timeout_s: float = 30, *, signum: int = signal.SIGINT) -> None:
    """Interrupt the app as Ctrl-C would (or with ``signum``: SIGTERM is what Spaces, Docker and systemd send; its
    clean shutdown runs either way), killing it only if it hangs."""
    if app.alive():
        app.process.send_signal(signum)
        try:
            app.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            app.process.kill()
            app.process.wait()


@dataclass
class Answer:
    event: str  # "complete" or "error"
    data: Any  # the outputs (complete) or the message shown to the user (error)
    finished: float  # time.monotonic() when the answer arrived


def _call_request(url: str, api_name: str, args: tuple[Any, ...], session: str | None) -> urllib.request.Request:
    body = json.dumps({"data": list(args), **({"session_hash": session} if session else {})}).encode()
    return urllib.request.Request(
        f"{url}/gradio_api/call/{api_name}", data=body, headers={"Content-Type": "application/json"}
    )


def call(url: str, api_name: str, *args: Any, timeout_s: float = 300, session: str | None = None) -> Answer:
    """One request through Gradio's HTTP API, as ``curl`` would send it (in ``session``: else one of its own)."""
    request = _call_request(url, api_name, args, session)
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        event_id = json.loads(response.read())["event_id"]
    with urllib.request.urlopen(f"{url}/gradio_api/call/{api_name}/{event_id}", timeout=timeout_s) as stream:
        event = None
        for raw in stream:
            line = raw.decode("utf-8").rstrip("\n")
            if line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: ") and event in ("complete", "error"):
                payload = line[len("data: ") :]
                data = json.loads(payload) if payload and payload != "null" else None
                return Answer(event, data, time.monotonic())
    raise RuntimeError(f"no answer from {api_name}")


def refused_call(url: str, api_name: str, *args: Any, session: str | None = None) -> tuple[int, str]:
    """A request the app refuses before it is queued: the HTTP status and the one line (``detail``) it answers."""
    try:
        with urllib.request.urlopen(_call_request(url, api_name, args, session), timeout=60) as response:
            raise AssertionError(f"not refused: {response.status} {response.read()[:300]!r}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())["detail"]


def send_body(
    url: str, route: str, n_bytes: int, *, chunked: bool, content_type: str = "application/json", timeout_s: float = 60
) -> tuple[int, bytes, int]:
    """POST ``n_bytes`` of body to ``route`` over a raw socket, as an attacker would: announced by ``Content-Length``
    or sent chunked (no length). Sending stops as soon as the server answers, so a server that refuses without
    reading is not made to wait. Returns the status, the answer's body and the bytes of body sent."""
    address = urllib.parse.urlsplit(url)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {n_bytes}"
    head = f"POST {route} HTTP/1.1\r\nHost: {address.netloc}\r\nContent-Type: {content_type}\r\n{framing}\r\n\r\n"
    block = b"x" * 65536
    with socket.create_connection((address.hostname, address.port), timeout=timeout_s) as connection:
        connection.sendall(head.encode())
        sent, pending = 0, memoryview(b"")
        while True:
            readable, writable, _ = select.select([connection], [connection], [], timeout_s)
            if readable or not writable:
                break
            if not pending:
                if sent >= n_bytes:
                    if chunked:
                        connection.sendall(b"0\r\n\r\n")
                    break
                piece = block[: min(len(block), n_bytes - sent)]
                sent += len(piece)
                pending = memoryview(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            try:
                pending = pending[connection.send(pending) :]
            except (BrokenPipeError, ConnectionResetError):
                break
        response = http.client.HTTPResponse(connection)
        response.begin()
        return response.status, response.read(), sent


def upload(url: str, name: str, content: bytes, *, timeout_s: float = 60) -> dict[str, Any]:
    """Upload ``content`` as file ``name`` (``POST /gradio_api/upload``, as the browser's file widget does) and
    return the file payload a request then names it by (Gradio's ``FileData``)."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    )
    body = head.encode() + content + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        f"{url}/gradio_api/upload", data=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        (path,) = json.loads(response.read())
    return file_payload(path, name)


def file_payload(path: str, name: str | None = None) -> dict[str, Any]:
    """What a request sends for a file input: a path on the server, which Gradio only accepts for its uploads."""
    return {"path": path, "orig_name": name or Path(path).name, "meta": {"_type": "gradio.FileData"}}
