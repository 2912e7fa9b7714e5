"""Load benchmark: N clients sending a mix of requests to the real app; latency per endpoint, failures, memory.

    python benchmarks/load.py [--clients 16] [--requests 12] [--seed 0]

The app runs in its own process on the bundled tiny models (``tests/support/app_server.py``, the operator
config below: two model runs at a time per queue group, a 30 s time budget), driven through
Gradio's raw HTTP API. First every endpoint is timed alone (``--alone`` requests each, one after
another), then ``--clients`` threads each send ``--requests`` requests drawn from the mix at random.
For each endpoint: requests, failures (an error that was not expected: every request in the mix
is valid except the "refused JSON" one, which must be refused), p50 and p95 latency under load,
and p50 under load relative to p50 alone (measured in the same run). Memory: the server's resident
set before, at its peak (sampled every 0.2 s) and after. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.app_server import Answer, AppProcess, call, serve_app

IOI = "When Mary and John went to the store, John gave a drink to"
SOURCE, TARGET = "the old cat sees a bird quickly", "ka miru vesa mi avi rapide vidas"
GOLD = "0-0 1-2 2-1 3-6 4-3 5-4 6-5"
PAGE = "HTML page (self-contained, works offline)"
CONFIG = {
    "models": ["tiny-ioi-gpt2", "tiny-synth-translate"],
    "default_model": "tiny-ioi-gpt2",
    "max_input_tokens": 64,
    "max_new_tokens": 8,
    "concurrency_limit": 2,
    "light_concurrency_limit": 8,
    "time_budget_s": 30,
    "max_model_passes": 500,
    "cache_examples": "off",
}


def requests_mix(graph_json: str, result_json: str) -> dict[str, tuple[float, Callable[[str], Answer], bool]]:
    """Endpoint label → (weight in the mix, request, whether it must succeed)."""
    return {
        "attribute (saliency, gpt2, generates 8)": (
            3,
            lambda url: call(url, "attribute", "tiny-ioi-gpt2", IOI, "", "saliency", ["probability"], ""),
            True,
        ),
        "attribute (attention, translate, forced)": (
            2,
            lambda url: call(url, "attribute", "tiny-synth-translate", SOURCE, TARGET, "attention", [], ""),
            True,
        ),
        "graph (gpt2)": (2, lambda url: call(url, "graph", "tiny-ioi-gpt2", IOI, "", 0.04, False, "-1"), True),
        "graph threshold re-walk": (
            3,
            lambda url: call(url, "graph_threshold", "tiny-ioi-gpt2", IOI, "", 0.1, False, "-1", graph_json),
            True,
        ),
        "graph node details": (3, lambda url: call(url, "graph_node", graph_json, None), True),
        "compare (saliency + attention, AER)": (
            1,
            lambda url: call(url, "compare", SOURCE, ["tiny-synth-translate"], ["saliency", "attention"], TARGET, GOLD),
            True,
        ),
        "export (HTML page)": (2, lambda url: call(url, "export", "Attribute", PAGE, result_json, "", "", ""), True),
        "refused JSON (/dev/zero as a graph)": (1, lambda url: call(url, "graph_node", "/dev/zero", None), False),
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class MemorySampler:
    """The server's resident set, sampled in the background."""

    def __init__(self, app: AppProcess, every_s: float = 0.2) -> None:
        self.app, self.every_s, self.peak = app, every_s, app.rss_mib()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.peak = max(self.peak, self.app.rss_mib())

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run(clients: int, requests: int, alone: int, seed: int) -> str:
    with tempfile.TemporaryDirectory() as folder, serve_app(CONFIG, Path(folder)) as app:
        warm = call(app.url, "attribute", "tiny-ioi-gpt2", IOI, "", "saliency", ["probability"], "")
        graph_json = call(app.url, "graph", "tiny-ioi-gpt2", IOI, "", 0.02, False, "-1").data[1]
        call(app.url, "attribute", "tiny-synth-translate", SOURCE, TARGET, "attention", [], "")
        mix = requests_mix(graph_json, warm.data[3])

        alone_times: dict[str, list[float]] = {name: [] for name in mix}
        for name, (_, request, _) in mix.items():
            for _ in range(alone):
                start = time.monotonic()
                request(app.url)
                alone_times[name].append(time.monotonic() - start)

        names = list(mix)
        weights = [mix[name][0] for name in names]
        times: dict[str, list[float]] = {name: [] for name in names}
        failures: dict[str, int] = dict.fromkeys(names, 0)
        lock = threading.Lock()
        barrier = threading.Barrier(clients)

        def client(index: int) -> None:
            rng = random.Random(seed * 1000 + index)
            barrier.wait()
            for _ in range(requests):
                name = rng.choices(names, weights)[0]
                _, request, must_succeed = mix[name]
                start = time.monotonic()
                try:
                    answer = request(app.url)
                    failed = (answer.event == "complete") != must_succeed
                except Exception:
                    failed = True
                with lock:
                    times[name].append(time.monotonic() - start)
                    failures[name] += failed

        rss_before = app.rss_mib()
        with MemorySampler(app) as memory:
            started = time.monotonic()
            threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall = time.monotonic() - started
        rss_after = app.rss_mib()

    lines = [
        f"{clients} clients × {requests} requests ({sum(len(t) for t in times.values())} in all) in {wall:.1f} s; "
        f"server memory {rss_before:.0f} MiB before, {memory.peak:.0f} MiB at peak, {rss_after:.0f} MiB after",
        "",
        "| endpoint | requests | failures | p50 s | p95 s | p50 alone s | p50 load / alone |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in names:
        if not times[name]:
            continue
        p50, p95, solo = (
            percentile(times[name], 0.5),
            percentile(times[name], 0.95),
            statistics.median(alone_times[name]),
        )
        cells = [
            name,
            len(times[name]),
            failures[name],
            f"{p50:.2f}",
            f"{p95:.2f}",
            f"{solo:.2f}",
            f"{p50 / solo:.1f}×",
        ]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=12, help="requests per client")
    parser.add_argument("--alone", type=int, default=3, help="requests per endpoint timed alone first")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(run(args.clients, args.requests, args.alone, args.seed))


if __name__ == "__main__":
    main()
