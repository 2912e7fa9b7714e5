"""The fast attention proximities on inputs long enough to be cut into many correction chunks.

:func:`attention_shares` scores every (row, source, head) part with a product over head_dim through the
factored head vectors, and corrects the parts that overshoot the whole in some dimension in runs of
(row, dimension) pairs planned by ``_chunks`` (rows joined or split to fit a budget, sources limited to
where a row's coefficients are non-zero). Ground truth: the float64 loop reference
(``tests/support/contributions_reference.py``) on every family layout, a dense float64 evaluation of
``max(0, |w|_1 - |w - p|_1)`` on hand-made blocks whose parts overshoot everywhere, and the plan's
own definition.
"""

from __future__ import annotations

import gc
import random

import pytest
import torch

import attribution.contributions.decompose as decompose
from attribution.anatomy.adapters import architecture_spec
from attribution.anatomy.inputs import prepare_inputs
from attribution.contributions.decompose import (
    AttentionDecomposition,
    CapturedBlock,
    attention_shares,
    run_instrumented,
)
from attribution.contributions.graph import build_contribution_graph, decompose_model
from attribution.models import LoadedModel
from tests.support import texts
from tests.support.contributions_reference import ReferenceStack
from tests.support.random_models import FAMILIES, VARIANTS, build_random_model, louder_attention
from tests.support.tiers import across_families

PROMPT = texts.RANDOM_PROMPT
SOURCE = texts.RANDOM_SOURCE
TARGET = texts.RANDOM_TARGET

#: 40 tokens: rows long enough that a small budget splits one row's pairs over several runs
LONG_PROMPT = " ".join((PROMPT.split() * 3)[:40])
LONG_SOURCE = " ".join(SOURCE.split() * 5)
LONG_TARGET = " ".join(TARGET.split() * 4)
#: elements per correction chunk: a few sources of one pair, a few short rows, the default
BUDGETS = (64, 4096, decompose.DEFAULT_BUDGET)


@pytest.fixture(scope="module", params=across_families(FAMILIES + VARIANTS))
def long_input_model(request) -> tuple[LoadedModel, dict[str, torch.Tensor]]:
    loaded = build_random_model(request.param, seed=5)
    if request.param in ("bart", "marian", "mbart", "m2m_100"):
        loaded = louder_attention(loaded)
    if loaded.kind == "seq2seq":
        inputs = prepare_inputs(loaded, LONG_SOURCE, LONG_TARGET, None)[0]
    else:
        inputs = prepare_inputs(loaded, LONG_PROMPT, None, None)[0]
    return loaded, inputs


def _spy_on_runs(monkeypatch) -> list[tuple[int, int, int, int]]:
    """Every run the planner yields from now on."""
    runs: list[tuple[int, int, int, int]] = []
    plan = decompose._chunks

    def recorded(*args):
        for run in plan(*args):
            runs.append(run)
            yield run

    monkeypatch.setattr(decompose, "_chunks", recorded)
    return runs


def test_shares_of_long_inputs_match_the_loop_reference_whatever_the_budget(long_input_model, monkeypatch):
    loaded, inputs = long_input_model
    spec = architecture_spec(loaded.model)
    encoder_captured, decoder_captured = run_instrumented(loaded.model, spec, inputs)
    encoder, decoder = decompose_model(loaded, inputs)
    runs = _spy_on_runs(monkeypatch)
    for captured, specs, blocks in (
        (encoder_captured, spec.encoder_blocks, encoder),
        (decoder_captured, spec.decoder_blocks, decoder),
    ):
        reference = ReferenceStack(captured, specs)
        for block, expected in zip(blocks, reference.layers, strict=True):
            rows = torch.arange(block.residual_in.shape[0])
            for name, attention in (("self", block.self_attention), ("cross", block.cross_attention)):
                if attention is None:
                    continue
                ref_residual = torch.tensor([node[1] for node in expected[name]])
                ref_parts = torch.tensor(
                    [
                        [[parts[(j, h)] for h in range(attention.coefficients.shape[0])] for j in range(n_sources)]
                        for _, _, parts in expected[name]
                        for n_sources in [attention.coefficients.shape[2]]
                    ]
                )
                for budget in BUDGETS:
                    residual_share, part_share = attention_shares(attention, rows, budget=budget)
                    torch.testing.assert_close(residual_share, ref_residual.float(), atol=1e-5, rtol=0)
                    torch.testing.assert_close(part_share, ref_parts.float(), atol=1e-5, rtol=0)
    assert runs  # some parts overshot the whole and were corrected


