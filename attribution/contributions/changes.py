"""What an intervention changed in a contribution graph: the edges whose drawn weight differs.

Two graphs of one input (before and after an ablation, at one threshold and from the same roots) are
compared edge by edge. An edge is known by its ends and kind (:data:`EdgeKey`); its weight is the one
drawn, 0 where the graph's routes do not keep it (below the threshold, or off every route), so an edge that
appears or vanishes counts as changed too. Model-free: two saved graphs are enough.
"""

from __future__ import annotations

from dataclasses import dataclass

from attribution.errors import InvalidInputError
from attribution.results import ContributionGraph

#: An edge's identity across two graphs of one input: source node id, target node id, edge kind.
EdgeKey = tuple[str, str, str]
#: Weights closer than this are the same (the two graphs come from separate forward passes).
WEIGHT_TOLERANCE = 1e-6


@dataclass(frozen=True)
class EdgeChange:
    """An edge whose drawn weight differs between two graphs (0: not drawn in that graph)."""

    source: str
    target: str
    kind: str
    before: float
    after: float

    @property
    def key(self) -> EdgeKey:
        return (self.source, self.target, self.kind)


def changed_edges(
    before: ContributionGraph, after: ContributionGraph, *, tolerance: float = WEIGHT_TOLERANCE
) -> list[EdgeChange]:
    """The edges of either graph whose weight differs by more than ``tolerance``, in ``before``'s order then
    ``after``'s new ones. Both graphs must be of the same tokens (one input, before and after an intervention)."""
    if (before.source_tokens, before.target_tokens) != (after.source_tokens, after.target_tokens):
        raise InvalidInputError("These two graphs are of different texts: only graphs of one input compare.")
    weights_before = _weights(before)
    weights_after = _weights(after)
    keys = list(dict.fromkeys([*weights_before, *weights_after]))
    changes = [EdgeChange(*key, weights_before.get(key, 0.0), weights_after.get(key, 0.0)) for key in keys]
    return [change for change in changes if abs(change.before - change.after) > tolerance]


def _weights(graph: ContributionGraph) -> dict[EdgeKey, float]:
    return {(edge.source, edge.target, edge.kind): float(edge.weight) for edge in graph.edges}
