"""SAE features at graph nodes, feature interventions, the neuron / feature viewer and the layer comparison.

Ground truth: SAELens SAEs fitted in-process on the bundled models' residual streams (tests/support/saes.py),
the models' own hidden states (transformers' ``output_hidden_states``), the model edited by hand with a plain
torch hook, and brute-force scans.
"""

from __future__ import annotations

import json

import pytest
import torch

from attribution.anatomy.adapters import architecture_spec
from attribution.errors import InvalidInputError
from attribution.features import compare_prompts, decompose_state, node_features, top_activations
from attribution.features.results import NodeFeatures
from attribution.features.viewer import load_from_run, save_with_run
from attribution.interventions import engine
from attribution.interventions.ablation import build_edits, intervene, resolve_components
from attribution.interventions.components import parse_component
from attribution.interventions.graph_after import graph_after_intervention
from attribution.interventions.inputs import model_shape, prepare
from attribution.models import LoadedModel, load_model
from attribution.result_kinds import load_result
from tests.support import saes, texts

PROMPT = texts.IOI_PROMPT
PLANTED_TOKEN = "Mary"
LAYER = 1


@pytest.fixture(scope="module")
def ioi() -> LoadedModel:
    return load_model("tiny-ioi-gpt2", cache=None)


@pytest.fixture(scope="module")
def translate() -> LoadedModel:
    return load_model("tiny-synth-translate", cache=None)


@pytest.fixture(scope="module")
def planted(ioi: LoadedModel):
    """(model with a direction p added to Mary's embedding, p, an SAE fitted on its layer-1 residual stream)."""
    states = saes.states_at(ioi, saes.ioi_sentences(60), LAYER)
    generator = torch.Generator().manual_seed(3)
    direction = torch.randn(states.shape[1], generator=generator)
    direction *= 3 * float(states.norm(dim=-1).median()) / direction.norm()
    model = saes.planted_model(ioi, PLANTED_TOKEN, direction)
    dictionary = saes.trained_dictionary(model, saes.ioi_sentences(60), LAYER, width=128)
    return model, direction, dictionary


def hidden_states(loaded: LoadedModel, text: str, target: str | None = None) -> tuple:
    """transformers' own hidden states of the decoder (seq2seq: of the decoder with ``target``)."""
    prepared = prepare(loaded, text, target)
    with torch.no_grad():
        output = loaded.model(**prepared.inputs, output_hidden_states=True)
    return output.decoder_hidden_states if loaded.kind == "seq2seq" else output.hidden_states


def test_listed_activations_are_the_sae_encoder_applied_to_the_node_state(planted) -> None:
    model, _, dictionary = planted
    states = hidden_states(model, PROMPT)[LAYER][0]  # the graph's after_ffn:1 states
    for token in (1, 5, len(states) - 1):
        view = node_features(model, PROMPT, f"decoder:{LAYER}:after_ffn:{token}", dictionary, k=8)
        expected = dictionary.sae.encode(states[token]).detach()
        best = expected.topk(min(8, int((expected > 0).sum())))
        assert [row.feature for row in view.features] == best.indices.tolist()
        torch.testing.assert_close(
            torch.tensor([row.activation for row in view.features]), best.values, atol=1e-5, rtol=1e-5
        )
        assert view.active_features == int((expected > 0).sum())
        error = states[token] - dictionary.sae(states[token]).detach()
        assert view.error_norm == pytest.approx(float(error.norm()), rel=1e-5, abs=1e-6)
        assert view.reconstruction_share == pytest.approx(1 - float(error.norm() / states[token].norm()) ** 2, abs=1e-6)


def test_listed_features_plus_bias_rest_and_error_rebuild_the_state(planted) -> None:
    model, _, dictionary = planted
    states = hidden_states(model, PROMPT)[LAYER][0]
    state = states[int((dictionary.encode(states) > 0).sum(-1).argmax())]  # the token with most active features
    every = decompose_state(dictionary, state, dictionary.width)
    torch.testing.assert_close(every.bias + every.terms.sum(0) + every.error, state, atol=1e-5, rtol=0)
    assert float(every.rest.abs().max()) == 0.0
    few = decompose_state(dictionary, state, every.active - 1)
    assert float(few.rest.norm()) > 0
    torch.testing.assert_close(few.bias + few.terms.sum(0) + few.rest + few.error, state, atol=1e-5, rtol=0)


