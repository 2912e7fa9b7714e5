"""Where each named site is in a model: a module, a hook stage, and a small getter and setter.

:func:`place` resolves a :class:`~attribution.anatomy.sites.Site` through the family adapters
(:func:`~attribution.anatomy.adapters.architecture_spec`) to a :class:`Place`: the module whose call
holds the activation, whether it is in the call's input or output, how to read it in the site's
layout (batch first, see :mod:`attribution.anatomy.sites`) and how to write a replacement back. What
families do differently lives here and in the adapters only:

- the residual stream is a block's first argument, positional or ``hidden_states=``;
- a block's and an attention's output may be a tuple (the tensor first; the probabilities at the
  adapter's ``probabilities_index``);
- values are cut out of a separate or fused projection by the adapter's ``take_values``;
- OPT runs its FFN on ``[B * T, d]``: FFN sites are viewed as ``[B, T, *]`` with the batch size of the
  enclosing block's call (:attr:`Call.batch`);
- BLOOM's attention module returns ``residual + output`` (the residual is its second argument): its
  ``attn.out`` is that output minus the residual, written back as ``residual + replacement``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from attribution.anatomy.adapters import ArchitectureSpec, AttentionSpec, BlockSpec, FFNSpec
from attribution.anatomy.sites import POINTS, SIDES, Site
from attribution.errors import UnsupportedError

Stage = Literal["input", "output"]


@dataclass
class Call:
    """One module call as a hook sees it; setters replace ``args`` / ``kwargs`` / ``output`` wholesale."""

    args: tuple
    kwargs: dict
    output: Any = None
    #: the batch size the enclosing block was called with (for modules that flatten the batch)
    batch: int | None = None


@dataclass(frozen=True)
class Place:
    """Where a site's activation is: in ``stage`` of ``module``'s calls, inside block module ``block``."""

    module: nn.Module
    stage: Stage
    block: nn.Module
    read: Callable[[Call], Any]
    write: Callable[[Call, torch.Tensor], None] | None = None  # None: read only


# ------------------------------------------------------------------------------------------ getters, setters


def _hidden(call: Call) -> torch.Tensor:
    return call.args[0] if call.args else call.kwargs["hidden_states"]


def _set_hidden(call: Call, tensor: torch.Tensor) -> None:
    if call.args:
        call.args = (tensor, *call.args[1:])
    else:
        call.kwargs = {**call.kwargs, "hidden_states": tensor}


def _other_arguments(call: Call) -> tuple[tuple, dict]:
    return call.args[1:], {name: value for name, value in call.kwargs.items() if name != "hidden_states"}


def _first_output(call: Call) -> torch.Tensor:
    return call.output[0] if isinstance(call.output, tuple) else call.output


def _set_first_output(call: Call, tensor: torch.Tensor) -> None:
    call.output = (tensor, *call.output[1:]) if isinstance(call.output, tuple) else tensor


def _batch(call: Call) -> int:
    """The enclosing block's batch size (recorded by the block's own hook, which runs before any inside it)."""
    if call.batch is None:
        raise UnsupportedError("A flattened activation was reached outside a block whose batch size is known.")
    return call.batch


def _per_row(tensor: torch.Tensor, call: Call) -> torch.Tensor:
    """``[B, T, *]``: a flattened ``[B * T, *]`` tensor viewed with the block's batch size."""
    return tensor if tensor.dim() == 3 else tensor.view(_batch(call), -1, tensor.shape[-1])


def _input(call: Call) -> torch.Tensor:
    return _per_row(call.args[0], call)


def _set_input(call: Call, tensor: torch.Tensor) -> None:
    call.args = (tensor.reshape(call.args[0].shape), *call.args[1:])


def _output(call: Call) -> torch.Tensor:
    return _per_row(call.output, call)


def _set_output(call: Call, tensor: torch.Tensor) -> None:
    call.output = tensor.reshape(call.output.shape)


# ------------------------------------------------------------------------------------------ one place per point


def _values(attention: AttentionSpec) -> Callable[[Call], torch.Tensor]:
    def read(call: Call) -> torch.Tensor:
        output = call.output
        taken = attention.take_values(output.reshape(-1, output.shape[-1]))  # [B * S, heads_kv, head_dim]
        batch = output.shape[0] if output.dim() == 3 else _batch(call)
        return taken.reshape(batch, -1, *taken.shape[1:])

    return read


