"""The cost cap on the app's own requests: estimated from the real generation, never refusing the shipped examples.

Ground truth: the shipped config (``space/config.json``) with the models it offers offline (the bundled ones,
which its examples use); the model's own greedy output (``generate`` called directly); the passes a run really
makes, counted by a pre-hook on the model's output layer; the faithfulness scores computed directly.
"""

from __future__ import annotations

import dataclasses

import pytest

from attribution.cost import attribution_hint, estimate_attribution_cost
from attribution.errors import CostLimitError, InvalidInputError, UnsupportedError
from attribution.inseq_runner import attribute, check_supported, generate_target
from attribution.interventions.faithfulness import attribution_faithfulness
from space.gradio_app.config import SpaceConfig
from space.gradio_app.context import AppContext, cost_note, offered_methods, rounded
from space.gradio_app.examples import attribute_examples, compare_examples
from space.gradio_app.tabs.attribute import attribution_cost_note, plan_request, run_attribution
from space.gradio_app.tabs.compare import (
    SKIPPED_OVER_BUDGET,
    faithfulness_table,
    plan_comparison,
    run_comparison,
)
from tests.support.app_context import offline_context

#: The issue's example: occlusion was refused on it (720 passes counted for 20 generated tokens; cap 500).
ISSUE_PROMPT = "When Mark and Tom went to the market, Mark gave a ball to"
#: A 7-word sentence of the synthetic translation task, translated by the model (no target typed).
SEVEN_WORDS = "the tired friend greets this woman today"
FIVE_METHODS = ["saliency", "input_x_gradient", "integrated_gradients", "deeplift", "gradient_shap"]
NO_LANGUAGES = ("", "")


@pytest.fixture(scope="module")
def shipped() -> AppContext:
    """The app as the shipped config makes it, offline: it offers the bundled models, which its examples use."""
    return offline_context(SpaceConfig.load())


def _capped(ctx: AppContext, **changes) -> AppContext:
    return dataclasses.replace(ctx, config=dataclasses.replace(ctx.config, **changes))


def _runs_on(ctx: AppContext, model: str, method: str) -> bool:
    try:
        check_supported(ctx.load(model), method)
    except UnsupportedError:  # refused for the architecture (value_zeroing on GPT-2), not for its cost
        return False
    return True


def test_every_shipped_example_runs_every_offered_method_within_the_cost_cap(shipped: AppContext) -> None:
    config, models = shipped.config, shipped.offer.models
    assert config.max_model_passes == 500 and set(models) >= {"tiny-ioi-gpt2", "tiny-synth-translate"}
    methods = offered_methods(config)
    assert len(methods) >= 11
    checked = []
    for row in attribute_examples(models):
        for method in methods:
            if not _runs_on(shipped, row[0], method):
                continue
            plan, _ = plan_request(shipped, *[method if i == 3 else value for i, value in enumerate(row)])
            shipped.check_cost([plan.estimate], "This attribution")  # raises CostLimitError when refused
            checked.append((row[1], method, plan.estimate.passes))
    for row in compare_examples(models):
        for chosen in [row[2], *([method] for method in methods)]:
            if not all(_runs_on(shipped, model, method) for model in row[1] for method in chosen):
                continue
            plans, _, _ = plan_comparison(shipped, *[chosen if i == 2 else value for i, value in enumerate(row)])
            shipped.check_cost([plan.estimate for plan in plans], "This comparison")
            checked.append((row[0], tuple(chosen), sum(plan.estimate.passes for plan in plans)))
    assert len(checked) >= 4 * 11 + 2 * 12, checked  # every example with every method that runs on its model
    assert max(passes for *_, passes in checked) <= config.max_model_passes


def test_sequential_ig_keeps_its_cheaper_default_in_the_config_only(shipped: AppContext) -> None:
    """The default that makes sequential IG fit lives in the config (one place) and is what a run uses."""
    assert shipped.config.method_params["sequential_integrated_gradients"] == {"n_steps": 2}
    plan, _ = plan_request(
        shipped, "tiny-ioi-gpt2", ISSUE_PROMPT, "Tom", "sequential_integrated_gradients", ["probability"], ""
    )
    assert plan.arguments["method_params"] == {"n_steps": 2}
    without = estimate_attribution_cost(
        plan.loaded, ISSUE_PROMPT, method="sequential_integrated_gradients", target="Tom", step_scores=["probability"]
    )
    assert without.passes > shipped.config.max_model_passes >= plan.estimate.passes  # refused with Captum's 50


