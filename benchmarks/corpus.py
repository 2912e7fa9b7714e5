"""Records per second of a corpus run: today's one-by-one loop vs the local batched engine vs Ray.

On the bundled translation test set (``tiny-synth-translate``, gold translations forced) with one
method (default ``saliency``), in one process, one after the other:

- **old loop**: ``attribute()`` per sentence then its AER, as ``benchmarks/alignment.py`` does;
- **local batched**: ``run_corpus(engine="local")`` (Inseq batches of ``--batch-size``, results
  written to a run folder as they finish), with 1 torch thread, torch's default (the cores: the old
  default) and the engine's automatic choice (``--threads`` unset);
- **Ray, 1 and 2 workers**: ``run_corpus(engine="ray")``, which starts a local Ray instance (1 CPU
  and 1 torch thread per worker) and stops it.

Records/s count explaining and writing only; set-up (loading the model, starting Ray and its
workers) is reported apart. The engines run in ``--repeats`` interleaved rounds and the best round
of each is kept (on a shared machine the slow rounds are the ones other work got in the way of).
Every engine's AER per record is checked against the old loop's (the largest difference is
printed: same numbers), and the score matrices too.

    python benchmarks/corpus.py [--limit 100] [--repeats 3] [--method saliency] [--batch-size 16] [--skip-ray]
    python benchmarks/corpus.py --report-records 10000     # the corpus report's export time and size
    python benchmarks/corpus.py --graph [--repeats 1]      # the graph method: one by one vs padded batches

``--graph`` times the contribution graph (the corpus's ``graph`` method: every decoder token a root,
no logit lens) on the same pairs, 1 torch thread: ``build_contribution_graph`` per record vs
``build_contribution_graphs`` (one padded forward pass per ``--batch-size`` records), and the
instrumented forward pass alone both ways; it checks both give the same edges and prints the
largest edge-weight difference.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT / "examples" / "data" / "synth_translate_test.jsonl"


def old_loop(records, method: str) -> tuple[float, dict[str, tuple[float, np.ndarray]]]:
    """The one-by-one loop: seconds, and per record (AER, source scores)."""
    import torch

    from attribution.compare import alignment_error_rate
    from attribution.inseq_runner import attribute
    from attribution.models import load_model

    torch.set_num_threads(1)
    loaded = load_model("tiny-synth-translate")
    attribute(loaded, records[0].text, target=records[0].target, method=method)  # warm-up, not timed
    started = time.perf_counter()
    out = {}
    for record in records:
        result = attribute(loaded, record.text, target=record.target, method=method)
        out[record.record_id] = (alignment_error_rate(result, record.alignment), result.source_scores)
    return time.perf_counter() - started, out


def engine_run(records, method: str, batch_size: int, engine: str, threads: int | None = 1, workers: int = 1):
    """One corpus run into a fresh folder (``threads=None``: chosen by the engine); its summary and per record
    (AER, source scores)."""
    from attribution.corpus import ModelSpec, RayOptions, TaskConfig, load_run, run_corpus

    folder = Path(tempfile.mkdtemp(prefix="corpus-bench-")) / "run"
    try:
        summary = run_corpus(
            records,
            folder,
            model=ModelSpec("tiny-synth-translate", threads=threads),
            task=TaskConfig(methods=(method,), metrics=("aer",)),
            engine=engine,
            batch_size=batch_size,
            ray=RayOptions(workers=workers, cpus_per_worker=1) if engine == "ray" else None,
        )
        run = load_run(folder)
        out = {row["record_id"]: (row["aer"], run.result(row).source_scores) for row in run.rows}
        return summary, out
    finally:
        shutil.rmtree(folder.parent, ignore_errors=True)


def differences(reference: dict, other: dict) -> tuple[float, float]:
    """Largest |AER difference| and largest |score difference| over the records."""
    assert reference.keys() == other.keys()
    aer = max(abs(reference[k][0] - other[k][0]) for k in reference)
    scores = max(float(np.nanmax(np.abs(reference[k][1] - other[k][1]))) for k in reference)
    return aer, scores


def graph_speed(records, batch_size: int, repeats: int) -> str:
    """The graph method one record at a time vs in padded batches: records/s, ratio, same numbers."""
    import torch

    from attribution.anatomy.adapters import architecture_spec
    from attribution.anatomy.inputs import pad_token_id, prepare_inputs
    from attribution.contributions import build_contribution_graph, build_contribution_graphs
    from attribution.contributions.decompose import run_instrumented, run_instrumented_batch
    from attribution.models import load_model

    torch.set_num_threads(1)
    loaded = load_model("tiny-synth-translate")
    options = {"root_tokens": "all", "top_k": 0}  # what a corpus run asks for (TaskConfig's defaults)
    texts, targets = [r.text for r in records], [r.target for r in records]
    spec = architecture_spec(loaded.model)
    inputs = [prepare_inputs(loaded, text, target, None)[0] for text, target in zip(texts, targets, strict=True)]
    batches = [inputs[i : i + batch_size] for i in range(0, len(inputs), batch_size)]
    pad = pad_token_id(loaded)
    build_contribution_graph(loaded, texts[0], target=targets[0], **options)  # warm-up, not timed

    def alone():
        return [build_contribution_graph(loaded, t, target=g, **options) for t, g in zip(texts, targets, strict=True)]

    def batched():
        return [
            graph
            for i in range(0, len(texts), batch_size)
            for graph in build_contribution_graphs(
                loaded, texts[i : i + batch_size], targets=targets[i : i + batch_size], batch_size=batch_size, **options
            )
        ]

    timings: dict[str, float] = {}
    graphs: dict[str, list] = {}
    runs = {
        "graph, one by one": alone,
        f"graph, padded batches of {batch_size}": batched,
        "forward pass only, one by one": lambda: [run_instrumented(loaded.model, spec, x) for x in inputs],
        f"forward pass only, padded batches of {batch_size}": lambda: [
            run_instrumented_batch(loaded.model, spec, b, pad_token_id=pad) for b in batches
        ],
    }
    for _ in range(repeats):  # interleaved rounds, the best of each kept
        for label, run in runs.items():
            started = time.perf_counter()
            out = run()
            seconds = time.perf_counter() - started
            timings[label] = min(seconds, timings.get(label, seconds))
            graphs.setdefault(label, out)
    one, many = graphs["graph, one by one"], graphs[f"graph, padded batches of {batch_size}"]
    same_edges = all(
        [(e.source, e.target, e.kind) for e in a.edges] == [(e.source, e.target, e.kind) for e in b.edges]
        for a, b in zip(one, many, strict=True)
    )
    delta = max(
        abs(x.weight - y.weight) for a, b in zip(one, many, strict=True) for x, y in zip(a.edges, b.edges, strict=True)
    )
    labels = list(runs)
    lines = [
        f"graph method on {len(records)} pairs of {DATA.name}, tiny-synth-translate, gold targets, roots 'all', "
        f"no logit lens, 1 thread, best of {repeats}; {platform.machine()}, {os.cpu_count()} cores",
        "",
        "| what | records/s | × one by one |",
        "|---|---:|---:|",
    ]
    for label in labels:
        base = timings[labels[0] if label.startswith("graph") else labels[2]]
        lines.append(f"| {label} | {len(records) / timings[label]:.1f} | {base / timings[label]:.2f} |")
    share = timings[labels[2]] / timings[labels[0]]
    lines += [
        "",
        f"same edges kept: {same_edges}; max |Δ edge weight|: {delta:.1e}; "
        f"edges: {sum(len(g.edges) for g in one)}; the forward pass is {share:.0%} of the one-by-one graph time",
    ]
    return "\n".join(lines)


def report_scaling(n_records: int) -> str:
    """Export time and page size of the corpus report for a run of ``n_records`` (no model at run time).

    The run folder is filled with one real saliency result per record (the same sentence's, with a
    random AER each), as a run of that size would hold; the report reads it like any other.
    """
    from attribution.corpus import ModelSpec, TaskConfig, load_run
    from attribution.corpus.records import Record
    from attribution.corpus.runfolder import RunFolder
    from attribution.corpus.tasks import MethodOutcome
    from attribution.inseq_runner import attribute
    from attribution.models import load_model
    from exporters import export_result

    loaded = load_model("tiny-synth-translate")
    pair = json.loads(DATA.read_text(encoding="utf-8").splitlines()[0])
    result = attribute(loaded, pair["source"], target=pair["target"], method="saliency")
    task = TaskConfig(methods=("saliency",), metrics=("aer",))
    folder = Path(tempfile.mkdtemp(prefix="corpus-report-bench-")) / "run"
    generator = np.random.default_rng(0)
    try:
        run_folder = RunFolder.open(
            folder, model=ModelSpec("tiny-synth-translate").defining(), task=task, data={"n_records": n_records}
        )
        for start in range(0, n_records, 1000):
            outcomes = []
            for i in range(start, min(start + 1000, n_records)):
                record = Record(record_id=f"r{i}", row=i, text=pair["source"], target=pair["target"])
                values = {"aer": float(generator.random()), "mean_probability": 0.99}
                outcomes.append([MethodOutcome(record.record_id, i, record.content_hash, "saliency", "ok", None,
                                               result, record.text, record.target, values, 0.0, "bench")])  # fmt: skip
            run_folder.write(outcomes)
        run_folder.close(status="complete")
        lines = ["| records | table rows | heatmaps embedded | export s | page MB |", "|---:|---:|---:|---:|---:|"]
        for table_rows, details in ((2000, 100), (500, 50)):
            started = time.perf_counter()
            export = export_result(load_run(folder), max_table_rows=table_rows, max_details=details)
            seconds = time.perf_counter() - started
            lines.append(f"| {n_records} | {table_rows} | {details} | {seconds:.1f} | {len(export.html) / 1e6:.2f} |")
        return "\n".join(lines)
    finally:
        shutil.rmtree(folder.parent, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=100, help="records of the test set (default 100)")
    parser.add_argument("--method", default="saliency")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3, help="rounds over all engines; the best of each is kept")
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument(
        "--report-records", type=int, default=0, help="instead: time the corpus report of a run this large"
    )
    parser.add_argument("--graph", action="store_true", help="instead: the graph method, one by one vs batched")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.report_records:
        print(report_scaling(args.report_records))
        return 0

    import torch

    from attribution.corpus import read_records

    torch_default = torch.get_num_threads()
    records = read_records(DATA, limit=args.limit)
    if args.graph:
        print(graph_speed(records, args.batch_size, args.repeats))
        return 0
    runs = [
        ("local batched, 1 thread (--threads 1)", "local", 1, 1),
        (f"local batched, {torch_default} threads (torch's default: the old default)", "local", torch_default, 1),
        ("local batched, automatic threads (the default)", "local", None, 1),
    ]
    if not args.skip_ray:
        runs += [("Ray, 1 worker (1 CPU)", "ray", 1, 1), ("Ray, 2 workers (1 CPU each)", "ray", 1, 2)]
    old_label = "old loop: attribute() per sentence, 1 thread"
    best: dict[str, tuple[float, float, tuple[float, float]]] = {}  # label -> (set-up s, records/s, differences)

    def keep(label: str, setup: float, rate: float, diff: tuple[float, float]) -> None:
        if label not in best or rate > best[label][1]:
            best[label] = (setup, rate, diff)

    # Rounds interleave the engines, so a busy spell of a shared machine does not land on one engine only.
    for _ in range(args.repeats):
        seconds, reference = old_loop(records, args.method)
        keep(old_label, 0.0, len(records) / seconds, (0.0, 0.0))
        for label, engine, threads, workers in runs:
            summary, out = engine_run(records, args.method, args.batch_size, engine, threads, workers)
            keep(label, summary.setup_seconds, summary.records_per_second, differences(reference, out))
    base = best[old_label][1]
    print(
        f"{args.method} on {len(records)} pairs of {DATA.name}, tiny-synth-translate, batch size {args.batch_size}, "
        f"best of {args.repeats} interleaved rounds; {platform.machine()}, {os.cpu_count()} cores"
    )
    print()
    print("| engine | set-up s | records/s | × old loop | max Δ AER | max Δ score |")
    print("|---|---:|---:|---:|---:|---:|")
    for label in [old_label, *(run[0] for run in runs)]:
        setup, rate, (aer, score) = best[label]
        print(f"| {label} | {setup:.1f} | {rate:.1f} | {rate / base:.2f} | {aer:.1e} | {score:.1e} |")
    print(json.dumps({label: {"records_per_s": rate, "setup_s": setup} for label, (setup, rate, _) in best.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
