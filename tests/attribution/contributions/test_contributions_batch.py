"""Padded batches for the contribution graph's forward pass: every record's graph is its one-by-one graph.

Ground truth: the one-record path (``run_instrumented`` / ``build_contribution_graph`` on each
record alone) and the model's own block outputs of each record run alone (the decomposition of a
batched record must sum back to them). Records of different lengths, the longest in the middle, so
every record but one is padded, on the decoder side and (seq2seq) on the encoder side, with source
and target maxima in different records.
"""

from __future__ import annotations

import json

import pytest
import torch

from attribution.anatomy.adapters import architecture_spec
from attribution.anatomy.inputs import pad_token_id, prepare_inputs
from attribution.contributions import build_contribution_graph, build_contribution_graphs
from attribution.contributions.decompose import (
    RecordSpan,
    decompose_block,
    pad_records,
    run_instrumented,
    run_instrumented_batch,
)
from attribution.errors import InvalidInputError
from attribution.models import LoadedModel, load_model
from attribution.results import ContributionGraph
from tests.support.corpus_data import REPO, translation_rows
from tests.support.model_checks import assert_same_graph, block_outputs, relative_error
from tests.support.random_models import BART_FAMILIES, build_random_model

PROMPTS = [
    "when mary went to the store",
    "when mary and john went to the store , john gave a drink to",
    "the cat sees a dog",
]
#: (source, target): the longest source (second) and the longest target (third) are different records
PAIRS = [
    ("the small cat sees the red house .", "die klein katze sieht das rot haus ."),
    ("the small cat sees the red house and the big dog sees the blue house .", "die katze sieht das haus ."),
    ("the dog .", "der hund sieht eine klein katze und das rot haus ."),
]
FIELDS = ("residual_in", "self_probs", "self_values", "ffn_activations", "ffn_output", "cross_probs", "cross_values")


def test_pad_records_right_pads_each_side_and_masks_the_padding():
    """Hand-written ground truth: ids padded with the pad id, masks 1 on real positions, one span per record."""
    records = [
        {"input_ids": torch.tensor([[5, 6, 7]]), "decoder_input_ids": torch.tensor([[0, 8]])},
        {"input_ids": torch.tensor([[9]]), "decoder_input_ids": torch.tensor([[0, 10, 11, 12]])},
    ]
    batch, spans = pad_records(records, pad_token_id=1)
    assert set(batch) == {"input_ids", "attention_mask", "decoder_input_ids", "decoder_attention_mask"}
    assert batch["input_ids"].tolist() == [[5, 6, 7], [9, 1, 1]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["decoder_input_ids"].tolist() == [[0, 8, 1, 1], [0, 10, 11, 12]]
    assert batch["decoder_attention_mask"].tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    assert spans == [RecordSpan(0, 2, 3), RecordSpan(1, 4, 1)]
    # a causal record alone: its own ids, all real
    batch, spans = pad_records([{"input_ids": torch.tensor([[4, 3]])}], pad_token_id=0)
    assert {name: value.tolist() for name, value in batch.items()} == {
        "input_ids": [[4, 3]],
        "attention_mask": [[1, 1]],
    }
    assert spans == [RecordSpan(0, 2, 0)]


#: ``family_model`` (tests/attribution/conftest.py): every family and layout, built with this seed.
FAMILY_SEED = 5
LOUDER_FAMILIES = BART_FAMILIES


def _texts(loaded: LoadedModel) -> tuple[list[str], list[str | None]]:
    if loaded.kind == "seq2seq":
        return [s for s, _ in PAIRS], [t for _, t in PAIRS]
    return PROMPTS, [None] * len(PROMPTS)


def _record_inputs(loaded: LoadedModel) -> list[dict[str, torch.Tensor]]:
    texts, targets = _texts(loaded)
    return [prepare_inputs(loaded, text, target, None)[0] for text, target in zip(texts, targets, strict=True)]


def test_batched_capture_is_each_records_own_capture(family_model):
    """Every captured tensor of every record, cut from the padded batch, equals the record's own pass."""
    spec = architecture_spec(family_model.model)
    inputs = _record_inputs(family_model)
    lengths = {x.get("decoder_input_ids", x["input_ids"]).shape[1] for x in inputs}
    assert len(lengths) == len(inputs)  # every record but the longest is padded
    batched = run_instrumented_batch(family_model.model, spec, inputs, pad_token_id=pad_token_id(family_model))
    for single, (encoder, decoder) in zip(inputs, batched, strict=True):
        alone_encoder, alone_decoder = run_instrumented(family_model.model, spec, single)
        for mine, theirs in zip([*encoder, *decoder], [*alone_encoder, *alone_decoder], strict=True):
            for field in FIELDS:
                a, b = getattr(mine, field), getattr(theirs, field)
                assert (a is None) == (b is None), field
                if a is not None:
                    assert a.shape == b.shape, field
                    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4, msg=field)