def test_a_planted_feature_is_found_at_its_token(ioi: LoadedModel, planted) -> None:
    model, direction, dictionary = planted
    tokens = prepare(model, PROMPT).decoder_ids
    position = tokens.index(model.tokenizer.convert_tokens_to_ids(PLANTED_TOKEN))
    view = node_features(model, PROMPT, f"decoder:{LAYER}:after_ffn:{position}", dictionary, k=3)
    top = view.features[0].feature
    cosine = torch.nn.functional.cosine_similarity(dictionary.directions([top])[0], direction, dim=0)
    assert cosine > 0.8
    states = saes.states_at(model, saes.ioi_sentences(60), LAYER)
    ids = torch.cat([torch.tensor(prepare(model, text).decoder_ids) for text in saes.ioi_sentences(60)])
    at_token = ids == model.tokenizer.convert_tokens_to_ids(PLANTED_TOKEN)
    activations = dictionary.encode(states)[:, top]
    assert activations[~at_token].max() < 0.01 * activations[at_token].mean()
    # without the planted direction no feature of an SAE fitted the same way points along it: not chance
    unplanted = saes.trained_dictionary(ioi, saes.ioi_sentences(60), LAYER, width=128)
    chance = torch.nn.functional.cosine_similarity(unplanted.directions(list(range(unplanted.width))), direction[None])
    assert chance.max() < 0.5


