"""Ground truth read from a model, and comparisons of results, shared by several test modules.

``block_outputs`` records the model's own residual stream with hooks on its blocks (what a decomposition
must sum back to); ``assert_same_graph`` is what "the same contribution graph" means when one graph
comes from a batch, an offloaded model or another code path than the other.
"""

from __future__ import annotations

import pytest
import torch

from attribution.anatomy.adapters import architecture_spec
from attribution.models import LoadedModel
from attribution.results import ContributionGraph


def block_outputs(loaded: LoadedModel, inputs) -> dict[str, list[torch.Tensor]]:
    """The model's own residual stream after every block, recorded by hooks on the block modules."""
    spec = architecture_spec(loaded.model)
    outputs: dict[str, list[torch.Tensor]] = {"encoder": [], "decoder": []}
    handles = []
    for side, blocks in (("encoder", spec.encoder_blocks), ("decoder", spec.decoder_blocks)):
        for block in blocks:

            def record(_module, _args, output, side=side):
                tensor = output[0] if isinstance(output, tuple) else output
                outputs[side].append(tensor[0].detach().float())

            handles.append(block.module.register_forward_hook(record))
    with torch.no_grad():
        loaded.model(**inputs, use_cache=False)
    for handle in handles:
        handle.remove()
    return outputs


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _same_ranked(mine: list[tuple], theirs: list[tuple], tolerance: float) -> None:
    assert [name for name, _ in mine] == [name for name, _ in theirs]
    assert [value for _, value in mine] == pytest.approx([value for _, value in theirs], abs=tolerance)


def assert_same_graph(batched: ContributionGraph, alone: ContributionGraph, tolerance: float = 1e-5) -> None:
    """Same tokens, roots, nodes and kept edges; every edge (and head) weight within ``tolerance``, the same
    logit-lens tokens and neurons."""
    assert batched.source_tokens == alone.source_tokens and batched.target_tokens == alone.target_tokens
    assert batched.target_text == alone.target_text and batched.root_tokens == alone.root_tokens
    assert [n.id for n in batched.nodes] == [n.id for n in alone.nodes]
    assert [(e.source, e.target, e.kind) for e in batched.edges] == [(e.source, e.target, e.kind) for e in alone.edges]
    for mine, theirs in zip(batched.edges, alone.edges, strict=True):
        assert mine.weight == pytest.approx(theirs.weight, abs=tolerance)
        assert (mine.head_weights is None) == (theirs.head_weights is None)
        if mine.head_weights is not None:
            assert mine.head_weights == pytest.approx(theirs.head_weights, abs=tolerance)
    for mine, theirs in zip(batched.nodes, alone.nodes, strict=True):
        for field in ("top_tokens", "promoted", "suppressed", "top_neurons"):
            _same_ranked(getattr(mine, field), getattr(theirs, field), 1e-4)
