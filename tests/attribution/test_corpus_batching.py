"""Batched attribution (``attribute_batch``) gives every input the numbers it gets alone.

Every method the bundled translation model runs is checked: where ``batch_exact`` says a batch is
exact, one padded Inseq batch of sentences of different lengths must give each sentence its
one-by-one scores (float32 rounding aside); where it says no, ``attribute_batch`` must run the
inputs one at a time and so give exactly the one-by-one numbers.
"""

from __future__ import annotations

import numpy as np
import pytest

from attribution.capabilities import METHODS
from attribution.errors import InvalidInputError, UnsupportedError
from attribution.inseq_runner import attribute, attribute_batch, batch_exact, check_supported
from attribution.models import load_model
from tests.support.corpus_data import translation_rows
from tests.support.fakes import failing_inseq_calls


@pytest.fixture(scope="module")
def loaded():
    return load_model("tiny-synth-translate")


def _runnable(loaded) -> list[str]:
    names = []
    for name in METHODS:
        try:
            check_supported(loaded, name)
        except (UnsupportedError, InvalidInputError):
            continue
        names.append(name)
    return names


def test_which_methods_batch(loaded) -> None:
    exact = {name for name in _runnable(loaded) if batch_exact(loaded, name)}
    assert {"saliency", "input_x_gradient", "integrated_gradients", "deeplift", "occlusion"} <= exact
    # Inseq forces batch size 1 for these, or their numbers depend on the batch's make-up
    assert not exact & {"attention", "lime", "gradient_shap", "discretized_integrated_gradients"}
    causal = load_model("tiny-ioi-gpt2")
    assert not batch_exact(causal, "saliency")  # decoder-only with forced targets: Inseq runs one at a time


#: Refused on Marian (capability table), or random (two one-by-one runs of them differ already).
_LEFT_OUT = {"reagent", "layer_integrated_gradients", "layer_deeplift", "value_zeroing", "gradient_shap", "lime"}


#: The methods that run many passes per input: over ~20 s each on 2 cores.
_SLOW = ("discretized_integrated_gradients", "sequential_integrated_gradients")


@pytest.mark.parametrize(
    "method",
    [pytest.param(m, marks=pytest.mark.slow) if m in _SLOW else m for m in METHODS if m not in _LEFT_OUT],
)
def test_a_batch_gives_each_input_its_own_numbers(loaded, method: str) -> None:
    pairs = translation_rows(5)  # 6 to 9 words: the batch is padded
    params = dict(METHODS[method].fast_params)
    batched = attribute_batch(
        loaded,
        [p["source"] for p in pairs],
        targets=[p["target"] for p in pairs],
        method=method,
        method_params=params,
        step_scores=("probability", "entropy"),
        batch_size=5,
    )
    for pair, result in zip(pairs, batched, strict=True):
        alone = attribute(
            loaded, pair["source"], target=pair["target"], method=method, method_params=params,
            step_scores=("probability", "entropy"),
        )  # fmt: skip
        assert not isinstance(result, Exception), result
        assert (result.source_tokens, result.target_tokens) == (alone.source_tokens, alone.target_tokens)
        assert result.source_word_ids == alone.source_word_ids and result.method_params == alone.method_params
        for mine, theirs in ((result.source_scores, alone.source_scores), (result.target_scores, alone.target_scores)):
            np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=2e-6, err_msg=method)
        for name in ("probability", "entropy"):
            np.testing.assert_allclose(result.step_scores[name], alone.step_scores[name], rtol=1e-5, atol=1e-6)


def test_bad_inputs_get_their_own_errors_and_the_others_their_results(loaded) -> None:
    pairs = translation_rows(3)
    texts = [pairs[0]["source"], "", pairs[1]["source"], "the dog " * 40, pairs[2]["source"]]
    targets = [pairs[0]["target"], "ka", pairs[1]["target"], "ka", pairs[2]["target"]]
    outcomes = attribute_batch(loaded, texts, targets=targets, method="saliency", batch_size=8)
    assert [type(o).__name__ for o in outcomes] == [
        "AttributionResult", "InvalidInputError", "AttributionResult", "InvalidInputError", "AttributionResult",
    ]  # fmt: skip
    assert str(outcomes[1]) == "The input text is empty: type some text first."
    assert str(outcomes[3]).startswith("The input text is 81 tokens long")
    with pytest.raises(InvalidInputError, match="Unknown parameter 'n_stepz'"):
        attribute_batch(loaded, texts[:1], targets=targets[:1], method_params={"n_stepz": 3}, method="saliency")