def _dense_shares(whole: torch.Tensor, residual: torch.Tensor, coefficients: torch.Tensor, head_vectors: torch.Tensor):
    """``max(0, |w|_1 - |w - p|_1)`` of every part in float64, all at once, normalised per row."""
    whole, residual = whole.double(), residual.double()
    parts = coefficients.double().permute(1, 2, 0)[..., None] * head_vectors.double().transpose(0, 1)[None]
    part_prox = (whole.abs().sum(-1)[:, None, None] - (whole[:, None, None] - parts).abs().sum(-1)).clamp_min(0)
    residual_prox = (whole.abs().sum(-1) - (whole - residual).abs().sum(-1)).clamp_min(0)
    total = residual_prox + part_prox.sum((1, 2))
    empty = total <= 0
    total = torch.where(empty, 1.0, total)
    return torch.where(empty, 1.0, residual_prox / total), part_prox / total[:, None, None]


def _hand_made_block(factored: bool, device: str = "cpu") -> AttentionDecomposition:
    """Parts as large as the whole (overshoots in most dimensions), a causal sliding window of 20 (every row's
    non-zero sources start after 0 and end at the row) and one row (30) with no non-zero coefficient at all."""
    generator = torch.Generator().manual_seed(0)
    n_heads, n_tokens, head_dim, d, window = 3, 48, 4, 16, 20
    scores = torch.rand(n_heads, n_tokens, n_tokens, generator=generator) * 4
    position = torch.arange(n_tokens)
    visible = (position[None, :] <= position[:, None]) & (position[None, :] > position[:, None] - window)
    probs = scores.exp().where(visible, 0.0)
    probs = probs / probs.sum(-1, keepdim=True)
    probs[:, 30] = 0.0
    values = torch.randn(n_heads, n_tokens, head_dim, generator=generator) * 2
    projection = torch.randn(n_heads, head_dim, d, generator=generator)
    head_vectors = torch.bmm(values, projection)
    residual = torch.randn(n_tokens, d, generator=generator) * 0.5
    bias = torch.randn(d, generator=generator).expand(n_tokens, d)
    whole = residual + torch.einsum("hts,hsd->td", probs, head_vectors) + bias
    factors = (values, projection) if factored else (None, None)
    tensors = [residual, probs, head_vectors, bias, whole, *factors]
    return AttentionDecomposition(*(None if t is None else t.to(device) for t in tensors))


@pytest.mark.parametrize("factored", [True, False], ids=["values-and-projection", "head-vectors-only"])
def test_overshooting_parts_of_a_long_hand_made_block_are_exact(factored, monkeypatch):
    dec = _hand_made_block(factored)
    expected_residual, expected_parts = _dense_shares(dec.whole, dec.residual, dec.coefficients, dec.head_vectors)
    assert expected_residual[30] == 1.0  # a row whose parts are all zero goes wholly to the residual
    runs = _spy_on_runs(monkeypatch)
    for budget in (8, 300, decompose.DEFAULT_BUDGET):
        rows = torch.tensor([0, 5, 29, 30, 31, 47]) if budget == 300 else torch.arange(dec.whole.shape[0])
        residual_share, part_share = attention_shares(dec, rows, budget=budget)
        torch.testing.assert_close(residual_share.double(), expected_residual[rows], atol=1e-5, rtol=0)
        torch.testing.assert_close(part_share.double(), expected_parts[rows], atol=1e-5, rtol=0)
    # corrected in many runs, single pairs and several rows at once, reading sources past the window's start only
    assert len(runs) > 100
    assert {min(stop - start, 2) for start, stop, _, _ in runs} == {1, 2}
    assert any(low > 0 for _, _, low, _ in runs)


_NO_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run it where one is lent)")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=_NO_CUDA)])
def test_shares_computed_on_a_device_match_the_float64_references(device):
    """The same code on each device: the hand-made blocks against their dense float64 shares, and every block
    of a random GPT-2 run there (40-token prompt) against the float64 loop reference of what it captured, with
    a small budget (many chunks) and the default one."""
    for factored in (True, False):
        dec = _hand_made_block(factored, device)
        expected = _dense_shares(*(t.cpu() for t in (dec.whole, dec.residual, dec.coefficients, dec.head_vectors)))
        for budget in (8, decompose.DEFAULT_BUDGET):
            shares = attention_shares(dec, torch.arange(dec.whole.shape[0], device=device), budget=budget)
            for got, want in zip(shares, expected, strict=True):
                torch.testing.assert_close(got.cpu().double(), want, atol=1e-5, rtol=0)
    loaded = build_random_model("gpt2", seed=5)
    loaded.model.to(device)
    inputs = {name: ids.to(device) for name, ids in prepare_inputs(loaded, LONG_PROMPT, None, None)[0].items()}
    captured = run_instrumented(loaded.model, architecture_spec(loaded.model), inputs)[1]
    _, blocks = decompose_model(loaded, inputs)
    captured = [CapturedBlock(**{k: None if v is None else v.cpu() for k, v in vars(c).items()}) for c in captured]
    loaded.model.to("cpu")
    reference = ReferenceStack(captured, architecture_spec(loaded.model).decoder_blocks)
    for block, expected in zip(blocks, reference.layers, strict=True):
        n_heads, n_tokens, _ = block.self_attention.coefficients.shape
        ref_residual = torch.tensor([node[1] for node in expected["self"]])
        ref_parts = torch.tensor(
            [[[parts[(j, h)] for h in range(n_heads)] for j in range(n_tokens)] for _, _, parts in expected["self"]]
        )
        for budget in (64, decompose.DEFAULT_BUDGET):
            rows = torch.arange(n_tokens, device=device)
            residual_share, part_share = attention_shares(block.self_attention, rows, budget=budget)
            torch.testing.assert_close(residual_share.cpu(), ref_residual.float(), atol=1e-5, rtol=0)
            torch.testing.assert_close(part_share.cpu(), ref_parts.float(), atol=1e-5, rtol=0)


