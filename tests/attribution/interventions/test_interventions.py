"""Interventions on random-initialised models of every family the contribution graph supports (random biases).

Ground truth: the contribution graph's own exact decomposition (an edge's ablation must move the
residual stream by exactly the term the graph assigns to the edge), the model's own logits on the
counterfactual input, and identities between modes (patching from the input itself; mean ablation
over one reference prompt = patching from it).
"""

from __future__ import annotations

import pytest
import torch

from attribution.anatomy.adapters import architecture_spec
from attribution.contributions import decompose_model
from attribution.contributions.decompose import _FixedNorm
from attribution.errors import InvalidInputError, UnsupportedError
from attribution.interventions import engine
from attribution.interventions.ablation import build_edits, intervene, resolve_components
from attribution.interventions.components import parse_component, resolve
from attribution.interventions.inputs import model_shape, prepare, prepare_like
from attribution.interventions.results import InterventionResult
from attribution.models import LoadedModel
from attribution.results import load_result_file
from tests.support import texts
from tests.support.random_models import build_random_model

PROMPT = texts.RANDOM_PROMPT
COUNTERFACTUAL_PROMPT = texts.RANDOM_COUNTERFACTUAL_PROMPT
SOURCE = texts.RANDOM_SOURCE
COUNTERFACTUAL_SOURCE = texts.RANDOM_COUNTERFACTUAL_SOURCE
TARGET = texts.RANDOM_TARGET
COUNTERFACTUAL_TARGET = texts.RANDOM_COUNTERFACTUAL_TARGET


#: ``family_model`` (tests/attribution/conftest.py): every family and layout, built with this seed.
FAMILY_SEED = 5
LOUDER_FAMILIES = ("bart", "marian")


def _clean(loaded: LoadedModel):
    if loaded.kind == "seq2seq":
        return prepare(loaded, SOURCE, TARGET)
    return prepare(loaded, PROMPT)


def _counterfactual(loaded: LoadedModel, clean, *, source: bool = True, target: bool = True):
    if loaded.kind == "seq2seq":
        return prepare_like(
            loaded, clean, COUNTERFACTUAL_SOURCE if source else SOURCE, COUNTERFACTUAL_TARGET if target else TARGET
        )
    return prepare_like(loaded, clean, COUNTERFACTUAL_PROMPT)


def _attention_sites(loaded: LoadedModel) -> list[tuple[str, int, str]]:
    """(side, block, attention) of every attention kind the family has, in its last block."""
    spec = architecture_spec(loaded.model)
    sites = [("decoder", len(spec.decoder_blocks), "self")]
    if spec.encoder_blocks:
        sites += [("encoder", len(spec.encoder_blocks), "self"), ("decoder", 1, "cross")]
    return sites


def _edge_id(loaded, side: str, layer: int, attention: str, source: int, target: int, head: int | None) -> str:
    suffix = "" if head is None else f"#{head}"
    if attention == "cross":
        n_encoder = len(architecture_spec(loaded.model).encoder_blocks)
        return f"encoder:{n_encoder}:after_ffn:{source}->decoder:{layer}:after_cross_attention:{target}{suffix}"
    kind = "embedding" if layer == 1 else "after_ffn"
    return f"{side}:{layer - 1}:{kind}:{source}->{side}:{layer}:after_attention:{target}{suffix}"


def _residual_before_attention(recording: engine.Recording, blocks, side: str, layer: int, attention: str):
    """What the attention's branch is added to: the block input (self) or the state after self-attention (cross)."""
    if attention == "self":
        return recording.block_inputs[(side, layer)][0]
    return blocks[layer - 1].self_attention.whole  # the decomposition's state after self-attention (+ its LN)


