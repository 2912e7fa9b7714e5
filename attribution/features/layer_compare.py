"""Two prompts compared layer by layer (TransformerLens's habit): :func:`compare_prompts`.

Both prompts run in one batch; at every graph layer and token position the two residual states are compared
(cosine, relative L2), and so are the two contributions of each block (its output minus its input). The
prompts must tokenise to the same length, the rule activation patching uses (the second prompt is prepared
with :func:`attribution.interventions.inputs.prepare_like`, as a counterfactual is), so position ``t`` means
the same slot in both; the layer where the states first differ by more than a threshold is marked.
"""

from __future__ import annotations

import torch

from attribution.anatomy.adapters import architecture_spec
from attribution.errors import InvalidInputError
from attribution.features.results import LayerComparison
from attribution.features.streams import check_side, residual_states
from attribution.interventions.inputs import batch, prepare, prepare_like
from attribution.model_guard import exclusive_use
from attribution.models import LoadedModel

#: Relative L2 above which two states count as diverged (by default).
DEFAULT_THRESHOLD = 0.5


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity over the last axis; 1 where both vectors are zero, 0 where one is."""
    norms = a.norm(dim=-1) * b.norm(dim=-1)
    both_zero = (a.norm(dim=-1) == 0) & (b.norm(dim=-1) == 0)
    value = (a * b).sum(-1) / norms.clamp_min(torch.finfo(a.dtype).tiny)
    return torch.where(both_zero, torch.ones_like(value), torch.where(norms == 0, torch.zeros_like(value), value))


def relative_l2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``|a - b| / max(|a|, |b|)`` over the last axis (0 where both are zero): symmetric, between 0 and 2."""
    scale = torch.maximum(a.norm(dim=-1), b.norm(dim=-1))
    return torch.where(scale == 0, torch.zeros_like(scale), (a - b).norm(dim=-1) / scale.clamp_min(1e-30))


def divergence_layer(state_relative_l2: torch.Tensor, threshold: float) -> int | None:
    """The first layer (row) where any position's relative L2 exceeds ``threshold``; None when none does."""
    over = (state_relative_l2 > threshold).any(dim=1).nonzero()
    return int(over[0]) if len(over) else None


def _rows(matrix: torch.Tensor) -> list[list[float | None]]:
    return [[float(v) for v in row] for row in matrix.tolist()]


def compare_prompts(
    loaded: LoadedModel,
    text_a: str,
    text_b: str,
    *,
    side: str = "decoder",
    target: str | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    max_tokens: int | None = None,
) -> LayerComparison:
    """Prompts ``text_a`` and ``text_b`` (same token count) compared on ``side``'s residual stream, layer by layer.

    Seq2seq models: the texts are sources, both read with the same ``target`` (generated from ``text_a`` when
    None); ``side="encoder"`` compares the encoder's states, ``"decoder"`` the decoder's.
    """
    if not isinstance(threshold, int | float) or not 0 < threshold <= 2:
        raise InvalidInputError(f"The divergence threshold is a relative L2 in (0, 2], not {threshold!r}.")
    with exclusive_use(loaded):
        spec = architecture_spec(loaded.model)
        checked = check_side(spec, side)
        first = prepare(loaded, text_a, target, max_tokens=max_tokens)
        second = prepare_like(loaded, first, text_b, None, role="second prompt", max_tokens=max_tokens)
        states = residual_states(loaded, spec, batch([first, second]), checked)  # [2, L + 1, T, d]
    blocks = states[:, 1:] - states[:, :-1]
    state_l2 = relative_l2(states[0], states[1])
    tokens = {name: prepared.tokens(loaded) for name, prepared in (("a", first), ("b", second))}
    pick = 0 if checked == "encoder" else 1
    return LayerComparison(
        provenance=loaded.provenance(),
        side=checked,
        text_a=first.text,
        text_b=second.text,
        tokens_a=tokens["a"][pick],
        tokens_b=tokens["b"][pick],
        state_cosine=_rows(cosine(states[0], states[1])),
        state_relative_l2=_rows(state_l2),
        block_cosine=_rows(cosine(blocks[0], blocks[1])),
        block_relative_l2=_rows(relative_l2(blocks[0], blocks[1])),
        threshold=float(threshold),
        divergence_layer=divergence_layer(state_l2, threshold),
    )
