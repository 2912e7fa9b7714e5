"""Information-flow routes (Ferrando & Voita, 2024): which tokens and blocks a prediction came from.

    from attribution.contributions import build_contribution_graph
    graph = build_contribution_graph(loaded, "When Mary and John went to the store, John gave a drink to")

See :mod:`attribution.contributions.decompose` for the formulas.
"""

from attribution.contributions.adapters import SUPPORTED_MODEL_TYPES
from attribution.contributions.graph import build_contribution_graph, decompose_model, resolve_root_tokens

__all__ = ["SUPPORTED_MODEL_TYPES", "build_contribution_graph", "decompose_model", "resolve_root_tokens"]
