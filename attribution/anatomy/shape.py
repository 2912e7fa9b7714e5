"""A model's dimensions as the interventions and the cost model count them (no torch imported here).

:class:`ModelShape` is what component ids are checked against and what a sweep's maps are laid out
on; :func:`shape_of` reads it off a model's :class:`~attribution.anatomy.adapters.ArchitectureSpec`,
and :func:`resumed_share` says what a row that resumes at a site costs in whole-model passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

from attribution.anatomy.sites import Site

if TYPE_CHECKING:
    from transformers import PretrainedConfig

    from attribution.anatomy.adapters import ArchitectureSpec


@dataclass(frozen=True)
class ModelShape:
    """Layers, heads and FFN width per side (and attention kind), and token positions per side."""

    layers: dict[str, int]  # side -> number of blocks (0 for a causal model's encoder)
    heads: dict[tuple[str, str], int]  # (side, "self" | "cross") -> heads
    ffn_width: dict[str, int]
    tokens: dict[str, int]  # side -> number of token positions


def shape_of(spec: ArchitectureSpec, *, n_encoder: int, n_decoder: int) -> ModelShape:
    """The shape of ``spec``'s model on inputs of ``n_encoder`` source and ``n_decoder`` decoder tokens."""
    decoder = spec.decoder_blocks[0]
    heads = {("decoder", "self"): decoder.self_attention.n_heads}
    ffn_width = {"decoder": decoder.ffn.out_weight.shape[0]}
    if spec.encoder_blocks:
        encoder = spec.encoder_blocks[0]
        heads[("encoder", "self")] = encoder.self_attention.n_heads
        assert decoder.cross_attention is not None  # a decoder with an encoder attends to it
        heads[("decoder", "cross")] = decoder.cross_attention.n_heads
        ffn_width["encoder"] = encoder.ffn.out_weight.shape[0]
    return ModelShape(
        layers={"encoder": len(spec.encoder_blocks), "decoder": len(spec.decoder_blocks)},
        heads=heads,
        ffn_width=ffn_width,
        tokens={"encoder": n_encoder, "decoder": n_decoder},
    )


def resumed_share(shape: ModelShape, site: Site) -> Fraction:
    """The share of one whole-model pass a batch row costs that changes ``site`` and resumes there.

    Blocks below the site compute what the recorded run computed, so a decoder row runs only blocks
    ``site.block`` … L of the decoder (a seq2seq decoder reuses the recorded encoder states):
    ``(L - block + 1) / (encoder blocks + decoder blocks)``. The decoder reads the encoder's final states,
    so an encoder site reruns the whole model: 1. Counted in blocks, as a pass is (the LM head at one
    position is not counted, nor what batching saves).
    """
    if site.side == "encoder":
        return Fraction(1)
    return Fraction(shape.layers["decoder"] - site.block + 1, shape.layers["encoder"] + shape.layers["decoder"])


def config_layers(config: PretrainedConfig) -> int:
    """The number of blocks a model's config declares (the encoder's for a seq2seq model), at least 1;
    for the cost of methods that run per layer on any model, supported by the contribution graph or not."""
    return int(getattr(config, "num_hidden_layers", 0) or getattr(config, "n_layer", 0) or 1)
