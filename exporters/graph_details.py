"""What inspecting a contribution graph shows: one description of nodes, edges and routes' roots.

The exported figure's tap panel, its hovers and the app's node / edge tables and menus all take
their text from here, so a node reads the same wherever it is looked at: its token (as text),
position, layer and kind, then the rows of its logit-lens top tokens, promoted and suppressed
tokens, and (FFN nodes) top neurons; an edge names the tokens and layers it connects, its weight
and its split over heads. No Bokeh and no model: a saved graph is enough.
"""

from __future__ import annotations

from dataclasses import dataclass

from attribution.results import ContributionGraph, GraphEdge, GraphNode, TokenizerStyle
from exporters.figure_common import shown_value
from exporters.tokens import display_token

#: The route choice that shows every root's route at once (the app's menu and the figure's).
ALL_TOKENS = "all tokens"
LAST_TOKEN = "last token"
#: Edges whose weight splits over attention heads.
ATTENTION_KINDS = ("attention", "cross_attention")
#: Node kinds as words.
KIND_NAMES = {
    "embedding": "embedding",
    "after_attention": "after attention",
    "after_cross_attention": "after cross-attention",
    "ffn": "FFN output",
    "after_ffn": "after FFN",
}


@dataclass(frozen=True)
class DetailRow:
    """One line of a node's details: which list, rank in it, the token (as text) or neuron, its value."""

    list: str  # "logit lens", "promoted", "suppressed", "top neuron"
    rank: int
    item: str  # the token as shown, or "neuron 17"
    value: float
    raw: str  # the token as the tokenizer spells it, or the neuron index


def token_of(graph: ContributionGraph, node: GraphNode) -> str:
    """The raw token a node sits on ("?" when the index is out of range)."""
    tokens = graph.source_tokens if node.side == "encoder" else graph.target_tokens
    return tokens[node.token_index] if 0 <= node.token_index < len(tokens) else "?"


def has_encoder(graph: ContributionGraph) -> bool:
    return graph.provenance.model_kind == "seq2seq" or any(n.side == "encoder" for n in graph.nodes)


def node_place(graph: ContributionGraph, node: GraphNode, style: TokenizerStyle) -> str:
    """``"·Mary (3) · L2 after attention"``; seq2seq graphs name the side too."""
    side = f"{node.side} " if has_encoder(graph) else ""
    token = display_token(token_of(graph, node), style)
    return (
        f"{side}{token} ({node.token_index}) · L{node.layer} {KIND_NAMES.get(node.kind, node.kind.replace('_', ' '))}"
    )


def node_title(graph: ContributionGraph, node: GraphNode, style: TokenizerStyle) -> str:
    """The heading of a node's details: where it is, and its raw token when that reads differently."""
    raw = token_of(graph, node)
    shown = display_token(raw, style)
    suffix = f" — raw token {raw!r}" if shown != raw else ""
    return f"node {node_place(graph, node, style)}{suffix}"


def node_rows(node: GraphNode, style: TokenizerStyle) -> list[DetailRow]:
    """Logit-lens top tokens, promoted and suppressed tokens, and top FFN neurons, best first."""
    rows = []
    for name, pairs in (("logit lens", node.top_tokens), ("promoted", node.promoted), ("suppressed", node.suppressed)):
        rows += [
            DetailRow(name, rank, display_token(str(token), style), float(value), str(token))
            for rank, (token, value) in enumerate(pairs, 1)
        ]
    rows += [
        DetailRow("top neuron", rank, f"neuron {int(neuron)}", float(value), str(int(neuron)))
        for rank, (neuron, value) in enumerate(node.top_neurons, 1)
    ]
    return rows


def edge_key(edge: GraphEdge) -> str:
    """A stable id for an edge: ``"source->target"`` for attention edges, ``"source->target#kind"`` otherwise.

    (A token attending to itself and its residual connect the same two nodes; the kind tells them apart.)
    """
    base = f"{edge.source}->{edge.target}"
    return base if edge.kind in ATTENTION_KINDS else f"{base}#{edge.kind}"


def find_edge(graph: ContributionGraph, key: str) -> GraphEdge | None:
    return next((edge for edge in graph.edges if edge_key(edge) == key), None)


def edge_title(graph: ContributionGraph, edge: GraphEdge, style: TokenizerStyle) -> str:
    """``"attention edge ·John (5) · L1 after FFN → ·to (14) · L2 after attention, weight 0.2143"``."""
    nodes = {node.id: node for node in graph.nodes}
    ends = [
        node_place(graph, nodes[node_id], style) if node_id in nodes else node_id
        for node_id in (edge.source, edge.target)
    ]
    kind = edge.kind.replace("_", "-")
    return f"{kind} edge {ends[0]} → {ends[1]}, weight {shown_value(edge.weight)}"


def edge_rows(edge: GraphEdge) -> list[tuple[int, float]]:
    """(head, weight) for an attention edge: how its weight splits over heads (they sum to it)."""
    return [(head, float(weight)) for head, weight in enumerate(edge.head_weights or [])]


def node_details_text(graph: ContributionGraph, node: GraphNode, style: TokenizerStyle) -> str:
    """The node's details as plain text lines (the exported figure's tap panel)."""
    lines = [node_title(graph, node, style)]
    current = None
    for row in node_rows(node, style):
        if row.list != current:
            current = row.list
            lines.append(f"{current}:")
        lines.append(f"  {row.rank}. {row.item}  {shown_value(row.value)}")
    if len(lines) == 1:
        lines.append("(no logit-lens tokens: encoder node, or outside the saved routes)")
    return "\n".join(lines)


def edge_details_text(graph: ContributionGraph, edge: GraphEdge, style: TokenizerStyle) -> str:
    """The edge's details as plain text lines: its ends and weight, then its split over heads."""
    lines = [edge_title(graph, edge, style)]
    split = edge_rows(edge)
    if split:
        best = sorted(split, key=lambda pair: -pair[1])
        lines.append("split over heads: " + ", ".join(f"h{head} {shown_value(weight)}" for head, weight in best))
    return "\n".join(lines)


def top_heads_text(edge: GraphEdge, top: int = 3) -> str:
    """The heaviest heads of an attention edge, for hovers: ``"h0 0.300, h1 0.050"``."""
    best = sorted(edge_rows(edge), key=lambda pair: -pair[1])[:top]
    return ", ".join(f"h{head} {weight:.3f}" for head, weight in best) or "—"


def root_label(graph: ContributionGraph, token_index: int, style: TokenizerStyle) -> str:
    """A route's root as a menu entry: ``"last token (14: ·to)"`` or ``"5: ·Mary"``."""
    shown = f"{token_index}: {display_token(graph.target_tokens[token_index], style)}"
    return f"{LAST_TOKEN} ({shown})" if token_index == len(graph.target_tokens) - 1 else shown


def predicted_tokens(node: GraphNode, style: TokenizerStyle) -> str:
    """What a root node predicts (its final logit lens), e.g. ``"→ ·Mary 0.93"``; empty without logit lens."""
    if not node.top_tokens:
        return ""
    token, probability = node.top_tokens[0]
    return f"→ {display_token(str(token), style)} {float(probability):.2f}"
