"""attribution.cost: the estimate bounds the model passes a run really makes, and caps refuse with a clear line.

Ground truth: a pre-hook on the model's output layer counts the sequences the model really evaluates
(each row of a batch is one pass), while Inseq runs the method; for interventions, whose patched rows
resume at the patched block, pre-hooks on every block count the blocks each row runs (a row through all
of them is one pass).
"""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from attribution.anatomy.adapters import architecture_spec
from attribution.capabilities import METHODS
from attribution.cost import (
    INTERVENTION_HINT,
    CostEstimate,
    check_cost,
    estimate_attribution_cost,
    estimate_faithfulness_cost,
    estimate_intervention_cost,
    estimate_patching_cost,
    estimate_route_cost,
    passes_per_step,
)
from attribution.errors import CostLimitError, InvalidInputError
from attribution.inseq_runner import attribute
from attribution.models import LoadedModel, ModelCache, load_model
from tests.support import texts

MODELS = ModelCache(max_models=2)
CASES = {
    "tiny-ioi-gpt2": ("When Mary and John went to the store, John gave a drink to", " Mary and"),
    "tiny-synth-translate": ("the old cat sees a bird quickly", "ka miru vesa mi avi rapide vidas"),
}
METHOD_PARAMS = {
    "saliency": {},
    "deeplift": {},
    "integrated_gradients": {"n_steps": 8},
    "gradient_shap": {},
    "occlusion": {},
    "lime": {"n_samples": 10},
    "attention": {},
    "sequential_integrated_gradients": {"n_steps": 4},
}


def _measured_passes(loaded: LoadedModel, run=attribute, **arguments) -> int:
    """The sequences ``run(loaded, **arguments)`` evaluates through the model's output layer."""
    evaluated = [0]

    def count(module, args) -> None:
        evaluated[0] += args[0].shape[0]

    handle = loaded.model.get_output_embeddings().register_forward_pre_hook(count)
    try:
        run(loaded, **arguments)
    finally:
        handle.remove()
    return evaluated[0]


def _measured_block_passes(loaded: LoadedModel, run, **arguments) -> Fraction:
    """The blocks ``run(loaded, **arguments)`` runs, row by row, over the model's blocks (encoder and decoder)."""
    spec = architecture_spec(loaded.model)
    blocks = [block.module for block in spec.encoder_blocks + spec.decoder_blocks]
    rows = [0]

    def count(module, args, kwargs) -> None:
        rows[0] += (args[0] if args else kwargs["hidden_states"]).shape[0]

    handles = [block.register_forward_pre_hook(count, with_kwargs=True) for block in blocks]
    try:
        run(loaded, **arguments)
    finally:
        for handle in handles:
            handle.remove()
    return Fraction(rows[0], len(blocks))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("method", sorted(METHOD_PARAMS))
def test_the_estimate_bounds_the_real_passes_within_a_small_factor(name: str, method: str) -> None:
    loaded = load_model(name, cache=MODELS)
    text, target = CASES[name]
    for forced in (target, None):
        arguments = {
            "text": text,
            "method": method,
            "target": forced,
            "method_params": METHOD_PARAMS[method],
            "step_scores": ("probability",),
            "max_new_tokens": 4,
        }
        measured = _measured_passes(loaded, **arguments)
        estimate = estimate_attribution_cost(loaded, **arguments)
        assert measured <= estimate.passes <= 3 * measured, (forced, measured, estimate)


def test_costs_grow_as_the_algorithms_say() -> None:
    loaded = load_model("tiny-synth-translate", cache=MODELS)
    text, target = CASES["tiny-synth-translate"]

    def passes(method: str, **options) -> int:
        return estimate_attribution_cost(loaded, text, method=method, target=target, **options).passes

    steps = len(loaded.tokenizer(text_target=target)["input_ids"])
    assert passes("saliency") == 2 * steps  # one gradient pass + the prediction, per step
    assert passes("integrated_gradients", method_params={"n_steps": 16}) == 17 * steps
    assert passes("integrated_gradients") == 51 * steps  # Captum's default n_steps = 50
    assert passes("saliency", contrast_target="ka miru vesa") == 4 * steps
    assert passes("occlusion") == passes("occlusion", max_new_tokens=1)  # a forced target ignores max_new_tokens
    longer = estimate_attribution_cost(loaded, f"{text} and the dog", method="occlusion", target=target).passes
    assert longer > passes("occlusion")  # occlusion grows with the input
    assert passes("attention") < passes("saliency")  # computed once, at the final step


def test_every_offered_method_has_a_cost_rule_and_bad_parameters_are_refused() -> None:
    for method in METHODS:
        assert passes_per_step(method, input_tokens=10, n_layers=2) >= 1
    assert passes_per_step("occlusion", input_tokens=10, n_layers=2) == 10
    assert passes_per_step("value_zeroing", input_tokens=10, n_layers=2) == 21
    with pytest.raises(InvalidInputError, match="n_steps must be a positive whole number"):
        passes_per_step("integrated_gradients", input_tokens=10, n_layers=2, params={"n_steps": -3})
    with pytest.raises(InvalidInputError, match="Unknown method 'magic'"):
        passes_per_step("magic", input_tokens=10, n_layers=2)


