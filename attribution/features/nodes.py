"""The SAE features active at one contribution-graph node: :func:`node_features`.

A node's state ``x`` (the residual stream at an ``embedding`` or ``after_ffn`` node) is, for an SAE whose
decoder is affine, exactly ``b_dec + Σ_f a_f d_f + error`` with ``a = encode(x)`` and ``error = x - decode(a)``:
:func:`decompose_state` returns these parts (the listed features, the unlisted active ones summed, the bias and
the error), so the view states what the SAE misses instead of hiding it. What a feature's term does to the
prediction is read through the node's logit lens (the graph's): the tokens whose logit-lens logit the term
``a_f d_f`` raises or lowers, ``lens(x) - lens(x - a_f d_f)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from attribution.anatomy.adapters import architecture_spec
from attribution.contributions.logit_lens import LensRequest, LogitLens
from attribution.errors import InvalidInputError
from attribution.features.dictionary import FeatureDictionary
from attribution.features.results import FeatureRow, NodeFeatures
from attribution.features.streams import residual_states
from attribution.interventions.inputs import prepare
from attribution.model_guard import exclusive_use
from attribution.models import LoadedModel
from attribution.results import NODE_KINDS

#: Most features one node view lists, and most tokens per promoted / suppressed list.
MAX_FEATURES = 100
MAX_LENS_TOKENS = 20


@dataclass
class FeatureTerms:
    """``state = bias + terms.sum(0) + rest + error`` (float32); ``features`` sorted by activation, largest first."""

    features: torch.Tensor  # [k] feature indices
    activations: torch.Tensor  # [k]
    terms: torch.Tensor  # [k, d]: a_f d_f
    bias: torch.Tensor  # [d]
    rest: torch.Tensor  # [d]: the unlisted active features' terms, summed
    error: torch.Tensor  # [d]
    active: int


def decompose_state(dictionary: FeatureDictionary, state: torch.Tensor, k: int) -> FeatureTerms:
    """The SAE's decomposition of one state ``[d]`` with its ``k`` most active features listed."""
    state = state.float()
    activations = dictionary.encode(state[None])[0]
    with torch.no_grad():
        reconstruction = dictionary.sae.decode(activations.to(dictionary.sae.W_dec.dtype)[None])[0].float()
    active = int((activations != 0).sum())
    top = activations.topk(min(k, active)) if active else None
    features = top.indices if top is not None else torch.zeros(0, dtype=torch.long)
    listed = activations[features]
    unlisted = activations.clone()
    unlisted[features] = 0
    directions = dictionary.sae.W_dec.detach().float()
    return FeatureTerms(
        features=features,
        activations=listed,
        terms=listed[:, None] * directions[features],
        bias=dictionary.decoder_bias,
        rest=unlisted @ directions,
        error=state - reconstruction,
        active=active,
    )


def parse_residual_node(node: str, dictionary: FeatureDictionary) -> tuple[int, int]:
    """(layer, token) of a graph node id the SAE reads (``decoder:2:after_ffn:5``); anything else is one error."""
    parts = node.split(":") if isinstance(node, str) and len(node) <= 100 else []
    if len(parts) != 4 or parts[2] not in NODE_KINDS or not parts[1].isdigit() or not parts[3].lstrip("-").isdigit():
        raise InvalidInputError(f"{node[:100]!r} is not a graph node id (side:layer:kind:token).")
    side, layer, kind, token = parts[0], int(parts[1]), parts[2], int(parts[3])
    if kind not in ("embedding", "after_ffn"):
        raise InvalidInputError(
            f"{node}: SAE features are read at residual-stream nodes between blocks (embedding, after_ffn), not {kind}."
        )
    if (side, layer) != (dictionary.side, dictionary.layer):
        raise InvalidInputError(
            f"{node}: the SAE {dictionary.name} reads the {dictionary.side} residual stream "
            f"at layer {dictionary.layer}."
        )
    return layer, token


def node_features(
    loaded: LoadedModel,
    text: str,
    node: str,
    dictionary: FeatureDictionary,
    *,
    target: str | None = None,
    k: int = 10,
    lens_k: int = 5,
    final_norm: bool = True,
    max_tokens: int | None = None,
) -> NodeFeatures:
    """The ``k`` most active features of ``dictionary`` at graph node ``node`` of ``text`` (the graph's tokens).

    ``target``: a seq2seq model's target sentence (generated when None). ``final_norm``: read the logit lens
    through the final norm, as the graph does by default.
    """
    if not isinstance(k, int) or not 0 < k <= MAX_FEATURES:
        raise InvalidInputError(f"k must be an integer from 1 to {MAX_FEATURES}, not {k!r}.")
    if not isinstance(lens_k, int) or not 0 < lens_k <= MAX_LENS_TOKENS:
        raise InvalidInputError(f"lens_k must be an integer from 1 to {MAX_LENS_TOKENS}, not {lens_k!r}.")
    layer, token = parse_residual_node(node, dictionary)
    with exclusive_use(loaded):
        spec = architecture_spec(loaded.model)
        prepared = prepare(loaded, text, target, max_tokens=max_tokens)
        states = residual_states(loaded, spec, prepared.inputs, dictionary.side)[0, layer]  # [T, d]
        if not -len(states) <= token < len(states):
            raise InvalidInputError(f"{node}: token {token} is out of range (the {dictionary.side} has {len(states)}).")
        token %= len(states)
        state = states[token]
        if state.shape[-1] != dictionary.sae.cfg.d_in:
            raise InvalidInputError(
                f"The SAE {dictionary.name} reads {dictionary.sae.cfg.d_in}-wide states; "
                f"this model's are {state.shape[-1]}."
            )
        parts = decompose_state(dictionary, state, k)
        lens = LogitLens(spec, loaded.tokenizer, final_norm=final_norm)
        reads = lens.read([LensRequest(state, before=state - term, top=False) for term in parts.terms], lens_k)
    source_tokens, target_tokens = prepared.tokens(loaded)
    state_norm = float(state.norm())
    error_norm = float(parts.error.norm())
    return NodeFeatures(
        provenance=loaded.provenance(),
        source_text=prepared.text,
        target_text=prepared.target_text,
        source_tokens=source_tokens,
        target_tokens=target_tokens,
        node=f"{dictionary.side}:{layer}:{'embedding' if layer == 0 else 'after_ffn'}:{token}",
        sae_name=dictionary.name,
        state_norm=state_norm,
        error_norm=error_norm,
        bias_norm=float(parts.bias.norm()),
        rest_norm=float(parts.rest.norm()),
        reconstruction_share=1.0 - (error_norm / state_norm) ** 2 if state_norm else 0.0,
        active_features=parts.active,
        features=[
            FeatureRow(
                feature=int(feature),
                activation=float(activation),
                term_norm=float(term.norm()),
                promoted=read.promoted,
                suppressed=read.suppressed,
                neuronpedia_url=dictionary.neuronpedia_url(int(feature)),
            )
            for feature, activation, term, read in zip(
                parts.features, parts.activations, parts.terms, reads, strict=True
            )
        ],
    )
