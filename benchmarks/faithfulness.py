"""Faithfulness of explanations, tested by changing the model (three tables for docs/benchmarks.md).

1. **Attribution methods and the contribution graph** on the bundled test sets (``ioi_test.jsonl`` with
   ``tiny-ioi-gpt2``, ``synth_translate_test.jsonl`` with ``tiny-synth-translate``): ERASER
   comprehensiveness / sufficiency and deletion / insertion AOPC (removed tokens become ``<unk>``),
   a random ranking for reference, and on the translation set the AER (argmax) of the same results.
2. **Route faithfulness**: necessity (drop of p(target) when the route's attention edges are removed)
   and sufficiency (share of p kept when only they remain at their layers), route vs weight-matched
   random edge sets, on the same test sets (IOI: the answer position; translation: the position
   predicting the last target word).
3. **Exact vs attribution patching** on GPT-2 small (random init, 12 layers x 12 heads, d 768) at
   T = 32: the full [12 x 12] head sweep and the [12 x 32] position sweep, their agreement (Spearman,
   top-10 overlap) and each one's time as a ratio to one forward pass, measured in the same run; the
   exact sweeps also with every patched row rerunning the whole model, a one-forward-per-cell head loop
   written with plain hooks, and TransformerLens's head sweep (in its own virtual environment, when
   ``--transformer-lens-python`` names its Python; see ``benchmarks/transformer_lens_sweep.py``).

    python benchmarks/faithfulness.py                       # defaults: 20 sentences per set (a few minutes)
    python benchmarks/faithfulness.py --limit 100 --methods saliency attention --json out.json
    python benchmarks/faithfulness.py --skip methods routes --transformer-lens-python /tmp/tl/bin/python

Timings are ratios measured within one run; on a shared machine absolute seconds are noise.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DATA = REPO / "examples" / "data"
DEFAULT_METHODS = ("saliency", "input_x_gradient", "integrated_gradients", "deeplift", "attention", "occlusion")
METHOD_PARAMS = {"integrated_gradients": {"n_steps": 16}}


def _rows(name: str, limit: int) -> list[dict]:
    with (DATA / name).open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()][:limit]


def _mean(values) -> float:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else float("nan")


def method_table(methods: list[str], limit: int) -> list[dict]:
    """Per test set and explanation: mean ERASER numbers over the sentences, and AER on translation."""
    from attribution.compare import aer as link_aer
    from attribution.compare import alignment_error_rate, parse_alignment
    from attribution.contributions import build_contribution_graph
    from attribution.contributions.alignment import graph_word_alignment
    from attribution.inseq_runner import attribute
    from attribution.interventions.faithfulness import attribution_faithfulness, graph_faithfulness
    from attribution.models import load_model

    tables = []
    for dataset, model_name, rows in (
        ("IOI", "tiny-ioi-gpt2", _rows("ioi_test.jsonl", limit)),
        ("translation", "tiny-synth-translate", _rows("synth_translate_test.jsonl", limit)),
    ):
        loaded = load_model(model_name)
        for explanation in [*methods, "contribution graph"]:
            scores: dict[str, list] = {k: [] for k in ("comp", "suff", "del", "ins", "rcomp", "rsuff", "aer", "sec")}
            for row in rows:
                text = row["prompt"] if dataset == "IOI" else row["source"]
                target = " " + row["answer"] if dataset == "IOI" else row["target"]
                started = time.perf_counter()
                if explanation == "contribution graph":
                    graph = build_contribution_graph(loaded, text, target=target, root_tokens="all", top_k=0)
                    faith = graph_faithfulness(loaded, graph)
                    if dataset == "translation":
                        words = [*range(len(row["source"].split())), None]
                        target_words = [*range(len(row["target"].split())), None]
                        links = graph_word_alignment(graph, words, target_words)
                        scores["aer"].append(link_aer(links, parse_alignment(row["alignment"])))
                else:
                    result = attribute(
                        loaded, text, method=explanation, target=target, method_params=METHOD_PARAMS.get(explanation)
                    )
                    faith = attribution_faithfulness(loaded, result)
                    if dataset == "translation":
                        scores["aer"].append(alignment_error_rate(result, row["alignment"]))
                scores["sec"].append(time.perf_counter() - started)
                scores["comp"].append(faith.comprehensiveness)
                scores["suff"].append(faith.sufficiency)
                scores["del"].append(faith.deletion_aopc)
                scores["ins"].append(faith.insertion_aopc)
                scores["rcomp"].append(faith.random_comprehensiveness)
                scores["rsuff"].append(faith.random_sufficiency)
            tables.append(
                {
                    "dataset": dataset,
                    "explanation": explanation,
                    "n": len(rows),
                    "comprehensiveness": _mean(scores["comp"]),
                    "sufficiency": _mean(scores["suff"]),
                    "deletion_aopc": _mean(scores["del"]),
                    "insertion_aopc": _mean(scores["ins"]),
                    "random_comprehensiveness": _mean(scores["rcomp"]),
                    "random_sufficiency": _mean(scores["rsuff"]),
                    "aer": _mean(scores["aer"]) if scores["aer"] else None,
                    "seconds": _mean(scores["sec"]),
                }
            )
            print(json.dumps(tables[-1]), file=sys.stderr)
    return tables


def route_table(limit: int, seeds: int) -> list[dict]:
    from attribution.errors import InvalidInputError
    from attribution.interventions.routes import route_faithfulness
    from attribution.models import load_model

    out = []
    for dataset, model_name, rows in (
        ("IOI", "tiny-ioi-gpt2", _rows("ioi_test.jsonl", limit)),
        ("translation", "tiny-synth-translate", _rows("synth_translate_test.jsonl", limit)),
    ):
        loaded = load_model(model_name)
        summaries, skipped, edges, weights, random_weights = [], 0, [], [], []
        for row in rows:
            try:
                if dataset == "IOI":
                    result = route_faithfulness(loaded, row["prompt"], contrast_token=row["subject"], seeds=seeds)
                else:
                    last = len(row["target"].split()) - 1  # the decoder position predicting the last word
                    result = route_faithfulness(
                        loaded, row["source"], target=row["target"], root_token=last, seeds=seeds
                    )
            except InvalidInputError:  # no attention edge on the route at this threshold
                skipped += 1
                continue
            summaries.append(result.summary())
            edges.append(result.necessity.n_edges)
            weights.append(result.necessity.total_weight)
            random_weights += [e.total_weight for e in result.random_necessity]
        out.append(
            {
                "dataset": dataset,
                "n": len(summaries),
                "skipped": skipped,
                "edges": _mean(edges),
                "route_weight": _mean(weights),
                "random_weight": _mean(random_weights),
                **({key: _mean([s[key] for s in summaries]) for key in summaries[0]} if summaries else {}),
            }
        )
        print(json.dumps(out[-1]), file=sys.stderr)
    return out


def _full_rerun(model, spec, inputs, recorded, edits, n_rows, positions):
    """Every patched row runs the whole model (how the sweeps ran before they resumed at the patched block)."""
    from attribution.interventions import engine

    repeated = {name: tensor.repeat(n_rows, 1) for name, tensor in inputs.items()}
    return engine.forward(model, spec, repeated, edits).logits[:, positions]


def _forward_seconds(model, ids, times: int = 5) -> float:
    """One plain forward pass of ``model`` on ``ids``: the median of ``times``."""
    import torch

    seconds = []
    for _ in range(times):
        started = time.perf_counter()
        with torch.no_grad():
            model(ids)
        seconds.append(time.perf_counter() - started)
    return float(np.median(seconds))


def _hook_loop(model, clean_ids, base_ids, target: int, contrast: int) -> tuple[float, np.ndarray]:
    """The one-forward-per-cell head sweep written with plain hooks on the transformers GPT-2: each head's mixed
    values (the input of ``attn.c_proj``) from the clean run patched into the base run, one forward pass per
    head; (seconds, logit differences [layers, heads])."""
    import torch

    blocks = model.transformer.h
    n_heads = model.config.n_head
    clean = {}
    handles = [
        block.attn.c_proj.register_forward_pre_hook(lambda _m, args, i=i: clean.__setitem__(i, args[0].clone()))
        for i, block in enumerate(blocks)
    ]
    with torch.no_grad():
        model(clean_ids)
    for handle in handles:
        handle.remove()
    out = np.empty((len(blocks), n_heads))
    started = time.perf_counter()
    for layer, block in enumerate(blocks):
        for head in range(n_heads):

            def patch(_module, args, layer=layer, head=head):
                mixed = args[0].clone()
                width = mixed.shape[-1] // n_heads
                mixed[..., head * width : (head + 1) * width] = clean[layer][..., head * width : (head + 1) * width]
                return (mixed,)

            handle = block.attn.c_proj.register_forward_pre_hook(patch)
            with torch.no_grad():
                logits = model(base_ids).logits[0, -1]
            handle.remove()
            out[layer, head] = float(logits[target] - logits[contrast])
    return time.perf_counter() - started, out


def _transformer_lens(python: str | None, length: int, threads: int) -> dict | None:
    """TransformerLens's own head sweep (``benchmarks/transformer_lens_sweep.py``) run by the Python of its
    virtual environment; None (and a note on stderr) when no such Python is given or it fails."""
    import os
    import subprocess

    if not python:
        return None
    script = Path(__file__).with_name("transformer_lens_sweep.py")
    command = [python, str(script), "--length", str(length), "--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
    if done.returncode != 0:
        print(f"TransformerLens sweep failed: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def patching_table(length: int, repeats: int, transformer_lens_python: str | None = None) -> dict:
    """Exact vs attribution patching on a random-initialised GPT-2 small, in forward passes of the same run.

    Per repeat, interleaved: the sweep (each patched row resumes at its block), the same sweep rerunning the
    whole model per row (as before), a plain one-forward-per-cell hook loop over the heads on the same
    model, and TransformerLens's head sweep in its own environment (when given), each timed against a
    plain forward pass measured right before and after it (TransformerLens: its own). Timings are medians
    over the repeats.
    """
    from unittest import mock

    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    from attribution.interventions import engine
    from attribution.interventions.sweeps import patching_sweep
    from attribution.models import LoadedModel

    words = [f"w{i}" for i in range(200)]
    vocab = {"<unk>": 0, **{w: i + 1 for i, w in enumerate(words)}}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", model_max_length=1024)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(attn_implementation="eager")).eval()
    loaded = LoadedModel("gpt2-small-random", model, tokenizer, "causal")
    rng = random.Random(0)
    prompt = [rng.choice(words) for _ in range(length)]
    counterfactual = list(prompt)
    counterfactual[length // 3] = "w199" if prompt[length // 3] != "w199" else "w198"
    text, other = " ".join(prompt), " ".join(counterfactual)
    clean_ids, base_ids = (tokenizer(t, return_tensors="pt")["input_ids"] for t in (text, other))
    with torch.no_grad():  # the sweep's default target: the clean prediction (an id beyond this small tokenizer)
        target = int(model(clean_ids).logits[0, -1].argmax())
    units, runs, reruns, loops, lens = [], [], [], [], []
    for _ in range(repeats):  # each method between two measurements of the forward pass (the machine is shared)
        units.append([_forward_seconds(model, clean_ids)])
        runs.append(patching_sweep(loaded, text, other, contrast_token="w7", batch_size=48))
        units[-1].append(_forward_seconds(model, clean_ids))
        with mock.patch.object(engine, "forward_from", _full_rerun):
            reruns.append(patching_sweep(loaded, text, other, contrast_token="w7", batch_size=48, approximate=False))
        units[-1].append(_forward_seconds(model, clean_ids))
        loops.append(_hook_loop(model, clean_ids, base_ids, target, vocab["w7"]))
        units[-1].append(_forward_seconds(model, clean_ids))
        lens.append(_transformer_lens(transformer_lens_python, length, torch.get_num_threads()))
    # the forward pass each method is measured in: the mean of the measurements just before and after it
    unit = {method: [(u[i] + u[i + 1]) / 2 for u in units] for i, method in enumerate(("sweep", "rerun", "loop"))}
    forward = float(np.median([u for repeat in units for u in repeat]))
    result = runs[0]  # the maps are the same in every repeat
    table = {"length": length, "forward_seconds": forward, "maps": []}
    for name in ("head", "position"):
        item = result.map(name)

        def per_cell(results, method: str, name=name, cells=item.exact.size) -> float:
            ratios = [r.map(name).seconds_exact / u for r, u in zip(results, unit[method], strict=True)]
            return float(np.median(ratios)) / cells

        table["maps"].append(
            {
                "map": name,
                "cells": int(item.exact.size),
                "spearman": item.spearman,
                "top10_overlap": item.top10_overlap,
                "exact_forwards": per_cell(runs, "sweep") * item.exact.size,
                "exact_per_cell": per_cell(runs, "sweep"),
                "full_rerun_per_cell": per_cell(reruns, "rerun"),
                "largest_difference": max(
                    float(
                        np.abs(
                            (r.map(name).exact - f.map(name).exact) * (r.logit_diff_clean - r.logit_diff_counterfactual)
                        ).max()
                    )
                    for r, f in zip(runs, reruns, strict=True)
                ),
                "approximate_forwards": float(
                    np.median([r.map(name).seconds_approximate / u for r, u in zip(runs, unit["sweep"], strict=True)])
                ),
            }
        )
    heads = result.map("head")
    ld = heads.exact * (result.logit_diff_clean - result.logit_diff_counterfactual) + result.logit_diff_counterfactual
    table["hook_loop"] = {
        "per_cell": float(np.median([seconds / u for (seconds, _), u in zip(loops, unit["loop"], strict=True)]))
        / heads.exact.size,
        "largest_difference": max(float(np.abs(values - ld).max()) for _, values in loops),
    }
    measured = [item for item in lens if item]
    if measured:
        table["transformer_lens"] = {
            "version": measured[0]["version"],
            "per_cell": float(np.median([m["sweep_seconds"] / m["forward_seconds"] / m["cells"] for m in measured])),
            "forward_vs_transformers": float(np.median([m["forward_seconds"] for m in measured])) / forward,
        }
    print(json.dumps(table), file=sys.stderr)
    return table


def _f(value, digits: int = 3) -> str:
    return "—" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{digits}f}"


def markdown(methods: list[dict], routes: list[dict], patching: dict, header: str) -> str:
    lines = [header, ""]
    lines += [
        "| test set | explanation | comprehensiveness ↑ | sufficiency ↓ | deletion AOPC ↓ | insertion AOPC ↑ | AER ↓ "
        "| s / sentence |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    random_rows = {}
    for row in methods:
        random_rows.setdefault(row["dataset"], []).append(row)
        lines.append(
            f"| {row['dataset']} | {row['explanation']} | {_f(row['comprehensiveness'])} | {_f(row['sufficiency'])} | "
            f"{_f(row['deletion_aopc'])} | {_f(row['insertion_aopc'])} | {_f(row['aer'])} | {_f(row['seconds'], 2)} |"
        )
    for dataset, rows in random_rows.items():
        lines.append(
            f"| {dataset} | random ranking | {_f(_mean([r['random_comprehensiveness'] for r in rows]))} | "
            f"{_f(_mean([r['random_sufficiency'] for r in rows]))} | — | — | — | — |"
        )
    lines += [
        "",
        "| test set | routes tested | edges | weight: route / random | necessity: p drop, route | random | "
        "sufficiency: p kept, route | random |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in routes:
        lines.append(
            f"| {row['dataset']} | {row['n']} (+{row['skipped']} without attention edges) | {_f(row['edges'], 1)} | "
            f"{_f(row['route_weight'], 2)} / {_f(row['random_weight'], 2)} | {_f(row.get('necessity_drop'))} | "
            f"{_f(row.get('random_necessity_drop'))} | {_f(row.get('sufficiency_kept'))} | "
            f"{_f(row.get('random_sufficiency_kept'))} |"
        )
    lines += [
        "",
        f"GPT-2 small (random init), T = {patching['length']}, "
        f"one forward pass = {patching['forward_seconds'] * 1000:.0f} ms:",
        "",
        "| map | cells | exact patching (forward passes) | per cell | per cell, whole model rerun per row "
        "| attribution patching (forward passes) | Spearman | top-10 overlap |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in patching["maps"]:
        lines.append(
            f"| {row['map']} | {row['cells']} | {row['exact_forwards']:.1f} | {row['exact_per_cell']:.3f} | "
            f"{row['full_rerun_per_cell']:.3f} | {row['approximate_forwards']:.1f} | "
            f"{_f(row['spearman'])} | {_f(row['top10_overlap'], 1)} |"
        )
    if patching.get("maps"):
        loop = patching["hook_loop"]
        differences = max(row["largest_difference"] for row in patching["maps"])
        lines += [
            "",
            f"Head sweep, one forward pass per cell: plain hooks on the same model {loop['per_cell']:.3f} forward "
            f"passes per cell (largest logit-difference gap to the sweep {loop['largest_difference']:.1e}; resumed "
            f"vs whole-model rows {differences:.1e}).",
        ]
        lens = patching.get("transformer_lens")
        lines.append(
            f"TransformerLens {lens['version']} (`patching.get_act_patch_attn_head_out_all_pos`, its own environment): "
            f"{lens['per_cell']:.3f} of its forward passes per cell (its forward pass = "
            f"{lens['forward_vs_transformers']:.2f}x transformers')."
            if lens
            else "TransformerLens: not measured (no --transformer-lens-python)."
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=20, help="sentences per test set (default 20)")
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), help="Inseq methods")
    parser.add_argument("--seeds", type=int, default=5, help="random edge sets per route (default 5)")
    parser.add_argument("--length", type=int, default=32, help="tokens of the GPT-2 small patching input (32)")
    parser.add_argument("--repeats", type=int, default=3, help="patching runs; times are medians (3)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["methods", "routes", "patching"])
    parser.add_argument(
        "--transformer-lens-python",
        default=None,
        help="Python of a virtual environment with transformer-lens (<3) installed: its head sweep is timed too",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the raw numbers here")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    methods = method_table(args.methods, args.limit) if "methods" not in args.skip else []
    routes = route_table(args.limit, args.seeds) if "routes" not in args.skip else []
    patching = (
        patching_table(args.length, args.repeats, args.transformer_lens_python)
        if "patching" not in args.skip
        else {"length": args.length, "forward_seconds": float("nan"), "maps": []}
    )
    header = (
        f"{args.limit} sentences per test set; CPU {platform.machine()}, {args.threads} torch thread(s); "
        f"integrated_gradients n_steps={METHOD_PARAMS['integrated_gradients']['n_steps']}"
    )
    print(markdown(methods, routes, patching, header))
    if args.json:
        args.json.write_text(json.dumps({"methods": methods, "routes": routes, "patching": patching}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