@pytest.mark.parametrize("head", [None, 1])
def test_ablating_an_edge_moves_the_residual_stream_by_exactly_its_decomposition_term(family_model, head):
    loaded = family_model
    clean = _clean(loaded)
    spec = architecture_spec(loaded.model)
    shape = model_shape(spec, clean)
    encoder, decoder = decompose_model(loaded, clean.inputs)
    clean_run = engine.forward(loaded.model, spec, clean.inputs, record=True)
    for side, layer, attention in _attention_sites(loaded):
        target, source = 4, 2
        component = resolve(_edge_id(loaded, side, layer, attention, source, target, head), shape)
        edits = build_edits([component], torch.tensor([0]), "zero", spec, shape)
        ablated = engine.forward(loaded.model, spec, clean.inputs, edits, record=True)
        blocks = encoder if side == "encoder" else decoder
        dec = blocks[layer - 1].self_attention if attention == "self" else blocks[layer - 1].cross_attention
        heads = range(dec.coefficients.shape[0]) if head is None else [head]
        term = sum(dec.coefficients[h, target, source] * dec.head_vectors[h, source] for h in heads)
        assert term.abs().max() > 1e-4  # a real term, not a vacuous zero
        key = (side, layer, attention)
        residual = _residual_before_attention(ablated, blocks, side, layer, attention)
        block_spec = (spec.encoder_blocks if side == "encoder" else spec.decoder_blocks)[layer - 1]
        attention_spec = block_spec.self_attention if attention == "self" else block_spec.cross_attention
        branch_clean, branch_ablated = clean_run.attention_outputs[key][0], ablated.attention_outputs[key][0]
        if attention_spec.branch_norm is not None:  # residual + N(branch): N with the clean branch's statistics
            fixed = _FixedNorm.of(attention_spec.branch_norm, branch_clean)
            branch_clean, branch_ablated = (
                fixed.apply(branch_clean),
                fixed.carry(branch_ablated) / fixed.sigma + fixed.beta,
            )
        pre_clean = _residual_before_attention(clean_run, blocks, side, layer, attention) + branch_clean
        pre_ablated = residual + branch_ablated
        norm = attention_spec.post_norm
        if norm is None:
            after_ablated = pre_ablated  # the residual stream after the attention block
        else:  # LN(residual + branch): the same norm with the clean sum's statistics (centring is linear)
            fixed = _FixedNorm.of(norm, pre_clean)
            after_ablated = fixed.carry(pre_ablated) / fixed.sigma + fixed.beta
        change = after_ablated - dec.whole
        torch.testing.assert_close(change[target], -term, atol=1e-5, rtol=1e-4)
        others = [i for i in range(change.shape[0]) if i != target]
        assert change[others].abs().max() <= 1e-5
        # what a norm reads (the attention output) loses exactly the raw term A_ij v_j W_O, summed over the heads
        raw = sum(
            clean_run.probabilities[key][0, h, target, source]
            * clean_run.values[key][0, h, source]
            @ attention_spec.out_weight[h].detach()
            for h in heads
        )
        raw_change = ablated.attention_outputs[key][0] - clean_run.attention_outputs[key][0]
        torch.testing.assert_close(raw_change[target], -raw, atol=1e-5, rtol=1e-4)


def test_ablating_every_edge_of_a_layer_leaves_only_the_attention_bias(family_model):
    loaded = family_model
    clean = _clean(loaded)
    spec = architecture_spec(loaded.model)
    shape = model_shape(spec, clean)
    for side, layer, attention in _attention_sites(loaded):
        n_targets = shape.tokens[side]
        n_sources = shape.tokens["encoder" if attention == "cross" else side]
        ids = [_edge_id(loaded, side, layer, attention, j, i, None) for i in range(n_targets) for j in range(n_sources)]
        components = resolve_components(ids, shape)
        ablated = engine.forward(
            loaded.model,
            spec,
            clean.inputs,
            build_edits(components, torch.tensor([0]), "zero", spec, shape),
            record=True,
        )
        block = (spec.encoder_blocks if side == "encoder" else spec.decoder_blocks)[layer - 1]
        attention_spec = block.self_attention if attention == "self" else block.cross_attention
        bias = attention_spec.out_bias.detach() if attention_spec.out_bias is not None else torch.zeros(())
        output = ablated.attention_outputs[(side, layer, attention)][0]
        torch.testing.assert_close(output, bias.expand_as(output), atol=1e-5, rtol=1e-5)


