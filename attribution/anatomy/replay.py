"""Running part of a model again: one block with the arguments a recorded pass gave it, and the readout.

A patched run that only changes block l and above need not run the blocks below it: it can enter
block l with the recorded residual stream (``resid_pre``) and call each block with the arguments the
model gave it in the recorded pass (``call_args``: masks, rotary cos / sin, position biases, a seq2seq
decoder's encoder states), then read the logits out where they are needed.
"""

from __future__ import annotations

import torch

from attribution.anatomy.adapters import ArchitectureSpec
from attribution.anatomy.places import blocks_of


def for_rows(value, rows: int):
    """A call argument of a batch-1 pass for ``rows`` identical rows.

    Every per-example tensor argument leads with the batch: masks, position ids and biases, rotary
    cos / sin and the encoder's states as ``[1, ...]`` (expanded), ALiBi folded batch-major as
    ``[1 * heads, ...]`` (repeated); one-dimensional tensors (cache positions) have no batch.
    """
    if isinstance(value, torch.Tensor) and value.dim() >= 2:
        if value.shape[0] == 1:
            return value.expand(rows, *value.shape[1:])
        return value.repeat(rows, *([1] * (value.dim() - 1)))
    if isinstance(value, tuple | list):
        return type(value)(for_rows(item, rows) for item in value)
    if isinstance(value, dict):
        return {key: for_rows(item, rows) for key, item in value.items()}
    return value


def run_block(
    spec: ArchitectureSpec, side: str, block: int, hidden: torch.Tensor, call_args: tuple[tuple, dict]
) -> torch.Tensor:
    """Block ``block`` (from 1) of ``side`` on ``hidden`` ``[rows, T, d]``, with the other arguments
    ``call_args`` of a batch-1 pass (its ``call_args`` site); its output ``[rows, T, d]``. Hooks on the
    block run as in any pass."""
    args, kwargs = call_args
    rows = hidden.shape[0]
    output = blocks_of(spec, side)[block - 1].module(hidden, *for_rows(args, rows), **for_rows(kwargs, rows))
    return output[0] if isinstance(output, tuple) else output


def read_out(spec: ArchitectureSpec, states: torch.Tensor) -> torch.Tensor:
    """Next-token logits of decoder states after the last block: the final norm (if any), then the readout."""
    if spec.final_norm is not None:
        states = spec.final_norm(states)
    return spec.readout(states)
