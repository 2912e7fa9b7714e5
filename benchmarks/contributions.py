"""Speed and peak memory of the contribution graph on a random-initialised GPT-2 small (124M), fp32.

For each sequence length T it measures:

  (a) forward   one plain forward pass (eager attention, no hooks, no attention outputs),
  (b) graph     the routes of every token (``root_tokens="all"``, tau = 0.04, no logit lens),
  (c) route     the route of the last token (defaults: tau = 0.04, logit lens top 5, top neurons).

Time: in one fresh subprocess per T, after a warm-up of each operation on 8 tokens, the three
operations run interleaved ``--repeats`` times and the best time of each is kept (a busy moment of
a shared machine then hits all three alike); ratios are to (a) from that same process. Peak memory:
one fresh subprocess per operation and T; on CPU the resident-set high-water mark (``VmHWM``,
reset through ``/proc/self/clear_refs`` after setup and warm-up) minus the resident set before the
call, on CUDA ``torch.cuda.max_memory_allocated`` minus the memory allocated before the call.

    python benchmarks/contributions.py                      # CPU, T = 16 ... 1024
    python benchmarks/contributions.py --device cuda --out benchmarks/contributions_cuda.json
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

OPERATIONS = ("forward", "graph", "route")
LENGTHS = (16, 64, 128, 256, 512, 1024)
WORDS = [
    "when",
    "mary",
    "and",
    "john",
    "went",
    "to",
    "the",
    "store",
    "john",
    "gave",
    "a",
    "drink",
    "to",
    "the",
    "cat",
    "sees",
    "a",
    "red",
    "house",
]


def _word_tokenizer():
    """A word-level tokenizer over a few words: GPT-2's own tokenizer would need the Hub."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, **{w: i + 1 for i, w in enumerate(dict.fromkeys(WORDS))}}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", model_max_length=1024)


def _resident_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def worker(task: str, length: int, device: str, repeats: int) -> dict:
    """``task`` "time": all operations, interleaved, best of ``repeats`` rounds; else one operation's peak memory."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, installed or not
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from attribution.contributions import build_contribution_graph
    from attribution.models import LoadedModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(attn_implementation="eager")).to(device).eval()
    loaded = LoadedModel("random-gpt2-small", model, _word_tokenizer(), "causal")
    text = " ".join(WORDS[i % len(WORDS)] for i in range(length))

    def run(operation: str, text: str) -> None:
        if operation == "forward":
            ids = loaded.tokenizer(text, return_tensors="pt")["input_ids"].to(device)
            with torch.no_grad():
                model(ids)
        elif operation == "graph":
            build_contribution_graph(loaded, text, root_tokens="all", top_k=0)
        else:
            build_contribution_graph(loaded, text)
        if device == "cuda":
            torch.cuda.synchronize()

    operations = OPERATIONS if task == "time" else (task,)
    for operation in operations:  # warm-up: lazy initialisation, kernel selection
        run(operation, " ".join(WORDS[:8]))
    if task == "time":
        best = dict.fromkeys(operations, float("inf"))
        for _ in range(repeats):  # interleaved, so that a busy moment of the machine hits all alike
            for operation in operations:
                start = time.perf_counter()
                run(operation, text)
                best[operation] = min(best[operation], time.perf_counter() - start)
        return {"length": length, "seconds": best}
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        baseline = torch.cuda.memory_allocated()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark VmHWM
        baseline = _resident_bytes("VmRSS")
    run(task, text)
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else _resident_bytes("VmHWM")
    return {"length": length, "operation": task, "peak_bytes": max(0, peak - baseline)}


def _subprocess(task: str, length: int, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--worker", task, str(length), "--device", args.device]
    command += ["--repeats", str(args.repeats)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout, check=True)
    except subprocess.TimeoutExpired:
        return {"error": "timeout"}
    except subprocess.CalledProcessError as error:
        return {"error": error.stderr[-500:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(length: int, args: argparse.Namespace) -> list[dict]:
    """Rows ``{operation, length, seconds, peak_bytes}`` for one length (each in fresh subprocesses)."""
    timing = _subprocess("time", length, args)
    rows = []
    for operation in OPERATIONS:
        memory = _subprocess(operation, length, args)
        rows.append(
            {
                "operation": operation,
                "length": length,
                "seconds": timing.get("seconds", {}).get(operation),
                "peak_bytes": memory.get("peak_bytes"),
                "error": timing.get("error") or memory.get("error"),
            }
        )
    return rows


def _format(rows: list[dict], lengths: list[int]) -> str:
    by = {(r["operation"], r["length"]): r for r in rows}

    def seconds(op: str, t: int) -> str:
        value = by[(op, t)]["seconds"]
        if value is None:
            return (by[(op, t)].get("error") or "failed")[:20]
        if op == "forward":
            return f"{value:.3f}"
        forward = by[("forward", t)]["seconds"]
        return f"{value:.3f} ({value / forward:.1f}×)" if forward else f"{value:.3f}"

    def mib(op: str, t: int) -> str:
        value = by[(op, t)]["peak_bytes"]
        return "–" if value is None else f"{value / 2**20:.0f}"

    lines = [
        "| T | (a) forward s | (b) all-token graph s (× fwd) | (c) last-token route s (× fwd) "
        "| (a) peak MiB | (b) peak MiB | (c) peak MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for t in lengths:
        lines.append(
            f"| {t} | {seconds('forward', t)} | {seconds('graph', t)} | {seconds('route', t)} "
            f"| {mib('forward', t)} | {mib('graph', t)} | {mib('route', t)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS))
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per length (best is kept)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per measurement")
    parser.add_argument("--out", type=Path, default=None, help="also write the raw results as JSON")
    parser.add_argument("--worker", nargs=2, metavar=("TASK", "T"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.device, args.repeats)))
        return 0
    rows = []
    for length in args.lengths:
        rows += measure(length, args)
        print(json.dumps(rows[-3:]), file=sys.stderr, flush=True)
    import torch

    machine = torch.cuda.get_device_name() if args.device == "cuda" else f"{platform.processor() or 'CPU'}"
    print(
        f"GPT-2 small (random init, fp32) on {args.device} ({machine}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads)\n"
    )
    print(_format(rows, args.lengths))
    if args.out:
        args.out.write_text(json.dumps({"device": args.device, "machine": machine, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
