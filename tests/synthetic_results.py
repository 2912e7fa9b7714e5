"""Synthetic results of any size, shaped like the real ones, for the export benchmark and tests.

Exporters only read results, so their speed, size and behaviour can be measured without a model.
The graphs follow the data model's rules: the edges entering a node have non-negative weights that
sum to 1 before pruning, attention edges split their weight over heads, and the stored edges are
the routes from the root tokens at the threshold.
"""

from __future__ import annotations

import numpy as np

from attribution.results import AttributionResult, ContributionGraph, GraphEdge, GraphNode, Provenance
from exporters.graph import route_edges


def _provenance(model_kind: str, model_type: str, model_id: str) -> Provenance:
    return Provenance(
        model_id=model_id,
        model_revision="0123456789abcdef0123456789abcdef01234567",
        model_kind=model_kind,  # type: ignore[arg-type]
        model_type=model_type,
        library_versions={"torch": "2.13.0", "transformers": "5.23.0", "inseq": "0.7.1"},
        created_at="2026-11-25T12:00:00+00:00",
    )


def _words(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def synthetic_attribution(
    kind: str = "causal",
    *,
    n_prompt: int = 6,
    n_generated: int = 4,
    n_source: int = 5,
    signed: bool = False,
    seed: int = 0,
    tokens: list[str] | None = None,
) -> AttributionResult:
    """A causal (prefix matrix, NaN future cells) or seq2seq (source + target parts) result."""
    rng = np.random.default_rng(seed)

    def scores(shape: tuple[int, int]) -> np.ndarray:
        values = rng.normal(size=shape) if signed else rng.random(shape)
        return values / np.abs(values).sum(axis=0, keepdims=True)

    if kind == "causal":
        target = tokens or _words("t", n_prompt + n_generated)
        n_steps = len(target) - n_prompt
        target_scores = scores((len(target), n_steps))
        for step in range(n_steps):
            target_scores[n_prompt + step :, step] = np.nan  # the token being predicted and later ones
        source, source_scores, start = [], None, n_prompt
    else:
        source = tokens or _words("s", n_source)
        target = ["<pad>", *_words("g", n_generated)]
        n_steps = len(target) - 1
        source_scores = scores((len(source), n_steps))
        target_scores = scores((len(target), n_steps))
        for step in range(n_steps):
            target_scores[step + 1 :, step] = np.nan
        start = 1
    return AttributionResult(
        provenance=_provenance(kind, "gpt2" if kind == "causal" else "marian", f"synthetic-{kind}"),
        method="integrated_gradients" if signed else "saliency",
        method_params={"n_steps": 50} if signed else {},
        source_text=" ".join(source),
        target_text=" ".join(target),
        source_tokens=list(source),
        target_tokens=list(target),
        attributed_start=start,
        source_scores=source_scores,
        target_scores=target_scores,
        step_scores={"probability": rng.random(n_steps).tolist()},
    )


def _split(rng: np.random.Generator, n: int, concentration: float = 0.3) -> np.ndarray:
    return rng.dirichlet(np.full(n, concentration))


def synthetic_graph(
    kind: str = "causal",
    *,
    n_tokens: int = 8,
    n_layers: int = 2,
    n_heads: int = 4,
    n_source: int = 6,
    threshold: float = 0.04,
    root_tokens: list[int] | None = None,
    seed: int = 0,
) -> ContributionGraph:
    """A causal (decoder only) or seq2seq (encoder + decoder, cross-attention) contribution graph."""
    rng = np.random.default_rng(seed)
    nodes: dict[str, GraphNode] = {}
    edges: list[GraphEdge] = []

    def node(side: str, layer: int, node_kind: str, token: int) -> str:
        node_id = f"{side[0]}{layer}.{node_kind}.{token}"
        if node_id not in nodes:
            nodes[node_id] = GraphNode(
                id=node_id,
                side=side,  # type: ignore[arg-type]
                layer=layer,
                kind=node_kind,  # type: ignore[arg-type]
                token_index=token,
                top_tokens=[(f"w{(token + layer + k) % 17}", float(0.5 / (k + 1))) for k in range(3)],
                promoted=[(f"w{(token * 3 + layer) % 17}", 1.5)],
                suppressed=[(f"w{(token * 5 + layer) % 17}", -1.2)],
            )
        return node_id

    def mix(target: str, sources: list[tuple[str, str]]) -> None:
        """Edges into ``target`` whose weights sum to 1, attention ones split over heads."""
        for (source, edge_kind), weight in zip(sources, _split(rng, len(sources)), strict=True):
            heads = (_split(rng, n_heads) * weight).tolist() if edge_kind.endswith("attention") else None
            edges.append(
                GraphEdge(source=source, target=target, kind=edge_kind, weight=float(weight), head_weights=heads)
            )  # type: ignore[arg-type]

    def stack(side: str, n: int, causal: bool, memory: list[str] | None) -> list[str]:
        below = [node(side, 0, "embedding", t) for t in range(n)]
        for layer in range(1, n_layers + 1):
            after = []
            for t in range(n):
                visible = range(t + 1) if causal else range(n)
                attn = node(side, layer, "after_attention", t)
                mix(attn, [(below[t], "residual")] + [(below[s], "attention") for s in visible])
                current = attn
                if memory is not None:
                    cross = node(side, layer, "after_cross_attention", t)
                    mix(cross, [(attn, "residual")] + [(m, "cross_attention") for m in memory])
                    current = cross
                ffn = node(side, layer, "ffn", t)
                edges.append(GraphEdge(source=current, target=ffn, kind="ffn", weight=1.0))
                out = node(side, layer, "after_ffn", t)
                mix(out, [(current, "residual"), (ffn, "ffn")])
                after.append(out)
            below = after
        return below

    if kind == "causal":
        source_tokens: list[str] = []
        target_tokens = _words("t", n_tokens)
        tops = stack("decoder", n_tokens, True, None)
    else:
        source_tokens = _words("s", n_source)
        target_tokens = ["<pad>", *_words("g", n_tokens - 1)]
        memory = stack("encoder", n_source, False, None)
        tops = stack("decoder", n_tokens, True, memory)

    roots = root_tokens if root_tokens is not None else [n_tokens - 1]
    kept = route_edges(edges, [tops[r] for r in roots], threshold)
    used = {e.source for e in kept} | {e.target for e in kept} | {tops[r] for r in roots}
    return ContributionGraph(
        provenance=_provenance(kind, "gpt2" if kind == "causal" else "marian", f"synthetic-{kind}"),
        source_text=" ".join(source_tokens),
        target_text=" ".join(target_tokens),
        source_tokens=source_tokens,
        target_tokens=target_tokens,
        n_layers=n_layers,
        n_heads=n_heads,
        threshold=threshold,
        renormalized=False,
        root_tokens=roots,
        nodes=[n for node_id, n in nodes.items() if node_id in used],
        edges=kept,
        n_encoder_layers=n_layers if kind != "causal" else 0,
    )
