"""Top-down route extraction (Ferrando & Voita 2024, Algorithm 1) over a decomposed forward pass.

Start at each root's final residual state; at every node keep the incoming edges whose share is at
least ``threshold`` and continue from their sources, layer by layer down to the embeddings (and,
for seq2seq decoders, through cross-attention into the encoder). Only the rows (token positions)
some kept route needs are computed, so the route of one token costs far less than the full graph.

Graph layout per block l (1-based) at token i (see :class:`attribution.results.GraphNode`)::

    after_ffn(l-1, i) --residual--> after_attention(l, i) <--attention-- after_ffn(l-1, j)
    after_attention(l, i) --residual--> after_cross_attention(l, i)      (seq2seq decoders)
    encoder after_ffn(L_enc, j) --cross_attention--> after_cross_attention(l, i)
    mid(l, i) --residual--> after_ffn(l, i) <--ffn-- ffn(l, i) <--ffn (weight 1)-- ffn input

where ``mid`` is the last attention node of the block and the FFN's input is ``mid(l, i)``
(sequential residual) or ``after_ffn(l-1, i)`` (parallel residual, GPT-NeoX). ``after_ffn(0, i)``
is the embedding node.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import torch

from attribution.contributions.decompose import (
    DEFAULT_BUDGET,
    AttentionDecomposition,
    BlockDecomposition,
    LazyBlocks,
    attention_shares,
    ffn_shares,
)
from attribution.results import EdgeKind, GraphEdge, Side, node_id


def _renormalised(edges: list[GraphEdge], renormalize: bool) -> list[GraphEdge]:
    """The kept incoming edges of one node, rescaled to sum to 1 when ``renormalize``."""
    if not renormalize or not edges:
        return edges
    total = sum(edge.weight for edge in edges)
    for edge in edges:
        edge.weight /= total
        if edge.head_weights is not None:
            edge.head_weights = [w / total for w in edge.head_weights]
    return edges


class _Tracer:
    def __init__(self, threshold: float, renormalize: bool, budget: int) -> None:
        self.threshold = threshold
        self.renormalize = renormalize
        self.budget = budget
        self.edges: list[GraphEdge] = []

    def attention(
        self,
        dec: AttentionDecomposition,
        rows: list[int],
        *,
        kind: EdgeKind,
        target: Callable[[int], str],
        residual_source: Callable[[int], str],
        token_source: Callable[[int], str],
    ) -> tuple[set[int], set[int]]:
        """Keep the strong edges into ``target(i)`` for ``rows``; return (residual rows, source tokens) needed."""
        if not rows:
            return set(), set()
        residual_share, part_share = attention_shares(
            dec, torch.tensor(rows, device=dec.whole.device), budget=self.budget
        )
        token_share = part_share.sum(-1)  # [n, S]
        kept = torch.nonzero(token_share >= self.threshold).tolist()
        incoming: dict[int, list[GraphEdge]] = {r: [] for r in range(len(rows))}
        for r, j in kept:
            heads = part_share[r, j].tolist()
            incoming[r].append(GraphEdge(token_source(j), target(rows[r]), kind, float(token_share[r, j]), heads))
        residual_rows, sources = set(), {j for _, j in kept}
        for r, share in enumerate(residual_share.tolist()):
            if share >= self.threshold:
                incoming[r].append(GraphEdge(residual_source(rows[r]), target(rows[r]), "residual", share))
                residual_rows.add(rows[r])
            self.edges.extend(_renormalised(incoming[r], self.renormalize))
        return residual_rows, sources

    def trace_side(
        self, side: Side, blocks: Sequence[BlockDecomposition], roots: set[int], encoder_layers: int = 0
    ) -> set[int]:
        """Routes from ``roots`` (rows of the last layer) down one stack; returns encoder tokens reached."""
        encoder_tokens: set[int] = set()
        needed = set(roots)
        for layer in range(len(blocks), 0, -1):
            block = blocks[layer - 1]
            mid_kind = "after_cross_attention" if block.cross_attention is not None else "after_attention"
            below: set[int] = set()  # rows of after_ffn(layer - 1) needed
            mid_rows: set[int] = set()
            rows = sorted(needed)
            if rows:
                residual_share, ffn_share = ffn_shares(block.ffn, torch.tensor(rows, device=block.ffn.whole.device))
                for i, r_share, f_share in zip(rows, residual_share.tolist(), ffn_share.tolist(), strict=True):
                    target = node_id(side, layer, "after_ffn", i)
                    incoming = []
                    if r_share >= self.threshold:
                        incoming.append(GraphEdge(node_id(side, layer, mid_kind, i), target, "residual", r_share))
                        mid_rows.add(i)
                    if f_share >= self.threshold:
                        ffn_node = node_id(side, layer, "ffn", i)
                        incoming.append(GraphEdge(ffn_node, target, "ffn", f_share))
                        if block.parallel_residual:
                            self.edges.append(GraphEdge(node_id(side, layer - 1, "after_ffn", i), ffn_node, "ffn", 1.0))
                            below.add(i)
                        else:
                            self.edges.append(GraphEdge(node_id(side, layer, mid_kind, i), ffn_node, "ffn", 1.0))
                            mid_rows.add(i)
                    self.edges.extend(_renormalised(incoming, self.renormalize))
            self_rows = mid_rows
            if block.cross_attention is not None:
                self_rows, reached = self.attention(
                    block.cross_attention,
                    sorted(mid_rows),
                    kind="cross_attention",
                    target=partial(node_id, side, layer, "after_cross_attention"),
                    residual_source=partial(node_id, side, layer, "after_attention"),
                    token_source=lambda j: node_id("encoder", encoder_layers, "after_ffn", j),
                )
                encoder_tokens |= reached
            residual_rows, sources = self.attention(
                block.self_attention,
                sorted(self_rows),
                kind="attention",
                target=partial(node_id, side, layer, "after_attention"),
                residual_source=partial(node_id, side, layer - 1, "after_ffn"),
                token_source=partial(node_id, side, layer - 1, "after_ffn"),
            )
            needed = below | residual_rows | sources
            if isinstance(blocks, LazyBlocks):
                blocks.release(layer - 1)
        return encoder_tokens


def trace_routes(
    decoder: Sequence[BlockDecomposition],
    roots: list[int],
    *,
    threshold: float,
    renormalize: bool = False,
    encoder: Sequence[BlockDecomposition] | None = None,
    budget: int = DEFAULT_BUDGET,
) -> list[GraphEdge]:
    """All kept edges of the routes from ``roots`` (decoder-side token indices), encoder included."""
    tracer = _Tracer(threshold, renormalize, budget)
    encoder_roots = tracer.trace_side("decoder", decoder, set(roots), encoder_layers=len(encoder or []))
    if encoder:
        tracer.trace_side("encoder", encoder, encoder_roots)
    return tracer.edges