def _hand_patched_logits(loaded: LoadedModel, inputs, block, position, change) -> torch.Tensor:
    """Logits with ``change(state)`` added to the state entering ``block`` (a torch module) at ``position``."""

    def pre(_module, args, kwargs):
        hidden = (args[0] if args else kwargs["hidden_states"]).clone()
        hidden[:, position] += change(hidden[:, position])
        return ((hidden, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": hidden})

    handle = block.register_forward_pre_hook(pre, with_kwargs=True)
    try:
        with torch.no_grad():
            return loaded.model(**inputs).logits.float()
    finally:
        handle.remove()


def _engine_logits(loaded: LoadedModel, prepared, component: str, dictionary, mode: str, strength=None):
    spec = architecture_spec(loaded.model)
    shape = model_shape(spec, prepared)
    resolved = resolve_components([component], shape)
    edits = build_edits(resolved, torch.tensor([0]), mode, spec, shape, saes=[dictionary], strength=strength)
    return engine.forward(loaded.model, spec, prepared.inputs, edits).logits


@pytest.mark.parametrize("mode", ["zero", "steer"])
def test_feature_ablation_and_steering_equal_the_hand_patch_decoder_only(planted, mode: str) -> None:
    model, _, dictionary = planted
    prepared = prepare(model, PROMPT)
    position = 1
    feature = node_features(model, PROMPT, f"decoder:{LAYER}:after_ffn:{position}", dictionary, k=1).features[0]
    direction = dictionary.directions([feature.feature])[0]

    def change(states: torch.Tensor) -> torch.Tensor:
        if mode == "steer":
            return 4.0 * direction
        return -dictionary.sae.encode(states).detach()[..., feature.feature, None] * direction

    expected = _hand_patched_logits(model, prepared.inputs, model.model.transformer.h[LAYER], position, change)
    component = f"decoder:{LAYER}:sae:{feature.feature}@{position}"
    got = _engine_logits(model, prepared, component, dictionary, mode, 4.0 if mode == "steer" else None)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert (got - model.model(**prepared.inputs).logits).abs().max() > 1e-3  # the edit changed something
    result = intervene(
        model, PROMPT, [component], saes=[dictionary], mode=mode, strength=4.0 if mode == "steer" else None
    )
    target = model.tokenizer.convert_tokens_to_ids(result.predictions[0].target_token)
    assert result.predictions[0].logit_after == pytest.approx(float(expected[0, -1, target]), abs=1e-5)
    strength = 4.0 if mode == "steer" else None
    graph = graph_after_intervention(model, PROMPT, [component], mode=mode, saes=[dictionary], strength=strength)
    root = next(node for node in graph.nodes if node.id == f"decoder:4:after_ffn:{len(prepared.decoder_ids) - 1}")
    best = expected[0, -1].softmax(-1).max()
    assert root.top_tokens[0][1] == pytest.approx(float(best), abs=1e-5)  # the route re-drawn on the edited pass
    again = load_result(result.to_json())
    assert again.mode == mode and again.strength == (4.0 if mode == "steer" else None)
    assert ("strength" in json.loads(result.to_json())) == (mode == "steer")


def test_feature_ablation_equals_the_hand_patch_encoder_decoder(translate: LoadedModel) -> None:
    sources = [pair[0] for pair in (texts.TRANSLATION_OLD_CAT, texts.TRANSLATION_TIRED_FRIEND)] + [
        "this farmer sees every green farmer",
        "the small cat sees the red house",
        "this friend follows the quiet tired king quickly",
    ]
    dictionary = saes.trained_dictionary(translate, sources, LAYER, width=96, side="decoder")
    source, target = texts.TRANSLATION_OLD_CAT
    prepared = prepare(translate, source, target)
    position = 3
    view = node_features(translate, source, f"decoder:{LAYER}:after_ffn:{position}", dictionary, target=target, k=1)
    feature = view.features[0].feature
    direction = dictionary.directions([feature])[0]
    state = hidden_states(translate, source, target)[LAYER][0, position]
    assert view.features[0].activation == pytest.approx(float(dictionary.encode(state)[feature]), abs=1e-5)

    def change(states: torch.Tensor) -> torch.Tensor:
        return -dictionary.sae.encode(states).detach()[..., feature, None] * direction

    block = translate.model.model.decoder.layers[LAYER]  # the second block reads the state after the first
    expected = _hand_patched_logits(translate, prepared.inputs, block, position, change)
    got = _engine_logits(translate, prepared, f"decoder:{LAYER}:sae:{feature}@{position}", dictionary, "zero")
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert (got - translate.model(**prepared.inputs).logits).abs().max() > 1e-4


def test_feature_ids_and_their_mistakes(planted) -> None:
    model, _, dictionary = planted
    component = parse_component("decoder:6:sae:1234@5")
    assert (component.kind, component.layer, component.index, component.positions) == ("feature", 6, 1234, (5,))
    assert component.id == "decoder:6:sae:1234@5"
    assert parse_component("decoder:0:sae:3").id == "decoder:0:sae:3"
    with pytest.raises(InvalidInputError, match="name one feature"):
        parse_component("decoder:2:sae:*")
    with pytest.raises(InvalidInputError, match="no SAE given reads the decoder at layer 2"):
        intervene(model, PROMPT, ["decoder:2:sae:3@1"], saes=[dictionary])
    with pytest.raises(InvalidInputError, match="out of range"):
        intervene(model, PROMPT, [f"decoder:{LAYER}:sae:{dictionary.width}@1"], saes=[dictionary])
    with pytest.raises(InvalidInputError, match="needs a strength"):
        intervene(model, PROMPT, [f"decoder:{LAYER}:sae:3@1"], saes=[dictionary], mode="steer")
    with pytest.raises(InvalidInputError, match="only features are steered"):
        intervene(model, PROMPT, ["decoder:1:head:0"], mode="steer", strength=1.0)
    with pytest.raises(InvalidInputError, match="ablated"):
        intervene(model, PROMPT, [f"decoder:{LAYER}:sae:3@1"], saes=[dictionary], mode="mean", mean_over="positions")
    with pytest.raises(InvalidInputError, match="residual-stream nodes"):
        node_features(model, PROMPT, f"decoder:{LAYER}:after_attention:1", dictionary)


def test_two_prompts_layer_by_layer(ioi: LoadedModel) -> None:
    other = texts.IOI_COUNTERFACTUAL  # differs from the prompt at one token only
    comparison = compare_prompts(ioi, PROMPT, other)
    first, second = hidden_states(ioi, PROMPT), hidden_states(ioi, other)
    n_blocks = len(first) - 1
    for layer in range(n_blocks):  # transformers' last hidden state has the final norm; the graph's does not
        a, b = first[layer][0], second[layer][0]
        expected_cosine = torch.nn.functional.cosine_similarity(a, b, dim=-1)
        expected_l2 = (a - b).norm(dim=-1) / torch.maximum(a.norm(dim=-1), b.norm(dim=-1))
        torch.testing.assert_close(torch.tensor(comparison.state_cosine[layer]), expected_cosine, atol=1e-5, rtol=0)
        torch.testing.assert_close(torch.tensor(comparison.state_relative_l2[layer]), expected_l2, atol=1e-5, rtol=0)
    changed = next(i for i, (x, y) in enumerate(zip(comparison.tokens_a, comparison.tokens_b, strict=True)) if x != y)
    for row in comparison.state_relative_l2 + comparison.block_relative_l2:  # causal: nothing before it moves
        assert max(row[:changed]) == 0.0
    assert comparison.divergence_layer == 0  # the embedding of the changed token differs
    delta = (first[2][0] - first[1][0]) - (second[2][0] - second[1][0])
    assert comparison.block_relative_l2[1][changed] > 0 and float(delta[changed].norm()) > 0
    same = compare_prompts(ioi, PROMPT, PROMPT)
    assert same.divergence_layer is None and min(min(row) for row in same.state_cosine) == pytest.approx(1.0)
    assert load_result(comparison.to_json()) == comparison
    with pytest.raises(InvalidInputError, match="same length"):
        compare_prompts(ioi, PROMPT, "When Mary went")


def _brute_force(values: list[list[float]], k: int) -> list[tuple[float, int, int]]:
    """Every (activation, record, position), sorted largest first (earlier record, then position, on ties)."""
    every = [(v, r, p) for r, row in enumerate(values) for p, v in enumerate(row)]
    return sorted(every, key=lambda item: (-item[0], item[1], item[2]))[:k]


def test_the_neuron_viewer_equals_a_brute_force_scan(ioi: LoadedModel, tmp_path) -> None:
    records = [*saes.ioi_sentences(12), "When Alice and Bob went to the park, Alice gave a ring to"]
    block, neuron = 2, 17
    taken = []
    mlp = ioi.model.transformer.h[block - 1].mlp.c_proj  # its input: the neuron activations
    handle = mlp.register_forward_pre_hook(lambda _m, args: taken.append(args[0][0, :, neuron].detach().clone()))
    try:
        for text in records:
            with torch.no_grad():
                ioi.model(**prepare(ioi, text).inputs)
    finally:
        handle.remove()
    expected = _brute_force([t.tolist() for t in taken], 7)
    viewer = top_activations(ioi, records, f"decoder:{block}:neuron:{neuron}", k=7, context=3)
    got = [(e.activation, int(e.record), e.position) for e in viewer.examples]
    assert [(r, p) for _, r, p in got] == [(r, p) for _, r, p in expected]
    torch.testing.assert_close(torch.tensor([a for a, _, _ in got]), torch.tensor([a for a, _, _ in expected]))
    assert viewer.records == len(records) and viewer.tokens == sum(len(t) for t in taken)
    first = viewer.examples[0]
    tokens = prepare(ioi, records[int(first.record)]).tokens(ioi)[1]
    assert first.context[first.context_position] == first.token == tokens[first.position]
    writes = ioi.model.transformer.h[block - 1].mlp.c_proj.weight[neuron] @ ioi.model.lm_head.weight.T
    assert viewer.promoted[0][0] == ioi.tokenizer.convert_ids_to_tokens(int(writes.argmax()))
    assert load_result(viewer.to_json()) == viewer
    (tmp_path / "run.json").write_text("{}")
    saved = save_with_run(tmp_path, viewer)
    assert saved.parent.name == "units" and load_from_run(tmp_path) == [viewer]


def test_the_feature_viewer_equals_a_brute_force_scan(planted) -> None:
    model, _, dictionary = planted
    records = saes.ioi_sentences(10)
    values = [dictionary.encode(hidden_states(model, text)[LAYER][0])[:, 5].tolist() for text in records]
    viewer = top_activations(model, records, f"decoder:{LAYER}:sae:5", dictionary=dictionary, k=6)
    expected = _brute_force(values, 6)
    assert [(int(e.record), e.position) for e in viewer.examples] == [(r, p) for _, r, p in expected]
    torch.testing.assert_close(
        torch.tensor([e.activation for e in viewer.examples]), torch.tensor([v for v, _, _ in expected])
    )


def test_node_features_round_trip_json(planted) -> None:
    model, _, dictionary = planted
    dictionary.neuronpedia_id = "gpt2-small/0-res-jb"
    try:
        view = node_features(model, PROMPT, f"decoder:{LAYER}:after_ffn:2", dictionary, k=4)
    finally:
        dictionary.neuronpedia_id = None
    assert (
        view.features[0].neuronpedia_url
        == f"https://www.neuronpedia.org/gpt2-small/0-res-jb/{view.features[0].feature}"
    )
    again = load_result(view.to_json())
    assert isinstance(again, NodeFeatures) and again == view
