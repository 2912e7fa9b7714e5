"""attribution.cost: the estimate bounds the model passes a run really makes, and caps refuse with a clear line.

Ground truth: a pre-hook on the model's output layer counts the sequences the model really evaluates
(each row of a batch is one pass), while Inseq runs the method.
"""

from __future__ import annotations

import pytest

from attribution.capabilities import METHODS
from attribution.cost import CostEstimate, check_cost, estimate_attribution_cost, passes_per_step
from attribution.errors import CostLimitError, InvalidInputError
from attribution.inseq_runner import attribute
from attribution.models import LoadedModel, ModelCache, load_model

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


def _measured_passes(loaded: LoadedModel, **arguments) -> int:
    evaluated = [0]

    def count(module, args) -> None:
        evaluated[0] += args[0].shape[0]

    handle = loaded.model.get_output_embeddings().register_forward_pre_hook(count)
    try:
        attribute(loaded, **arguments)
    finally:
        handle.remove()
    return evaluated[0]


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