def test_check_cost_sums_the_runs_and_names_the_cap() -> None:
    runs = [CostEstimate("saliency on gpt2", 20, 40, 40), CostEstimate("lime on gpt2", 20, 40, 1020)]
    assert check_cost(runs, 2000) == 1060
    assert check_cost(runs, None) == 1060
    with pytest.raises(CostLimitError) as refused:
        check_cost(runs, 500, what="This comparison")
    assert str(refused.value) == (
        "This comparison would need about 1,060 model passes; this deployment allows at most 500 per request "
        "(the largest part: lime on gpt2: about 1,020 model passes (20 token(s) to explain)). Use a shorter text "
        "or target, fewer methods, or a cheaper method (saliency, attention)."
    )


# ------------------------------------------------------------------------------------------ interventions

IOI_COUNTERFACTUAL = texts.IOI_COUNTERFACTUAL
TRANSLATION_COUNTERFACTUAL = "the old cat sees a bird slowly"  # the Intervene tab's example: measured at 5


@pytest.mark.parametrize("name", sorted(CASES))
def test_intervention_estimates_bound_the_real_passes(name: str) -> None:
    """Sweeps and faithfulness evaluations are counted exactly (a patched cell the blocks its resumed row runs,
    rounded up over the sweep; a perturbed input one pass; the causal sweep's one extra pass is its backward
    pass); ablations and route tests are bounded."""
    from attribution.interventions import attribution_faithfulness, intervene, patching_sweep, route_faithfulness

    loaded = load_model(name, cache=MODELS)
    text, target = CASES[name]
    causal = loaded.kind == "causal"
    counterfactual = IOI_COUNTERFACTUAL if causal else TRANSLATION_COUNTERFACTUAL
    target = None if causal else target
    sweep_arguments = {
        "text": text,
        "counterfactual": counterfactual,
        "target": target,
        "root_token": -1 if causal else 5,
    }
    sweep = _measured_block_passes(loaded, patching_sweep, **sweep_arguments)
    estimate = estimate_patching_cost(loaded, text, target=target)
    n_decoder_blocks = len(architecture_spec(loaded.model).decoder_blocks)
    if causal:
        assert estimate.passes == math.ceil(sweep) + 1
    else:  # the estimate counts the target's end-of-sentence token as a decoder position (an upper bound)
        assert math.ceil(sweep) + 1 <= estimate.passes <= math.ceil(sweep) + 1 + n_decoder_blocks
    approximate_only = _measured_block_passes(loaded, patching_sweep, **sweep_arguments, exact=False)
    assert approximate_only + 1 == estimate_patching_cost(loaded, text, target=target, exact=False).passes
    ablation = _measured_block_passes(loaded, intervene, text=text, components=["decoder:1:head:0"], target=target)
    assert ablation <= estimate_intervention_cost(loaded, text, target=target, references=0).passes
    route = _measured_block_passes(loaded, route_faithfulness, text=text, target=target, seeds=2)
    assert route <= estimate_route_cost(loaded, text, target=target, seeds=2).passes <= 3 * route
    result = attribute(loaded, text, target=CASES[name][1], method="saliency")
    for seeds in (0, 2):
        measured = _measured_block_passes(loaded, attribution_faithfulness, result=result, random_seeds=seeds)
        assert measured == estimate_faithfulness_cost(result, random_seeds=seeds).passes


def test_a_sweep_over_the_cap_is_refused_naming_its_cells() -> None:
    loaded = load_model("tiny-ioi-gpt2", cache=MODELS)
    estimate = estimate_patching_cost(loaded, CASES["tiny-ioi-gpt2"][0])
    n_layers, n_heads = loaded.config.n_layer, loaded.config.n_head
    n_tokens = loaded.count_tokens(CASES["tiny-ioi-gpt2"][0])
    assert estimate.detail == f"{n_layers * n_heads + n_layers * n_tokens} patched components"
    # a head of block l of L resumes there: (L - l + 1) / L of a pass; 6 for the clean, counterfactual, timing
    # and attribution-patching passes
    heads_passes = Fraction(n_heads * sum(n_layers - layer + 1 for layer in range(1, n_layers + 1)), n_layers)
    assert estimate_patching_cost(loaded, CASES["tiny-ioi-gpt2"][0], maps=["head"]).passes == 6 + math.ceil(
        heads_passes
    )
    assert heads_passes < n_layers * n_heads  # less than one whole pass per head
    with pytest.raises(
        CostLimitError, match=r"about [\d,]+ model passes; this deployment allows at most 10 .*fewer comp"
    ):
        check_cost(estimate, 10, what="This sweep", hint=INTERVENTION_HINT)
