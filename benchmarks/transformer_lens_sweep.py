"""TransformerLens's exact head-patching sweep on a random GPT-2 small, in TransformerLens's own environment.

Run by ``benchmarks/faithfulness.py`` with the Python of a virtual environment where ``transformer-lens``
is installed (it pins other versions of transformers and numpy than this project), e.g.::

    python -m venv /tmp/tl && /tmp/tl/bin/pip install torch==2.13.0 "transformer-lens<3" pyarrow==21.0.0
    python benchmarks/faithfulness.py --transformer-lens-python /tmp/tl/bin/python

(TransformerLens 4 removed ``HookedTransformer`` for its ``TransformerBridge``; 2.x pins numpy 1, with
which the newest pyarrow does not import.) It builds GPT-2 small's configuration with random weights,
patches every head's output (``hook_z``, all positions) from the clean run into the corrupted one with
``transformer_lens.patching`` (one forward pass per head) and prints one JSON line: the seconds of the
sweep and of one plain forward pass (the mean of the medians of five just before and five just after it).
Imports nothing from this project.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import random
import statistics
import time

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig, patching

GPT2_SMALL = {
    "n_layers": 12,
    "d_model": 768,
    "n_heads": 12,
    "d_head": 64,
    "d_mlp": 3072,
    "d_vocab": 50257,
    "n_ctx": 1024,
    "act_fn": "gelu_new",
    "normalization_type": "LN",
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--length", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = HookedTransformer(HookedTransformerConfig(**GPT2_SMALL, seed=0)).eval()
    rng = random.Random(0)
    clean = torch.tensor([[rng.randrange(1, 200) for _ in range(args.length)]])
    corrupted = clean.clone()
    corrupted[0, args.length // 3] = 199 if int(clean[0, args.length // 3]) != 199 else 198
    with torch.no_grad():
        clean_logits, clean_cache = model.run_with_cache(clean)
        target, contrast = int(clean_logits[0, -1].argmax()), 7

        def metric(logits: torch.Tensor) -> torch.Tensor:
            return logits[0, -1, target] - logits[0, -1, contrast]

        def forward_seconds() -> list[float]:
            seconds = []
            for _ in range(5):
                started = time.perf_counter()
                model(corrupted)
                seconds.append(time.perf_counter() - started)
            return seconds

        before = forward_seconds()
        started = time.perf_counter()
        result = patching.get_act_patch_attn_head_out_all_pos(model, corrupted, clean_cache, metric)
        sweep = time.perf_counter() - started
        forwards = [statistics.median(before), statistics.median(forward_seconds())]
    print(
        json.dumps(
            {
                "version": importlib.metadata.version("transformer-lens"),
                "cells": int(result.numel()),
                "forward_seconds": statistics.mean(forwards),
                "sweep_seconds": sweep,
            }
        )
    )


if __name__ == "__main__":
    main()
