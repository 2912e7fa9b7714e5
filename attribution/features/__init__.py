"""Features, not only neurons: SAE features at graph nodes, a neuron and feature viewer, two prompts compared.

    from attribution.features import load_sae_folder, node_features, compare_prompts, top_activations
    sae = load_sae_folder("my-sae")                        # SAELens folder: cfg.json + sae_weights.safetensors
    view = node_features(loaded, text, "decoder:2:after_ffn:5", sae)
    changed = intervene(loaded, text, ["decoder:2:sae:17@5"], saes=[sae])   # ablate the feature's a·d there

- :mod:`~attribution.features.dictionary`: SAELens SAEs bound to a graph layer (local folders, the pretrained
  registry when online);
- :mod:`~attribution.features.nodes`: a node's active features, their logit-lens effect and the SAE's error;
- :mod:`~attribution.features.viewer`: what a neuron or feature writes and where it fires most over a corpus;
- :mod:`~attribution.features.layer_compare`: two prompts' residual streams layer by layer;
- :mod:`~attribution.features.results`: the results (JSON round trip; no torch).

Submodules load lazily, so reading a saved result does not import torch or SAELens.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FeatureDictionary": "attribution.features.dictionary",
    "bind": "attribution.features.dictionary",
    "load_sae_folder": "attribution.features.dictionary",
    "load_pretrained_sae": "attribution.features.dictionary",
    "node_features": "attribution.features.nodes",
    "decompose_state": "attribution.features.nodes",
    "compare_prompts": "attribution.features.layer_compare",
    "top_activations": "attribution.features.viewer",
    "save_with_run": "attribution.features.viewer",
    "load_from_run": "attribution.features.viewer",
    "NodeFeatures": "attribution.features.results",
    "LayerComparison": "attribution.features.results",
    "TopActivations": "attribution.features.results",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
