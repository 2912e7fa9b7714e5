"""Synthetic results of any size, shaped like the real ones, for the export benchmark and tests.

Exporters only read results, so their speed, size and behaviour can be measured without a model.
The graphs follow the data model's rules: the edges entering a node have non-negative weights that
sum to 1 before pruning, attention edges split their weight over heads, and the stored edges are
the routes from the root tokens at the threshold.
"""

from __future__ import annotations

import numpy as np

from attribution.interventions.results import (
    EdgeSetEffect,
    FaithfulnessResult,
    InterventionResult,
    PatchingMap,
    PatchingResult,
    PredictionChange,
    RouteFaithfulness,
)
from attribution.results import AttributionResult, ContributionGraph, GraphEdge, GraphNode, Provenance, route_edges


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


# ------------------------------------------------------------------------------------------ interventions


def synthetic_intervention(*, n_tokens: int = 6, roots: tuple[int, ...] = (4, 5)) -> InterventionResult:
    """Zero ablation of a head and a residual stream on a causal model, predictions at ``roots``."""
    target_tokens = _words("t", n_tokens)
    predictions = [
        PredictionChange(
            position=root,
            input_token=target_tokens[root],
            target_token=f"w{root}",
            contrast_token="w0",
            probability_before=0.6,
            probability_after=0.25,
            logit_before=3.0,
            logit_after=1.5,
            logit_diff_before=2.0,
            logit_diff_after=0.5,
            kl_divergence=0.4,
            top_before=[(f"w{root}", 0.6), ("w0", 0.2)],
            top_after=[("w0", 0.3, 0.1), (f"w{root}", 0.25, -0.35)],
        )
        for root in roots
    ]
    return InterventionResult(
        provenance=_provenance("causal", "gpt2", "synthetic-causal"),
        source_text=" ".join(target_tokens),
        target_text="",
        source_tokens=[],
        target_tokens=target_tokens,
        components=["decoder:2:head:1", "decoder:1:after_ffn:3"],
        mode="zero",
        predictions=predictions,
    )


def synthetic_patching(*, n_tokens: int = 6, n_layers: int = 2, n_heads: int = 3, seed: int = 0) -> PatchingResult:
    """A causal model's [layer x head] and [layer x position] maps, exact and approximate."""
    rng = np.random.default_rng(seed)
    target_tokens = _words("t", n_tokens)
    counterfactual = _words("c", n_tokens)

    def patching_map(name: str, rows: list[str], columns: list[str]) -> PatchingMap:
        exact = rng.normal(size=(len(rows), len(columns)))
        return PatchingMap(
            name=name,
            row_label="layer",
            column_label=name,
            row_names=rows,
            column_names=columns,
            exact=exact,
            approximate=exact + rng.normal(scale=0.1, size=exact.shape),
            spearman=0.9,
            top10_overlap=0.8,
            seconds_exact=0.5,
            seconds_approximate=0.05,
        )

    layers = [str(layer) for layer in range(1, n_layers + 1)]
    return PatchingResult(
        provenance=_provenance("causal", "gpt2", "synthetic-causal"),
        source_text=" ".join(target_tokens),
        target_text="",
        counterfactual_text=" ".join(counterfactual),
        counterfactual_target="",
        source_tokens=[],
        target_tokens=target_tokens,
        counterfactual_source_tokens=[],
        counterfactual_target_tokens=counterfactual,
        root_position=n_tokens - 1,
        target_token="w1",
        contrast_token="w2",
        direction="denoise",
        logit_diff_clean=2.5,
        logit_diff_counterfactual=-1.5,
        maps=[
            patching_map("head", layers, [str(h) for h in range(n_heads)]),
            patching_map(
                "position",
                [str(layer) for layer in range(n_layers)],
                [f"{p}: {t}" for p, t in enumerate(target_tokens)],
            ),
        ],
        seconds_forward=0.01,
    )


def synthetic_route_faithfulness(*, n_tokens: int = 6, n_edges: int = 3, seeds: int = 2) -> RouteFaithfulness:
    target_tokens = _words("t", n_tokens)
    edges = [f"decoder:0:embedding:{i}->decoder:1:after_attention:{n_tokens - 1}" for i in range(n_edges)]

    def effect(probability: float, seed: int | None) -> EdgeSetEffect:
        return EdgeSetEffect(n_edges=n_edges, total_weight=0.3, probability=probability, logit_diff=0.5, seed=seed)

    return RouteFaithfulness(
        provenance=_provenance("causal", "gpt2", "synthetic-causal"),
        source_text=" ".join(target_tokens),
        target_text="",
        source_tokens=[],
        target_tokens=target_tokens,
        root_position=n_tokens - 1,
        target_token="w1",
        contrast_token=None,
        threshold=0.04,
        route_edges=edges,
        probability_clean=0.6,
        logit_diff_clean=None,
        necessity=effect(0.1, None),
        sufficiency=effect(0.5, None),
        random_necessity=[effect(0.55, seed) for seed in range(seeds)],
        random_sufficiency=[effect(0.2, seed) for seed in range(seeds)],
    )


def synthetic_faithfulness() -> FaithfulnessResult:
    curve = [1.0 - i / 10 for i in range(11)]
    return FaithfulnessResult(
        provenance=_provenance("causal", "gpt2", "synthetic-causal"),
        explanation="saliency",
        source_text="t0 t1 t2 t3",
        target_text="t0 t1 t2 t3 t4",
        replacement="unk token '<unk>'",
        fractions=[0.01, 0.05, 0.1, 0.2, 0.5],
        n_steps=1,
        comprehensiveness=0.3,
        sufficiency=0.1,
        deletion_curve=[0.6 * v for v in curve],
        insertion_curve=[0.6 * (1 - v) for v in curve],
        deletion_aopc=0.3,
        insertion_aopc=0.3,
        random_comprehensiveness=0.1,
        random_sufficiency=0.2,
        random_seeds=3,
    )
