"""attribution.budget: a run past its time budget stops inside Inseq/Captum and leaves the model exactly as it was.

The clock is replaced by one that advances one second per reading, so "the budget runs out after N
module calls" is deterministic on any machine: the run is always stopped in the middle.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from attribution import budget as budget_module
from attribution.budget import TimeBudget, time_budget
from attribution.contributions import build_contribution_graph
from attribution.errors import BudgetExceededError
from attribution.inseq_runner import attribute
from attribution.models import LoadedModel, ModelCache, load_model
from tests.support import texts
from tests.support.fakes import TickingClock

IOI = texts.IOI_PROMPT
TRANSLATION = texts.TRANSLATION_OLD_CAT
MODELS = ModelCache(max_models=2)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> TickingClock:
    ticking = TickingClock()
    monkeypatch.setattr(budget_module, "_now", ticking)
    return ticking


def _hooks(module: torch.nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) + len(m._backward_pre_hooks)
        for m in module.modules()
    )


def _logits(loaded: LoadedModel) -> torch.Tensor:
    if loaded.kind == "seq2seq":
        source = loaded.tokenizer(TRANSLATION[0], return_tensors="pt")
        target = loaded.tokenizer(text_target=TRANSLATION[1], return_tensors="pt")["input_ids"]
        with torch.no_grad():
            return loaded.model(**source, labels=target).logits.clone()
    with torch.no_grad():
        return loaded.model(**loaded.tokenizer(IOI, return_tensors="pt")).logits.clone()


def _case(name: str) -> tuple[LoadedModel, str, str | None]:
    loaded = load_model(name, cache=MODELS)
    return (loaded, IOI, " Mary") if loaded.kind == "causal" else (loaded, *TRANSLATION)


@pytest.mark.parametrize("name", ["tiny-ioi-gpt2", "tiny-synth-translate"])
@pytest.mark.parametrize(
    ("method", "params"),
    [("integrated_gradients", {"n_steps": 8}), ("occlusion", {}), ("lime", {"n_samples": 40}), ("saliency", {})],
)
def test_a_cancelled_attribution_leaves_the_model_exactly_as_it_was(
    name: str, method: str, params: dict, clock: TickingClock
) -> None:
    loaded, text, target = _case(name)
    reference = attribute(loaded, text, method="saliency", target=target)
    logits_before, hooks_before = _logits(loaded), _hooks(loaded.model)
    clock.readings = 0
    with (
        pytest.raises(BudgetExceededError) as stopped,
        time_budget(loaded, 6, what="The attribution", hint="Try a cheaper method.") as budget,
    ):
        attribute(loaded, text, method=method, target=target, method_params=params)
    assert str(stopped.value) == (
        "The attribution was stopped: it ran past this deployment's time budget of 6 s. Try a cheaper method."
    )
    assert clock.readings == 8  # stopped at the 7th module call (6 ticks allowed): in the middle of the run
    assert budget.elapsed > 6
    assert _hooks(loaded.model) == hooks_before  # the budget's, Inseq's and Captum's hooks are all gone
    assert loaded.lock.acquire(blocking=False)  # the model's lock was released
    loaded.lock.release()
    assert not loaded.model.training and all(p.grad is None for p in loaded.model.parameters())
    assert torch.equal(_logits(loaded), logits_before)  # bit-identical
    again = attribute(loaded, text, method="saliency", target=target)
    np.testing.assert_array_equal(again.target_scores, reference.target_scores)


def test_a_cancelled_contribution_graph_leaves_the_model_as_it_was(clock: TickingClock) -> None:
    loaded, text, _ = _case("tiny-ioi-gpt2")
    reference = build_contribution_graph(loaded, text)  # installs transformers' own (permanent) capture hooks
    logits_before, hooks_before = _logits(loaded), _hooks(loaded.model)
    with (
        pytest.raises(BudgetExceededError, match="The contribution graph was stopped"),
        time_budget(loaded, 3, what="The contribution graph"),
    ):
        build_contribution_graph(loaded, text)
    assert _hooks(loaded.model) == hooks_before
    assert torch.equal(_logits(loaded), logits_before)
    assert build_contribution_graph(loaded, text).edges == reference.edges


def test_progress_checks_stop_work_between_forward_passes(clock: TickingClock) -> None:
    budget = TimeBudget(2, what="The comparison")
    budget.check()  # starts the clock at t = 1
    budget.check()  # t = 2
    budget.check()  # t = 3: 2 s elapsed, still within the budget
    with pytest.raises(BudgetExceededError, match="time budget of 2 s"):
        budget.check()


def test_other_threads_using_the_same_model_are_not_affected() -> None:
    loaded, *_ = _case("tiny-ioi-gpt2")
    outcome: dict[str, object] = {}
    with time_budget(loaded, 1e-6, what="The attribution") as budget:
        budget.check()
        threading.Event().wait(0.01)  # this thread's budget is spent

        def other_request() -> None:
            try:
                outcome["logits"] = _logits(loaded)
            except BudgetExceededError as error:
                outcome["error"] = error

        worker = threading.Thread(target=other_request)
        worker.start()
        worker.join()
        assert "error" not in outcome and isinstance(outcome["logits"], torch.Tensor)
        with pytest.raises(BudgetExceededError):
            _logits(loaded)  # ...but this thread's next forward pass is stopped


def test_no_budget_installs_nothing_and_several_models_are_watched_once() -> None:
    causal, _, _ = _case("tiny-ioi-gpt2")
    seq2seq, _, _ = _case("tiny-synth-translate")
    before = _hooks(causal.model) + _hooks(seq2seq.model)
    with time_budget(causal, None):
        assert _hooks(causal.model) + _hooks(seq2seq.model) == before
    with time_budget([causal, seq2seq, causal], 60) as budget:
        n_modules = len(list(causal.model.modules())) + len(list(seq2seq.model.modules()))
        assert _hooks(causal.model) + _hooks(seq2seq.model) == before + n_modules
        attribute(causal, IOI, target=" Mary")  # well within a minute
        assert budget.elapsed > 0
    assert _hooks(causal.model) + _hooks(seq2seq.model) == before
    with pytest.raises(ValueError, match="must be positive"):
        TimeBudget(0)


def test_a_real_clock_stops_an_expensive_run() -> None:
    loaded, text, target = _case("tiny-synth-translate")
    with (
        pytest.raises(BudgetExceededError, match=r"time budget of 0\.2 s"),
        time_budget(loaded, 0.2, what="The attribution"),
    ):
        attribute(loaded, text, method="lime", target=target, method_params={"n_samples": 100_000})