def _all_kinds(loaded: LoadedModel) -> list[str]:
    ids = ["decoder:1:head:1", "decoder:2:head:0@3,4", "decoder:1:ffn:*", "decoder:2:neuron:7", "decoder:1:attention:2"]
    ids += ["decoder:1:after_ffn:3", "decoder:0:embedding:*", _edge_id(loaded, "decoder", 2, "self", 1, 5, None)]
    if loaded.kind == "seq2seq":
        ids += ["encoder:1:head:0", "decoder:2:cross_head:1@2", "encoder:2:after_ffn:*", "decoder:2:cross_attention:*"]
        ids += [_edge_id(loaded, "decoder", 1, "cross", 3, 2, 0), "encoder:1:neuron:5@1"]
    return ids


def test_patching_from_the_input_itself_changes_nothing(family_model):
    text, target = (SOURCE, TARGET) if family_model.kind == "seq2seq" else (PROMPT, None)
    result = intervene(
        family_model,
        text,
        _all_kinds(family_model),
        target=target,
        mode="patch",
        counterfactual=text,
        root_tokens="all",
    )
    for prediction in result.predictions:
        assert prediction.probability_after == pytest.approx(prediction.probability_before, abs=1e-6)
        assert prediction.kl_divergence <= 1e-9


def _logits_with(loaded, clean, ids: list[str], mode: str, reference) -> torch.Tensor:
    spec = architecture_spec(loaded.model)
    shape = model_shape(spec, clean)
    components = resolve_components(ids, shape)
    edits = build_edits(components, torch.tensor([0]), mode, spec, shape, reference)
    return engine.forward(loaded.model, spec, clean.inputs, edits).logits[0]


def test_patching_every_position_of_a_layer_gives_the_counterfactual_logits(family_model):
    loaded = family_model
    spec = architecture_spec(loaded.model)
    clean = _clean(loaded)
    cases = [("decoder", _counterfactual(loaded, clean, source=False))]
    if loaded.kind == "seq2seq":
        cases.append(("encoder", _counterfactual(loaded, clean, target=False)))
    for side, counterfactual in cases:
        recorded = engine.forward(loaded.model, spec, counterfactual.inputs, record=True)
        n_layers = len(spec.decoder_blocks if side == "decoder" else spec.encoder_blocks)
        for layer in (0, 1, n_layers):
            kind = "embedding" if layer == 0 else "after_ffn"
            patched = _logits_with(loaded, clean, [f"{side}:{layer}:{kind}:*"], "patch", recorded)
            torch.testing.assert_close(patched, recorded.logits[0], atol=1e-5, rtol=1e-5)
            clean_logits = engine.forward(loaded.model, spec, clean.inputs).logits[0]
            assert (patched - clean_logits).abs().max() > 1e-4  # the counterfactual really predicts otherwise


def test_mean_ablation_over_one_reference_prompt_equals_patching_from_it(family_model):
    loaded = family_model
    seq2seq = loaded.kind == "seq2seq"
    text, target = (SOURCE, TARGET) if seq2seq else (PROMPT, None)
    other, other_target = (COUNTERFACTUAL_SOURCE, COUNTERFACTUAL_TARGET) if seq2seq else (COUNTERFACTUAL_PROMPT, None)
    components = _all_kinds(loaded)
    reference = [(other, other_target)] if seq2seq else [other]
    mean = intervene(loaded, text, components, target=target, mode="mean", reference=reference, root_tokens="all")
    patch = intervene(
        loaded,
        text,
        components,
        target=target,
        mode="patch",
        counterfactual=other,
        counterfactual_target=other_target,
        root_tokens="all",
    )
    assert [p.logit_after for p in mean.predictions] == pytest.approx(
        [p.logit_after for p in patch.predictions], abs=1e-5
    )
    assert max(abs(p.logit_after - p.logit_before) for p in patch.predictions) > 1e-4  # 10x the tolerance