def test_occlusion_on_the_issue_prompt_is_estimated_from_the_real_generation(shipped: AppContext) -> None:
    loaded = shipped.load("tiny-ioi-gpt2")
    bound = estimate_attribution_cost(
        loaded, ISSUE_PROMPT, method="occlusion", step_scores=["probability"], max_new_tokens=20
    )
    assert bound.passes == 720  # the issue's number: 20 generated tokens assumed, refused against 500
    generated = generate_target(loaded, ISSUE_PROMPT, max_new_tokens=shipped.config.max_new_tokens)
    plan, _ = plan_request(shipped, "tiny-ioi-gpt2", ISSUE_PROMPT, "", "occlusion", ["probability"], "")
    assert plan.arguments["target"] == generated
    typed = estimate_attribution_cost(
        loaded, ISSUE_PROMPT, method="occlusion", target=generated, step_scores=["probability"]
    )
    assert plan.estimate.steps == typed.steps == loaded.count_tokens(generated) - loaded.count_tokens(ISSUE_PROMPT)
    assert plan.estimate.passes == typed.passes + typed.steps  # the generation's passes, one per token, count too
    assert plan.estimate.passes < shipped.config.max_model_passes < bound.passes

    evaluated = [0]
    handle = loaded.model.get_output_embeddings().register_forward_pre_hook(
        lambda module, args: evaluated.__setitem__(0, evaluated[0] + args[0].shape[0])
    )
    try:
        view = run_attribution(shipped, "tiny-ioi-gpt2", ISSUE_PROMPT, "", "occlusion", ["probability"], "")
    finally:
        handle.remove()
    assert evaluated[0] <= plan.estimate.passes  # the estimate bounds what ran, generation included
    assert view.result.target_text == generated  # the run explains the very output that was counted
    alone = attribute(loaded, ISSUE_PROMPT, method="occlusion", max_new_tokens=shipped.config.max_new_tokens)
    assert alone.target_tokens == view.result.target_tokens  # the same as letting the run generate it


def test_compare_on_seven_words_counts_the_real_translation(shipped: AppContext) -> None:
    loaded = shipped.load("tiny-synth-translate")
    translation = generate_target(loaded, SEVEN_WORDS, max_new_tokens=shipped.config.max_new_tokens)
    real_steps = len(loaded.tokenizer(text_target=translation)["input_ids"])
    assert real_steps == 8  # 7 words and the end of the sentence, not the 21 the bound assumed
    inputs = (SEVEN_WORDS, ["tiny-synth-translate"], FIVE_METHODS, "", "", *NO_LANGUAGES)
    plans, labels, _ = plan_comparison(shipped, *inputs)
    assert labels == FIVE_METHODS and all(plan.estimate.steps == real_steps for plan in plans)
    bound = [
        estimate_attribution_cost(
            loaded, SEVEN_WORDS, method=m, method_params=shipped.config.method_params.get(m), max_new_tokens=20
        )
        for m in FIVE_METHODS
    ]
    assert {estimate.steps for estimate in bound} == {21}
    assert sum(e.passes for e in bound) > 500 >= sum(plan.estimate.passes for plan in plans)
    assert (
        sum(plan.estimate.passes for plan in plans)
        == sum(
            estimate_attribution_cost(
                loaded, SEVEN_WORDS, method=m, target=translation, method_params=shipped.config.method_params.get(m)
            ).passes
            for m in FIVE_METHODS
        )
        + real_steps
    )  # the translation's generation, counted once
    view = run_comparison(shipped, *inputs)
    assert [r.target_text for r in view.comparison.results] == [translation] * 5
    assert all(r.n_steps == real_steps for r in view.comparison.results)


def test_the_refusal_words_the_request_that_was_made(shipped: AppContext) -> None:
    ctx = _capped(shipped, max_model_passes=20)
    with pytest.raises(CostLimitError) as untyped:
        run_attribution(ctx, "tiny-ioi-gpt2", ISSUE_PROMPT, "", "occlusion", ["probability"], "")
    message = str(untyped.value)
    assert "shorter text or target" not in message and "fewer methods" not in message
    assert message.endswith(attribution_hint(target_typed=False))
    assert "a target (part of the output)" in message
    with pytest.raises(CostLimitError) as typed:
        run_attribution(ctx, "tiny-ioi-gpt2", ISSUE_PROMPT, "Tom and Mark", "occlusion", ["probability"], "")
    assert str(typed.value).endswith("Use a shorter text or target, or a cheaper method (saliency, attention).")
    with pytest.raises(CostLimitError) as compared:
        run_comparison(ctx, SEVEN_WORDS, ["tiny-synth-translate"], ["occlusion", "saliency"], "", "", *NO_LANGUAGES)
    assert str(compared.value).endswith(attribution_hint(target_typed=False, several_methods=True))
    assert "fewer methods" in str(compared.value)


