"""``benchmarks/load.py``'s modes as docs/benchmarks.md shows them, run small: each command runs, and measures what
its table says it does (the docs' runs take tens of minutes; their numbers are never asserted here).
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.support.app_server import REPO

LOAD = REPO / "benchmarks" / "load.py"
NUMBER = r"\d+(?:\.\d+)?"
#: A row of the mix's table: endpoint, requests, failures, p50, p95, p50 alone, ratio.
MIX_ROW = re.compile(rf"^\| ([^|]+) \| (\d+) \| (\d+) \| {NUMBER} \| {NUMBER} \| {NUMBER} \| {NUMBER}× \|$", re.M)
#: A row of the long run's memory curve: requests answered, the server's RSS in MiB.
CURVE_ROW = re.compile(r"^\| (\d+) \| (\d+) \|$", re.M)
#: A row of the busy run's model groups: group, slots, requests in flight at the start / end of the timing.
GROUP_ROW = re.compile(r"^\| (\w+): [^|]+ \| (\d+) \| (\d+) / (\d+) \| \d+ \| [^|]+ \| \d+ \|$", re.M)
#: A row of the busy run's cheap requests: name, p50 alone, p50 busy, p95 busy, ratio.
CHEAP_ROW = re.compile(rf"^\| ([^|]+) \| ({NUMBER}) \| ({NUMBER}) \| {NUMBER} \| {NUMBER}× \|$", re.M)


def _run(*arguments: str) -> str:
    done = subprocess.run(
        [sys.executable, str(LOAD), *arguments], cwd=REPO, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
@pytest.mark.server
def test_the_mix_times_every_endpoint_alone_and_under_load() -> None:
    printed = _run("--clients", "2", "--requests", "4", "--alone", "1", "--seed", "1")
    assert printed.startswith("2 clients × 4 requests (8 in all) in "), printed
    rows = MIX_ROW.findall(printed)
    assert sum(int(requests) for _, requests, _ in rows) == 8, printed
    assert all(failures == "0" for *_, failures in rows), printed  # the /dev/zero one fails only if not refused


@pytest.mark.slow
@pytest.mark.server
def test_the_long_run_reads_the_servers_memory_at_every_checkpoint() -> None:
    printed = _run("long", "--total", "24", "--every", "8", "--clients", "4")
    assert "(failures: none)" in printed, printed
    curve = [(int(answered), int(rss)) for answered, rss in CURVE_ROW.findall(printed)]
    assert [answered for answered, _ in curve] == [0, 8, 16, 24], printed
    assert all(300 < rss < 8000 for _, rss in curve), printed  # a served app with two models loaded: MiB, not KiB


@pytest.mark.slow
@pytest.mark.server
def test_the_busy_run_times_cheap_requests_while_every_model_slot_is_taken() -> None:
    printed = _run("busy", "--cheap", "1", "--settle", "15")
    groups = GROUP_ROW.findall(printed)
    assert [group for group, *_ in groups] == ["attribution", "graph", "intervention", "corpus"], printed
    for group, slots, at_start, at_end in groups:  # each holder's request in flight when the timing began and ended
        assert int(at_start) == int(at_end) == int(slots) + 1, (group, printed)
    cheap = CHEAP_ROW.findall(printed)
    names = ["graph threshold re-walk", "graph node details", "export (HTML page)"]
    assert [name.strip() for name, *_ in cheap] == names, printed
    assert all(float(alone) > 0 and float(busy) > 0 for _, alone, busy in cheap), printed
