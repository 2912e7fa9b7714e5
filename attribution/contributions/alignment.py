"""Reading a word alignment off a seq2seq contribution graph (no model needed: graph JSON only).

The flow from a root into a node is the sum, over the kept paths from that node up to the root, of
the product of edge weights. For each target word, the source word whose encoder final state
receives the most flow from the root predicting that word is its aligned source word: the
strongest cross-attention route.
"""

from __future__ import annotations

from collections import defaultdict

from attribution.results import ContributionGraph, node_id


def route_flow(graph: ContributionGraph, root: int) -> dict[str, float]:
    """Flow from the final state of decoder token ``root`` into every node of its route."""
    root_id = node_id("decoder", graph.n_layers, "after_ffn", root)
    outgoing: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for edge in graph.edges:
        outgoing[edge.source].append((edge.target, edge.weight))
    flow: dict[str, float] = {}

    def into(node: str) -> float:
        if node not in flow:
            flow[node] = 1.0 if node == root_id else sum(weight * into(target) for target, weight in outgoing[node])
        return flow[node]

    nodes = {edge.source for edge in graph.edges} | {root_id}
    return {node: value for node in nodes if (value := into(node)) > 0}


def graph_word_alignment(
    graph: ContributionGraph, source_word_ids: list[int | None], target_word_ids: list[int | None]
) -> set[tuple[int, int]]:
    """Links ``(source word, target word)``: per root, the source word with the most route flow.

    ``source_word_ids[j]`` is the word of source token j, ``target_word_ids[t]`` the word of the
    target token the decoder predicts at position t (``None`` for special tokens, which get no link).
    A word made of several tokens sums their flows; a target word keeps the link of its first token.
    """
    links: dict[int, int] = {}
    for root in graph.root_tokens:
        target_word = target_word_ids[root] if root < len(target_word_ids) else None
        if target_word is None or target_word in links:
            continue
        flow = route_flow(graph, root)
        per_word: dict[int, float] = defaultdict(float)
        for j, word in enumerate(source_word_ids):
            node = node_id("encoder", graph.n_encoder_layers, "after_ffn", j)
            if word is not None and node in flow:
                per_word[word] += flow[node]
        if per_word:
            links[target_word] = max(per_word, key=per_word.__getitem__)
    return {(source, target) for target, source in links.items()}
