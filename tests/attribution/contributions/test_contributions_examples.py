"""Contribution graphs on the bundled tiny trained models, whose mechanism we know.

- tiny-ioi-gpt2 ("When Mary and John went to the store, John gave a drink to" -> " Mary"): the route
  from the last token reaches the indirect object's name in the input.
- tiny-synth-translate (fixed lexicon, known reordering): the strongest cross-attention route from
  each target word lands on its gold-aligned source word most of the time (low AER).
"""

from __future__ import annotations

import json

import pytest

from attribution.compare import corpus_aer, parse_alignment
from attribution.contributions import build_contribution_graph
from attribution.contributions.alignment import graph_word_alignment, route_flow
from attribution.models import bundled_model_path, load_model
from attribution.results import ContributionGraph, GraphEdge, GraphNode, Provenance
from tests.support.paths import REPO

DATA = REPO / "examples" / "data"


def _rows(name: str, count: int) -> list[dict]:
    with (DATA / name).open(encoding="utf-8") as lines:
        return [json.loads(line) for line, _ in zip(lines, range(count), strict=False)]


def _require(name: str) -> None:
    if not (bundled_model_path(name) / "config.json").is_file():
        pytest.fail(f"bundled model {name} is missing: run examples/train_tiny_models.py")


def test_ioi_route_from_the_last_token_reaches_the_indirect_object():
    _require("tiny-ioi-gpt2")
    loaded = load_model("tiny-ioi-gpt2")
    for row in _rows("ioi_test.jsonl", 8):
        graph = build_contribution_graph(loaded, row["prompt"], threshold=0.04, top_k=1)
        tokens = graph.target_tokens
        io_positions = [i for i, token in enumerate(tokens) if token == row["io"]]
        assert len(io_positions) == 1, (tokens, row["io"])
        embeddings = {node.token_index for node in graph.nodes if node.kind == "embedding"}
        assert io_positions[0] in embeddings, (row["prompt"], sorted(embeddings))
        assert all(edge.weight >= 0.04 for edge in graph.edges)


def test_translation_routes_recover_the_gold_alignment():
    _require("tiny-synth-translate")
    loaded = load_model("tiny-synth-translate")
    predicted, gold = [], []
    for row in _rows("synth_translate_test.jsonl", 25):
        graph = build_contribution_graph(
            loaded, row["source"], target=row["target"], root_tokens="all", threshold=0.04, top_k=0
        )
        assert any(edge.kind == "cross_attention" for edge in graph.edges)
        source_words = loaded.tokenizer(row["source"])
        target_words = loaded.tokenizer(text_target=row["target"])
        predicted.append(graph_word_alignment(graph, source_words.word_ids(), target_words.word_ids()))
        gold.append(parse_alignment(row["alignment"]))
    # measured 0.19 on the first 100 test sentences (docs/benchmarks.md); chance level is about 0.85
    assert corpus_aer(predicted, gold) < 0.3


def _graph(edges: list[GraphEdge], roots: tuple[int, ...] = (0,)) -> ContributionGraph:
    ids = {e.source for e in edges} | {e.target for e in edges}
    nodes = []
    for node_id in sorted(ids):
        side, layer, kind, token = node_id.split(":")
        nodes.append(GraphNode(node_id, side, int(layer), kind, int(token)))
    provenance = Provenance("hand-made", None, "seq2seq", "marian")
    return ContributionGraph(
        provenance,
        "a b",
        "x",
        ["a", "b", "</s>"],
        ["<pad>"],
        1,
        1,
        0.1,
        False,
        list(roots),
        nodes,
        edges,
        n_encoder_layers=1,
    )


def test_route_flow_multiplies_along_paths_and_sums_over_them():
    edges = [
        GraphEdge("decoder:1:after_cross_attention:0", "decoder:1:after_ffn:0", "residual", 0.5),
        GraphEdge("decoder:1:ffn:0", "decoder:1:after_ffn:0", "ffn", 0.5),
        GraphEdge("decoder:1:after_cross_attention:0", "decoder:1:ffn:0", "ffn", 1.0),
        GraphEdge("encoder:1:after_ffn:0", "decoder:1:after_cross_attention:0", "cross_attention", 0.3, [0.3]),
        GraphEdge("encoder:1:after_ffn:1", "decoder:1:after_cross_attention:0", "cross_attention", 0.6, [0.6]),
        GraphEdge("encoder:0:embedding:1", "encoder:1:after_ffn:1", "residual", 0.9),
    ]
    flow = route_flow(_graph(edges), 0)
    assert flow["decoder:1:after_cross_attention:0"] == pytest.approx(1.0)  # 0.5 + 0.5 * 1.0
    assert flow["encoder:1:after_ffn:0"] == pytest.approx(0.3)
    assert flow["encoder:1:after_ffn:1"] == pytest.approx(0.6)
    assert flow["encoder:0:embedding:1"] == pytest.approx(0.54)
    # source word 1 ("b") gets the most flow; </s> (word None) never gets a link
    assert graph_word_alignment(_graph(edges), [0, 1, None], [0, None]) == {(1, 0)}


def test_word_alignment_sums_a_words_tokens_and_skips_special_and_unknown_roots():
    """Three roots: 0 predicts word 0 (its route splits 0.3 + 0.3 over source word 0's two tokens and 0.4
    to word 1: the sum wins), 1 predicts a special token (no link), 2 predicts word 1 (all flow to word 1).
    A root past the target's word ids gets no link; each route's flow holds only its own nodes."""
    edges = [
        GraphEdge("decoder:1:after_cross_attention:0", "decoder:1:after_ffn:0", "residual", 1.0),
        GraphEdge("encoder:1:after_ffn:0", "decoder:1:after_cross_attention:0", "cross_attention", 0.3, [0.3]),
        GraphEdge("encoder:1:after_ffn:1", "decoder:1:after_cross_attention:0", "cross_attention", 0.3, [0.3]),
        GraphEdge("encoder:1:after_ffn:2", "decoder:1:after_cross_attention:0", "cross_attention", 0.4, [0.4]),
        GraphEdge("decoder:1:after_cross_attention:1", "decoder:1:after_ffn:1", "residual", 1.0),
        GraphEdge("encoder:1:after_ffn:0", "decoder:1:after_cross_attention:1", "cross_attention", 0.9, [0.9]),
        GraphEdge("decoder:1:after_cross_attention:2", "decoder:1:after_ffn:2", "residual", 1.0),
        GraphEdge("encoder:1:after_ffn:2", "decoder:1:after_cross_attention:2", "cross_attention", 0.9, [0.9]),
    ]
    graph = _graph(edges, roots=(0, 1, 2))
    source_words = [0, 0, 1, None]
    assert graph_word_alignment(graph, source_words, [0, None, 1]) == {(0, 0), (1, 1)}
    assert graph_word_alignment(graph, source_words, [0]) == {(0, 0)}  # roots 1 and 2 have no target word
    assert set(route_flow(graph, 0)) == {
        "decoder:1:after_ffn:0",
        "decoder:1:after_cross_attention:0",
        "encoder:1:after_ffn:0",
        "encoder:1:after_ffn:1",
        "encoder:1:after_ffn:2",
    }
