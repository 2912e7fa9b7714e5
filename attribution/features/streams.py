"""The residual stream of one side at every graph layer, read with the interventions engine's hooks.

Graph layer 0 is the embedding (the input of block 1), layer l the output of block l: what the contribution
graph's ``embedding`` / ``after_ffn`` nodes are, and what residual-stream SAEs read.
"""

from __future__ import annotations

import torch

from attribution.anatomy.adapters import ArchitectureSpec
from attribution.anatomy.places import blocks_of
from attribution.errors import InvalidInputError
from attribution.interventions import engine
from attribution.interventions.components import Side
from attribution.models import LoadedModel


def check_side(spec: ArchitectureSpec, side: str) -> Side:
    """``side`` when the model has it (a causal model has only a decoder); else one clear error."""
    if side not in ("encoder", "decoder") or not blocks_of(spec, side):
        raise InvalidInputError(f"This model has no {side!r} side: choose the decoder (or a seq2seq model's encoder).")
    return side  # type: ignore[return-value]  # checked to be one of the two sides just above


def residual_states(
    loaded: LoadedModel,
    spec: ArchitectureSpec,
    inputs: dict[str, torch.Tensor],
    side: Side,
    edits: list[engine.Edit] | None = None,
) -> torch.Tensor:
    """``[B, L + 1, T, d]`` float32: the residual stream of ``side`` at every graph layer of one forward pass."""
    recording = engine.forward(loaded.model, spec, inputs, edits or (), checkpoint=True)
    n_blocks = len(blocks_of(spec, side))
    layers = [recording.block_inputs[(side, block)] for block in range(1, n_blocks + 1)]
    return torch.stack([*layers, recording.final_outputs[side]], dim=1).float()
