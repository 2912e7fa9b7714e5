"""The capability table (attribution/capabilities.py) checked against reality.

Every method runs on a random-initialised model of every tested family: cells marked as working
must give finite scores exactly where Inseq's layout says there are scores (NaN elsewhere), refused
cells must be refused up front with a message naming the methods that work, and the refusals must
still be needed (the method really fails when forced), without leaving the model changed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attribution.capabilities import METHODS, TESTED_FAMILIES, markdown_table, refusal_reason, supported_methods
from attribution.errors import UnsupportedError
from attribution.inseq_runner import attribute, check_supported, run_checked
from tests.random_models import FAMILIES, build_random_model

PROMPT = "when mary and john went"
CONTINUATION = "to the store"
SOURCE = "the cat sees the dog"
TRANSLATION = "die katze sieht"


@pytest.fixture(scope="module")
def models():
    return {family: build_random_model(family) for family in FAMILIES}


def test_tested_families_match_the_random_models():
    assert set(TESTED_FAMILIES) == set(FAMILIES)


def _logits(loaded) -> torch.Tensor:
    encoded = loaded.tokenizer(SOURCE if loaded.kind == "seq2seq" else PROMPT, return_tensors="pt")
    with torch.no_grad():
        if loaded.kind == "seq2seq":
            return loaded.model(**encoded, decoder_input_ids=torch.tensor([[0, 5, 6]])).logits
        return loaded.model(**encoded).logits


def _expected_finite(result) -> tuple[np.ndarray | None, np.ndarray]:
    """Where Inseq's layout has a score: all source tokens; target tokens before each step's token."""
    n_steps = result.n_steps
    prefix = np.array(
        [[i < result.attributed_start + j for j in range(n_steps)] for i in range(len(result.target_tokens))]
    )
    if result.source_scores is None:
        return None, prefix
    target_side = result.method_params["attribute_target"]
    source = np.ones((len(result.source_tokens), n_steps), dtype=bool)
    return source, prefix if target_side else np.zeros_like(prefix)


CELLS = [(method, family) for method in METHODS for family in FAMILIES]


@pytest.mark.parametrize(("method", "family"), CELLS, ids=[f"{m}-{f}" for m, f in CELLS])
def test_capability_cell(models, method, family):
    loaded = models[family]
    reason = refusal_reason(method, loaded.kind, family)
    text, target = (SOURCE, TRANSLATION) if loaded.kind == "seq2seq" else (PROMPT, CONTINUATION)
    if reason is not None:
        with pytest.raises(UnsupportedError) as refused:
            attribute(loaded, text, method=method, target=target)
        message = str(refused.value)
        assert reason in message and "Methods that work: saliency" in message
        return
    before = _logits(loaded)
    result = attribute(loaded, text, method=method, target=target, method_params=dict(METHODS[method].fast_params))
    expected_steps = len(target.split()) + (1 if loaded.kind == "seq2seq" else 0)  # seq2seq: + "</s>"
    assert result.n_steps == expected_steps
    assert result.target_scores.shape == (len(result.target_tokens), expected_steps)
    source_finite, target_finite = _expected_finite(result)
    np.testing.assert_array_equal(np.isfinite(result.target_scores), target_finite)
    if source_finite is not None:
        assert result.source_scores.shape == (len(result.source_tokens), expected_steps)
        np.testing.assert_array_equal(np.isfinite(result.source_scores), source_finite)
        assert np.abs(result.source_scores).sum() > 0
    else:
        assert np.nansum(np.abs(result.target_scores)) > 0
    probabilities = np.array(result.step_scores["probability"])
    assert probabilities.shape == (expected_steps,) and np.all((probabilities > 0) & (probabilities <= 1))
    assert torch.equal(before, _logits(loaded)), "the attribution run changed the model"


FORCED_REFUSALS = [
    ("value_zeroing", "gpt2"),
    ("value_zeroing", "marian"),
    ("reagent", "llama"),
    ("layer_gradient_x_activation", "bart"),
    ("layer_integrated_gradients", "t5"),
    ("layer_integrated_gradients", "gpt2"),
    ("layer_deeplift", "qwen2"),
]


@pytest.mark.parametrize(("method", "family"), FORCED_REFUSALS, ids=[f"{m}-{f}" for m, f in FORCED_REFUSALS])
def test_refusals_are_still_needed_and_a_failure_leaves_the_model_intact(models, method, family):
    """Forced past the check, a refused method fails (or, for the layer IG/DeepLIFT, gives only zeros)."""
    loaded = models[family]
    text, target = (SOURCE, TRANSLATION) if loaded.kind == "seq2seq" else (PROMPT, f"{PROMPT} {CONTINUATION}")
    before = _logits(loaded)
    hooks_before = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in loaded.model.modules())
    try:
        forced = run_checked(
            loaded,
            METHODS[method],
            text,
            target=target,
            step_scores=[],
            contrast_target=None,
            method_params={},
            max_new_tokens=2,
            progress=lambda *args: None,
        )
    except Exception as error:  # whatever Inseq raises: the point is that it does
        assert not isinstance(error, UnsupportedError)
    else:
        scores = forced.source_scores if forced.source_scores is not None else forced.target_scores
        assert method.startswith("layer_") and np.nansum(np.abs(scores)) == 0
    assert torch.equal(before, _logits(loaded))
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in loaded.model.modules()) == hooks_before
    after = attribute(loaded, text, method="saliency", target=target)
    assert np.isfinite(after.step_scores["probability"]).all()


def test_check_supported_names_working_methods_for_each_family(models):
    for family, loaded in models.items():
        working = supported_methods(loaded.kind, family)
        for method in working:
            check_supported(loaded, method)
        assert {"saliency", "attention", "integrated_gradients", "occlusion"} <= set(working)


def test_markdown_table_has_a_row_per_method_and_a_column_per_family():
    table = markdown_table()
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == list(METHODS)
    assert all(row.count("|") == len(TESTED_FAMILIES) + 2 for row in rows)
    assert "| `value_zeroing` | no (" in table and table.count("yes") > 100
