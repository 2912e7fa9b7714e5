"""Start-up benchmark: how long the command line and the app take before they answer.

    python benchmarks/startup.py [--repeats 3] [--no-app]

Each row is a fresh process (wall clock, median of ``--repeats``), offline (``HF_HUB_OFFLINE=1``), on
the bundled models, one torch thread:

- ``--help`` of the CLI, of ``attribute`` (which lists the methods) and of ``python space/app.py``,
  ``--version``, and an argument error (an unknown method): these must not import torch, Inseq or
  Gradio, so they cost about as much as starting Python;
- ``attribute`` (saliency, tiny-ioi-gpt2, 1 generated token) and ``graph`` (tiny-ioi-gpt2): end to
  end, model load and JSON written included;
- app start: ``attribution-explorer serve`` until its HTTP server answers ``GET /``.

Reference rows in the same run: an empty Python (``python -c pass``) and the import of each heavy
library alone, so the table reads as ratios to what the machine can do. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROMPT = "When Mary and John went to the store, John gave a drink to"


def cli() -> list[str]:
    """The installed console script next to this Python, else ``python -m space.cli``."""
    script = Path(sys.executable).with_name("attribution-explorer")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "space.cli"]


def environment() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False"}


def time_command(command: list[str], *, cwd: Path, expect: int = 0) -> float:
    start = time.perf_counter()
    completed = subprocess.run(command, cwd=cwd, env=environment(), capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - start
    if completed.returncode != expect:
        raise SystemExit(f"{' '.join(command)} exited {completed.returncode}:\n{completed.stderr[-2000:]}")
    return elapsed


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def time_app_start(cwd: Path, timeout: float = 300.0) -> float:
    """``serve`` until ``GET /`` answers 200; the server is then stopped."""
    port = free_port()
    start = time.perf_counter()
    server = subprocess.Popen(
        [*cli(), "serve", "--port", str(port)],
        cwd=cwd,
        env=environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        while time.perf_counter() - start < timeout:
            if server.poll() is not None:
                raise SystemExit(f"serve exited {server.returncode}:\n{server.stderr.read()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as response:
                    if response.status == 200:
                        return time.perf_counter() - start
            except OSError:
                time.sleep(0.05)
        raise SystemExit(f"the app did not answer within {timeout:.0f} s")
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def rows(repeats: int, with_app: bool, cwd: Path) -> list[tuple[str, float]]:
    python = [sys.executable, "-c"]
    cases: dict[str, list[str] | None] = {
        "reference: python -c pass": [*python, "pass"],
        "reference: import torch": [*python, "import torch"],
        "reference: import torch, transformers, inseq": [*python, "import torch, transformers, inseq"],
        "reference: import gradio": [*python, "import gradio"],
        "attribution-explorer --help": [*cli(), "--help"],
        "attribution-explorer attribute --help": [*cli(), "attribute", "--help"],
        "attribution-explorer --version": [*cli(), "--version"],
        "python space/app.py --help": [sys.executable, str(REPO / "space" / "app.py"), "--help"],
        "argument error (attribute --method nope)": [
            *cli(),
            *("attribute", "--model", "tiny-ioi-gpt2", "--text", PROMPT, "--method", "nope", "--out", "x.json"),
        ],
        "attribute, saliency, tiny-ioi-gpt2 (1 new token)": [
            *cli(),
            *("attribute", "--model", "tiny-ioi-gpt2", "--text", PROMPT, "--max-new-tokens", "1", "--out", "a.json"),
        ],
        "graph, tiny-ioi-gpt2": [*cli(), "graph", "--model", "tiny-ioi-gpt2", "--text", PROMPT, "--out", "g.json"],
        "app start (serve until GET / answers)": None,
    }
    if not with_app:
        del cases["app start (serve until GET / answers)"]
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):  # interleaved, so a busy spell of the machine spreads over all rows
        for name, command in cases.items():
            expect = 2 if name.startswith("argument error") else 0
            measured = time_app_start(cwd) if command is None else time_command(command, cwd=cwd, expect=expect)
            times[name].append(measured)
            print(f"  {name}: {measured:.2f} s", file=sys.stderr)
    return [(name, statistics.median(values)) for name, values in times.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-app", action="store_true", help="skip the app start row")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        results = rows(args.repeats, not args.no_app, Path(folder))
    empty = dict(results)["reference: python -c pass"]
    print(f"{len(os.sched_getaffinity(0))} CPUs, median of {args.repeats}, wall clock per fresh process\n")
    print("| what | time | × empty Python |")
    print("|---|---:|---:|")
    for name, seconds in results:
        print(f"| {name} | {seconds:.2f} s | {seconds / empty:.1f}× |")


if __name__ == "__main__":
    main()
