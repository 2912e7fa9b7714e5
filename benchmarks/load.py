"""Load benchmark: the real app under many clients; latency per endpoint, failures, server memory.

    python benchmarks/load.py [mix] [--clients 16] [--requests 12] [--seed 0]
    python benchmarks/load.py long [--total 2000] [--clients 8] [--every 100] [--trace-frames 0]
    python benchmarks/load.py busy [--cheap 10]

The app runs in its own process on the bundled tiny models (``tests/support/app_server.py``, the operator
config below: two model runs at a time per queue group, a 30 s time budget), driven through
Gradio's raw HTTP API; every request is a new Gradio session, as any API client's is.

``mix``: first every endpoint is timed alone (``--alone`` requests each, one after another), then
``--clients`` threads each send ``--requests`` requests drawn from the mix at random. For each
endpoint: requests, failures (an error that was not expected: every request in the mix is valid
except the "refused JSON" one, which must be refused), p50 and p95 latency under load, and p50
under load relative to p50 alone (measured in the same run). Memory: the server's resident set
before, at its peak (sampled every 0.2 s) and after.

``long``: ``--clients`` threads send ``--total`` requests drawn from the same mix; the server's
resident set is read after every ``--every`` answered requests (the memory curve), and the growth
over the second half is the number to watch: it must flatten once Gradio's session store is full
(``max_sessions``). ``--trace-frames N`` runs the server under ``tracemalloc`` (N frames per
allocation, several times slower) and prints where the live Python memory grew over the second half.

``busy``: every model slot of every model group is kept busy by long requests (each group gets
one more than its slots, re-sent as soon as one ends, so its queue never empties): Attribute with
LIME at 100 000 samples (stopped by the time budget), contribution graphs and patching sweeps on a
GPT-2-small-sized model with random weights (built here), and a corpus upload explained with LIME.
Meanwhile the cheap requests (a graph node's details, a threshold re-walk of a given graph, an
HTML export) are timed one after another, and compared with the same requests alone beforehand.

Each prints Markdown.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.app_server import Answer, AppProcess, call, serve_app, upload

IOI = "When Mary and John went to the store, John gave a drink to"
IOI_COUNTERFACTUAL = "When Mary and John went to the store, Mary gave a drink to"
#: 46 tokens: a graph of the wide model takes a while.
LONG_PROMPT = f"{IOI} Mary . {IOI} Mary . {IOI}"
SOURCE, TARGET = "the old cat sees a bird quickly", "ka miru vesa mi avi rapide vidas"
GOLD = "0-0 1-2 2-1 3-6 4-3 5-4 6-5"
PAGE = "HTML page (self-contained, works offline)"
#: The source and target language inputs every /attribute, /graph, /graph_threshold and /compare call ends with.
NO_LANGUAGES = ("", "")
#: The warm-up's graph is cut at this threshold, and re-walked at the higher one (``/graph_rewalk`` takes only those).
WARM_UP_THRESHOLD, REWALK_THRESHOLD = 0.02, 0.1
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
#: The ``busy`` run: LIME made long, no pass caps (the time budget stops the long requests), room for a third model.
BUSY_CONFIG = {
    **CONFIG,
    "cache_max_models": 3,
    "method_params": {"lime": {"n_samples": 100_000}},
    "max_model_passes": None,
    "max_intervention_passes": None,
}
CORPUS_RECORDS = 5

Request = Callable[[str], Answer]


def attribute(model: str, text: str, target: str, method: str, step_scores: list[str]) -> Request:
    return lambda url: call(url, "attribute", model, text, target, method, step_scores, "", *NO_LANGUAGES)


def graph(model: str, text: str, threshold: float = 0.04) -> Request:
    return lambda url: call(url, "graph", model, text, "", threshold, False, "-1", *NO_LANGUAGES)


def requests_mix(graph_json: str, result_json: str) -> dict[str, tuple[float, Request, bool]]:
    """Endpoint label → (weight in the mix, request, whether it must succeed)."""
    cheap, node = cheap_requests(graph_json, result_json), root_node(graph_json)
    return {
        "attribute (saliency, gpt2, generates 8)": (
            3,
            attribute("tiny-ioi-gpt2", IOI, "", "saliency", ["probability"]),
            True,
        ),
        "attribute (attention, translate, forced)": (
            2,
            attribute("tiny-synth-translate", SOURCE, TARGET, "attention", []),
            True,
        ),
        "graph (gpt2)": (2, graph("tiny-ioi-gpt2", IOI), True),
        "graph threshold re-walk": (3, cheap["graph threshold re-walk"], True),
        "graph node details": (3, cheap["graph node details"], True),
        "compare (saliency + attention, AER)": (
            1,
            lambda url: call(
                url, "compare", SOURCE, ["tiny-synth-translate"], ["saliency", "attention"], TARGET, GOLD, *NO_LANGUAGES
            ),
            True,
        ),
        "export (HTML page)": (2, cheap["export (HTML page)"], True),
        "refused JSON (/dev/zero as a graph)": (
            1,
            lambda url: call(url, "graph_node", "/dev/zero", node),
            False,
        ),
    }


def cheap_requests(graph_json: str, result_json: str) -> dict[str, Request]:
    """The requests that need no model: they run in the ``light`` queue group.

    A threshold re-walk is the slider's cheap step as an API client sends it: ``/graph_rewalk`` with the shown
    graph (cut at :data:`WARM_UP_THRESHOLD`) and a higher threshold, which never reaches a model.
    """
    node = root_node(graph_json)
    return {
        "graph threshold re-walk": lambda url: call(url, "graph_rewalk", graph_json, REWALK_THRESHOLD),
        "graph node details": lambda url: call(url, "graph_node", graph_json, node),
        "export (HTML page)": lambda url: call(url, "export", "Attribute", PAGE, result_json, "", "", ""),
    }


def root_node(graph_json: str) -> str:
    """The id of the graph's first node (a root's last layer): a node whose details exist."""
    return json.loads(graph_json)["nodes"][0]["id"]


def warm_up(app: AppProcess) -> tuple[str, str]:
    """Load both models and run each kind of request once; returns a graph JSON and an attribution JSON."""
    result = attribute("tiny-ioi-gpt2", IOI, "", "saliency", ["probability"])(app.url)
    shown = graph("tiny-ioi-gpt2", IOI, threshold=WARM_UP_THRESHOLD)(app.url)
    for answer in (result, shown):
        if answer.event != "complete":
            raise RuntimeError(f"warm-up failed: {answer.data}")
    for _, request, _ in requests_mix(shown.data[1], result.data[3]).values():
        request(app.url)
    return shown.data[1], result.data[3]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(request: Request, url: str) -> tuple[float, Answer]:
    start = time.monotonic()
    answer = request(url)
    return time.monotonic() - start, answer


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


@dataclass
class MixRun:
    """Latencies and unexpected answers per endpoint of ``send_mix``, and the memory curve it sampled."""

    times: dict[str, list[float]]
    failures: dict[str, int]
    curve: list[tuple[int, float]] = field(default_factory=list)
    wall_s: float = 0.0


def send_mix(
    app: AppProcess,
    mix: dict[str, tuple[float, Request, bool]],
    *,
    clients: int,
    total: int,
    seed: int,
    sample_every: int = 0,
    on_sample: Callable[[int], None] | None = None,
) -> MixRun:
    """``clients`` threads send ``total`` requests drawn from ``mix``; every ``sample_every`` answers, the RSS."""
    names = list(mix)
    weights = [mix[name][0] for name in names]
    run = MixRun({name: [] for name in names}, dict.fromkeys(names, 0), [(0, app.rss_mib())])
    lock = threading.Lock()
    barrier = threading.Barrier(clients)
    sent = 0

    def client(index: int) -> None:
        nonlocal sent
        rng = random.Random(seed * 1000 + index)
        barrier.wait()
        while True:
            with lock:
                if sent == total:
                    return
                sent += 1
            name = rng.choices(names, weights)[0]
            _, request, must_succeed = mix[name]
            start = time.monotonic()
            try:
                failed = (request(app.url).event == "complete") != must_succeed
            except Exception:
                failed = True
            with lock:
                run.times[name].append(time.monotonic() - start)
                run.failures[name] += failed
                answered = sum(len(t) for t in run.times.values())
                if sample_every and answered % sample_every == 0:
                    run.curve.append((answered, app.rss_mib()))
                    if on_sample is not None:
                        on_sample(answered)

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run.wall_s = time.monotonic() - started
    return run


def run_mix(clients: int, requests: int, alone: int, seed: int) -> str:
    with tempfile.TemporaryDirectory() as folder, serve_app(CONFIG, Path(folder)) as app:
        mix = requests_mix(*warm_up(app))
        alone_times = {
            name: [timed(request, app.url)[0] for _ in range(alone)] for name, (_, request, _) in mix.items()
        }
        rss_before = app.rss_mib()
        with MemorySampler(app) as memory:
            run = send_mix(app, mix, clients=clients, total=clients * requests, seed=seed)
        rss_after = app.rss_mib()

    lines = [
        f"{clients} clients × {requests} requests ({clients * requests} in all) in {run.wall_s:.1f} s; "
        f"server memory {rss_before:.0f} MiB before, {memory.peak:.0f} MiB at peak, {rss_after:.0f} MiB after",
        "",
        "| endpoint | requests | failures | p50 s | p95 s | p50 alone s | p50 load / alone |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, times in run.times.items():
        if not times:
            continue
        p50, p95, solo = percentile(times, 0.5), percentile(times, 0.95), statistics.median(alone_times[name])
        cells = [name, len(times), run.failures[name], f"{p50:.2f}", f"{p95:.2f}", f"{solo:.2f}", f"{p50 / solo:.1f}×"]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def run_long(total: int, clients: int, every: int, seed: int, trace_frames: int) -> str:
    # Tracing makes everything several times slower: the start, and model runs past their time budget.
    config, start_s = ({**CONFIG, "time_budget_s": None}, 900) if trace_frames else (CONFIG, 180)
    with (
        tempfile.TemporaryDirectory() as folder,
        serve_app(config, Path(folder), trace_frames=trace_frames, timeout_s=start_s) as app,
    ):
        mix = requests_mix(*warm_up(app))
        snapshots: dict[int, tracemalloc.Snapshot] = {}

        def snapshot(answered: int) -> None:
            if trace_frames and answered in (total // 2 // every * every, total):
                snapshots[answered] = app.heap_snapshot()

        run = send_mix(app, mix, clients=clients, total=total, seed=seed, sample_every=every, on_sample=snapshot)

    half = min(run.curve, key=lambda point: abs(point[0] - total / 2))
    end = run.curve[-1]
    growth = end[1] - half[1]
    failed = ", ".join(f"{name}: {n}" for name, n in run.failures.items() if n) or "none"
    lines = [
        f"{clients} clients, {total} requests from the mix in {run.wall_s:.0f} s "
        f"(failures: {failed}); server memory after the warm-up {run.curve[0][1]:.0f} MiB, "
        f"after {half[0]} requests {half[1]:.0f} MiB, after {end[0]} {end[1]:.0f} MiB: "
        f"{growth:+.0f} MiB over the second half ({growth * 1024 / max(1, end[0] - half[0]):+.1f} KiB per request)",
        "",
        "| requests answered | server RSS MiB |",
        "|---:|---:|",
        *[f"| {answered} | {rss:.0f} |" for answered, rss in run.curve],
    ]
    if len(snapshots) == 2:
        lines += ["", heap_growth(*snapshots.values())]
    return "\n".join(lines)


def heap_growth(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, top: int = 10) -> str:
    """Where the server's live Python memory grew between two snapshots (allocation sites, innermost frames)."""
    stats = after.compare_to(before, "traceback")
    lines = [
        f"Live Python memory grew by {sum(s.size_diff for s in stats) / 2**20:+.1f} MiB; the largest sites:",
        "",
        "| MiB | blocks | allocated at (innermost frames last) |",
        "|---:|---:|---|",
    ]
    for stat in stats[:top]:
        frames = " ← ".join(f"{Path(f.filename).name}:{f.lineno}" for f in reversed(stat.traceback[-4:]))
        lines.append(f"| {stat.size_diff / 2**20:+.2f} | {stat.count_diff:+d} | {frames} |")
    return "\n".join(lines)


