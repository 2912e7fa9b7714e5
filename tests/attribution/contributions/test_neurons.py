"""A graph FFN node's neurons read as words: ground truth from the model's own modules, found by hand."""

from __future__ import annotations

import pytest
import torch

from attribution.contributions import build_contribution_graph
from attribution.contributions.neurons import read_neurons
from attribution.errors import InvalidInputError
from attribution.models import load_model
from tests.support import texts


def test_a_neurons_promoted_tokens_are_its_output_row_through_the_unembedding_and_its_activation_the_models():
    loaded = load_model("tiny-ioi-gpt2")
    graph = build_contribution_graph(loaded, texts.IOI_PROMPT, threshold=0.04)
    node = next(n for n in graph.nodes if n.kind == "ffn" and n.top_neurons)
    neurons = [int(neuron) for neuron, _ in node.top_neurons]
    readings = read_neurons(loaded, texts.IOI_PROMPT, layer=node.layer, token_index=node.token_index, neurons=neurons)

    # Independently: GPT-2's FFN is mlp.c_proj (Conv1D: weight [d_ff, d_model]) after mlp.act; W_U is lm_head.
    mlp = loaded.model.transformer.h[node.layer - 1].mlp
    seen: list[torch.Tensor] = []
    handle = mlp.act.register_forward_hook(lambda module, args, output: seen.append(output[0].detach()))
    try:
        with torch.no_grad():
            loaded.model(**loaded.tokenizer(texts.IOI_PROMPT, return_tensors="pt"))
    finally:
        handle.remove()
    scores = mlp.c_proj.weight.detach() @ loaded.model.lm_head.weight.detach().T  # [d_ff, vocab]
    for reading, neuron in zip(readings, neurons, strict=True):
        assert reading.component == f"decoder:{node.layer}:neuron:{neuron}@{node.token_index}"
        assert reading.activation == pytest.approx(float(seen[0][node.token_index, neuron]), rel=1e-5, abs=1e-6)
        top = scores[neuron].topk(5)
        bottom = (-scores[neuron]).topk(5)
        assert [t for t, _ in reading.promoted] == loaded.tokenizer.convert_ids_to_tokens(top.indices.tolist())
        assert [t for t, _ in reading.suppressed] == loaded.tokenizer.convert_ids_to_tokens(bottom.indices.tolist())
        assert [v for _, v in reading.promoted] == pytest.approx(top.values.tolist(), rel=1e-5)
        assert [v for _, v in reading.suppressed] == pytest.approx((-bottom.values).tolist(), rel=1e-5)


def test_reading_neurons_refuses_what_the_model_does_not_have():
    loaded = load_model("tiny-ioi-gpt2")
    with pytest.raises(InvalidInputError, match="blocks 1 to"):
        read_neurons(loaded, "the cat", layer=99, token_index=0, neurons=[0])
    with pytest.raises(InvalidInputError, match="neurons 0 to"):
        read_neurons(loaded, "the cat", layer=1, token_index=0, neurons=[10**6])
    with pytest.raises(InvalidInputError, match="tokens 0 to"):
        read_neurons(loaded, "the cat", layer=1, token_index=40, neurons=[0])
    with pytest.raises(InvalidInputError, match="1 to 32 neurons"):
        read_neurons(loaded, "the cat", layer=1, token_index=0, neurons=[])