def test_mean_over_positions_replaces_by_the_positional_average():
    loaded = build_random_model("gpt2", seed=2)
    clean = prepare(loaded, PROMPT)
    spec = architecture_spec(loaded.model)
    recorded = engine.forward(loaded.model, spec, clean.inputs, record=True)
    average = recorded.block_inputs[("decoder", 2)][0].mean(0)
    result = engine.forward(
        loaded.model,
        spec,
        clean.inputs,
        build_edits(
            resolve_components(["decoder:1:after_ffn:*"], model_shape(spec, clean)),
            torch.tensor([0]),
            "mean",
            spec,
            model_shape(spec, clean),
            recorded,
            "positions",
        ),
        record=True,
    )
    torch.testing.assert_close(result.block_inputs[("decoder", 2)][0], average.expand(len(clean.decoder_ids), -1))


def test_batched_rows_get_only_their_own_edits():
    loaded = build_random_model("llama", seed=1)
    clean = prepare(loaded, PROMPT)
    spec = architecture_spec(loaded.model)
    shape = model_shape(spec, clean)
    ids = ["decoder:1:head:0", "decoder:2:neuron:3", _edge_id(loaded, "decoder", 2, "self", 0, 6, None)]
    components = resolve_components(ids, shape)
    one_by_one = [_logits_with(loaded, clean, [i], "zero", None) for i in ids]
    edits = [
        e for row, c in enumerate(components) for e in build_edits([c], torch.tensor([row + 1]), "zero", spec, shape)
    ]
    batched = engine.forward(loaded.model, spec, {k: v.repeat(4, 1) for k, v in clean.inputs.items()}, edits).logits
    torch.testing.assert_close(
        batched[0], engine.forward(loaded.model, spec, clean.inputs).logits[0], atol=1e-5, rtol=0
    )
    for row, expected in enumerate(one_by_one, start=1):
        torch.testing.assert_close(batched[row], expected, atol=1e-5, rtol=1e-5)


def _model_state(loaded: LoadedModel, inputs) -> torch.Tensor:
    with torch.no_grad():
        return loaded.model(**inputs, use_cache=False).logits


def _hooks(loaded: LoadedModel) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in loaded.model.modules())


def test_interventions_leave_the_model_as_it_was_even_when_they_fail(monkeypatch):
    loaded = build_random_model("bart", seed=4)
    inputs = prepare(loaded, SOURCE, TARGET).inputs
    before, hooks = _model_state(loaded, inputs), _hooks(loaded)
    intervene(loaded, SOURCE, _all_kinds(loaded), target=TARGET, mode="patch", counterfactual=COUNTERFACTUAL_SOURCE)
    assert torch.equal(_model_state(loaded, inputs), before) and _hooks(loaded) == hooks

    def broken(*args, **kwargs):
        raise RuntimeError("failure inside a hooked forward pass")

    monkeypatch.setattr(engine, "_edge_delta", broken)
    with pytest.raises(RuntimeError, match="inside a hooked"):
        intervene(loaded, SOURCE, _all_kinds(loaded), target=TARGET)
    assert torch.equal(_model_state(loaded, inputs), before) and _hooks(loaded) == hooks
    with pytest.raises(InvalidInputError, match="same length"):
        intervene(loaded, SOURCE, ["decoder:1:head:0"], target=TARGET, mode="patch", counterfactual="the cat")
    assert torch.equal(_model_state(loaded, inputs), before) and _hooks(loaded) == hooks


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("decoder:9:head:0", "layer 9 does not exist"),
        ("decoder:1:head:7", "head 7 is out of range"),
        ("decoder:1:neuron:100000", "neuron 100000 is out of range"),
        ("decoder:1:ffn:99", "token position 99 is out of range"),
        ("decoder:0:head:0", "numbered from 1"),
        ("decoder:1:embedding:0", "embedding is layer 0"),
        ("encoder:1:head:0", "no encoder"),
        ("decoder:1:cross_head:0", "no cross-attention"),
        ("decoder:1:after_ffn:2->decoder:3:after_attention:4", "reads the residual stream after block 2"),
        ("decoder:1:after_ffn:2->decoder:2:ffn:4", "not an attention edge"),
        ("decoder:1:wibble:0", "Cannot read the component"),
        ("<script>", "Cannot read the component"),
    ],
)
def test_bad_component_ids_are_one_clear_error(text, message):
    loaded = build_random_model("gpt2", seed=0)
    with pytest.raises(InvalidInputError, match=message):
        intervene(loaded, PROMPT, [text])


