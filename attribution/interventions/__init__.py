"""Interventions: test an explanation by changing the model and watching the prediction move.

Ablation (zero / mean) and activation patching of components named as the contribution graph names
them (:mod:`~attribution.interventions.components`), batched patching sweeps and their gradient
approximation (attribution patching), the faithfulness of contribution-graph routes, and the
faithfulness of feature-attribution results (comprehensiveness, sufficiency, deletion / insertion).

    from attribution.interventions import intervene, patching_sweep
    result = intervene(loaded, "When Mary and John went to the store, John gave a drink to",
                       ["decoder:3:head:1"], contrast_token="John")

Every function runs under ``loaded.lock`` and leaves the model exactly as it was. Submodules load
lazily, so reading a saved result (``attribution.interventions.results``) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "intervene": "attribution.interventions.ablation",
    "MODES": "attribution.interventions.ablation",
    "parse_component": "attribution.interventions.components",
    "edge_component": "attribution.interventions.components",
    "Component": "attribution.interventions.components",
    "patching_sweep": "attribution.interventions.sweeps",
    "route_faithfulness": "attribution.interventions.routes",
    "attribution_faithfulness": "attribution.interventions.faithfulness",
    "graph_faithfulness": "attribution.interventions.faithfulness",
    "InterventionResult": "attribution.interventions.results",
    "PatchingResult": "attribution.interventions.results",
    "RouteFaithfulness": "attribution.interventions.results",
    "FaithfulnessResult": "attribution.interventions.results",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
