"""Interventions on a model placed by accelerate with CPU / disk offload: the same numbers as the whole model.

The models of ``tests/attribution/test_corpus_sharding.py`` (random GPT-2 and Marian, non-zero biases, half their
weights offloaded to disk and kept on the ``meta`` device between forward calls): ablations of every
component kind, mean ablation, patching, and a patching sweep with attribution patching.
"""

from __future__ import annotations

import numpy as np
import pytest

from attribution.interventions import intervene, patching_sweep
from tests.support import texts

pytest.importorskip("accelerate")

TEXT = texts.RANDOM_TEXT
TARGET = texts.RANDOM_TEXT_TARGET
COUNTERFACTUAL = "when john and mary went to the house"
COUNTERFACTUAL_TARGET = "mary gave a book to john"


def _components(loaded) -> list[str]:
    ids = ["decoder:1:head:1", "decoder:2:ffn:*", "decoder:1:neuron:3@2", "decoder:1:after_ffn:2"]
    ids += ["decoder:1:after_ffn:1->decoder:2:after_attention:3"]
    if loaded.kind == "seq2seq":
        ids += ["encoder:1:head:0", "encoder:2:after_ffn:3->decoder:1:after_cross_attention:2"]
    return ids


def _inputs(loaded) -> dict:
    if loaded.kind == "seq2seq":
        return {
            "text": TEXT,
            "target": TARGET,
            "counterfactual": COUNTERFACTUAL,
            "counterfactual_target": COUNTERFACTUAL_TARGET,
        }
    return {"text": f"{TEXT} {TARGET}", "counterfactual": f"{COUNTERFACTUAL} {COUNTERFACTUAL_TARGET}"}


def _predictions(result) -> list[tuple]:
    return [
        (p.position, p.target_token, p.probability_after, p.logit_before, p.logit_after, p.kl_divergence)
        for p in result.predictions
    ]


@pytest.mark.parametrize("mode", ["zero", "mean", "patch"])
def test_ablation_and_patching_give_the_whole_models_numbers(offloaded_models, mode: str) -> None:
    whole, sharded = offloaded_models
    arguments = _inputs(whole)
    text, target = arguments["text"], arguments.get("target")
    options = {"mode": mode, "root_tokens": "all"}
    if mode == "patch":
        options |= {
            "counterfactual": arguments["counterfactual"],
            "counterfactual_target": arguments.get("counterfactual_target"),
        }
    if mode == "mean":  # over one reference prompt of the same length
        reference = arguments["counterfactual"]
        options |= {"reference": [(reference, arguments["counterfactual_target"]) if target else reference]}
    expected = intervene(whole, text, _components(whole), target=target, **options)
    got = intervene(sharded, text, _components(sharded), target=target, **options)
    assert [p[:2] for p in _predictions(got)] == [p[:2] for p in _predictions(expected)]
    np.testing.assert_allclose(
        [p[2:] for p in _predictions(got)], [p[2:] for p in _predictions(expected)], rtol=1e-5, atol=1e-7
    )
    assert max(abs(p[4] - p[3]) for p in _predictions(expected)) > 1e-5  # it moves the logits: 10x the tolerance
    assert any(p.device.type == "meta" for p in sharded.model.parameters())  # offloaded again afterwards


def test_a_patching_sweep_gives_the_whole_models_maps(offloaded_models) -> None:
    whole, sharded = offloaded_models
    arguments = _inputs(whole)
    options = {
        "target": arguments.get("target"),
        "counterfactual_target": arguments.get("counterfactual_target"),
        "maps": ["head", "position"],
        "root_token": -2,
    }
    expected = patching_sweep(whole, arguments["text"], arguments["counterfactual"], **options)
    got = patching_sweep(sharded, arguments["text"], arguments["counterfactual"], **options)
    assert (got.target_token, got.contrast_token) == (expected.target_token, expected.contrast_token)
    for mine, theirs in zip(got.maps, expected.maps, strict=True):
        np.testing.assert_allclose(mine.exact, theirs.exact, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(mine.approximate, theirs.approximate, rtol=1e-4, atol=1e-6)
