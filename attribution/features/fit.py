"""A short fit of a SAELens SAE on residual states: what the bundled model's SAE and the tests' SAEs come from.

SAELens's own training runner streams activations from a TransformerLens model; the graph's models are
transformers models, so this fits SAELens's ``StandardSAE`` directly on states read at a graph layer
(:func:`attribution.features.streams.residual_states`): Adam on the reconstruction error (relative to the
states' mean squared norm) plus an L1 penalty on ``a_f·|d_f|``, decoder rows normalised at the end (the
encoder rescaled so the SAE computes the same function). Deterministic for a seed on one thread.
"""

from __future__ import annotations

from typing import Any

import torch

from attribution.errors import InvalidInputError

#: Most states and features one fit takes (it runs in-process).
MAX_STATES = 200_000
MAX_WIDTH = 65_536


def fit_sae(
    states: torch.Tensor, *, width: int, steps: int = 400, l1: float = 2e-2, lr: float = 3e-3, seed: int = 0
) -> Any:
    """A SAELens ``StandardSAE`` with ``width`` features fitted to ``states`` ``[N, d]``."""
    from sae_lens import StandardSAE, StandardSAEConfig

    if states.dim() != 2 or not 0 < len(states) <= MAX_STATES or not 0 < width <= MAX_WIDTH:
        raise InvalidInputError(f"Fit an SAE on 1 to {MAX_STATES:,} states [N, d] with 1 to {MAX_WIDTH:,} features.")
    states = states.detach().float()
    torch.manual_seed(seed)
    sae = StandardSAE(StandardSAEConfig(d_in=states.shape[1], d_sae=width))
    with torch.no_grad():
        sae.b_dec.copy_(states.mean(0))
    optimiser = torch.optim.Adam(sae.parameters(), lr=lr)
    scale = states.pow(2).sum(-1).mean()
    for _ in range(steps):
        activations = sae.encode(states)
        error = (sae.decode(activations) - states).pow(2).sum(-1).mean() / scale
        loss = error + l1 * (activations * sae.W_dec.norm(dim=-1)).sum(-1).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    sae.fold_W_dec_norm()
    for parameter in sae.parameters():
        parameter.requires_grad_(False)
    return sae