def test_a_failing_batch_is_retried_input_by_input_and_the_failure_lands_on_its_input(loaded, monkeypatch) -> None:
    pairs = translation_rows(3)
    texts, targets = [p["source"] for p in pairs], [p["target"] for p in pairs]
    alone = [attribute(loaded, p["source"], target=p["target"], method="saliency") for p in pairs]
    broken = RuntimeError("the model broke on this input")
    calls = failing_inseq_calls(monkeypatch, lambda batch: broken if texts[1] in batch else None)
    outcomes = attribute_batch(loaded, texts, targets=targets, method="saliency", batch_size=3)
    assert calls == [texts, [texts[0]], [texts[1]], [texts[2]]]  # the whole batch, then one by one
    assert outcomes[1] is broken
    for outcome, expected in ((outcomes[0], alone[0]), (outcomes[2], alone[2])):
        assert outcome.target_tokens == expected.target_tokens
        np.testing.assert_allclose(outcome.source_scores, expected.source_scores, rtol=1e-4, atol=2e-6)
    # a batch of one that fails gets its error without a second try
    calls.clear()
    outcomes = attribute_batch(loaded, texts[1:2], targets=targets[1:2], method="saliency", batch_size=3)
    assert calls == [texts[1:2]] and outcomes == [broken]


@pytest.mark.parametrize("when", ["batch", "retry"])
def test_a_budget_running_out_stops_the_whole_run(loaded, monkeypatch, when: str) -> None:
    from attribution.errors import BudgetExceededError

    pairs = translation_rows(2)
    texts, targets = [p["source"] for p in pairs], [p["target"] for p in pairs]

    def error_for(batch: list[str]) -> Exception | None:
        if len(batch) > 1:  # the batch fails: out of time, or an ordinary failure that makes it retry
            return BudgetExceededError("time is up") if when == "batch" else RuntimeError("retry one by one")
        return BudgetExceededError("time is up") if batch == texts[:1] else None

    calls = failing_inseq_calls(monkeypatch, error_for)
    with pytest.raises(BudgetExceededError, match="time is up"):
        attribute_batch(loaded, texts, targets=targets, method="saliency", batch_size=2)
    assert calls == ([texts] if when == "batch" else [texts, texts[:1]])  # nothing runs after the budget is spent


def test_with_its_defaults_a_batch_gives_what_attribute_gives_with_its_own() -> None:
    """Same method (saliency), same generation limit (20 new tokens: this model never ends a sentence)."""
    from tests.support.random_models import build_never_ending_model

    endless = build_never_ending_model("marian")
    text = "the cat sees the dog"
    alone = attribute(endless, text)
    (batched,) = attribute_batch(endless, [text])
    assert batched.method == alone.method == "saliency"
    assert batched.target_tokens == alone.target_tokens and alone.n_steps == 20  # 20 generated tokens
    np.testing.assert_allclose(batched.source_scores, alone.source_scores, rtol=1e-4, atol=2e-6)


def test_batches_hold_eight_inputs_by_default(loaded, monkeypatch) -> None:
    rows = translation_rows(9)
    calls = failing_inseq_calls(monkeypatch, lambda batch: None)
    outcomes = attribute_batch(loaded, [r["source"] for r in rows], targets=[r["target"] for r in rows])
    assert [len(batch) for batch in calls] == [8, 1]
    assert all(not isinstance(outcome, Exception) for outcome in outcomes)


def test_contrastive_inputs_get_their_own_numbers_and_inputs_without_a_contrast_a_clear_error(loaded) -> None:
    pairs = translation_rows(3)
    texts, targets = [p["source"] for p in pairs], [p["target"] for p in pairs]
    contrasts = [targets[1], None, targets[0]]
    scores = ("probability", "contrast_prob_diff")
    outcomes = attribute_batch(
        loaded, texts, targets=targets, contrast_targets=contrasts, step_scores=scores, batch_size=3
    )
    assert isinstance(outcomes[1], InvalidInputError) and "contrast target" in str(outcomes[1])
    for index in (0, 2):
        alone = attribute(
            loaded, texts[index], target=targets[index], contrast_target=contrasts[index], step_scores=scores
        )
        assert outcomes[index].method_params["attributed_fn"] == "contrast_prob_diff"
        np.testing.assert_allclose(outcomes[index].source_scores, alone.source_scores, rtol=1e-4, atol=2e-6)
        np.testing.assert_allclose(
            outcomes[index].step_scores["contrast_prob_diff"],
            alone.step_scores["contrast_prob_diff"],
            rtol=1e-5,
            atol=1e-6,
        )


