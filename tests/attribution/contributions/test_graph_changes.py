"""What an ablation changed in a graph: the edges whose drawn weight differs, appearing and vanishing ones too."""

from __future__ import annotations

import dataclasses

import pytest

from attribution.contributions.changes import EdgeChange, changed_edges
from attribution.errors import InvalidInputError
from attribution.results import GraphEdge
from tests.support.handmade_results import route_graph


def test_changed_edges_are_the_moved_the_vanished_and_the_new_ones_by_hand() -> None:
    before = route_graph()
    after = dataclasses.replace(before, edges=[dataclasses.replace(edge) for edge in before.edges])
    after.edges[0].weight = 0.6  # a1 -> o1 residual: 0.7 -> 0.6
    after.edges[1].weight = 0.3 + 1e-9  # f1 -> o1: the same, to float noise
    del after.edges[4]  # e0 -> a1 attention (0.35): vanished
    after.edges.append(GraphEdge("e1", "a0", "attention", 0.2, [0.1, 0.1]))  # new
    after.edges.append(GraphEdge("e0", "a0", "residual", 0.6))  # a duplicate of a stored one: unchanged
    assert changed_edges(before, after) == [
        EdgeChange("a1", "o1", "residual", 0.7, 0.6),
        EdgeChange("e0", "a1", "attention", 0.35, 0.0),
        EdgeChange("e1", "a0", "attention", 0.0, 0.2),
    ]
    assert [change.key for change in changed_edges(before, after, tolerance=0.15)] == [
        ("e0", "a1", "attention"),
        ("e1", "a0", "attention"),
    ]
    assert changed_edges(before, before) == []
    other = dataclasses.replace(before, target_tokens=["When", "John"])
    with pytest.raises(InvalidInputError, match="different texts"):
        changed_edges(before, other)
