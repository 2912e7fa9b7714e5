"""What inspecting a contribution graph shows: one description of nodes, edges and routes' roots.

The exported figure's tap panel, its hovers and the app's node / edge tables and menus all take
their text from here, so a node reads the same wherever it is looked at: its token (as text),
position, layer and kind, then the rows of its logit-lens top tokens, promoted and suppressed
tokens, and (FFN nodes) top neurons; an edge names the tokens and layers it connects, its weight
and its split over heads. No Bokeh and no model: a saved graph is enough.

    words = GraphWords(graph)          # the tokenizer style and the node index, worked out once
    words.node_title(node); words.node_rows(node); words.edge_title(edge)
"""

from __future__ import annotations

from dataclasses import dataclass

from attribution.results import ContributionGraph, GraphEdge, GraphNode
from exporters.figure_common import shown_value
from exporters.tokens import display_token, result_style

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
#: Heads named in an edge's hover and in the figure's panel (the app's table lists them all).
TOP_HEADS = 3


@dataclass(frozen=True)
class DetailRow:
    """One line of a node's details: which list, rank in it, the token (as text) or neuron, its value."""

    list: str  # "logit lens", "promoted", "suppressed", "top neuron"
    rank: int
    item: str  # the token as shown, or "neuron 17"
    value: float
    raw: str  # the token as the tokenizer spells it, or the neuron index


def edge_key(edge: GraphEdge) -> str:
    """A stable id for an edge: ``"source->target"`` for attention edges, ``"source->target#kind"`` otherwise.

    (A token attending to itself and its residual connect the same two nodes; the kind tells them apart.)
    """
    return edge_key_of(edge.source, edge.target, edge.kind)


def edge_key_of(source: str, target: str, kind: str) -> str:
    """:func:`edge_key` of the edge from node ``source`` to node ``target`` of ``kind``."""
    base = f"{source}->{target}"
    return base if kind in ATTENTION_KINDS else f"{base}#{kind}"


def edge_rows(edge: GraphEdge) -> list[tuple[int, float]]:
    """(head, weight) for an attention edge: how its weight splits over heads (they sum to it)."""
    return [(head, float(weight)) for head, weight in enumerate(edge.head_weights or [])]


def top_heads_text(edge: GraphEdge, top: int = TOP_HEADS) -> str:
    """The heaviest heads of an attention edge: ``"h0 0.300, h1 0.050"`` (``"—"`` for other edges)."""
    best = sorted(edge_rows(edge), key=lambda pair: -pair[1])[:top]
    return ", ".join(f"h{head} {weight:.3f}" for head, weight in best) or "—"


def edge_kind_words(kind: str) -> str:
    return kind.replace("_", "-")


def kind_words(kind: str) -> str:
    return KIND_NAMES.get(kind, kind.replace("_", " "))


class GraphWords:
    """The words for one graph's nodes, edges and roots (its token style and node index worked out once)."""

    def __init__(self, graph: ContributionGraph) -> None:
        self.graph = graph
        self.style = result_style(graph)
        self.seq2seq = graph.provenance.model_kind == "seq2seq" or any(n.side == "encoder" for n in graph.nodes)
        self._nodes = {node.id: node for node in graph.nodes}

    def raw_token(self, node: GraphNode) -> str:
        """The raw token a node sits on ("?" when the index is out of range)."""
        tokens = self.graph.source_tokens if node.side == "encoder" else self.graph.target_tokens
        return tokens[node.token_index] if 0 <= node.token_index < len(tokens) else "?"

    def node_place(self, node: GraphNode) -> str:
        """``"·Mary (3) · L2 after attention"``; seq2seq graphs name the side too."""
        side = f"{node.side} " if self.seq2seq else ""
        token = display_token(self.raw_token(node), self.style)
        return f"{side}{token} ({node.token_index}) · L{node.layer} {kind_words(node.kind)}"

    def node_title(self, node: GraphNode) -> str:
        """The heading of a node's details: where it is, and its raw token when that reads differently."""
        raw = self.raw_token(node)
        suffix = f" — raw token {raw!r}" if display_token(raw, self.style) != raw else ""
        return f"node {self.node_place(node)}{suffix}"

    def node_rows(self, node: GraphNode) -> list[DetailRow]:
        """Logit-lens top tokens, promoted and suppressed tokens, and top FFN neurons, best first."""
        rows = []
        lists = (("logit lens", node.top_tokens), ("promoted", node.promoted), ("suppressed", node.suppressed))
        for name, pairs in lists:
            rows += [
                DetailRow(name, rank, display_token(str(token), self.style), float(value), str(token))
                for rank, (token, value) in enumerate(pairs, 1)
            ]
        rows += [
            DetailRow("top neuron", rank, f"neuron {int(neuron)}", float(value), str(int(neuron)))
            for rank, (neuron, value) in enumerate(node.top_neurons, 1)
        ]
        return rows

    def node_details_text(self, node: GraphNode) -> str:
        """The node's details as plain text lines (the exported figure's tap panel)."""
        lines = [self.node_title(node)]
        current = None
        for row in self.node_rows(node):
            if row.list != current:
                current = row.list
                lines.append(f"{current}:")
            lines.append(f"  {row.rank}. {row.item}  {shown_value(row.value)}")
        if len(lines) == 1:
            lines.append("(no logit-lens tokens: encoder node, or outside the saved routes)")
        return "\n".join(lines)

    def find_edge(self, key: str) -> GraphEdge | None:
        return next((edge for edge in self.graph.edges if edge_key(edge) == key), None)

    def edge_title(self, edge: GraphEdge) -> str:
        """``"attention edge ·John (5) · L1 after FFN → ·to (14) · L2 after attention, weight 0.2143"``."""
        ends = [
            self.node_place(self._nodes[node_id]) if node_id in self._nodes else node_id
            for node_id in (edge.source, edge.target)
        ]
        return f"{edge_kind_words(edge.kind)} edge {ends[0]} → {ends[1]}, weight {shown_value(edge.weight)}"

    def edge_details_text(self, edge: GraphEdge) -> str:
        """The edge's details as plain text lines: its ends and weight, then its heaviest heads."""
        if edge.kind not in ATTENTION_KINDS:
            return self.edge_title(edge)
        return f"{self.edge_title(edge)}\ntop heads: {top_heads_text(edge)}"

    def root_label(self, token_index: int) -> str:
        """A route's root as a menu entry: ``"last token (14: ·to)"`` or ``"5: ·Mary"``."""
        shown = f"{token_index}: {display_token(self.graph.target_tokens[token_index], self.style)}"
        return f"{LAST_TOKEN} ({shown})" if token_index == len(self.graph.target_tokens) - 1 else shown

    def predicted_tokens(self, node: GraphNode) -> str:
        """What a root node predicts (its final logit lens), e.g. ``"→ ·Mary 0.93"``; empty without logit lens."""
        if not node.top_tokens:
            return ""
        token, probability = node.top_tokens[0]
        return f"→ {display_token(str(token), self.style)} {float(probability):.2f}"
