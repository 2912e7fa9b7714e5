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

from collections.abc import Sequence
from itertools import repeat

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


#: A node kind of one layer on one side, naming a node per token: ``(side, layer, kind)``.
_Place = tuple[Side, int, str]


class _Tracer:
    def __init__(self, threshold: float, renormalize: bool, budget: int) -> None:
        self.threshold = threshold
        self.renormalize = renormalize
        self.budget = budget
        self.edges: list[GraphEdge] = []
        self._ids: dict[_Place, list[str]] = {}

    def ids(self, place: _Place, count: int) -> list[str]:
        """The node ids of tokens ``0 .. count - 1`` at ``place``, each string made once per graph."""
        ids = self._ids.setdefault(place, [])
        ids.extend(node_id(*place, token) for token in range(len(ids), count))
        return ids

    def attention(
        self,
        dec: AttentionDecomposition,
        rows: list[int],
        *,
        kind: EdgeKind,
        target: _Place,
        residual: _Place,
        tokens: _Place,
    ) -> tuple[set[int], set[int]]:
        """Keep the strong edges into ``target`` for ``rows`` (from ``residual`` at the same token and from
        ``tokens``); return (residual rows, source tokens) needed."""
        if not rows:
            return set(), set()
        residual_share, part_share = attention_shares(
            dec, torch.tensor(rows, device=dec.whole.device), budget=self.budget
        )
        token_share = part_share.sum(-1)  # [n, S]
        n_sources = token_share.shape[1]
        # kept (row, source) pairs as flat indices, row by row: gathers along one axis are cheap, pairs of indices not
        kept = torch.nonzero(token_share.reshape(-1) >= self.threshold)[:, 0]
        weights = token_share.reshape(-1).index_select(0, kept).tolist()
        heads = part_share.permute(2, 0, 1).reshape(part_share.shape[2], -1).index_select(1, kept).T.tolist()
        kept_rows = torch.div(kept, n_sources, rounding_mode="floor")
        per_row = torch.bincount(kept_rows, minlength=len(rows)).tolist()
        kept_sources = (kept % n_sources).tolist()
        target_ids, residual_ids = self.ids(target, rows[-1] + 1), self.ids(residual, rows[-1] + 1)
        source_ids = self.ids(tokens, n_sources)
        sources = [source_ids[j] for j in kept_sources]
        targets = [target_ids[rows[r]] for r in kept_rows.tolist()]
        edges = list(map(GraphEdge, sources, targets, repeat(kind), weights, heads))
        residual_rows, start = set(), 0
        for row, count, share in zip(rows, per_row, residual_share.tolist(), strict=True):
            incoming, start = edges[start : start + count], start + count
            if share >= self.threshold:
                incoming.append(GraphEdge(residual_ids[row], target_ids[row], "residual", share))
                residual_rows.add(row)
            self.edges.extend(_renormalised(incoming, self.renormalize))
        return residual_rows, set(kept_sources)

    def ffn(
        self, block: BlockDecomposition, side: Side, layer: int, mid_kind: str, rows: list[int]
    ) -> tuple[set[int], set[int]]:
        """Keep the strong edges into ``after_ffn(layer, i)`` for ``rows``; return the rows of the block's mid
        node and of ``after_ffn(layer - 1)`` (the FFN's input with a parallel residual) needed."""
        mid_rows: set[int] = set()
        below: set[int] = set()
        if not rows:
            return mid_rows, below
        residual_share, ffn_share = ffn_shares(block.ffn, torch.tensor(rows, device=block.ffn.whole.device))
        count = rows[-1] + 1
        after_ids, mid_ids = self.ids((side, layer, "after_ffn"), count), self.ids((side, layer, mid_kind), count)
        ffn_ids, input_ids = self.ids((side, layer, "ffn"), count), self.ids((side, layer - 1, "after_ffn"), count)
        for i, r_share, f_share in zip(rows, residual_share.tolist(), ffn_share.tolist(), strict=True):
            incoming = []
            if r_share >= self.threshold:
                incoming.append(GraphEdge(mid_ids[i], after_ids[i], "residual", r_share))
                mid_rows.add(i)
            if f_share >= self.threshold:
                incoming.append(GraphEdge(ffn_ids[i], after_ids[i], "ffn", f_share))
                if block.parallel_residual:
                    self.edges.append(GraphEdge(input_ids[i], ffn_ids[i], "ffn", 1.0))
                    below.add(i)
                else:
                    self.edges.append(GraphEdge(mid_ids[i], ffn_ids[i], "ffn", 1.0))
                    mid_rows.add(i)
            self.edges.extend(_renormalised(incoming, self.renormalize))
        return mid_rows, below

    def trace_side(
        self, side: Side, blocks: Sequence[BlockDecomposition], roots: set[int], encoder_layers: int = 0
    ) -> set[int]:
        """Routes from ``roots`` (rows of the last layer) down one stack; returns encoder tokens reached."""
        encoder_tokens: set[int] = set()
        needed = set(roots)
        for layer in range(len(blocks), 0, -1):
            block = blocks[layer - 1]
            mid_kind = "after_cross_attention" if block.cross_attention is not None else "after_attention"
            mid_rows, below = self.ffn(block, side, layer, mid_kind, sorted(needed))
            self_rows = mid_rows
            if block.cross_attention is not None:
                self_rows, reached = self.attention(
                    block.cross_attention,
                    sorted(mid_rows),
                    kind="cross_attention",
                    target=(side, layer, "after_cross_attention"),
                    residual=(side, layer, "after_attention"),
                    tokens=("encoder", encoder_layers, "after_ffn"),
                )
                encoder_tokens |= reached
            residual_rows, sources = self.attention(
                block.self_attention,
                sorted(self_rows),
                kind="attention",
                target=(side, layer, "after_attention"),
                residual=(side, layer - 1, "after_ffn"),
                tokens=(side, layer - 1, "after_ffn"),
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
