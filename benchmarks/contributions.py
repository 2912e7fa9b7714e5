"""Speed and peak memory of the contribution graph on random-initialised models of published configurations.

``--config`` picks the architecture (default GPT-2 small, 124M): ``gpt2``, ``qwen2.5-0.5b``,
``llama-3.2-1b``, ``opus-mt-en-de``, ``nllb-600m``. Each is built with random weights from the
architecture fields of the published ``config.json`` (same shapes, so the same arithmetic as the
checkpoint; nothing is downloaded), fp32, eager attention. For each sequence length T it measures:

  forward     one plain forward pass of the LM (LM head over all positions, no hooks),
  route       the route of the last token (defaults: tau = 0.04, logit lens top 5, top neurons),
  graph       the routes of every token (``root_tokens="all"``, tau = 0.04, no logit lens),
  every_edge  every edge of every token (``root_tokens="all"``, tau = 0, no logit lens), for
              T <= ``--every-edge-up-to`` (its T^2 x layers edge objects take GBs beyond).

A causal model reads T tokens; a seq2seq model reads T source tokens and T target-side tokens (the
start token and T - 1 target tokens), and its routes cross into the encoder.

Time: in one fresh subprocess per T, after a warm-up of each operation on 8 tokens, the operations
run interleaved ``--repeats`` times and the best time of each is kept (a busy moment of a shared
machine then hits all alike; Python's garbage is collected before each, untimed); ratios are to
``forward`` from that same process. Peak memory: one
fresh subprocess per operation and T; on CPU the resident-set high-water mark (``VmHWM``, reset
through ``/proc/self/clear_refs`` after setup and warm-up) minus the resident set before the call,
on CUDA ``torch.cuda.max_memory_allocated`` minus the memory allocated before the call. The header
says the threads torch used and the machine's load average before and after.

    python benchmarks/contributions.py                                    # GPT-2 small, CPU, T = 128 ... 1024
    python benchmarks/contributions.py --config qwen2.5-0.5b --lengths 128 512
    python benchmarks/contributions.py --device cuda --out benchmarks/contributions_cuda.json

``--layers N`` cuts every stack to N layers (widths as published): a quick check that a configuration runs.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

OPERATIONS = ("forward", "route", "graph", "every_edge")
LENGTHS = (128, 256, 512, 1024)
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


def _gpt2():
    from transformers import GPT2Config

    return GPT2Config()  # GPT-2 small: the class defaults are the published gpt2 config


def _qwen2_5_0_5b():
    from transformers import Qwen2Config

    return Qwen2Config(
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        rope_theta=1000000.0,
        vocab_size=151936,
        tie_word_embeddings=True,
        hidden_act="silu",
        use_sliding_window=False,
        bos_token_id=151643,
        eos_token_id=151643,
    )


def _llama_3_2_1b():
    from transformers import LlamaConfig

    return LlamaConfig(
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=16,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=64,
        max_position_embeddings=131072,
        rms_norm_eps=1e-5,
        rope_theta=500000.0,
        rope_scaling={
            "rope_type": "llama3",
            "factor": 32.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
        vocab_size=128256,
        tie_word_embeddings=True,
        hidden_act="silu",
        attention_bias=False,
        mlp_bias=False,
        bos_token_id=128000,
        eos_token_id=128001,
    )


def _opus_mt_en_de():
    from transformers import MarianConfig

    return MarianConfig(
        d_model=512,
        encoder_layers=6,
        decoder_layers=6,
        encoder_attention_heads=8,
        decoder_attention_heads=8,
        encoder_ffn_dim=2048,
        decoder_ffn_dim=2048,
        activation_function="swish",
        max_position_embeddings=512,
        vocab_size=58101,
        decoder_vocab_size=58101,
        pad_token_id=58100,
        decoder_start_token_id=58100,
        eos_token_id=0,
        scale_embedding=True,
        share_encoder_decoder_embeddings=True,
    )


def _nllb_600m():
    from transformers import M2M100Config

    return M2M100Config(  # facebook/nllb-200-distilled-600M
        d_model=1024,
        encoder_layers=12,
        decoder_layers=12,
        encoder_attention_heads=16,
        decoder_attention_heads=16,
        encoder_ffn_dim=4096,
        decoder_ffn_dim=4096,
        activation_function="relu",
        max_position_embeddings=1024,
        vocab_size=256206,
        scale_embedding=True,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        decoder_start_token_id=2,
    )


#: name -> (config builder, "causal" or "seq2seq", what to call it)
CONFIGS: dict[str, tuple[Callable, str, str]] = {
    "gpt2": (_gpt2, "causal", "GPT-2 small (124M)"),
    "qwen2.5-0.5b": (_qwen2_5_0_5b, "causal", "Qwen2.5-0.5B (494M)"),
    "llama-3.2-1b": (_llama_3_2_1b, "causal", "Llama-3.2-1B (1.24B)"),
    "opus-mt-en-de": (_opus_mt_en_de, "seq2seq", "opus-mt-en-de (Marian, 74M)"),
    "nllb-600m": (_nllb_600m, "seq2seq", "NLLB-200-distilled-600M (M2M-100, 615M)"),
}


def _word_tokenizer(max_length: int):
    """A word-level tokenizer over a few words (ids 1..17, valid in every vocabulary): no Hub download."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, **{w: i + 1 for i, w in enumerate(dict.fromkeys(WORDS))}}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", model_max_length=max_length)