def test_batched_record_decomposition_reconstructs_its_own_forward_pass(family_model):
    """Exactness on a padded record: its parts sum to the model's block outputs for that record run alone."""
    spec = architecture_spec(family_model.model)
    inputs = _record_inputs(family_model)
    batched = run_instrumented_batch(family_model.model, spec, inputs, pad_token_id=pad_token_id(family_model))
    position = 0  # a padded record (the second one is the longest)
    expected = block_outputs(family_model, inputs[position])
    encoder_captured, decoder_captured = batched[position]
    for side, captured, specs in (
        ("encoder", encoder_captured, spec.encoder_blocks),
        ("decoder", decoder_captured, spec.decoder_blocks),
    ):
        for block_captured, block_spec, model_output in zip(captured, specs, expected[side], strict=True):
            block = decompose_block(block_captured, block_spec)
            for attention in filter(None, (block.self_attention, block.cross_attention)):
                parts = torch.einsum("hts,hsd->td", attention.coefficients, attention.head_vectors)
                assert relative_error(attention.residual + parts + attention.bias, attention.whole) <= 1e-5
            ffn = block.ffn
            assert relative_error(ffn.residual + ffn.ffn + ffn.bias, ffn.whole) <= 1e-5
            assert relative_error(ffn.whole, model_output) <= 1e-5


def test_batched_graphs_equal_one_by_one_graphs(family_model):
    texts, targets = _texts(family_model)
    options = {"threshold": 0.02, "root_tokens": "all", "top_k": 3}
    batched = build_contribution_graphs(family_model, texts, targets=targets, batch_size=8, **options)
    for text, target, graph in zip(texts, targets, batched, strict=True):
        assert isinstance(graph, ContributionGraph), graph
        alone = build_contribution_graph(family_model, text, target=target, **options)
        assert len(alone.edges) > 0
        assert_same_graph(graph, alone)


def _bundled_records(name: str) -> tuple[list[str], list[str | None]]:
    """Records of different lengths from the bundled test sets: IOI prompts with their answers as targets,
    translation pairs with their gold targets."""
    if name == "tiny-ioi-gpt2":
        lines = (REPO / "examples" / "data" / "ioi_test.jsonl").read_text(encoding="utf-8").splitlines()[:6]
        rows = [json.loads(line) for line in lines]
        return [row["prompt"] for row in rows], [row["answer"] for row in rows]
    rows = translation_rows(8)
    return [row["source"] for row in rows], [row["target"] for row in rows]


@pytest.mark.parametrize("name", ["tiny-ioi-gpt2", "tiny-synth-translate"])
def test_bundled_models_batched_graphs_equal_one_by_one(name):
    loaded = load_model(name)
    texts, targets = _bundled_records(name)
    options = {"root_tokens": "all", "top_k": 2}
    batched = build_contribution_graphs(loaded, texts, targets=targets, batch_size=4, **options)
    lengths = {len(graph.target_tokens) + len(graph.source_tokens) for graph in batched}
    assert len(lengths) > 2  # padded records
    for text, target, graph in zip(texts, targets, batched, strict=True):
        assert isinstance(graph, ContributionGraph), graph
        assert_same_graph(graph, build_contribution_graph(loaded, text, target=target, **options))


