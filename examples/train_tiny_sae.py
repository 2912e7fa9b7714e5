"""Fit the sparse autoencoder bundled with ``tiny-ioi-gpt2`` (``examples/models/tiny-ioi-gpt2-sae``).

A SAELens ``StandardSAE`` (256 features) fitted on the bundled IOI model's residual stream after block 2
(graph layer 2, TransformerLens's ``blocks.2.hook_resid_pre``) over the model's own training prompts, saved
as a SAELens folder (``cfg.json`` + ``sae_weights.safetensors``) that ``attribution.features.load_sae_folder``
and ``SAE.load_from_disk`` read. Deterministic on one thread; about a minute on a CPU::

    python examples/train_tiny_sae.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from train_tiny_models import generate_ioi_data

from attribution.anatomy.adapters import architecture_spec
from attribution.bundled import bundled_model_path
from attribution.features.fit import fit_sae
from attribution.features.streams import residual_states
from attribution.interventions.inputs import prepare
from attribution.models import load_model

LAYER = 2
WIDTH = 256
PROMPTS = 300
OUT = bundled_model_path("tiny-ioi-gpt2").parent / "tiny-ioi-gpt2-sae"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    loaded = load_model("tiny-ioi-gpt2", cache=None)
    spec = architecture_spec(loaded.model)
    prompts = [example.prompt for example in generate_ioi_data()[0][:PROMPTS]]
    states = torch.cat(
        [residual_states(loaded, spec, prepare(loaded, prompt).inputs, "decoder")[0, LAYER] for prompt in prompts]
    )
    sae = fit_sae(states, width=WIDTH, steps=400, seed=0)
    sae.cfg.metadata.hook_name = f"blocks.{LAYER}.hook_resid_pre"
    sae.cfg.metadata.model_name = "tiny-ioi-gpt2"
    sae.save_model(args.out)
    explained = 1 - (sae(states) - states).pow(2).sum() / (states - states.mean(0)).pow(2).sum()
    active = (sae.encode(states) > 0).float().sum(-1).mean()
    print(f"{args.out}: {len(states)} states, variance explained {float(explained):.3f}, L0 {float(active):.1f}")


if __name__ == "__main__":
    main()
