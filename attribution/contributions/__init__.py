"""Information-flow routes (Ferrando & Voita, 2024): which tokens and blocks a prediction came from.

    from attribution.contributions import build_contribution_graph
    graph = build_contribution_graph(loaded, "When Mary and John went to the store, John gave a drink to")

See :mod:`attribution.contributions.decompose` for the formulas. The names below are imported on
first use, so that model-free submodules (``alignment``: reading a saved graph) load without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "SUPPORTED_MODEL_TYPES": "attribution.anatomy.adapters",
    "build_contribution_graph": "attribution.contributions.graph",
    "build_contribution_graphs": "attribution.contributions.graph",
    "decompose_model": "attribution.contributions.graph",
    "resolve_root_tokens": "attribution.contributions.graph",
}
__all__ = [
    "SUPPORTED_MODEL_TYPES",
    "build_contribution_graph",
    "build_contribution_graphs",
    "decompose_model",
    "resolve_root_tokens",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
