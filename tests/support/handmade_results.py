"""Small results written by hand, every number known: the exporters' figures and pages are checked against them."""

from __future__ import annotations

import math

import numpy as np

from attribution.results import AttributionResult, Comparison, ContributionGraph, GraphEdge, GraphNode, Provenance


def provenance(kind: str = "causal", model_id: str = "examples/tiny-ioi-gpt2") -> Provenance:
    return Provenance(
        model_id=model_id,
        model_revision="abc123",
        model_kind=kind,  # type: ignore[arg-type]
        model_type="gpt2" if kind == "causal" else "marian",
        library_versions={"torch": "2.13.0", "inseq": "0.7.1"},
        created_at="2026-11-25T10:00:00+00:00",
    )


def causal_result(
    tokens: list[str] | None = None, *, signed: bool = True, model_id: str = "tiny-ioi-gpt2"
) -> AttributionResult:
    """Prompt "The cat" + generated "sat on": a 4 × 2 prefix matrix, NaN where a token is not yet seen."""
    nan = math.nan
    scores = np.array([[0.5, -0.25], [-0.75, 0.125], [nan, 0.375], [nan, nan]])
    return AttributionResult(
        provenance=provenance("causal", model_id),
        method="input_x_gradient",
        method_params={"n_steps": 7},
        source_text="",
        target_text="The cat sat on",
        source_tokens=[],
        target_tokens=tokens or ["The", "cat", "sat", "on"],
        attributed_start=2,
        source_scores=None,
        target_scores=scores if signed else np.abs(scores),
        step_scores={"probability": [0.5, 0.25]},
    )


def seq2seq_result() -> AttributionResult:
    """Source "a b c" → decoder "<pad> x y": source part 3 × 2, target part 3 × 2 (NaN for unseen)."""
    nan = math.nan
    return AttributionResult(
        provenance=provenance("seq2seq", "tiny-synth-translate"),
        method="saliency",
        method_params={},
        source_text="a b c",
        target_text="x y",
        source_tokens=["a", "b", "c"],
        target_tokens=["<pad>", "x", "y"],
        attributed_start=1,
        source_scores=np.array([[0.6, 0.1], [0.2, 0.7], [0.1, 0.1]]),
        target_scores=np.array([[0.1, 0.05], [nan, 0.05], [nan, nan]]),
        step_scores={"probability": [0.9, 0.8], "entropy": [0.1, 0.2]},
    )


def route_graph() -> ContributionGraph:
    """Two tokens, one layer, weights chosen so the routes at each threshold are known by hand."""

    def node(node_id: str, layer: int, kind: str, token: int) -> GraphNode:
        return GraphNode(
            id=node_id,
            side="decoder",
            layer=layer,
            kind=kind,  # type: ignore[arg-type]
            token_index=token,
            top_tokens=[("Mary", 0.75)],
        )

    nodes = [
        node("e0", 0, "embedding", 0),
        node("e1", 0, "embedding", 1),
        node("a0", 1, "after_attention", 0),
        node("a1", 1, "after_attention", 1),
        node("f1", 1, "ffn", 1),
        node("o0", 1, "after_ffn", 0),
        node("o1", 1, "after_ffn", 1),
    ]
    edges = [
        GraphEdge("a1", "o1", "residual", 0.7),
        GraphEdge("f1", "o1", "ffn", 0.3),
        GraphEdge("a1", "f1", "ffn", 1.0),
        GraphEdge("e1", "a1", "residual", 0.5),
        GraphEdge("e0", "a1", "attention", 0.35, [0.3, 0.05]),
        GraphEdge("e1", "a1", "attention", 0.15, [0.1, 0.05]),
        GraphEdge("a0", "o0", "residual", 1.0),
        GraphEdge("e0", "a0", "residual", 0.6),
        GraphEdge("e0", "a0", "attention", 0.4, [0.25, 0.15]),
        GraphEdge("ghost", "a0", "attention", 0.9, [0.9, 0.0]),  # refers to a node that is not stored
    ]
    return ContributionGraph(
        provenance=provenance(),
        source_text="",
        target_text="When Mary",
        source_tokens=[],
        target_tokens=["When", "Mary"],
        n_layers=1,
        n_heads=2,
        threshold=0.1,
        renormalized=False,
        root_tokens=[0, -1],
        nodes=nodes,
        edges=edges,
    )


def comparison() -> Comparison:
    first, second = seq2seq_result(), seq2seq_result()
    second.method = "attention"
    second.source_scores = second.source_scores * -4.0  # a signed result with a larger range
    return Comparison(
        results=[first, second],
        labels=["saliency", "attention"],
        rank_correlation=[[1.0, -0.5], [-0.5, 1.0]],
        gold_alignment="0-0 1-1",
        aer=[0.25, None],
    )
