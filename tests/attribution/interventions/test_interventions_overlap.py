"""Overlapping components: a set of components changes the union of their terms, each term once.

Ground truth: the model with the union edited by hand. The hooks below are written out plainly on the
model's own modules (the output projection's input for heads and single edge terms, the attention and
FFN outputs, the FFN output projection's input for neurons, a block's input or the last block's output
for residual streams), not through the engine or the adapters. Each case names the components given to
the engine and, worked out by hand, the *disjoint* pieces their union consists of; the hand edits apply
those pieces, so their order cannot matter. Modes: zero, patch (the counterfactual's values) and mean
over two reference prompts (the mean of each value; of an edge term, the mean of ``A_ij v_j``).
Families: GPT-2 (fused qkv, Conv1D), Llama (grouped-query values, random biases on every projection)
and Marian (encoder-decoder: encoder heads, cross-attention heads and edges).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import pytest
import torch
from torch import nn

from attribution.anatomy.adapters import architecture_spec
from attribution.interventions import engine
from attribution.interventions.ablation import build_edits, intervene, resolve_components
from attribution.interventions.inputs import model_shape, prepare, prepare_like
from attribution.models import LoadedModel
from tests.support import texts
from tests.support.random_models import build_random_model

PROMPT = texts.RANDOM_PROMPT  # 14 tokens
COUNTERFACTUAL_PROMPT = texts.RANDOM_COUNTERFACTUAL_PROMPT
SOURCE = texts.RANDOM_SOURCE  # 9 tokens with </s>
COUNTERFACTUAL_SOURCE = texts.RANDOM_COUNTERFACTUAL_SOURCE
TARGET = texts.RANDOM_TARGET
COUNTERFACTUAL_TARGET = texts.RANDOM_COUNTERFACTUAL_TARGET
#: a second reference input for mean ablation (over two prompts)
SECOND_PROMPT = "when mary and john went to the house , john gave a book to"
SECOND_SOURCE = "the small dog sees the blue house ."
SECOND_TARGET = "die klein hund sieht das blau haus ."


# ------------------------------------------------------------------------------------------------
# Where each family keeps its pieces, written out for the test (independent of adapters.py).
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Anatomy:
    blocks: Callable[[nn.Module, str], list[nn.Module]]
    attention: Callable[[nn.Module, str], nn.Module]  # (block, "self" | "cross") -> attention module
    out: str  # the output projection inside the attention module
    value: str  # the module whose output holds the values, inside the attention module
    value_slice: Callable[[torch.Tensor], torch.Tensor]  # that output -> the value part [B, S, kv * dh]
    ffn_out: Callable[[nn.Module], nn.Module]


def _last_third(output: torch.Tensor) -> torch.Tensor:
    return output[..., 2 * output.shape[-1] // 3 :]  # GPT-2's c_attn: [q | k | v]


ANATOMY = {
    "gpt2": Anatomy(
        blocks=lambda model, side: list(model.transformer.h),
        attention=lambda block, kind: block.attn,
        out="c_proj",
        value="c_attn",
        value_slice=_last_third,
        ffn_out=lambda block: block.mlp.c_proj,
    ),
    "llama": Anatomy(
        blocks=lambda model, side: list(model.model.layers),
        attention=lambda block, kind: block.self_attn,
        out="o_proj",
        value="v_proj",
        value_slice=lambda output: output,
        ffn_out=lambda block: block.mlp.down_proj,
    ),
    "marian": Anatomy(
        blocks=lambda model, side: list(getattr(model.model, side).layers),
        attention=lambda block, kind: block.self_attn if kind == "self" else block.encoder_attn,
        out="out_proj",
        value="v_proj",
        value_slice=lambda output: output,
        ffn_out=lambda block: block.fc2,
    ),
}


# ------------------------------------------------------------------------------------------------
# Hand edits: the disjoint pieces of a union. ``positions`` None = every position.
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Piece:
    kind: str  # head | attention | ffn | neuron | residual | terms
    side: str
    layer: int  # the block (1-based); residual: the graph layer (0 = embeddings), entering block layer + 1
    attention: str = "self"
    index: int | None = None  # head or neuron
    positions: tuple[int, ...] | None = None
    terms: tuple[tuple[int, int, int], ...] = ()  # (query i, source j, head h): single edge terms


def head(side, layer, h, positions=None, attention="self"):
    return Piece("head", side, layer, attention, index=h, positions=positions)


def attention_out(side, layer, positions=None, attention="self"):
    return Piece("attention", side, layer, attention, positions=positions)


def ffn(side, layer, positions=None):
    return Piece("ffn", side, layer, positions=positions)


def neuron(side, layer, n, positions=None):
    return Piece("neuron", side, layer, index=n, positions=positions)


def residual(side, layer, positions=None):
    return Piece("residual", side, layer, positions=positions)


def terms(side, layer, triples, attention="self"):
    return Piece("terms", side, layer, attention, terms=tuple(triples))


def _rows(positions, length: int) -> list[int]:
    return list(range(length)) if positions is None else list(positions)


class HandRun:
    """One forward pass with ``pieces`` applied by plain hooks; records every site as it went.

    ``references`` (recordings of other HandRuns) give the replacement values: their mean (one: patching,
    several: mean ablation), an edge term's mean ``A_ij v_j``; none zeroes. ``live`` holds the probabilities
    and values of the pass the edge terms are computed from (recorded by a pass with the same pieces minus
    the terms: nothing here edits anything upstream of an edge term's own layer).
    """

    def __init__(self, loaded: LoadedModel, pieces: list[Piece], references: list[dict], live: dict | None):
        self.loaded, self.pieces, self.references, self.live = loaded, pieces, references, live
        self.anatomy = ANATOMY[loaded.model.config.model_type]
        self.record: dict = {}

    def _value(self, key, like: torch.Tensor) -> torch.Tensor:
        if not self.references:
            return torch.zeros_like(like)
        return torch.stack([reference[key] for reference in self.references]).mean(0)

    def _reference_term(self, site, i: int, j: int, h: int) -> torch.Tensor:
        terms = [r[("A", *site)][:, h, i, j, None] * r[("v", *site)][:, h, j] for r in self.references]
        return torch.stack(terms).mean(0)

    def _pieces(self, kind: str, side: str, layer: int, attention: str = "self") -> list[Piece]:
        return [p for p in self.pieces if p.kind == kind and (p.side, p.layer, p.attention) == (side, layer, attention)]

    def block_pre(self, side, layer, _module, args, kwargs):
        hidden = (args[0] if args else kwargs["hidden_states"]).clone()
        key = ("residual", side, layer - 1)
        self.record[key] = hidden.clone()
        for piece in self._pieces("residual", side, layer - 1):
            rows = _rows(piece.positions, hidden.shape[1])
            hidden[:, rows] = self._value(key, hidden)[:, rows]
        if args:
            return (hidden, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": hidden}

    def last_block_post(self, side, layer, _module, _args, output):
        hidden = (output[0] if isinstance(output, tuple) else output).clone()
        key = ("residual", side, layer)
        self.record[key] = hidden.clone()
        for piece in self._pieces("residual", side, layer):
            rows = _rows(piece.positions, hidden.shape[1])
            hidden[:, rows] = self._value(key, hidden)[:, rows]
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    def heads_pre(self, site, n_heads, _module, args):
        mixed = args[0].clone()
        per_head = mixed.view(*mixed.shape[:2], n_heads, -1)  # [B, T, H, dh]: head h's sum_j A_ij v_j
        key = ("heads", *site)
        self.record[key] = per_head.clone()
        for piece in self._pieces("head", *site):
            rows = _rows(piece.positions, mixed.shape[1])
            per_head[:, rows, piece.index] = self._value(key, per_head)[:, rows, piece.index]
        for piece in self._pieces("terms", *site):
            probabilities, values = self.live[("A", *site)], self.live[("v", *site)]
            for i, j, h in piece.terms:
                change = -probabilities[:, h, i, j, None] * values[:, h, j]
                if self.references:
                    change = change + self._reference_term(site, i, j, h)
                per_head[:, i, h] += change
        return (mixed, *args[1:])

    def attention_post(self, site, _module, _args, output):
        self.record[("A", *site)] = output[1].clone()
        key = ("attention", *site)
        result = output[0].clone()
        self.record[key] = result.clone()
        for piece in self._pieces("attention", *site):
            rows = _rows(piece.positions, result.shape[1])
            result[:, rows] = self._value(key, result)[:, rows]
        return (result, *output[1:])

    def values_post(self, site, n_heads, head_dim, _module, _args, output):
        values = self.anatomy.value_slice(output)
        values = values.reshape(*values.shape[:2], -1, head_dim).transpose(1, 2)  # [B, kv heads, S, dh]
        self.record[("v", *site)] = values.repeat_interleave(n_heads // values.shape[1], dim=1).clone()

    def neurons_pre(self, side, layer, _module, args):
        activations = args[0].clone()
        key = ("neurons", side, layer)
        self.record[key] = activations.clone()
        for piece in self._pieces("neuron", side, layer):
            rows = _rows(piece.positions, activations.shape[1])
            activations[:, rows, piece.index] = self._value(key, activations)[:, rows, piece.index]
        return (activations, *args[1:])

    def ffn_post(self, side, layer, _module, _args, output):
        key = ("ffn", side, layer)
        result = output.clone()
        self.record[key] = result.clone()
        for piece in self._pieces("ffn", side, layer):
            rows = _rows(piece.positions, result.shape[1])
            result[:, rows] = self._value(key, result)[:, rows]
        return result

    def logits(self, inputs: dict) -> torch.Tensor:
        model = self.loaded.model
        n_heads = model.config.num_attention_heads
        handles = []
        sides = ("encoder", "decoder") if self.loaded.kind == "seq2seq" else ("decoder",)
        for side in sides:
            blocks = self.anatomy.blocks(model, side)
            for layer, block in enumerate(blocks, start=1):
                handles.append(block.register_forward_pre_hook(partial(self.block_pre, side, layer), with_kwargs=True))
                if layer == len(blocks):
                    handles.append(block.register_forward_hook(partial(self.last_block_post, side, layer)))
                kinds = ("self", "cross") if side == "decoder" and self.loaded.kind == "seq2seq" else ("self",)
                for kind in kinds:
                    site = (side, layer, kind)
                    attention = self.anatomy.attention(block, kind)
                    out, value = getattr(attention, self.anatomy.out), getattr(attention, self.anatomy.value)
                    handles.append(out.register_forward_pre_hook(partial(self.heads_pre, site, n_heads)))
                    handles.append(attention.register_forward_hook(partial(self.attention_post, site)))
                    hooked = partial(self.values_post, site, n_heads, attention.head_dim)
                    handles.append(value.register_forward_hook(hooked))
                ffn_out = self.anatomy.ffn_out(block)
                handles.append(ffn_out.register_forward_pre_hook(partial(self.neurons_pre, side, layer)))
                handles.append(ffn_out.register_forward_hook(partial(self.ffn_post, side, layer)))
        try:
            with torch.no_grad():
                return model(**inputs, use_cache=False).logits[0].float()
        finally:
            for handle in handles:
                handle.remove()


def hand_logits(loaded: LoadedModel, inputs: dict, pieces: list[Piece], references: list[dict]) -> torch.Tensor:
    """The model's logits with the union ``pieces`` edited by hand (zero, or the ``references``' mean)."""
    without_terms = [p for p in pieces if p.kind != "terms"]
    first = HandRun(loaded, without_terms, references, None)
    logits = first.logits(inputs)
    if len(without_terms) == len(pieces):
        return logits
    return HandRun(loaded, pieces, references, first.record).logits(inputs)


def _recorded(loaded: LoadedModel, inputs: dict) -> dict:
    run = HandRun(loaded, [], [], None)
    run.logits(inputs)
    return run.record


# ------------------------------------------------------------------------------------------------
# The cases: components for the engine -> the disjoint pieces of their union.
# ------------------------------------------------------------------------------------------------

D = "decoder"


def _self_edge(side: str, layer: int, source: int, target: int, h: int | None = None) -> str:
    kind = "embedding" if layer == 1 else "after_ffn"
    suffix = "" if h is None else f"#{h}"
    return f"{side}:{layer - 1}:{kind}:{source}->{side}:{layer}:after_attention:{target}{suffix}"


def _cross_edge(source: int, target: int, layer: int, h: int | None = None) -> str:
    suffix = "" if h is None else f"#{h}"
    return f"encoder:2:after_ffn:{source}->decoder:{layer}:after_cross_attention:{target}{suffix}"


def _all_but(positions: list[int], length: int) -> tuple[int, ...]:
    return tuple(p for p in range(length) if p not in positions)


def decoder_cases(n: int) -> dict[str, tuple[list[str], list[Piece]]]:
    """Overlapping pairs of every kind on the decoder (the only side of a causal model); ``n`` tokens (>= 9)."""
    return {
        "head + its own edge (the issue's case)": (["decoder:2:head:1", _self_edge(D, 2, 3, 7, 1)], [head(D, 2, 1)]),
        "head + an all-heads edge": (
            ["decoder:2:head:1", _self_edge(D, 2, 3, 7)],
            [head(D, 2, 1), terms(D, 2, [(7, 3, 0)])],
        ),
        "head at positions + an all-heads edge into them": (
            ["decoder:2:head:1@7,8", _self_edge(D, 2, 3, 7)],
            [head(D, 2, 1, (7, 8)), terms(D, 2, [(7, 3, 0)])],
        ),
        "head at a position + its own edge into another": (
            ["decoder:2:head:1@8", _self_edge(D, 2, 3, 7, 1)],
            [head(D, 2, 1, (8,)), terms(D, 2, [(7, 3, 1)])],
        ),
        "head + the same head at positions": (["decoder:2:head:0", "decoder:2:head:0@4,5"], [head(D, 2, 0)]),
        "head at overlapping positions": (["decoder:1:head:1@1,2", "decoder:1:head:1@2,3"], [head(D, 1, 1, (1, 2, 3))]),
        "edge of one head + the same edge, all heads": (
            [_self_edge(D, 2, 3, 7, 0), _self_edge(D, 2, 3, 7)],
            [terms(D, 2, [(7, 3, 0), (7, 3, 1)])],
        ),
        "attention block + its head": (
            ["decoder:2:attention:7", "decoder:2:head:1"],
            [attention_out(D, 2, (7,)), head(D, 2, 1, _all_but([7], n))],
        ),
        "attention block everywhere + its head": (
            ["decoder:2:attention:*", "decoder:2:head:0@3"],
            [attention_out(D, 2)],
        ),
        "attention block + an edge into it": (
            ["decoder:2:attention:7", _self_edge(D, 2, 3, 7)],
            [attention_out(D, 2, (7,))],
        ),
        "attention block + an edge into another token": (
            ["decoder:1:attention:7", _self_edge(D, 1, 3, 6, 1)],
            [attention_out(D, 1, (7,)), terms(D, 1, [(6, 3, 1)])],
        ),
        "FFN block + its neuron": (
            ["decoder:1:ffn:6", "decoder:1:neuron:7"],
            [ffn(D, 1, (6,)), neuron(D, 1, 7, _all_but([6], n))],
        ),
        "FFN block everywhere + its neuron at a token": (["decoder:2:ffn:*", "decoder:2:neuron:3@5"], [ffn(D, 2)]),
        "neuron + the same neuron at tokens": (["decoder:1:neuron:11", "decoder:1:neuron:11@2,3"], [neuron(D, 1, 11)]),
        "neuron at overlapping tokens": (
            ["decoder:2:neuron:5@1,2,3", "decoder:2:neuron:5@3,7"],
            [neuron(D, 2, 5, (1, 2, 3, 7))],
        ),
        "residual stream + a head below it": (
            ["decoder:1:after_ffn:7", "decoder:1:head:1"],
            [residual(D, 1, (7,)), head(D, 1, 1, _all_but([7], n))],
        ),
        "residual stream + an edge into it below": (
            ["decoder:1:after_ffn:7", _self_edge(D, 1, 3, 7)],
            [residual(D, 1, (7,))],
        ),
        "residual stream + the FFN block and a neuron below it": (
            ["decoder:1:after_ffn:7", "decoder:1:ffn:7", "decoder:1:neuron:4"],
            [residual(D, 1, (7,)), neuron(D, 1, 4, _all_but([7], n))],
        ),
        "residual stream everywhere + the attention block and the embedding below it": (
            ["decoder:1:after_ffn:*", "decoder:1:attention:*", "decoder:0:embedding:2"],
            [residual(D, 1)],
        ),
        "residual stream after the last block + its FFN block and a head": (
            ["decoder:2:after_ffn:7", "decoder:2:ffn:7", "decoder:2:head:0"],
            [residual(D, 2, (7,)), head(D, 2, 0, _all_but([7], n))],
        ),
        "residual stream at every token + at one token": (
            ["decoder:1:after_ffn:*", "decoder:1:after_ffn:4"],
            [residual(D, 1)],
        ),
        "embedding + an edge reading it (disjoint terms: the edge's term of this pass)": (
            ["decoder:0:embedding:3", _self_edge(D, 1, 3, 7, 0)],
            [residual(D, 0, (3,)), terms(D, 1, [(7, 3, 0)])],
        ),
    }


E = "encoder"


def seq2seq_cases(n_decoder: int) -> dict[str, tuple[list[str], list[Piece]]]:
    """Encoder heads and edges, cross-attention heads, blocks and edges (Marian: 9 source tokens)."""
    return {
        "cross head + its own cross edge": (
            ["decoder:2:cross_head:1", _cross_edge(4, 5, 2, 1)],
            [head(D, 2, 1, attention="cross")],
        ),
        "cross head at a token + an all-heads cross edge into it": (
            ["decoder:1:cross_head:0@5", _cross_edge(4, 5, 1)],
            [head(D, 1, 0, (5,), "cross"), terms(D, 1, [(5, 4, 1)], "cross")],
        ),
        "cross-attention block + a cross edge into it": (
            ["decoder:1:cross_attention:5", _cross_edge(2, 5, 1)],
            [attention_out(D, 1, (5,), "cross")],
        ),
        "cross-attention block + its head": (
            ["decoder:2:cross_attention:3", "decoder:2:cross_head:0"],
            [attention_out(D, 2, (3,), "cross"), head(D, 2, 0, _all_but([3], n_decoder), "cross")],
        ),
        "cross edge of one head + all heads": (
            [_cross_edge(6, 2, 2, 1), _cross_edge(6, 2, 2)],
            [terms(D, 2, [(2, 6, 0), (2, 6, 1)], "cross")],
        ),
        "encoder head + its own edge": (["encoder:2:head:0", _self_edge(E, 2, 1, 6, 0)], [head(E, 2, 0)]),
        "encoder head at a token + an all-heads edge into it": (
            ["encoder:1:head:1@6", _self_edge(E, 1, 2, 6)],
            [head(E, 1, 1, (6,)), terms(E, 1, [(6, 2, 0)])],
        ),
        "encoder residual stream + a neuron and an FFN block below it": (
            ["encoder:1:after_ffn:4", "encoder:1:neuron:3", "encoder:1:ffn:4"],
            [residual(E, 1, (4,)), neuron(E, 1, 3, _all_but([4], 9))],
        ),
    }


#: Weights scaled up so that every single edit moves the logits well above the tolerance: at their random
#: init (std 0.02) one neuron or one head of the counterfactual changes the logits by ~1e-5.
LOUDER = ("c_attn.weight", "c_proj.weight", "v_proj.weight", "o_proj.weight", "out_proj.weight", "fc2.weight")
LOUDER += ("down_proj.weight",)


def louder(loaded: LoadedModel, factor: float = 5.0) -> LoadedModel:
    with torch.no_grad():
        for name, parameter in loaded.model.named_parameters():
            if name.endswith(LOUDER):
                parameter.mul_(factor)
    return loaded


@pytest.fixture(scope="module", params=["gpt2", "llama", "marian"])
def family_model(request) -> LoadedModel:
    return louder(build_random_model(request.param, seed=11))


def _inputs(loaded: LoadedModel, mode: str):
    """The clean input and the reference inputs of ``mode``: none (zero), the counterfactual (patch), or
    the counterfactual and a second prompt (mean over prompts)."""
    if loaded.kind == "seq2seq":
        clean = prepare(loaded, SOURCE, TARGET)
        others = [(COUNTERFACTUAL_SOURCE, COUNTERFACTUAL_TARGET), (SECOND_SOURCE, SECOND_TARGET)]
    else:
        clean = prepare(loaded, PROMPT)
        others = [(COUNTERFACTUAL_PROMPT, None), (SECOND_PROMPT, None)]
    count = {"zero": 0, "patch": 1, "mean": 2}[mode]
    return clean, [prepare_like(loaded, clean, text, target) for text, target in others[:count]]


def _engine_logits(loaded: LoadedModel, clean, ids: list[str], mode: str, references) -> torch.Tensor:
    spec = architecture_spec(loaded.model)
    shape = model_shape(spec, clean)
    recorded = None
    if references:
        both = {name: torch.cat([r.inputs[name] for r in references]) for name in references[0].inputs}
        recorded = engine.forward(loaded.model, spec, both, record=True)
    edits = build_edits(resolve_components(ids, shape), torch.tensor([0]), mode, spec, shape, recorded)
    return engine.forward(loaded.model, spec, clean.inputs, edits).logits[0]


@pytest.mark.parametrize("mode", ["zero", "patch", "mean"])
def test_overlapping_components_change_the_union_of_their_terms_once(family_model, mode):
    loaded = family_model
    clean, references = _inputs(loaded, mode)
    n = len(clean.decoder_ids)
    cases = decoder_cases(n) | (seq2seq_cases(n) if loaded.kind == "seq2seq" else {})
    recorded = [_recorded(loaded, reference.inputs) for reference in references]
    untouched = hand_logits(loaded, clean.inputs, [], [])
    for name, (ids, pieces) in cases.items():
        expected = hand_logits(loaded, clean.inputs, pieces, recorded)
        assert (expected - untouched).abs().max() > 1e-5, name  # the union moves the logits: 10x the tolerance
        got = _engine_logits(loaded, clean, ids, mode, references)
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=0, msg=lambda m, name=name: f"{name}: {m}")


def test_a_head_with_its_own_edge_is_the_head_alone():
    """The issue's case on a random GPT-2: the edge's term must not be subtracted a second time."""
    loaded = build_random_model("gpt2", seed=5)
    edge = _self_edge(D, 2, 3, 13, 1)

    def after(ids: list[str]) -> float:
        return intervene(loaded, PROMPT, ids, contrast_token="the").predictions[0].logit_diff_after

    head_alone, edge_alone, both = after(["decoder:2:head:1"]), after([edge]), after(["decoder:2:head:1", edge])
    assert both == pytest.approx(head_alone, abs=1e-6)
    assert abs(both - edge_alone) > 1e-5  # the edge alone moves the prediction otherwise: the test can fail
