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
from tests.attribution.contributions.test_contributions_batch import assert_same_graph
from tests.support.random_models import build_random_model

accelerate = pytest.importorskip("accelerate")
infer_auto_device_map = accelerate.infer_auto_device_map

TEXT = "when mary and john went to the store"
TARGET = "john gave a drink to mary"


@pytest.fixture(scope="module", params=["gpt2", "marian"])
def models(request, tmp_path_factory):
    """(whole model, the same weights offloaded to disk by accelerate)."""
    folder = tmp_path_factory.mktemp(request.param)
    reference = build_random_model(request.param, seed=3)
    reference.model.save_pretrained(folder)
    reference.tokenizer.save_pretrained(folder)
    whole = load_model(str(folder), cache=None)
    n_bytes = sum(p.numel() * p.element_size() for p in whole.model.parameters())
    budget = {"cpu": int(n_bytes * 0.5)}
    if request.param == "gpt2":
        placement = "auto"
    else:  # Marian's sinusoidal position table is not in its checkpoint, so it cannot be offloaded to disk
        placement = {
            name: "cpu" if name.endswith("embed_positions") else device
            for name, device in infer_auto_device_map(reference.model, max_memory=budget).items()
        }
    sharded = load_model(
        str(folder), device_map=placement, max_memory=budget, offload_folder=str(folder / "offload"), cache=None
    )
    return whole, sharded


def test_the_model_is_really_offloaded(models) -> None:
    _, sharded = models
    placements = set(sharded.model.hf_device_map.values())
    assert "disk" in placements, sharded.model.hf_device_map
    assert any(p.device.type == "meta" for p in sharded.model.parameters())
    assert sharded.device.type == "cpu"


@pytest.mark.parametrize("method", ["saliency", "integrated_gradients", "attention"])
def test_attribution_gives_the_whole_models_numbers(models, method: str) -> None:
    whole, sharded = models
    params = {"n_steps": 4} if method == "integrated_gradients" else {}
    expected = attribute(whole, TEXT, target=TARGET, method=method, method_params=params)
    got = attribute(sharded, TEXT, target=TARGET, method=method, method_params=params)
    assert got.target_tokens == expected.target_tokens
    for mine, theirs in ((got.source_scores, expected.source_scores), (got.target_scores, expected.target_scores)):
        if theirs is not None:
            np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got.step_scores["probability"], expected.step_scores["probability"], rtol=1e-6)


def test_the_contribution_graph_gives_the_whole_models_numbers(models) -> None:
    whole, sharded = models
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


def test_batched_graphs_on_the_offloaded_model_are_the_whole_models_one_by_one(models) -> None:
    """A corpus batch's graphs share one padded forward pass through accelerate's hooks."""
    whole, sharded = models
    texts, targets = [TEXT, "the store", "when john went to the store , mary gave a drink"], [TARGET, "mary", "john"]
    got = build_contribution_graphs(sharded, texts, targets=targets, root_tokens="all", top_k=0)
    for text, target, graph in zip(texts, targets, got, strict=True):
        assert_same_graph(graph, build_contribution_graph(whole, text, target=target, root_tokens="all", top_k=0))
    assert any(p.device.type == "meta" for p in sharded.model.parameters())
