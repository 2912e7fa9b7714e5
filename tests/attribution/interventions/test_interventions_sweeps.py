"""Patching sweeps, attribution patching, route faithfulness and attribution faithfulness.

Ground truth: one-by-one patching through :func:`intervene` (the batched sweep must agree cell by
cell), a finite-difference directional derivative in float64 (attribution patching must equal it),
a loop-based reference of the ERASER metrics, and the bundled models' known mechanisms (IOI: the
repeated name decides; translation: the gold alignment).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from attribution.anatomy.adapters import architecture_spec
from attribution.contributions import build_contribution_graph
from attribution.errors import InvalidInputError
from attribution.interventions import engine
from attribution.interventions.ablation import intervene, resolve_components
from attribution.interventions.components import Component
from attribution.interventions.faithfulness import (
    ERASER_FRACTIONS,
    attribution_faithfulness,
    graph_faithfulness,
    route_flow_scores,
)
from attribution.interventions.inputs import model_shape, prepare, prepare_like
from attribution.interventions.results import FaithfulnessResult, RouteFaithfulness
from attribution.interventions.routes import route_faithfulness
from attribution.interventions.sweeps import patching_sweep
from attribution.models import load_model
from attribution.results import AttributionResult, Provenance, load_result
from tests.support import texts
from tests.support.paths import REPO
from tests.support.random_models import build_random_model

PROMPT = texts.RANDOM_PROMPT
COUNTERFACTUAL = "when mary and john went to the store , mary gave a drink to"
SOURCE = texts.RANDOM_SOURCE
COUNTERFACTUAL_SOURCE = texts.RANDOM_COUNTERFACTUAL_SOURCE
TARGET = texts.RANDOM_TARGET
IOI = texts.IOI_PROMPT
IOI_COUNTERFACTUAL = texts.IOI_COUNTERFACTUAL
DATA = REPO / "examples" / "data"


@pytest.fixture(scope="module")
def ioi():
    return load_model("tiny-ioi-gpt2")


@pytest.fixture(scope="module")
def translate():
    return load_model("tiny-synth-translate")


@pytest.mark.parametrize("family", ["gpt2", "t5"])
@pytest.mark.parametrize("direction", ["denoise", "noise"])
def test_batched_sweep_cells_equal_patching_each_component_alone(family, direction):
    loaded = build_random_model(family, seed=7)
    seq2seq = loaded.kind == "seq2seq"
    text, other, target = (SOURCE, COUNTERFACTUAL_SOURCE, TARGET) if seq2seq else (PROMPT, COUNTERFACTUAL, None)
    result = patching_sweep(
        loaded,
        text,
        other,
        target=target,
        root_token=-2,
        contrast_token="the" if not seq2seq else "das",
        direction=direction,
        batch_size=5,
        approximate=False,
    )
    base, source = (other, text) if direction == "denoise" else (text, other)
    scale = (result.logit_diff_clean - result.logit_diff_counterfactual) * (1 if direction == "denoise" else -1)
    ld_base = result.logit_diff_counterfactual if direction == "denoise" else result.logit_diff_clean
    names = {m.name for m in result.maps}
    assert names == (
        {"head", "cross_head", "encoder_head", "position", "encoder_position"} if seq2seq else {"head", "position"}
    )
    for item in result.maps:
        side = "encoder" if item.name.startswith("encoder") else "decoder"
        for r, c in [(0, 0), (len(item.row_names) - 1, len(item.column_names) - 1), (1, 1)]:
            if item.name.endswith("head"):
                word = "cross_head" if item.name == "cross_head" else "head"
                component = f"{side}:{r + 1}:{word}:{c}"
            else:
                component = f"{side}:{r}:{'embedding' if r == 0 else 'after_ffn'}:{c}"
            alone = intervene(
                loaded,
                base,
                [component],
                target=target,
                mode="patch",
                counterfactual=source,
                root_tokens=-2,
                target_token=result.target_token,
                contrast_token=result.contrast_token,
            ).predictions[0]
            expected = (alone.logit_diff_after - ld_base) / scale
            assert item.exact[r, c] == pytest.approx(expected, abs=1e-4), (item.name, r, c)


def test_attribution_patching_is_the_directional_derivative():
    """AtP(cell) = d LD(base + eps (source - base)) / d eps at 0, checked by central differences in float64."""
    loaded = build_random_model("gpt2", seed=3)  # GPT-2's eager softmax stays in float64 (Llama's upcasts to float32)
    loaded.model.double()
    result = patching_sweep(loaded, PROMPT, COUNTERFACTUAL, contrast_token="the", exact=False)
    spec = architecture_spec(loaded.model)
    clean = prepare(loaded, PROMPT)
    base = prepare_like(loaded, clean, COUNTERFACTUAL)
    base_run = engine.forward(loaded.model, spec, base.inputs, record=True)
    source_run = engine.forward(loaded.model, spec, clean.inputs, record=True)
    vocab = loaded.tokenizer.get_vocab()
    target, contrast = vocab[result.target_token], vocab[result.contrast_token]
    scale = result.logit_diff_clean - result.logit_diff_counterfactual
    shape = model_shape(spec, clean)
    eps = 1e-5

    def ld(edits) -> float:
        logits = engine.forward(loaded.model, spec, base.inputs, edits).logits[0, -1].double()
        return float(logits[target] - logits[contrast])

    for component, key, site in [
        (Component("head", "decoder", 2, "self", index=1), ("decoder", 2, "self"), "head"),
        (Component("residual", "decoder", 1, positions=(9,)), ("decoder", 2), "residual"),
        (Component("residual", "decoder", 0, positions=(9,)), ("decoder", 1), "residual"),
    ]:
        component = resolve_components([component], shape)[0]
        if site == "head":
            a_base = base_run.head_inputs[key][0, :, component.index].double()
            a_source = source_run.head_inputs[key][0, :, component.index].double()
            approximate = result.map("head").approximate[1, 1]
        else:
            a_base, a_source = base_run.block_inputs[key][0].double(), source_run.block_inputs[key][0].double()
            approximate = result.map("position").approximate[component.layer, component.positions[0]]

        up, down = (
            [engine.ValueEdit(component, torch.tensor([0]), a_base + step * (a_source - a_base))]
            for step in (eps, -eps)
        )
        derivative = (ld(up) - ld(down)) / (2 * eps) / scale  # central difference
        assert approximate == pytest.approx(derivative, rel=1e-5, abs=1e-8)
        assert abs(derivative) > 1e-6


def test_sweep_refuses_bad_requests():
    loaded = build_random_model("gpt2", seed=0)
    with pytest.raises(InvalidInputError, match="same length"):
        patching_sweep(loaded, PROMPT, "when mary went")
    with pytest.raises(InvalidInputError, match="Unknown map"):
        patching_sweep(loaded, PROMPT, COUNTERFACTUAL, maps=["encoder_head"])
    with pytest.raises(InvalidInputError, match="nothing to recover"):
        patching_sweep(loaded, PROMPT, PROMPT, contrast_token="the")


def test_ioi_patching_finds_the_repeated_name(ioi):
    """Swapping the repeated name (S2) flips the answer; patching S2's residual stream carries it all."""
    result = patching_sweep(ioi, IOI, IOI_COUNTERFACTUAL)
    assert (result.target_token, result.contrast_token) == ("Mary", "John")
    assert result.logit_diff_clean > 5 and result.logit_diff_counterfactual < -5
    positions = result.map("position")
    s2 = result.target_tokens.index("John", 4)  # the second John
    assert np.all(positions.exact[:, s2] > 0.9)
    others = np.delete(positions.exact, s2, axis=1)
    assert np.abs(others).max() < 0.1
    heads = result.map("head").exact
    assert heads.max() > 0.5  # one head moves the name to the prediction
    assert positions.spearman is not None and result.map("head").top10_overlap is not None
    # patching the repeated name's embedding alone moves the logit difference between the two names across zero
    moved = intervene(
        ioi, IOI, [f"decoder:0:embedding:{s2}"], mode="patch", counterfactual=IOI_COUNTERFACTUAL, contrast_token="John"
    ).predictions[0]
    assert moved.logit_diff_before > 5 and moved.logit_diff_after < -5
    assert load_result(result.to_json()).to_json() == result.to_json()


