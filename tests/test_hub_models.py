"""Real Hugging Face Hub models, through the same loading and analysis code the bundled models use.

Skipped unless ``ATTRIBUTION_EXPLORER_HUB_TESTS=1`` (``tests/conftest.py``, whatever ``-m`` says), because
no machine here reaches the Hub. On a machine that does: ``ATTRIBUTION_EXPLORER_HUB_TESTS=1 python -m pytest -m hub``
(the variable also keeps ``tests/conftest.py`` from forcing ``HF_HUB_OFFLINE=1``).
"""

from __future__ import annotations

import math

import pytest

from attribution.contributions import build_contribution_graph
from attribution.inseq_runner import attribute
from attribution.models import load_model

pytestmark = pytest.mark.hub

IOI_PROMPT = "When Mary and John went to the store, John gave a drink to"


@pytest.fixture(scope="module")
def gpt2():
    return load_model("gpt2", cache=None)


def _token(loaded, text: str) -> str:
    """The tokenizer's own spelling of a one-token text (GPT-2 writes " Mary" as "ĠMary")."""
    (token,) = loaded.tokenizer.convert_ids_to_tokens(loaded.tokenizer(text)["input_ids"])
    return token


@pytest.fixture(scope="module")
def opus_mt():
    return load_model("Helsinki-NLP/opus-mt-en-de", cache=None)


def test_gpt2_is_a_causal_model_and_its_route_reaches_the_indirect_object(gpt2):
    assert (gpt2.kind, gpt2.model_type) == ("causal", "gpt2")
    graph = build_contribution_graph(gpt2, IOI_PROMPT, threshold=0.04)
    root = graph.node(f"decoder:{graph.n_layers}:after_ffn:{len(graph.target_tokens) - 1}")
    # GPT-2 small's best-known IOI example (Wang et al., 2022): the top next token is " Mary".
    assert root.top_tokens[0][0] == _token(gpt2, " Mary")
    mary = graph.target_tokens.index(_token(gpt2, " Mary"))
    assert any(node.kind == "embedding" and node.token_index == mary for node in graph.nodes)


def test_gpt2_saliency_gives_the_probability_of_the_forced_answer(gpt2):
    result = attribute(gpt2, IOI_PROMPT, method="saliency", target=" Mary", step_scores=["probability"])
    assert result.generated_tokens == [_token(gpt2, " Mary")]
    assert 0.1 < result.step_scores["probability"][0] <= 1.0
    assert all(math.isfinite(v) for v in result.target_scores[: result.attributed_start, 0])


def test_opus_mt_translates_and_routes_cross_into_the_source(opus_mt):
    assert (opus_mt.kind, opus_mt.model_type) == ("seq2seq", "marian")
    result = attribute(opus_mt, "The house is small.", method="attention", step_scores=[])
    assert "Haus" in result.target_text and "klein" in result.target_text
    graph = build_contribution_graph(opus_mt, "The house is small.", target=result.target_text, root_tokens="all")
    assert any(edge.kind == "cross_attention" for edge in graph.edges)
    assert any(node.side == "encoder" for node in graph.nodes)