def _text(length: int) -> str:
    return " ".join(WORDS[i % len(WORDS)] for i in range(length))


def _resident_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


#: Config fields holding a stack's number of layers (decoder-only: the first two; seq2seq: the last two).
LAYER_FIELDS = ("n_layer", "num_hidden_layers", "encoder_layers", "decoder_layers")


def _with_layers(config, layers: int | None):
    """``config`` with every stack cut to ``layers`` layers (None: as published); the widths stay as published."""
    if layers is not None:
        for field in LAYER_FIELDS:
            if field in config.to_dict():
                setattr(config, field, layers)
    return config


def _loaded_model(config_name: str, device: str, layers: int | None = None):
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    from attribution.models import LoadedModel

    build, kind, _ = CONFIGS[config_name]
    config = _with_layers(build(), layers)
    torch.manual_seed(0)
    model_class = AutoModelForCausalLM if kind == "causal" else AutoModelForSeq2SeqLM
    model = model_class.from_config(config, attn_implementation="eager").to(device).eval()
    positions = getattr(config, "n_positions", None) or config.max_position_embeddings
    return LoadedModel(f"random-{config_name}", model, _word_tokenizer(positions), kind)


def worker(task: str, args: argparse.Namespace) -> dict:
    """``task`` a JSON list of operations: those, interleaved, best of ``repeats`` rounds each; else the peak memory
    of the one operation named."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, installed or not
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    config_name, length, device, repeats = args.config, int(args.worker[1]), args.device, args.repeats

    from attribution.anatomy.inputs import prepare_inputs
    from attribution.contributions import build_contribution_graph

    loaded = _loaded_model(config_name, device, args.layers)
    seq2seq = loaded.kind == "seq2seq"

    def texts(n: int) -> tuple[str, str | None]:
        return _text(n), (_text(n - 1) if seq2seq else None)

    def run(operation: str, n: int) -> None:
        text, target = texts(n)
        if operation == "forward":
            inputs = prepare_inputs(loaded, text, target, None)[0]
            with torch.no_grad():
                loaded.model(**inputs, use_cache=False)
        elif operation == "route":
            build_contribution_graph(loaded, text, target=target)
        elif operation == "graph":
            build_contribution_graph(loaded, text, target=target, root_tokens="all", top_k=0)
        else:
            build_contribution_graph(loaded, text, target=target, root_tokens="all", top_k=0, threshold=0.0)
        if device == "cuda":
            torch.cuda.synchronize()

    timing = task.startswith("[")
    operations = json.loads(task) if timing else [task]
    for operation in operations:  # warm-up: lazy initialisation, kernel selection
        run(operation, 8)
    if timing:
        best = dict.fromkeys(operations, float("inf"))
        for _ in range(repeats):  # interleaved, so that a busy moment of the machine hits all alike
            for operation in operations:
                gc.collect()  # each starts from a collected heap: no operation pays for the garbage of another
                start = time.perf_counter()
                run(operation, length)
                best[operation] = min(best[operation], time.perf_counter() - start)
        return {"length": length, "seconds": best, "threads": torch.get_num_threads()}
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        baseline = torch.cuda.memory_allocated()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark VmHWM
        baseline = _resident_bytes("VmRSS")
    run(task, length)
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else _resident_bytes("VmHWM")
    return {"length": length, "operation": task, "peak_bytes": max(0, peak - baseline)}


def _subprocess(task: str, length: int, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--worker", task, str(length), "--config", args.config]
    command += ["--device", args.device, "--repeats", str(args.repeats)]
    command += ["--threads", str(args.threads)] if args.threads else []
    command += ["--layers", str(args.layers)] if args.layers else []
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout, check=True)
    except subprocess.TimeoutExpired:
        return {"error": "timeout"}
    except subprocess.CalledProcessError as error:
        return {"error": error.stderr[-500:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _operations(length: int, args: argparse.Namespace) -> list[str]:
    return [op for op in args.operations if op != "every_edge" or length <= args.every_edge_up_to]


def measure(length: int, args: argparse.Namespace) -> list[dict]:
    """Rows ``{operation, length, seconds, peak_bytes}`` for one length (each in fresh subprocesses)."""
    operations = _operations(length, args)
    timing = _subprocess(json.dumps(operations), length, args)
    rows = []
    for operation in operations:
        memory = _subprocess(operation, length, args) if args.memory else {}
        rows.append(
            {
                "operation": operation,
                "length": length,
                "seconds": timing.get("seconds", {}).get(operation),
                "peak_bytes": memory.get("peak_bytes"),
                "threads": timing.get("threads"),
                "error": timing.get("error") or memory.get("error"),
            }
        )
    return rows


def _format(rows: list[dict], lengths: list[int], operations: list[str]) -> str:
    by = {(r["operation"], r["length"]): r for r in rows}
    titles = {"forward": "forward", "route": "last-token route", "graph": "all-token graph", "every_edge": "every edge"}

    def seconds(op: str, t: int) -> str:
        row = by.get((op, t))
        if row is None:
            return "–"
        if row["seconds"] is None:
            return (row.get("error") or "failed").strip().splitlines()[-1][:30]
        forward = by.get(("forward", t), {}).get("seconds")
        if op == "forward" or not forward:
            return f"{row['seconds']:.3f}"
        return f"{row['seconds']:.3f} ({row['seconds'] / forward:.1f}×)"

    def mib(op: str, t: int) -> str:
        value = by.get((op, t), {}).get("peak_bytes")
        return "–" if value is None else f"{value / 2**20:.0f}"

    memory = any(r["peak_bytes"] is not None for r in rows)
    header = [f"{titles[op]} s" + ("" if op == "forward" else " (× fwd)") for op in operations]
    header += [f"{titles[op]} MiB" for op in operations] if memory else []
    lines = ["| T | " + " | ".join(header) + " |", "|---:|" + "---:|" * len(header)]
    for t in lengths:
        cells = [seconds(op, t) for op in operations] + ([mib(op, t) for op in operations] if memory else [])
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    return platform.processor() or "CPU"


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="gpt2", choices=list(CONFIGS))
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS))
    parser.add_argument("--operations", nargs="+", default=list(OPERATIONS), choices=OPERATIONS)
    parser.add_argument("--every-edge-up-to", type=int, default=256, help="longest T of the every-edge graph")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per length (best is kept)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    parser.add_argument("--layers", type=int, default=None, help="layers per stack (default: the published config's)")
    parser.add_argument("--no-memory", dest="memory", action="store_false", help="skip the peak-memory processes")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per measurement process")
    parser.add_argument("--out", type=Path, default=None, help="also write the raw results as JSON")
    parser.add_argument("--worker", nargs=2, metavar=("TASK", "T"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if "forward" not in args.operations:
        args.operations = ["forward", *args.operations]
    if args.worker:
        print(json.dumps(worker(args.worker[0], args)))
        return 0
    _, _, title = CONFIGS[args.config]
    title += f", cut to {args.layers} layers per stack" if args.layers else ""
    load_before = _load()
    rows = []
    for length in args.lengths:
        rows += measure(length, args)
        print(json.dumps([r for r in rows if r["length"] == length]), file=sys.stderr, flush=True)
    import torch

    machine = torch.cuda.get_device_name() if args.device == "cuda" else _cpu_name()
    threads = next((r["threads"] for r in rows if r.get("threads")), None)
    print(
        f"{title}, random init, fp32, eager attention, on {args.device} ({machine}, torch {torch.__version__}, "
        f"{threads} threads); load average (1, 5, 15 min) before {load_before}, after {_load()}\n"
    )
    print(_format(rows, args.lengths, [op for op in OPERATIONS if op in args.operations]))
    if args.out:
        record = {"config": args.config, "device": args.device, "machine": machine, "threads": threads, "rows": rows}
        args.out.write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
