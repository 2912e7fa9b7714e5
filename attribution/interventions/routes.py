"""Is a contribution-graph route faithful? Necessity and sufficiency of its attention edges, against chance.

The route from a root token is every edge reachable top-down from the root's final node in the graph
(weights at least the graph's threshold). Its attention and cross-attention edges, summed over heads,
are the tested set:

- necessity: remove every route edge's term (zero ablation) and measure the prediction;
- sufficiency: at every (side, block, attention) where the route has edges, remove every *other* edge's
  term, so only the route's edges (and the biases) still write to the residual stream there.

Random baselines use edge sets of the same size drawn from the same attention layers, matched to the
route's edges one by one by proximity weight (each route edge is paired with one of the ``pool``
unrouted edges of that layer closest to it in weight), so their total weight is close to the route's
(both are reported). All runs (route and every seed) are rows of one batched forward pass, which starts
at the lowest block whose attention it edits from the recorded clean pass (the blocks below, and the
encoder when only decoder attention is edited, are not run again) and reads out the root position only.
"""

from __future__ import annotations

import random

import torch

from attribution.anatomy.adapters import architecture_spec
from attribution.contributions.decompose import attention_shares
from attribution.contributions.graph import build_contribution_graph, decompose_model, resolve_root_tokens
from attribution.contributions.routes import node_id
from attribution.errors import InvalidInputError
from attribution.interventions import engine
from attribution.interventions.ablation import edge_mask
from attribution.interventions.components import AttentionKind, Component, edge_component, resolve
from attribution.interventions.inputs import model_shape, prepare
from attribution.interventions.metrics import default_targets, logit_diff, token_id
from attribution.interventions.results import EdgeSetEffect, RouteFaithfulness
from attribution.languages import (
    NO_LANGUAGES,
    Languages,
    check_languages,
    languages_of,
    languages_set,
    provenance_with,
)
from attribution.model_guard import exclusive_use
from attribution.models import LoadedModel
from attribution.results import SIDES, ContributionGraph, Side

Site = tuple[Side, int, AttentionKind]  # (side, block, "self" | "cross")
#: Candidates per route edge when drawing a weight-matched random edge.
DEFAULT_POOL = 8
MAX_SEEDS = 64


def route_edges(graph: ContributionGraph, root: int) -> list[tuple[str, str, float]]:
    """(source, target, weight) of the attention edges on the route from decoder token ``root``."""
    incoming: dict[str, list] = {}
    for edge in graph.edges:
        incoming.setdefault(edge.target, []).append(edge)
    start = node_id("decoder", graph.n_layers, "after_ffn", root)
    seen, queue, found = {start}, [start], []
    while queue:
        for edge in incoming.get(queue.pop(), []):
            if edge.kind in ("attention", "cross_attention"):
                found.append((edge.source, edge.target, edge.weight))
            if edge.source not in seen:
                seen.add(edge.source)
                queue.append(edge.source)
    return sorted(set(found))


def _site(component: Component) -> Site:
    assert component.attention is not None  # an edge is in a self- or cross-attention
    return component.side, component.layer, component.attention


def _ends(component: Component) -> tuple[int, int]:
    """An edge's (target token, source token): a resolved edge names both."""
    assert component.positions is not None and component.source is not None
    return component.positions[0], component.source


def _edge_weights(loaded: LoadedModel, inputs: dict) -> dict[Site, torch.Tensor]:
    """Proximity weight ``[T, S]`` (summed over heads) of every attention edge, per attention site."""
    encoder, decoder = decompose_model(loaded, inputs)
    weights: dict[Site, torch.Tensor] = {}
    attentions: tuple[AttentionKind, ...] = ("self", "cross")
    for side, blocks in zip(SIDES, (encoder, decoder), strict=True):
        for layer, block in enumerate(blocks, start=1):
            for name, dec in zip(attentions, (block.self_attention, block.cross_attention), strict=True):
                if dec is not None:
                    rows = torch.arange(dec.whole.shape[0])
                    weights[(side, layer, name)] = attention_shares(dec, rows)[1].sum(-1)
    return weights


def _matched_random_sets(
    route: list[Component], weights: dict[Site, torch.Tensor], causal: bool, seeds: int, pool: int
) -> list[list[tuple[Site, int, int, float]]]:
    """Per seed, one unrouted edge per route edge: same site, among the ``pool`` closest in weight."""
    taken = {(_site(c), *_ends(c)) for c in route}
    candidates: dict[Site, list[tuple[float, int, int]]] = {}
    for site, matrix in weights.items():
        self_causal = causal or (site[0] == "decoder" and site[2] == "self")
        candidates[site] = [
            (float(matrix[i, j]), i, j)
            for i in range(matrix.shape[0])
            for j in range(matrix.shape[1])
            if (site, i, j) not in taken and (not self_causal or j <= i)
        ]
    sets = []
    for seed in range(seeds):
        rng = random.Random(seed)
        chosen: list[tuple[Site, int, int, float]] = []
        used: set[tuple[Site, int, int]] = set()
        for component in route:
            site = _site(component)
            weight = float(weights[site][_ends(component)])
            free = [c for c in candidates[site] if (site, c[1], c[2]) not in used]
            if not free:
                raise InvalidInputError("The route uses every edge of a layer: there is no random set to compare with.")
            nearest = sorted(free, key=lambda c: abs(c[0] - weight))[:pool]
            w, i, j = rng.choice(nearest)
            used.add((site, i, j))
            chosen.append((site, i, j, w))
        sets.append(chosen)
    return sets


