"""A slow, obviously-correct reference for the contribution graph: plain Python loops, small inputs.

It starts from what the model computed in one forward pass (block inputs, attention probabilities,
value vectors, FFN outputs: :class:`CapturedBlock`) and the module weights, builds every part of
every node one (source token, head) at a time, applies a post-LN or a branch norm by the textbook
formula, scores each part by ``max(0, |whole|_1 - |whole - part|_1)`` and normalises. Routes are a depth-first
walk from the root node over the incoming edges of each node. Nothing here is vectorised or shared
with the fast implementation beyond the captured tensors.

Everything is computed in float64 from the (float32) captured tensors and weights, so the reference is
exact to far below the 1e-5 the tests allow: a share is a ratio of proximities that can be small
differences of large L1 norms (a part as large as the whole), where a float32 reference was itself
off by 1.2e-5 (OPT post-LN, layer 1, token 1; the fast path was 1e-6 from the float64 value).
"""

from __future__ import annotations

import torch

from attribution.anatomy.adapters import AttentionSpec, BlockSpec, FFNSpec
from attribution.contributions.decompose import CapturedBlock


def _l1(vector: torch.Tensor) -> float:
    return float(sum(abs(float(x)) for x in vector))


def _norm(parts: list[torch.Tensor], bias: torch.Tensor, norm) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Carry parts through norm(sum(parts) + bias) with the statistics of that sum fixed.

    LayerNorm: ``gamma * (x - mean) / std + beta``; RMSNorm: ``gamma * x / rms`` (Gemma: gamma = 1 + weight).
    """
    pre = sum(parts) + bias
    d = pre.shape[0]
    mean = sum(float(x) for x in pre) / d if norm.centred else 0.0
    variance = sum((float(x) - mean) ** 2 for x in pre) / d
    sigma = (variance + norm.eps) ** 0.5
    gamma = norm.weight.detach().double() + norm.weight_offset if norm.weight is not None else torch.ones(d).double()
    beta = norm.bias.detach().double() if norm.bias is not None else torch.zeros(d).double()

    def carry(part: torch.Tensor) -> torch.Tensor:
        return gamma * ((part - part.mean()) if norm.centred else part) / sigma

    return [carry(p) for p in parts], carry(bias) + beta


def proximity_shares(whole: torch.Tensor, parts: list[torch.Tensor]) -> list[float]:
    whole_norm = _l1(whole)
    proximities = [max(0.0, whole_norm - _l1(whole - part)) for part in parts]
    total = sum(proximities)
    if total <= 0:
        return [1.0] + [0.0] * (len(parts) - 1)
    return [p / total for p in proximities]


def attention_node(
    residual: torch.Tensor, probs: torch.Tensor, values: torch.Tensor, spec: AttentionSpec, i: int
) -> tuple[torch.Tensor, float, dict[tuple[int, int], float]]:
    """(whole, residual share, {(source j, head h): share}) of the attention node at row i."""
    n_heads = spec.n_heads
    group = n_heads // values.shape[1]
    parts: list[torch.Tensor] = [residual[i]]
    keys = []
    for j in range(values.shape[0]):
        for h in range(n_heads):
            vector = values[j, h // group] @ spec.out_weight[h].detach().double()
            parts.append(probs[h, i, j] * vector)
            keys.append((j, h))
    d = residual.shape[1]
    bias = spec.out_bias.detach().double() if spec.out_bias is not None else torch.zeros(d).double()
    if spec.branch_norm is not None:  # a norm on the attention output alone: the residual passes by
        head_parts, bias = _norm(parts[1:], bias, spec.branch_norm)
        parts = [parts[0], *head_parts]
    if spec.post_norm is not None:
        parts, bias = _norm(parts, bias, spec.post_norm)
    whole = sum(parts) + bias
    shares = proximity_shares(whole, parts)
    return whole, shares[0], dict(zip(keys, shares[1:], strict=True))


def ffn_node(residual: torch.Tensor, output: torch.Tensor, spec: FFNSpec) -> tuple[torch.Tensor, float, float]:
    if spec.branch_norm is not None:
        (output,), beta = _norm([output], torch.zeros_like(output), spec.branch_norm)
        output = output + beta
    parts, bias = [residual, output], torch.zeros_like(output)
    if spec.post_norm is not None:
        parts, bias = _norm(parts, bias, spec.post_norm)
    whole = sum(parts) + bias
    residual_share, ffn_share = proximity_shares(whole, parts)
    return whole, residual_share, ffn_share


class ReferenceStack:
    """Every node of one stack (encoder or decoder), computed row by row."""

    def __init__(self, captured: list[CapturedBlock], specs: list[BlockSpec]) -> None:
        self.layers = []
        for block, spec in zip(captured, specs, strict=True):
            block = _in_float64(block)
            n = block.residual_in.shape[0]
            self_nodes = [
                attention_node(block.residual_in, block.self_probs, block.self_values, spec.self_attention, i)
                for i in range(n)
            ]
            mid = torch.stack([node[0] for node in self_nodes])
            cross_nodes = None
            if spec.cross_attention is not None:
                cross_nodes = [
                    attention_node(mid, block.cross_probs, block.cross_values, spec.cross_attention, i)
                    for i in range(n)
                ]
                mid = torch.stack([node[0] for node in cross_nodes])
            ffn_nodes = [ffn_node(mid[i], block.ffn_output[i], spec.ffn) for i in range(n)]
            self.layers.append(
                {"self": self_nodes, "cross": cross_nodes, "ffn": ffn_nodes, "parallel": spec.parallel_residual}
            )


def _in_float64(block: CapturedBlock) -> CapturedBlock:
    """The captured tensors of one block, in float64."""
    return CapturedBlock(**{name: None if value is None else value.double() for name, value in vars(block).items()})


def _id(side: str, layer: int, kind: str, token: int) -> str:
    return f"{side}:{layer}:{'embedding' if layer == 0 else kind}:{token}"


def reference_route(
    encoder: ReferenceStack | None, decoder: ReferenceStack, root: int, threshold: float
) -> dict[tuple[str, str, str], float]:
    """Edges ``(source, target, kind) -> weight`` reachable from ``root`` keeping weights >= threshold."""
    edges: dict[tuple[str, str, str], float] = {}
    stack = [("decoder", len(decoder.layers), "after_ffn", root)]
    seen = set()
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        side, layer, kind, i = node
        if layer == 0:
            continue
        layers = (decoder if side == "decoder" else encoder).layers
        info = layers[layer - 1]
        mid_kind = "after_cross_attention" if info["cross"] is not None else "after_attention"
        incoming: list[tuple[tuple, str, float]] = []
        if kind == "after_ffn":
            _, residual_share, ffn_share = info["ffn"][i]
            incoming = [
                ((side, layer, mid_kind, i), "residual", residual_share),
                ((side, layer, "ffn", i), "ffn", ffn_share),
            ]
        elif kind == "ffn":
            source = (side, layer - 1, "after_ffn", i) if info["parallel"] else (side, layer, mid_kind, i)
            incoming = [(source, "ffn", 1.0)]
        elif kind == "after_cross_attention":
            _, residual_share, parts = info["cross"][i]
            incoming = [((side, layer, "after_attention", i), "residual", residual_share)]
            for j in sorted({j for j, _ in parts}):
                weight = sum(w for (jj, _), w in parts.items() if jj == j)
                incoming.append((("encoder", len(encoder.layers), "after_ffn", j), "cross_attention", weight))
        elif kind == "after_attention":
            _, residual_share, parts = info["self"][i]
            incoming = [((side, layer - 1, "after_ffn", i), "residual", residual_share)]
            for j in sorted({j for j, _ in parts}):
                weight = sum(w for (jj, _), w in parts.items() if jj == j)
                incoming.append(((side, layer - 1, "after_ffn", j), "attention", weight))
        for source, edge_kind, weight in incoming:
            if weight >= threshold:
                edges[(_id(*source), _id(*node), edge_kind)] = weight
                stack.append(source)
    return edges
