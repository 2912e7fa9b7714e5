"""Real Hugging Face Hub models, through the same loading and analysis code the bundled models use.

Skipped unless ``ATTRIBUTION_EXPLORER_HUB_TESTS=1`` (``tests/conftest.py``, whatever ``-m`` says), because
no machine here reaches the Hub. On a machine that does: ``ATTRIBUTION_EXPLORER_HUB_TESTS=1 python -m pytest -m hub``
(the variable also keeps ``tests/conftest.py`` from forcing ``HF_HUB_OFFLINE=1``). The Gemma checkpoints are
gated: set ``HF_TOKEN`` for an account that accepted their licence. The largest checkpoint (Phi-3 mini,
3.8 B parameters) is loaded in bfloat16 (~8 GB); the others need at most ~10 GB in float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import huggingface_hub
import pytest
import torch

from attribution.anatomy.adapters import architecture_spec
from attribution.anatomy.inputs import prepare_inputs
from attribution.contributions import build_contribution_graph, decompose_model
from attribution.inseq_runner import attribute
from attribution.models import load_model
from tests.support import texts

pytestmark = pytest.mark.hub

IOI_PROMPT = texts.IOI_PROMPT


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


# --- one small real checkpoint per family the contribution graph added (issue 14) -------------------------------


@dataclass(frozen=True)
class Checkpoint:
    model_id: str
    model_type: str
    text: str
    target: str | None = None  # seq2seq: the translation explained
    languages: tuple[str, str] | None = None  # seq2seq tokenizers that need (source, target) language codes
    dtype: str = "float32"
    #: relative reconstruction bound: float32 accumulates like the model; bfloat16 states are rounded to 8 bits
    tolerance: float = 1e-4
    gated: bool = False  # needs a token whose owner accepted the licence


CHECKPOINTS = [
    Checkpoint("Qwen/Qwen3-0.6B", "qwen3", "The capital of France is"),
    Checkpoint("google/gemma-2-2b", "gemma2", "The capital of France is", gated=True),
    Checkpoint("google/gemma-3-270m", "gemma3_text", "The capital of France is", gated=True),
    Checkpoint(
        "microsoft/Phi-3-mini-4k-instruct", "phi3", "The capital of France is", dtype="bfloat16", tolerance=3e-2
    ),
    Checkpoint("allenai/OLMo-2-0425-1B", "olmo2", "The capital of France is"),
    Checkpoint("tiiuae/falcon-rw-1b", "falcon", "The capital of France is"),
    Checkpoint("bigcode/tiny_starcoder_py", "gpt_bigcode", "def add(a, b):\n    return"),
    Checkpoint("bigscience/bloom-560m", "bloom", "The capital of France is"),
    Checkpoint(
        "facebook/nllb-200-distilled-600M",
        "m2m_100",
        "The house is small.",
        target="Das Haus ist klein.",
        languages=("eng_Latn", "deu_Latn"),
    ),
    Checkpoint(
        "facebook/mbart-large-50-many-to-many-mmt",
        "mbart",
        "The house is small.",
        target="Das Haus ist klein.",
        languages=("en_XX", "de_DE"),
    ),
    Checkpoint("google/mt5-small", "mt5", "The house is small.", target="Das Haus ist klein."),
    Checkpoint("google/umt5-small", "umt5", "The house is small.", target="Das Haus ist klein."),
]


@pytest.mark.parametrize("checkpoint", CHECKPOINTS, ids=[c.model_type for c in CHECKPOINTS])
def test_new_family_checkpoint_decomposes_exactly_and_routes(checkpoint):
    if checkpoint.gated and huggingface_hub.get_token() is None:
        pytest.skip(f"{checkpoint.model_id} is gated: set HF_TOKEN for an account that accepted its licence")
    loaded = load_model(checkpoint.model_id, dtype=checkpoint.dtype, cache=None)
    assert loaded.model_type == checkpoint.model_type
    if checkpoint.languages:
        loaded.tokenizer.src_lang, loaded.tokenizer.tgt_lang = checkpoint.languages
    inputs = prepare_inputs(loaded, checkpoint.text, checkpoint.target, None)[0]

    # every block's decomposition sums back to the model's own residual stream
    spec = architecture_spec(loaded.model)
    expected: list[torch.Tensor] = []
    handles = [
        block.module.register_forward_hook(
            lambda _m, _a, out: expected.append((out[0] if isinstance(out, tuple) else out)[0].float())
        )
        for block in [*spec.encoder_blocks, *spec.decoder_blocks]
    ]
    with torch.no_grad():
        logits = loaded.model(**inputs, use_cache=False).logits[0, -1].float()
    for handle in handles:
        handle.remove()
    encoder, decoder = decompose_model(loaded, inputs, spec)
    for block, state in zip([*encoder, *decoder], expected, strict=True):
        assert float((block.ffn.whole - state).norm() / state.norm()) <= checkpoint.tolerance

    # the route of the last position; its root's logit lens is the model's own next-token prediction
    graph = build_contribution_graph(loaded, checkpoint.text, target=checkpoint.target, threshold=0.04)
    root = graph.node(f"decoder:{graph.n_layers}:after_ffn:{len(graph.target_tokens) - 1}")
    assert root.top_tokens[0][0] == loaded.tokenizer.convert_ids_to_tokens(int(logits.argmax()))
    assert any(edge.kind == "attention" for edge in graph.edges)
    assert any(node.kind == "embedding" for node in graph.nodes)
    if loaded.kind == "seq2seq":
        assert any(edge.kind == "cross_attention" for edge in graph.edges)
        assert any(node.side == "encoder" and node.kind == "embedding" for node in graph.nodes)