def test_bad_records_get_their_own_errors_and_the_others_their_graphs():
    loaded = build_random_model("marian", seed=5)
    texts = [PAIRS[0][0], "", PAIRS[1][0]]
    targets = [PAIRS[0][1], "die katze", "   "]
    results = build_contribution_graphs(loaded, texts, targets=targets, root_tokens="all")
    assert isinstance(results[0], ContributionGraph)
    assert isinstance(results[1], InvalidInputError) and isinstance(results[2], InvalidInputError)
    assert_same_graph(results[0], build_contribution_graph(loaded, texts[0], target=targets[0], root_tokens="all"))


def test_records_without_target_are_generated_then_batched():
    loaded = build_random_model("t5", seed=5)
    texts = [s for s, _ in PAIRS]
    batched = build_contribution_graphs(loaded, texts, root_tokens="all", top_k=0)
    for text, graph in zip(texts, batched, strict=True):
        alone = build_contribution_graph(loaded, text, root_tokens="all", top_k=0)
        assert graph.target_text == alone.target_text
        assert_same_graph(graph, alone)


@pytest.mark.parametrize(
    ("options", "fragment"),
    [({"batch_size": 0}, "batch_size"), ({"batch_size": True}, "batch_size"), ({"targets": ["a"]}, "targets")],
)
def test_bad_batch_options_are_clear_errors(options, fragment):
    loaded = build_random_model("gpt2", seed=5)
    with pytest.raises(InvalidInputError, match=fragment):
        build_contribution_graphs(loaded, PROMPTS, **options)


def test_a_budget_running_out_stops_the_whole_batch_and_leaves_no_hooks(monkeypatch):
    """A time budget is no record's fault: it is raised, not written as a failed record."""
    from attribution import budget as budget_module
    from attribution.budget import time_budget
    from attribution.errors import BudgetExceededError

    ticks = iter(range(10**6))
    monkeypatch.setattr(budget_module, "_now", lambda: float(next(ticks)))  # one second per module call
    loaded = build_random_model("gpt2", seed=5)
    reference = build_contribution_graphs(loaded, PROMPTS)  # installs transformers' own (permanent) capture hooks
    hooks_before = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in loaded.model.modules())
    with pytest.raises(BudgetExceededError), time_budget(loaded, 5, what="The graphs"):
        build_contribution_graphs(loaded, PROMPTS)
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in loaded.model.modules()) == hooks_before
    monkeypatch.undo()
    for again, graph in zip(build_contribution_graphs(loaded, PROMPTS), reference, strict=True):
        assert again.edges == graph.edges


@pytest.mark.parametrize(("inexact", "passes"), [(False, 2), (True, 3)])
def test_one_forward_pass_per_batch_unless_the_family_cannot_be_padded(monkeypatch, inexact, passes):
    """Three records, batches of two: two forward passes; a family in PADDING_INEXACT runs one per record,
    with the same graphs."""
    from attribution.contributions import graph as graph_module

    loaded = build_random_model("llama", seed=5)
    if inexact:
        monkeypatch.setattr(graph_module, "PADDING_INEXACT", frozenset({"llama"}))
    calls = []
    handle = loaded.model.base_model.register_forward_pre_hook(lambda module, args: calls.append(1))
    try:
        graphs = build_contribution_graphs(loaded, PROMPTS, batch_size=2, top_k=0)
    finally:
        handle.remove()
    assert len(calls) == passes
    for text, graph in zip(PROMPTS, graphs, strict=True):
        assert_same_graph(graph, build_contribution_graph(loaded, text, top_k=0))


