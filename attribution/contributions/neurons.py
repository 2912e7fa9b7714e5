"""FFN neurons of a graph node read as words: what each writes, read through the unembedding, and how it fired.

A graph's FFN node lists its top neurons by index. Neuron ``n`` of block ``l`` writes ``a_n · W_out[n]`` into
the residual stream (``a_n`` its activation at the token, ``W_out[n]`` the FFN output projection's row ``n``,
:class:`~attribution.anatomy.adapters.FFNSpec`). Read through the unembedding, ``W_out[n] · W_U`` (``W_U`` the
output embedding, no norm, no bias) scores every vocabulary token: the highest are the tokens the neuron
promotes when it fires positively, the lowest those it suppresses (Geva et al., 2022). Each reading names the
component id that ablates the neuron at that token (:mod:`attribution.interventions.components`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from attribution.anatomy.adapters import architecture_spec
from attribution.anatomy.hooks import hooked
from attribution.anatomy.places import blocks_of
from attribution.anatomy.sites import Side, Site
from attribution.errors import InvalidInputError
from attribution.interventions.inputs import prepare
from attribution.languages import Languages, check_languages, languages_set
from attribution.model_guard import exclusive_use
from attribution.models import LoadedModel

#: Most neurons one reading takes (each scores the whole vocabulary).
MAX_NEURONS = 32


@dataclass(frozen=True)
class NeuronReading:
    """One FFN neuron at one token: its activation and the tokens its output direction promotes / suppresses."""

    component: str  # e.g. "decoder:2:neuron:53@5": the id that ablates it at this token
    side: str
    layer: int  # block, from 1
    neuron: int
    token_index: int
    activation: float
    promoted: list[tuple[str, float]]  # (token, W_out[n] · W_U[token]), highest first
    suppressed: list[tuple[str, float]]  # lowest first


def read_neurons(
    loaded: LoadedModel,
    text: str,
    *,
    layer: int,
    token_index: int,
    neurons: Sequence[int],
    side: Side = "decoder",
    target: str | None = None,
    k: int = 5,
    max_tokens: int | None = None,
    languages: Languages | None = None,
) -> list[NeuronReading]:
    """The ``neurons`` of block ``layer`` (``side``) at token ``token_index`` of ``text`` (the graph's FFN node
    ``side:layer:ffn:token_index``): activation in this forward pass, and the ``k`` tokens each promotes and
    suppresses (``W_out[n] · W_U``)."""
    neurons = [int(n) for n in neurons]
    if not neurons or len(neurons) > MAX_NEURONS:
        raise InvalidInputError(f"Name 1 to {MAX_NEURONS} neurons to read, not {len(neurons)}.")
    languages = check_languages(loaded, languages)
    with exclusive_use(loaded), languages_set(loaded, languages):
        spec = architecture_spec(loaded.model)
        blocks = blocks_of(spec, side)
        if not 1 <= layer <= len(blocks):
            raise InvalidInputError(f"The {side} has blocks 1 to {len(blocks)}, not {layer}.")
        out_weight = blocks[layer - 1].ffn.out_weight  # [d_ff, d_model]
        if not all(0 <= n < out_weight.shape[0] for n in neurons):
            raise InvalidInputError(f"Block {layer}'s FFN has neurons 0 to {out_weight.shape[0] - 1}.")
        clean = prepare(loaded, text, target, max_tokens=max_tokens, languages=languages)
        n_tokens = len(clean.source_ids if side == "encoder" else clean.decoder_ids)
        if not 0 <= token_index < n_tokens:
            raise InvalidInputError(f"The {side} has tokens 0 to {n_tokens - 1}, not {token_index}.")
        captured: dict[str, torch.Tensor] = {}

        def keep(activation: torch.Tensor, site: Site) -> None:
            captured["act"] = activation[0, token_index].detach().float()

        with hooked(spec, {Site(side, layer, "ffn.act"): keep}), torch.no_grad():
            loaded.model(**clean.inputs)
        unembedding = loaded.model.get_output_embeddings().weight.detach().float()  # [vocab, d_model]
        scores = out_weight[neurons].detach().float() @ unembedding.T  # [neurons, vocab]
    k = min(k, scores.shape[1])
    return [
        NeuronReading(
            component=f"{side}:{layer}:neuron:{neuron}@{token_index}",
            side=side,
            layer=layer,
            neuron=neuron,
            token_index=token_index,
            activation=float(captured["act"][neuron]),
            promoted=_tokens(loaded, scores[row].topk(k)),
            suppressed=_tokens(loaded, (-scores[row]).topk(k), negate=True),
        )
        for row, neuron in enumerate(neurons)
    ]


def _tokens(loaded: LoadedModel, top: torch.return_types.topk, *, negate: bool = False) -> list[tuple[str, float]]:
    tokens = loaded.tokenizer.convert_ids_to_tokens(top.indices.tolist())
    sign = -1.0 if negate else 1.0
    return [(str(token), sign * float(value)) for token, value in zip(tokens, top.values.tolist(), strict=True)]
