"""The logit lens over the whole sequence: each cell is the graph node's own logit lens of the same state."""

from __future__ import annotations

import pytest

from attribution.contributions import build_contribution_graph
from attribution.contributions.lens_grid import logit_lens_grid
from attribution.models import load_model
from tests.support import texts


@pytest.mark.parametrize("name", ["tiny-ioi-gpt2", "tiny-synth-translate"])
def test_the_grids_cells_equal_the_graph_nodes_logit_lens(name: str) -> None:
    loaded = load_model(name)
    text, target = (texts.IOI_PROMPT, None) if "ioi" in name else ("the old cat sees a bird", "ka miru vesa mi avi")
    graph = build_contribution_graph(loaded, text, target=target, threshold=0.01, root_tokens="all")
    grid = logit_lens_grid(loaded, text, target=target, final_norm=graph.final_norm_in_logit_lens)
    assert [len(row) for row in grid.cells] == [len(graph.target_tokens)] * (graph.n_layers + 1)
    assert grid.tokens == graph.target_tokens
    compared = 0
    for node in graph.nodes:
        if node.side != "decoder" or node.kind not in ("embedding", "after_ffn") or not node.top_tokens:
            continue
        cell = grid.cell(node.layer, node.token_index)
        assert cell.node_id == node.id
        assert cell.token == node.top_tokens[0][0]
        assert cell.probability == pytest.approx(node.top_tokens[0][1], rel=1e-4, abs=1e-6)
        compared += 1
    assert compared >= graph.n_layers * 2  # every layer's nodes, on several positions
