"""Models placed by accelerate (``load_model(..., device_map=..., max_memory=..., offload_folder=...)``).

On CPU, a random-initialised GPT-2 and Marian (non-zero biases) are saved and loaded back with a
memory budget too small for them, so accelerate offloads their blocks to disk and keeps them on
the ``meta`` device between forward calls. Attribution and the contribution graph run with those
hooks in place and must give the same numbers as the same model loaded whole.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from attribution.contributions import build_contribution_graph, build_contribution_graphs
from attribution.errors import InvalidInputError
from attribution.inseq_runner import attribute
from attribution.models import load_model
from tests.support import texts
from tests.support.model_checks import assert_same_graph

pytest.importorskip("accelerate")

TEXT = texts.RANDOM_TEXT
TARGET = texts.RANDOM_TEXT_TARGET


def test_the_model_is_really_offloaded(offloaded_models) -> None:
    _, sharded = offloaded_models
    placements = set(sharded.model.hf_device_map.values())
    assert "disk" in placements, sharded.model.hf_device_map
    assert any(p.device.type == "meta" for p in sharded.model.parameters())
    assert sharded.device.type == "cpu"


@pytest.mark.parametrize("method", ["saliency", "integrated_gradients", "attention"])
def test_attribution_gives_the_whole_models_numbers(offloaded_models, method: str) -> None:
    whole, sharded = offloaded_models
    params = {"n_steps": 4} if method == "integrated_gradients" else {}
    expected = attribute(whole, TEXT, target=TARGET, method=method, method_params=params)
    got = attribute(sharded, TEXT, target=TARGET, method=method, method_params=params)
    assert got.target_tokens == expected.target_tokens
    for mine, theirs in ((got.source_scores, expected.source_scores), (got.target_scores, expected.target_scores)):
        if theirs is not None:
            np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got.step_scores["probability"], expected.step_scores["probability"], rtol=1e-6)


def test_the_contribution_graph_gives_the_whole_models_numbers(offloaded_models) -> None:
    whole, sharded = offloaded_models
    expected = build_contribution_graph(whole, TEXT, target=TARGET, root_tokens="all", top_k=3)
    got = build_contribution_graph(sharded, TEXT, target=TARGET, root_tokens="all", top_k=3)
    assert [(e.source, e.target, e.kind) for e in got.edges] == [(e.source, e.target, e.kind) for e in expected.edges]
    np.testing.assert_allclose([e.weight for e in got.edges], [e.weight for e in expected.edges], rtol=1e-5)
    assert [n.top_tokens[:1] and n.top_tokens[0][0] for n in got.nodes] == [
        n.top_tokens[:1] and n.top_tokens[0][0] for n in expected.nodes
    ]
    # the offloaded weights went back to disk afterwards
    assert any(p.device.type == "meta" for p in sharded.model.parameters())


def test_placement_options_need_a_device_map(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="give device_map too"):
        load_model("tiny-ioi-gpt2", max_memory={"cpu": "1GiB"}, cache=None)


def test_batched_graphs_on_the_offloaded_model_are_the_whole_models_one_by_one(offloaded_models) -> None:
    """A corpus batch's graphs share one padded forward pass through accelerate's hooks."""
    whole, sharded = offloaded_models
    texts, targets = [TEXT, "the store", "when john went to the store , mary gave a drink"], [TARGET, "mary", "john"]
    got = build_contribution_graphs(sharded, texts, targets=targets, root_tokens="all", top_k=0)
    for text, target, graph in zip(texts, targets, got, strict=True):
        assert_same_graph(graph, build_contribution_graph(whole, text, target=target, root_tokens="all", top_k=0))
    assert any(p.device.type == "meta" for p in sharded.model.parameters())