def test_component_ids_round_trip_and_name_graph_edges():
    for text in [
        "decoder:0:embedding:3",
        "decoder:2:after_ffn:*",
        "decoder:2:attention:5",
        "decoder:2:cross_attention:*",
        "decoder:2:ffn:5",
        "decoder:2:head:1@4,5",
        "decoder:2:cross_head:0",
        "decoder:2:neuron:113",
        "decoder:1:after_ffn:2->decoder:2:after_attention:5#1",
        "decoder:0:embedding:2->decoder:1:after_attention:5",
        "encoder:2:after_ffn:4->decoder:1:after_cross_attention:3",
    ]:
        assert parse_component(text).id == text


def test_result_round_trips_through_json(tmp_path):
    loaded = build_random_model("marian", seed=0)
    result = intervene(
        loaded,
        SOURCE,
        ["decoder:1:head:0", "encoder:1:ffn:2"],
        target=TARGET,
        root_tokens=[1, -1],
        contrast_token="die",
    )
    path = tmp_path / "intervention.json"
    result.to_json(path)
    loaded_back = load_result_file(path)
    assert isinstance(loaded_back, InterventionResult)
    assert loaded_back == result
    assert [p.position for p in result.predictions] == [1, len(result.target_tokens) - 1]
    assert result.predictions[0].target_token == "klein"  # the token after position 1 of the forced target
    assert result.predictions[0].logit_diff_before is not None


def test_the_graph_decomposes_the_intervened_forward_pass_exactly(family_model):
    """Under zero ablation of heads, edges, neurons and residual streams the decomposition still sums back to
    the intervened model's own hidden states, so a route re-drawn after an ablation is exact."""
    from attribution.interventions.graph_after import graph_after_intervention

    loaded = family_model
    clean = _clean(loaded)
    spec = architecture_spec(loaded.model)
    shape = model_shape(spec, clean)
    ids = ["decoder:1:head:1@2,3", _edge_id(loaded, "decoder", 2, "self", 1, 5, None), "decoder:1:neuron:3"]
    ids += ["decoder:1:after_ffn:2"]
    if loaded.kind == "seq2seq":
        ids += [_edge_id(loaded, "decoder", 2, "cross", 3, 4, 1), "encoder:2:head:0", "encoder:1:after_ffn:*"]
    components = resolve_components(ids, shape)
    edits = build_edits(components, torch.tensor([0]), "zero", spec, shape)
    intervened = engine.forward(loaded.model, spec, clean.inputs, edits, record=True)
    with engine.installed(spec, edits, effective_probabilities=True):
        encoder, decoder = decompose_model(loaded, clean.inputs)
    for side, blocks in (("encoder", encoder), ("decoder", decoder)):
        for layer, block in enumerate(blocks, start=1):
            expected = (
                intervened.block_inputs[(side, layer + 1)][0]
                if layer < len(blocks)
                else intervened.final_outputs[side][0]
            )
            if layer < len(blocks) and side == "decoder" and layer == 1:
                continue  # the residual stream after block 1 is itself replaced (after_ffn:2 ablated)
            if side == "encoder" and layer == 1 and loaded.kind == "seq2seq":
                continue  # likewise encoder:1:after_ffn:*
            torch.testing.assert_close(block.ffn.whole, expected, atol=2e-5, rtol=1e-4)
    graph = graph_after_intervention(
        loaded,
        *((SOURCE,) if loaded.kind == "seq2seq" else (PROMPT,)),
        ids[:3],
        target=TARGET if loaded.kind == "seq2seq" else None,
        top_k=0,
    )
    assert graph.edges
    with pytest.raises(UnsupportedError, match="Only zero ablation"):
        graph_after_intervention(
            loaded,
            PROMPT if loaded.kind == "causal" else SOURCE,
            ["decoder:1:attention:*"],
            target=TARGET if loaded.kind == "seq2seq" else None,
        )