def build_wide_gpt2(folder: Path) -> Path:
    """A GPT-2-small-sized model (12 layers of width 768, random weights) speaking the tiny IOI model's vocabulary."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from attribution.models import bundled_model_path

    tiny = bundled_model_path("tiny-ioi-gpt2")
    settings = json.loads((tiny / "config.json").read_text())
    config = GPT2Config(**{**settings, "n_layer": 12, "n_head": 12, "n_embd": 768, "n_inner": 3072})
    GPT2LMHeadModel(config).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        shutil.copy(tiny / name, folder / name)
    return folder


def long_requests(app: AppProcess, wide: str) -> dict[str, tuple[int, Request]]:
    """Model queue group → (its slots, a long request of that group)."""
    records = "".join(json.dumps({"source": SOURCE, "target": TARGET}) + "\n" for _ in range(CORPUS_RECORDS))
    corpus_file = upload(app.url, "records.jsonl", records.encode())
    slots = CONFIG["concurrency_limit"]
    return {
        "attribution: LIME, 100 000 samples": (
            slots,
            attribute("tiny-ioi-gpt2", IOI, "", "lime", []),
        ),
        "graph: 46 tokens, wide GPT-2": (
            slots,
            graph(wide, LONG_PROMPT),
        ),
        "intervention: patching sweep, wide GPT-2": (
            slots,
            lambda url: call(url, "intervene", wide, IOI, IOI_COUNTERFACTUAL, "", "", "", "-1"),
        ),
        f"corpus: {CORPUS_RECORDS} records, LIME": (
            1,
            lambda url: call(
                url, "corpus", corpus_file, ["tiny-synth-translate"], ["lime"], False, "source", "target", "alignment"
            ),
        ),
    }


class SlotHolders:
    """Per model group, one more request than its slots, each re-sent as soon as it is answered."""

    def __init__(self, app: AppProcess, groups: dict[str, tuple[int, Request]]) -> None:
        self.app, self.groups = app, groups
        self.stop = threading.Event()
        self.in_flight = dict.fromkeys(groups, 0)
        self.durations: dict[str, list[float]] = {group: [] for group in groups}
        self.errors: dict[str, list[str]] = {group: [] for group in groups}
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._hold, args=(group,), daemon=True)
            for group, (slots, _) in groups.items()
            for _ in range(slots + 1)
        ]

    def _hold(self, group: str) -> None:
        request = self.groups[group][1]
        while not self.stop.is_set():
            with self._lock:
                self.in_flight[group] += 1
            try:
                took, answer = timed(request, self.app.url)
            except Exception:  # the server stops under a request when the run ends
                return
            with self._lock:
                self.in_flight[group] -= 1
                self.durations[group].append(took)
                if answer.event != "complete":
                    self.errors[group].append(str((answer.data or {}).get("error")))

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self.in_flight)


def run_busy(cheap: int, settle_s: float) -> str:
    with tempfile.TemporaryDirectory() as folder:
        wide = str(build_wide_gpt2(Path(folder) / "wide-gpt2"))
        config = {**BUSY_CONFIG, "models": [*CONFIG["models"], wide]}
        with serve_app(config, Path(folder) / "app") as app:
            graph_json, result_json = warm_up(app)
            cheap_mix = cheap_requests(graph_json, result_json)
            alone = {name: [timed(request, app.url)[0] for _ in range(cheap)] for name, request in cheap_mix.items()}
            holders = SlotHolders(app, long_requests(app, wide))
            holders.start()
            time.sleep(settle_s)  # every group's requests have reached the queue and its slots
            in_flight_before = holders.counts()
            busy = {name: [] for name in cheap_mix}
            for _ in range(cheap):
                for name, request in cheap_mix.items():
                    took, answer = timed(request, app.url)
                    if answer.event != "complete":
                        raise RuntimeError(f"{name} failed while the model slots were busy: {answer.data}")
                    busy[name].append(took)
            in_flight_after = holders.counts()
            holders.stop.set()

    lines = [
        "| model group: long request | slots | in flight at start / end | answered meanwhile | median s | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for group, (slots, _) in holders.groups.items():
        done, errors = holders.durations[group], holders.errors[group]
        median = f"{statistics.median(done):.1f}" if done else "—"
        lines.append(
            f"| {group} | {slots} | {in_flight_before[group]} / {in_flight_after[group]} | {len(done)} | {median} "
            f"| {len(errors)} |"
        )
    messages = sorted({message[:150] for errors in holders.errors.values() for message in errors})
    lines += [f"- error: {message}" for message in messages]
    lines += [
        "",
        "| cheap request | p50 alone s | p50 busy s | p95 busy s | p50 busy / alone |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in cheap_mix:
        solo, p50 = statistics.median(alone[name]), percentile(busy[name], 0.5)
        lines.append(f"| {name} | {solo:.2f} | {p50:.2f} | {percentile(busy[name], 0.95):.2f} | {p50 / solo:.1f}× |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", nargs="?", choices=("mix", "long", "busy"), default="mix")
    parser.add_argument("--clients", type=int, help="clients at once (mix: 16, long: 8)")
    parser.add_argument("--requests", type=int, default=12, help="mix: requests per client")
    parser.add_argument("--alone", type=int, default=3, help="mix: requests per endpoint timed alone first")
    parser.add_argument("--total", type=int, default=2000, help="long: requests in all")
    parser.add_argument("--every", type=int, default=100, help="long: read the server's memory every this many")
    parser.add_argument("--trace-frames", type=int, default=0, help="long: trace the server's allocations (frames)")
    parser.add_argument("--cheap", type=int, default=10, help="busy: each cheap request this many times")
    parser.add_argument("--settle", type=float, default=10.0, help="busy: seconds the long requests get to start")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.what == "long":
        print(run_long(args.total, args.clients or 8, args.every, args.seed, args.trace_frames))
    elif args.what == "busy":
        print(run_busy(args.cheap, args.settle))
    else:
        print(run_mix(args.clients or 16, args.requests, args.alone, args.seed))


if __name__ == "__main__":
    main()
