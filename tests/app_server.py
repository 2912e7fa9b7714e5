"""The real app in its own process on 127.0.0.1, and a raw HTTP client for its API (tests and benchmarks).

A separate process so that its memory (``VmRSS``) is the server's alone, its temporary files live
under a folder the caller chooses (``GRADIO_TEMP_DIR``), and shutting it down is a real shutdown.
:func:`call` speaks Gradio's documented HTTP API (``POST /gradio_api/call/<api>`` then read the
event stream), the way any client or attacker can, without ``gradio_client``'s own checks.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import tracemalloc
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

_BOOTSTRAP = textwrap.dedent(
    """
    import gc, os, signal, sys, tracemalloc
    from space.app import build_app, launch
    from space.config import SpaceConfig
    if tracemalloc.is_tracing():  # started with trace_frames (PYTHONTRACEMALLOC): SIGUSR1 dumps a heap snapshot
        def dump(signum, frame, path=sys.argv[4]):
            gc.collect()  # unreachable cycles are not live memory
            tracemalloc.take_snapshot().dump(path + ".partial")
            os.replace(path + ".partial", path)
        signal.signal(signal.SIGUSR1, dump)
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
    config: dict[str, Any], folder: Path, *, online: bool = False, timeout_s: float = 180, trace_frames: int = 0
) -> Iterator[AppProcess]:
    """Start the app with ``config`` (a dict written as the operator's JSON) and stop it (SIGINT) afterwards.

    ``online=True`` makes the app believe the Hub is reachable at start-up (typed model ids allowed)
    while every model load stays offline (``HF_HUB_OFFLINE=1``). ``trace_frames`` > 0 traces the
    server's Python allocations (that many frames each, ``PYTHONTRACEMALLOC``; several times slower)
    for :meth:`AppProcess.heap_snapshot`.
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
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [
                *[sys.executable, "-c", _BOOTSTRAP, str(config_path), str(port)],
                *["online" if online else "offline", str(snapshot_file)],
            ],
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


def call(url: str, api_name: str, *args: Any, timeout_s: float = 300, session_hash: str | None = None) -> Answer:
    """One request through Gradio's HTTP API, as ``curl`` would send it (in a new session unless ``session_hash``)."""
    body = json.dumps({"data": list(args), **({"session_hash": session_hash} if session_hash else {})}).encode()
    request = urllib.request.Request(
        f"{url}/gradio_api/call/{api_name}", data=body, headers={"Content-Type": "application/json"}
    )
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