def test_ioi_route_is_necessary_and_sufficient_unlike_random_edges(ioi):
    result = route_faithfulness(ioi, IOI, contrast_token="John", seeds=5)
    assert result.target_token == "Mary" and result.route_edges
    assert len(result.random_necessity) == 5
    for effect in result.random_necessity:
        assert effect.n_edges == result.necessity.n_edges
        assert result.probability_clean - result.necessity.probability > 10 * (
            result.probability_clean - effect.probability
        )
    assert result.necessity.logit_diff < result.logit_diff_clean
    summary = result.summary()
    assert summary["necessity_drop"] > 0.5 > summary["random_necessity_drop"]
    assert summary["sufficiency_kept"] > 0.5 > summary["random_sufficiency_kept"]
    assert isinstance(load_result(result.to_json()), RouteFaithfulness)


def test_route_of_every_edge_is_sufficient_and_removing_it_removes_all_attention():
    """At threshold 0 the route holds every edge: keeping it changes nothing; removing it leaves only biases."""
    loaded = build_random_model("gpt2", seed=1)
    graph = build_contribution_graph(loaded, PROMPT, threshold=0.0, top_k=0)
    result = route_faithfulness(loaded, PROMPT, graph=graph, seeds=0)
    assert result.sufficiency.probability == pytest.approx(result.probability_clean, rel=1e-5)
    n = len(result.target_tokens)
    edges = [
        f"decoder:{layer - 1}:{'embedding' if layer == 1 else 'after_ffn'}:{j}->decoder:{layer}:after_attention:{i}"
        for layer in (1, 2)
        for i in range(n)
        for j in range(i + 1)
    ]
    removed = intervene(loaded, PROMPT, edges).predictions[0]
    assert result.necessity.probability == pytest.approx(removed.probability_after, rel=1e-5)