def test_inputs_retried_one_by_one_get_their_targets_generated_as_alone(loaded, monkeypatch) -> None:
    sources = [p["source"] for p in translation_rows(2)]
    alone = [attribute(loaded, source, max_new_tokens=5) for source in sources]
    failing_inseq_calls(monkeypatch, lambda batch: RuntimeError("retry one by one") if len(batch) > 1 else None)
    outcomes = attribute_batch(loaded, sources, max_new_tokens=5, batch_size=2)
    for outcome, expected in zip(outcomes, alone, strict=True):
        assert outcome.target_tokens == expected.target_tokens
        np.testing.assert_allclose(outcome.source_scores, expected.source_scores, rtol=1e-4, atol=2e-6)


@pytest.mark.parametrize("batch_size", [0, True, "8", 2.0])
def test_a_batch_size_that_is_not_a_positive_whole_number_is_refused(loaded, batch_size) -> None:
    with pytest.raises(InvalidInputError) as refused:
        attribute_batch(loaded, ["the cat"], batch_size=batch_size)
    assert str(refused.value) == f"batch_size must be a positive whole number, not {batch_size!r}."


def test_batches_of_one_run_each_input_alone(loaded, monkeypatch) -> None:
    rows = translation_rows(2)
    calls = failing_inseq_calls(monkeypatch, lambda batch: None)
    outcomes = attribute_batch(loaded, [r["source"] for r in rows], targets=[r["target"] for r in rows], batch_size=1)
    assert [len(batch) for batch in calls] == [1, 1]
    assert all(not isinstance(outcome, Exception) for outcome in outcomes)


@pytest.mark.parametrize("which", ["targets", "contrast_targets"])
def test_one_target_and_one_contrast_per_text_or_a_clear_error(loaded, which) -> None:
    with pytest.raises(InvalidInputError) as refused:
        attribute_batch(loaded, ["the cat", "the dog"], **{which: ["ka"]})
    assert str(refused.value) == "Give one target and one contrast target per text (2 texts)."


def test_the_token_limit_applies_to_each_input(loaded) -> None:
    rows = translation_rows(1)
    long_text = rows[0]["source"]
    with pytest.raises(InvalidInputError) as alone:
        attribute(loaded, long_text, target=rows[0]["target"], max_tokens=3)
    outcomes = attribute_batch(loaded, [long_text, "the cat"], targets=[rows[0]["target"], "ka"], max_tokens=3)
    assert isinstance(outcomes[0], InvalidInputError) and str(outcomes[0]) == str(alone.value)
    assert str(alone.value).startswith("The input text is ") and "accepts at most 3 here" in str(alone.value)
    assert not isinstance(outcomes[1], Exception)


def test_two_inputs_share_one_inseq_call(loaded, monkeypatch) -> None:
    rows = translation_rows(2)
    texts, targets = [r["source"] for r in rows], [r["target"] for r in rows]
    alone = [attribute(loaded, text, target=target) for text, target in zip(texts, targets, strict=True)]
    calls = failing_inseq_calls(monkeypatch, lambda batch: None)
    outcomes = attribute_batch(loaded, texts, targets=targets, batch_size=2)
    assert calls == [texts]  # one call, no retry
    for outcome, expected in zip(outcomes, alone, strict=True):
        np.testing.assert_allclose(outcome.source_scores, expected.source_scores, rtol=1e-4, atol=2e-6)


def test_a_method_whose_batch_is_not_exact_runs_each_input_alone(loaded, monkeypatch) -> None:
    assert not batch_exact(loaded, "attention")
    rows = translation_rows(3)
    texts = [r["source"] for r in rows]
    calls = failing_inseq_calls(monkeypatch, lambda batch: None)
    attribute_batch(loaded, texts, targets=[r["target"] for r in rows], method="attention", batch_size=8)
    assert calls == [[text] for text in texts]