def test_the_cost_line_shows_the_estimate_before_running(shipped: AppContext) -> None:
    inputs = ["tiny-ioi-gpt2", ISSUE_PROMPT, "", "lime", ["probability"], "", *NO_LANGUAGES]
    plan, _ = plan_request(shipped, *inputs)
    line = attribution_cost_note(shipped, *inputs)
    assert f"About {plan.estimate.passes:,} model passes (this deployment allows 500 per request)." in line
    close = attribution_cost_note(_capped(shipped, max_model_passes=plan.estimate.passes + 10), *inputs)
    assert "close to this deployment" in close
    over = attribution_cost_note(_capped(shipped, max_model_passes=plan.estimate.passes - 1), *inputs)
    assert "so it would be refused" in over and "a target (part of the output)" in over
    assert attribution_cost_note(_capped(shipped, max_model_passes=None), *inputs) == ""
    assert attribution_cost_note(shipped, "tiny-ioi-gpt2", "   ", "", "lime", [], "", *NO_LANGUAGES) == ""
    assert cost_note(shipped, [], "hint") == ""
    assert "&lt;b&gt;" in cost_note(_capped(shipped, max_model_passes=1), [plan.estimate], "<b>")  # escaped


def test_faithfulness_over_the_budget_is_a_quiet_skipped_row(shipped: AppContext) -> None:
    pair = (SEVEN_WORDS, ["tiny-synth-translate"], ["saliency", "attention"], "", "0-0 1-2 2-1 3-6 4-3 5-4 6-5")
    view = run_comparison(shipped, *pair, *NO_LANGUAGES)
    from attribution.cost import estimate_faithfulness_cost

    passes = [estimate_faithfulness_cost(r, random_seeds=0).passes for r in view.comparison.results]
    ctx = _capped(shipped, max_intervention_passes=passes[0] + passes[1] - 1)  # both together do not fit
    headers, rows = faithfulness_table(ctx, view.comparison_json)
    assert headers[:2] == ["result", "AER"]
    loaded = shipped.load("tiny-synth-translate")
    first = attribution_faithfulness(loaded, view.comparison.results[0], random_seeds=0)
    assert rows[0] == [
        "saliency",
        rounded(view.comparison.aer[0]),
        rounded(first.comprehensiveness),
        rounded(first.sufficiency),
        rounded(first.deletion_aopc),
        rounded(first.insertion_aopc),
    ]
    skipped = f"attention ({SKIPPED_OVER_BUDGET})"
    assert rows[1] == [skipped, rounded(view.comparison.aer[1]), None, None, None, None]
    assert len(str(rows[0][1])) <= 6  # AER rounded, not 0.4285714285714286


def test_a_bad_gold_alignment_is_refused_before_any_attribution_runs(shipped: AppContext, monkeypatch) -> None:
    import attribution.inseq_runner

    def no_run(*args, **kwargs):
        raise AssertionError("an attribution ran before the gold alignment was checked")

    monkeypatch.setattr(attribution.inseq_runner, "attribute", no_run)
    run = ["tiny-synth-translate"], ["saliency"], "ka amiko lasu tesu fema hodie salas"
    with pytest.raises(InvalidInputError, match="links source word 0 to target word 9, but the result has 7 source"):
        run_comparison(shipped, SEVEN_WORDS, *run, "0-0 0-9", *NO_LANGUAGES)
    with pytest.raises(InvalidInputError, match="links source word 8 to target word 0"):
        run_comparison(shipped, SEVEN_WORDS, ["tiny-synth-translate"], ["saliency"], "", "8-0", *NO_LANGUAGES)

    def no_model(*args, **kwargs):
        raise AssertionError("a model loaded before the gold alignment's format was checked")

    monkeypatch.setattr(shipped, "load", no_model)
    with pytest.raises(InvalidInputError, match="Bad alignment link '0:0'"):
        run_comparison(shipped, SEVEN_WORDS, *run, "0:0", *NO_LANGUAGES)


def test_the_difference_menus_and_map_follow_the_shown_comparison(shipped: AppContext) -> None:
    from bokeh.models import Plot

    from space.gradio_app.tabs.compare import difference_choices, difference_map
    from tests.support.handmade_results import comparison

    shown = comparison().to_json()
    a, b, first = difference_choices(shipped, shown)
    assert (a["choices"], a["value"], b["value"]) == (["saliency", "attention"], "saliency", "attention")
    assert {p.title.text.splitlines()[0] for p in first.select({"type": Plot})} == {
        "A − B: saliency − attention — tiny-synth-translate"
    }
    layout = difference_map(shipped, shown, "attention", "saliency")
    assert {p.title.text.splitlines()[0] for p in layout.select({"type": Plot})} == {
        "A − B: attention − saliency — tiny-synth-translate"
    }
    assert difference_map(shipped, "", "attention", "saliency") is None  # cleared while a comparison runs
    assert difference_choices(shipped, "")[0]["choices"] == []
    with pytest.raises(InvalidInputError, match="Choose two different results"):
        difference_map(shipped, shown, "saliency", "saliency")
