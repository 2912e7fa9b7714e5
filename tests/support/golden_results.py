"""One result of every kind, every optional field set somewhere, whose JSON is kept in ``tests/support/golden/``.

The files were written by the code *before* the result classes were restructured (issue 19: one
registry, one base, one reader style), so :mod:`tests.attribution.test_results_golden` proves that the JSON a
result writes, and what it reads back, did not change byte for byte.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from attribution.interventions.results import InterventionResult
from attribution.results import Comparison, Provenance
from tests.support.synthetic_results import (
    synthetic_attribution,
    synthetic_faithfulness,
    synthetic_graph,
    synthetic_intervention,
    synthetic_patching,
    synthetic_route_faithfulness,
)

GOLDEN_DIR = Path(__file__).parent / "golden"


def _languages(provenance: Provenance) -> Provenance:
    """The optional provenance fields set: tokenizer style and translation languages."""
    return dataclasses.replace(
        provenance, tokenizer_style="sentencepiece", source_language="eng_Latn", target_language="fra_Latn"
    )


def golden_results() -> dict[str, object]:
    """File name (without ``.json``) → result."""
    causal = synthetic_attribution("causal", n_prompt=4, n_generated=3)
    signed = synthetic_attribution("seq2seq", signed=True, seed=3)
    signed = dataclasses.replace(
        signed,
        provenance=_languages(signed.provenance),
        contrast_target="g0 g9 g2",
        source_word_ids=[0, 0, 1, None, 2],
        target_word_ids=[None, 0, 1, 1, 2],
        step_scores={"probability": [0.5, float("nan"), 0.25, 1.0], "entropy": [1.0, 2.0, 3.0, 4.0]},
    )
    seq2seq_graph = synthetic_graph("seq2seq", n_tokens=5, n_source=4, root_tokens=[-1, 2])
    seq2seq_graph = dataclasses.replace(
        seq2seq_graph, provenance=_languages(seq2seq_graph.provenance), final_norm_in_logit_lens=False
    )
    seq2seq_graph.nodes[0].top_neurons = [(7, 0.5), (3, -0.25)]
    mean = dataclasses.replace(
        synthetic_intervention(roots=(5,)),
        mode="mean",
        mean_over="prompts",
        reference_texts=["a b c", "d e f"],
    )
    patch = dataclasses.replace(
        synthetic_intervention(roots=(3,)),
        mode="patch",
        counterfactual_text="t0 t1 c2",
        counterfactual_target="",
    )
    assert isinstance(patch, InterventionResult)
    return {
        "attribution-causal": causal,
        "attribution-seq2seq-signed": signed,
        "graph-causal": synthetic_graph("causal", n_tokens=6, n_layers=2),
        "graph-seq2seq": seq2seq_graph,
        "comparison": Comparison(
            [synthetic_attribution("seq2seq", seed=1), synthetic_attribution("seq2seq", seed=2)],
            ["saliency", "attention"],
            [[1.0, 0.25], [0.25, None]],
            gold_alignment="0-0 1-2",
            aer=[0.5, None],
        ),
        "intervention-zero": synthetic_intervention(),
        "intervention-mean": mean,
        "intervention-patch": patch,
        "patching": synthetic_patching(),
        "route-faithfulness": synthetic_route_faithfulness(),
        "faithfulness": synthetic_faithfulness(),
    }