def _check_plan(counts: list[int], first: list[int], end: list[int], per_source: int, budget: int) -> int:
    """The plan's definition: runs cover the pairs in order, each row's sources, the budget, little waste."""
    runs = list(decompose._chunks(counts, first, end, per_source, budget))
    row_of_pair = [row for row, count in enumerate(counts) for _ in range(count)]
    ends = [0, *(stop for _, stop, _, _ in runs)]
    assert [start for start, _, _, _ in runs] == ends[:-1] and ends[-1] == len(row_of_pair)
    for start, stop, low, high in runs:
        rows = sorted(set(row_of_pair[start:stop]))
        spans = [(first[r], end[r]) for r in rows if end[r] > first[r]]
        assert all(low <= row_low and row_high <= high for row_low, row_high in spans)
        if spans:  # the run reads no source that none of its rows needs
            assert low == min(s for s, _ in spans) and high == max(e for _, e in spans)
        elements = (stop - start) * max(0, high - low) * per_source
        assert elements <= budget or stop - start == 1
        own = sum(row_of_pair[start:stop].count(r) * max(0, end[r] - first[r]) * per_source for r in rows)
        assert 4 * (elements - own) <= elements or len(rows) == 1
    return len(runs)


def test_the_chunk_plan_covers_every_pair_once_within_the_budget():
    generator = random.Random(0)
    n_sources = 60
    for _ in range(200):
        n_rows = generator.randint(0, 30)
        counts = [generator.choice([0, 0, 1, 2, 5, 17, 40]) for _ in range(n_rows)]
        first = [generator.randint(0, n_sources - 1) for _ in range(n_rows)]
        end = [generator.randint(low + 1, n_sources) for low in first]
        for r in range(n_rows):  # some rows have no non-zero coefficient: the empty span (S, 0)
            if generator.random() < 0.1:
                first[r], end[r] = n_sources, 0
        for per_source, budget in ((1, 1), (3, 50), (2, 1000), (4, 10**9)):
            _check_plan(counts, first, end, per_source, budget)
    # a causal layout: rows of growing spans join while little is wasted, a row alone over the budget is split
    causal_end = list(range(1, 41))
    assert _check_plan([3] * 40, [0] * 40, causal_end, 2, 10**9) > 1
    assert list(decompose._chunks([10], [0], [50], 2, 300)) == [
        (0, 3, 0, 50),
        (3, 6, 0, 50),
        (6, 9, 0, 50),
        (9, 10, 0, 50),
    ]


@pytest.mark.parametrize("was_enabled", [True, False])
def test_a_graph_leaves_the_garbage_collector_as_it_found_it(was_enabled, monkeypatch):
    """The cyclic collector is paused while a graph's edges and nodes are made; it is back as it was
    afterwards, even after a failure."""
    import attribution.contributions.graph as graph_module

    loaded = build_random_model("gpt2", seed=0)
    seen = []
    trace = graph_module.trace_routes

    def traced(*args, **kwargs):
        seen.append(gc.isenabled())
        return trace(*args, **kwargs)

    def failing(*args, **kwargs):
        raise RuntimeError("tracing failed")

    (gc.enable if was_enabled else gc.disable)()
    try:
        monkeypatch.setattr(graph_module, "trace_routes", traced)
        assert build_contribution_graph(loaded, PROMPT, root_tokens="all").edges
        assert seen == [False] and gc.isenabled() is was_enabled
        monkeypatch.setattr(graph_module, "trace_routes", failing)
        with pytest.raises(RuntimeError, match="tracing failed"):
            build_contribution_graph(loaded, PROMPT)
        assert gc.isenabled() is was_enabled
    finally:
        gc.enable()