def _alignment_cases(limit: int):
    with (DATA / "synth_translate_test.jsonl").open() as handle:
        pairs = [json.loads(line) for line in handle][:limit]
    for pair in pairs:
        links = [tuple(int(x) for x in link.split("-")) for link in pair["alignment"].split()]
        yield pair, links


def test_translation_cross_attention_to_the_aligned_word_matters_most(translate):
    """Ablating the cross-attention edges from the aligned source word (all decoder layers, all heads) into
    the position predicting a target word lowers that word's probability more than for the other source words."""
    n_encoder = len(architecture_spec(translate.model).encoder_blocks)
    n_decoder = len(architecture_spec(translate.model).decoder_blocks)
    wins = beats_typical = total = 0
    aligned_drops, other_drops = [], []
    for pair, links in _alignment_cases(6):
        n_source = len(pair["source"].split())
        for source_word, target_word in links:
            drops = []
            for j in range(n_source):
                edges = [
                    f"encoder:{n_encoder}:after_ffn:{j}->decoder:{layer}:after_cross_attention:{target_word}"
                    for layer in range(1, n_decoder + 1)
                ]
                change = intervene(
                    translate, pair["source"], edges, target=pair["target"], root_tokens=target_word
                ).predictions[0]
                drops.append(change.probability_before - change.probability_after)
            wins += int(np.argmax(drops) == source_word)
            beats_typical += int(drops[source_word] > np.median(np.delete(drops, source_word)))
            total += 1
            aligned_drops.append(drops[source_word])
            other_drops += [d for j, d in enumerate(drops) if j != source_word]
    # measured: the aligned word's drop is the largest in 33 of 41 links, above the median one in 36 of 41
    assert wins / total >= 0.75, (wins, total)
    assert beats_typical / total >= 0.85, (beats_typical, total)
    assert np.mean(aligned_drops) > 10 * max(np.mean(other_drops), 1e-6)