def check_seeds(seeds: int) -> None:
    """The number of random edge sets a route is compared with: checked before anything is loaded or run."""
    if not isinstance(seeds, int) or not 0 <= seeds <= MAX_SEEDS:
        raise InvalidInputError(f"seeds must be an integer from 0 to {MAX_SEEDS}, not {seeds!r}.")


def route_faithfulness(
    loaded: LoadedModel,
    text: str,
    *,
    target: str | None = None,
    graph: ContributionGraph | None = None,
    threshold: float = 0.04,
    root_token: int = -1,
    target_token: str | None = None,
    contrast_token: str | None = None,
    seeds: int = 5,
    pool: int = DEFAULT_POOL,
    max_tokens: int | None = None,
    languages: Languages | None = None,
) -> RouteFaithfulness:
    """Necessity and sufficiency of the route from ``root_token`` (see the module docstring).

    ``graph`` (optional) must be the contribution graph of this very input; without it one is built
    at ``threshold``. The target token defaults to the next input token / the clean prediction.
    ``languages``: the language codes of a multilingual translation model (a code not given: the given
    graph's, see :mod:`attribution.languages`).
    """
    check_seeds(seeds)
    if graph is not None:
        languages = (languages or NO_LANGUAGES).or_else(languages_of(graph.provenance))
    languages = check_languages(loaded, languages)
    if graph is None:
        graph = build_contribution_graph(
            loaded,
            text,
            target=target,
            threshold=threshold,
            root_tokens=root_token,
            top_k=0,
            max_tokens=max_tokens,
            languages=languages,
        )
    with exclusive_use(loaded), languages_set(loaded, languages):
        spec = architecture_spec(loaded.model)  # in here: accelerate-offloaded weights are real tensors
        clean = prepare(
            loaded,
            text,
            target if target is not None else (graph.target_text or None),
            max_tokens=max_tokens,
            languages=languages,
        )
        if graph.source_text != clean.text or len(graph.target_tokens) != len(clean.decoder_ids):
            raise InvalidInputError("The contribution graph given was built for another input.")
        root = resolve_root_tokens(root_token, len(clean.decoder_ids))[0]
        if root not in graph.root_tokens:
            raise InvalidInputError(f"The graph has no route from token {root}; build it with that root token.")
        shape = model_shape(spec, clean)
        found = route_edges(graph, root)
        if not found:
            raise InvalidInputError(
                "The route has no attention edge at this threshold, so there is nothing to ablate; lower the threshold."
            )
        route = [resolve(edge_component(source, target_id), shape) for source, target_id, _ in found]
        weights = _edge_weights(loaded, clean.inputs)
        random_sets = _matched_random_sets(route, weights, loaded.kind == "causal", seeds, pool)
        route_set = [(_site(c), *_ends(c), weight) for c, (_, _, weight) in zip(route, found, strict=True)]
        sets = [route_set, *random_sets]
        route_sites = sorted({site for site, *_ in route_set})

        def masks(edges: list[tuple[Site, int, int, float]], keep: bool) -> dict[Site, torch.Tensor]:
            out = {}
            for site in route_sites if keep else {s for s, *_ in edges}:
                component = Component("edge", site[0], site[1], site[2], positions=(0,), source=0)
                mask = torch.zeros_like(edge_mask(component, shape))
                for s, i, j, _ in edges:
                    if s == site:
                        mask[:, i, j] = 1.0
                out[site] = 1.0 - mask if keep else mask
            return out

        def run(keep: bool) -> torch.Tensor:
            edits = [
                engine.EdgeEdit(*site, torch.tensor([row]), mask)
                for row, edges in enumerate(sets)
                for site, mask in masks(edges, keep).items()
            ]
            return engine.forward_from(loaded.model, spec, clean.inputs, clean_run, edits, len(sets), [root])[:, 0]

        clean_run = engine.forward(loaded.model, spec, clean.inputs, checkpoint=True)
        clean_logits = clean_run.logits[0]
        necessity, sufficiency = run(keep=False), run(keep=True)
    target_id = (
        token_id(loaded, target_token)
        if target_token is not None
        else default_targets(loaded, clean.decoder_ids, [root], clean_logits)[0]
    )
    contrast_id = None if contrast_token is None else token_id(loaded, contrast_token, role="contrast token")

    def effect(logits: torch.Tensor, edges: list, seed: int | None) -> EdgeSetEffect:
        return EdgeSetEffect(
            n_edges=len(edges),
            total_weight=float(sum(w for *_, w in edges)),
            probability=float(logits.double().softmax(-1)[target_id]),
            logit_diff=logit_diff(logits, target_id, contrast_id),
            seed=seed,
        )

    convert = loaded.tokenizer.convert_ids_to_tokens
    source_tokens, target_tokens = clean.tokens(loaded)
    return RouteFaithfulness(
        provenance=provenance_with(loaded, languages),
        source_text=clean.text,
        target_text=clean.target_text,
        source_tokens=source_tokens,
        target_tokens=target_tokens,
        root_position=root,
        target_token=str(convert(target_id)),
        contrast_token=None if contrast_id is None else str(convert(contrast_id)),
        threshold=float(graph.threshold),
        route_edges=[c.id for c in route],
        probability_clean=float(clean_logits[root].double().softmax(-1)[target_id]),
        logit_diff_clean=logit_diff(clean_logits[root], target_id, contrast_id),
        necessity=effect(necessity[0], route_set, None),
        sufficiency=effect(sufficiency[0], route_set, None),
        random_necessity=[effect(necessity[s + 1], random_sets[s], s) for s in range(len(random_sets))],
        random_sufficiency=[effect(sufficiency[s + 1], random_sets[s], s) for s in range(len(random_sets))],
    )