@pytest.mark.parametrize("n_records", [2, 3])
def test_a_failing_batch_is_retried_record_by_record_and_the_failure_lands_on_its_record(monkeypatch, n_records):
    from attribution.contributions import graph as graph_module

    loaded = build_random_model("gpt2", seed=5)
    reference = [build_contribution_graph(loaded, text, top_k=0) for text in PROMPTS[:n_records]]
    bad_length = len(reference[1].target_tokens)
    one_record = graph_module.run_instrumented

    def batch_fails(*args, **kwargs):
        raise RuntimeError("out of memory")

    def one_record_fails_on_the_long_prompt(model, spec, inputs):
        if inputs["input_ids"].shape[1] == bad_length:
            raise RuntimeError("out of memory")
        return one_record(model, spec, inputs)

    monkeypatch.setattr(graph_module, "run_instrumented_batch", batch_fails)
    monkeypatch.setattr(graph_module, "run_instrumented", one_record_fails_on_the_long_prompt)
    results = build_contribution_graphs(loaded, PROMPTS[:n_records], top_k=0)
    assert isinstance(results[1], RuntimeError)
    for index in {0, 2} & set(range(n_records)):
        assert_same_graph(results[index], reference[index])


@pytest.mark.parametrize(
    ("family", "text", "target"),
    [
        ("gpt2", "when mary and john went", "to the store , john gave"),  # each fits, together too long
        ("marian", "the small cat sees the red house and the dog", "die katze"),  # the source too long
        ("marian", "the cat sees the dog", "die katze \ud800"),  # the target not valid Unicode
    ],
)
def test_batched_records_are_refused_as_a_record_alone_is(family, text, target):
    loaded = build_random_model(family, seed=5)
    with pytest.raises(InvalidInputError) as alone:
        build_contribution_graph(loaded, text, target=target, max_tokens=8, top_k=0)
    good_text, good_target = ("the cat", "sees") if family == "gpt2" else ("the cat", "die katze")
    results = build_contribution_graphs(loaded, [good_text, text], targets=[good_target, target], max_tokens=8, top_k=0)
    assert isinstance(results[0], ContributionGraph)
    assert isinstance(results[1], InvalidInputError) and str(results[1]) == str(alone.value)


def test_a_record_whose_graph_fails_gets_its_error_and_the_others_their_graphs(monkeypatch):
    from attribution.contributions import graph as graph_module

    loaded = build_random_model("gpt2", seed=5)
    one_graph = graph_module._graph

    def fails_on_the_second(loaded, spec, prepared, *args):
        if prepared.text == PROMPTS[1]:
            raise RuntimeError("the logit lens broke")
        return one_graph(loaded, spec, prepared, *args)

    monkeypatch.setattr(graph_module, "_graph", fails_on_the_second)
    results = build_contribution_graphs(loaded, PROMPTS, top_k=0)
    assert isinstance(results[1], RuntimeError) and str(results[1]) == "the logit lens broke"
    monkeypatch.undo()
    for index in (0, 2):
        assert_same_graph(results[index], build_contribution_graph(loaded, PROMPTS[index], top_k=0))


@pytest.mark.parametrize(("batch_size", "passes"), [(None, 2), (1, 9)])
def test_batches_hold_eight_records_by_default_and_one_at_the_least(monkeypatch, batch_size, passes):
    loaded = build_random_model("gpt2", seed=5)
    prompts = [f"{PROMPTS[i % 3]} {'the ' * i}".strip() for i in range(9)]
    calls = []
    handle = loaded.model.base_model.register_forward_pre_hook(lambda module, args: calls.append(1))
    try:
        options = {} if batch_size is None else {"batch_size": batch_size}
        graphs = build_contribution_graphs(loaded, prompts, top_k=0, **options)
    finally:
        handle.remove()
    assert len(calls) == passes
    assert all(isinstance(graph, ContributionGraph) for graph in graphs)