def _hand_result(loaded, scores: np.ndarray) -> AttributionResult:
    """A one-step causal result over PROMPT whose prompt scores are ``scores`` (the last token is explained)."""
    ids = loaded.tokenizer(PROMPT)["input_ids"]
    tokens = loaded.tokenizer.convert_ids_to_tokens(ids)
    start = len(tokens) - 1
    return AttributionResult(
        provenance=Provenance("random", None, "causal", loaded.model_type),
        method="hand",
        method_params={},
        source_text=PROMPT,
        target_text=PROMPT,
        source_tokens=[],
        target_tokens=tokens,
        attributed_start=start,
        source_scores=None,
        target_scores=np.concatenate([scores, [np.nan]])[:, None],
        target_word_ids=list(range(len(tokens))),
    )


@pytest.mark.parametrize("replacement", ["unk", "mean"])
def test_comprehensiveness_and_sufficiency_match_a_loop_reference(replacement):
    loaded = build_random_model("gpt2", seed=2)
    ids = loaded.tokenizer(PROMPT)["input_ids"]
    n = len(ids) - 1
    scores = np.random.default_rng(0).normal(size=n)
    result = attribution_faithfulness(loaded, _hand_result(loaded, scores), replacement=replacement, random_seeds=0)
    embeddings = loaded.model.get_input_embeddings().weight.detach()

    def probability(removed: list[int]) -> float:
        with torch.no_grad():
            if replacement == "unk":
                changed = [loaded.tokenizer.unk_token_id if i in removed else t for i, t in enumerate(ids)]
                logits = loaded.model(torch.tensor([changed])).logits
            else:
                embeds = loaded.model.get_input_embeddings()(torch.tensor([ids])).clone()
                embeds[0, removed] = embeddings.mean(0)
                logits = loaded.model(inputs_embeds=embeds).logits
        return float(logits[0, n - 1].double().softmax(-1)[ids[n]])

    order = list(np.argsort(-np.abs(scores), kind="stable"))
    full = probability([])
    comprehensiveness, sufficiency = [], []
    for fraction in ERASER_FRACTIONS:
        k = max(1, int(np.ceil(fraction * n - 1e-9)))
        comprehensiveness.append(full - probability(order[:k]))
        sufficiency.append(full - probability(order[k:]))
    assert result.comprehensiveness == pytest.approx(np.mean(comprehensiveness), abs=1e-6)
    assert result.sufficiency == pytest.approx(np.mean(sufficiency), abs=1e-6)
    assert result.deletion_curve[0] == pytest.approx(full, abs=1e-6)
    assert result.insertion_curve[-1] == pytest.approx(full, abs=1e-6)
    assert result.deletion_curve[-1] == pytest.approx(probability(order), abs=1e-6)
    assert isinstance(load_result(result.to_json()), FaithfulnessResult)


def test_translation_saliency_and_graph_beat_a_random_ranking(translate):
    from attribution.inseq_runner import attribute

    pair = next(_alignment_cases(1))[0]
    saliency = attribution_faithfulness(
        translate, attribute(translate, pair["source"], method="saliency", target=pair["target"])
    )
    assert saliency.replacement == "unk token '<unk>'"
    assert saliency.comprehensiveness > saliency.random_comprehensiveness + 0.2
    assert saliency.sufficiency < saliency.random_sufficiency - 0.2
    assert saliency.insertion_aopc > saliency.deletion_aopc
    graph = build_contribution_graph(translate, pair["source"], target=pair["target"], root_tokens="all")
    routes = graph_faithfulness(translate, graph)
    assert routes.comprehensiveness > routes.random_comprehensiveness + 0.2
    flow = route_flow_scores(graph, 1)
    assert flow and max(flow.values()) <= 1.0 + 1e-9