def _probabilities(attention: AttentionSpec) -> tuple[Callable, Callable]:
    index = attention.probabilities_index

    def read(call: Call) -> torch.Tensor:
        probabilities = call.output[index] if isinstance(call.output, tuple) else None
        if probabilities is None:
            raise UnsupportedError(
                "This model's attention does not return its probabilities: load it with eager attention "
                "(attribution.models.load_model does by default)."
            )
        return probabilities

    def write(call: Call, tensor: torch.Tensor) -> None:
        call.output = tuple(tensor if i == index else item for i, item in enumerate(call.output))

    return read, write


def _heads(attention: AttentionSpec) -> tuple[Callable, Callable]:
    def read(call: Call) -> torch.Tensor:
        return call.args[0].unflatten(-1, (attention.n_heads, -1))

    def write(call: Call, tensor: torch.Tensor) -> None:
        call.args = (tensor.flatten(-2), *call.args[1:])

    return read, write


def _attention_output(attention: AttentionSpec, block: nn.Module) -> Place:
    if not attention.output_includes_residual:
        return Place(attention.module, "output", block, _first_output, _set_first_output)

    def residual(call: Call) -> torch.Tensor:  # BLOOM's attention takes the residual stream second
        return call.args[1] if len(call.args) > 1 else call.kwargs["residual"]

    def read(call: Call) -> torch.Tensor:
        return _first_output(call) - residual(call)

    def write(call: Call, tensor: torch.Tensor) -> None:
        _set_first_output(call, residual(call) + tensor)

    return Place(attention.module, "output", block, read, write)


def _attention_place(attention: AttentionSpec, block: nn.Module, what: str) -> Place:
    if what == "values":
        return Place(attention.value_module, "output", block, _values(attention))
    if what == "probs":
        return Place(attention.module, "output", block, *_probabilities(attention))
    if what == "head_out":
        return Place(attention.out_module, "input", block, *_heads(attention))
    return _attention_output(attention, block)


def _ffn_place(ffn: FFNSpec, block: nn.Module, what: str) -> Place:
    if what == "act":  # the neuron activations: the output projection's input
        return Place(ffn.out_module, "input", block, _input, _set_input)
    return Place(ffn.out_module, "output", block, _output, _set_output)


def _block_place(block: BlockSpec, point: str) -> Place:
    module = block.module
    if point == "resid_pre":
        return Place(module, "input", module, _hidden, _set_hidden)
    if point == "call_args":
        return Place(module, "input", module, _other_arguments)
    if point == "resid_post":
        return Place(module, "output", module, _first_output, _set_first_output)
    prefix, _, what = point.partition(".")
    if prefix == "ffn":
        return _ffn_place(block.ffn, module, what)
    attention = block.self_attention if prefix == "attn" else block.cross_attention
    if attention is None:
        raise UnsupportedError("This block has no cross-attention.")
    return _attention_place(attention, module, what)


def blocks_of(spec: ArchitectureSpec, side: str) -> list[BlockSpec]:
    """The blocks of one side (an empty encoder for causal models), in order."""
    return spec.encoder_blocks if side == "encoder" else spec.decoder_blocks


def place(spec: ArchitectureSpec, site: Site) -> Place:
    """Where ``site`` is in ``spec``'s model; a block or attention the model lacks is a clear error."""
    if site.point not in POINTS:
        raise ValueError(f"{site}: {site.point!r} is not a point; choose one of {', '.join(POINTS)}.")
    blocks = blocks_of(spec, site.side)
    if not 1 <= site.block <= len(blocks):
        raise UnsupportedError(f"{site}: the {site.side} has {len(blocks)} blocks (numbered from 1).")
    return _block_place(blocks[site.block - 1], site.point)


def all_sites(spec: ArchitectureSpec) -> list[Site]:
    """Every named site of ``spec``'s model, side by side, block by block, in forward order."""
    sites = []
    for side in SIDES:
        for index, block in enumerate(blocks_of(spec, side), start=1):
            cross = block.cross_attention is not None
            sites += [Site(side, index, point) for point in POINTS if cross or not point.startswith("cross_attn.")]
    return sites
