"""Logit lens for residual-stream states: what the model would predict if it stopped here.

``top_tokens``: the next-token distribution read from a state through the (optional) final norm
and the unembedding, top k by probability. At the last layer with the final norm this is the
model's own prediction. ``promoted`` / ``suppressed``: for one block, the tokens whose logit-lens
logit the block raised (lowered) most, i.e. ``logits(state after) - logits(state before)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from attribution.anatomy.adapters import ArchitectureSpec

#: States read out per matrix product (bounds the [chunk, vocab] logits held at once).
CHUNK = 128


@dataclass
class LensRequest:
    """One node: its state, and the state before its block when promoted/suppressed are wanted."""

    state: torch.Tensor  # [d]
    before: torch.Tensor | None = None
    top: bool = True


@dataclass
class LensResult:
    top_tokens: list[tuple[str, float]]
    promoted: list[tuple[str, float]]
    suppressed: list[tuple[str, float]]


class LogitLens:
    def __init__(self, spec: ArchitectureSpec, tokenizer: PreTrainedTokenizerBase, *, final_norm: bool) -> None:
        self.spec = spec
        self.tokenizer = tokenizer
        self.final_norm = final_norm and spec.final_norm is not None

    def logits(self, states: torch.Tensor) -> torch.Tensor:
        """``[N, d]`` float32 states -> ``[N, vocab]`` float32 logits."""
        norm = self.spec.final_norm if self.final_norm else None
        reference = next(norm.parameters()) if norm is not None else None
        dtype = reference.dtype if reference is not None else states.dtype
        with torch.no_grad():
            x = states.to(dtype)
            if norm is not None:
                x = norm(x)
            return self.spec.readout(x).float()

    def _tokens(self, ids: torch.Tensor, values: torch.Tensor) -> list[tuple[str, float]]:
        tokens = self.tokenizer.convert_ids_to_tokens(ids.tolist())
        return [(str(t), float(v)) for t, v in zip(tokens, values.tolist(), strict=True)]

    def read(self, requests: list[LensRequest], k: int) -> list[LensResult]:
        """Top tokens and promoted / suppressed tokens of each request, ``CHUNK`` requests per matrix product.

        A route reads the same state several times (a block's output is the ``after_ffn`` node's state
        and the ``ffn`` node's; the state after attention is one node's state and the next one's
        ``before``): each distinct state of a chunk goes through the unembedding once.
        """
        results = []
        for start in range(0, len(requests), CHUNK):
            chunk = requests[start : start + CHUNK]
            distinct, index = _distinct([r.state for r in chunk] + [r.before for r in chunk if r.before is not None])
            logits = self.logits(torch.stack(distinct))
            k = min(k, logits.shape[-1])
            befores = iter(index[len(chunk) :])
            for request, position in zip(chunk, index, strict=False):
                top: list[tuple[str, float]] = []
                if request.top:
                    best = logits[position].softmax(-1).topk(k)
                    top = self._tokens(best.indices, best.values)
                promoted = suppressed = []
                if request.before is not None:
                    delta = logits[position] - logits[next(befores)]
                    up, down = delta.topk(k), (-delta).topk(k)
                    promoted = self._tokens(up.indices, up.values)
                    suppressed = self._tokens(down.indices, -down.values)
                results.append(LensResult(top, promoted, suppressed))
        return results


def _distinct(states: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[int]]:
    """The distinct tensors among ``states`` (views of the same memory with the same shape count once) and the
    position of each state among them."""
    positions: dict[tuple, int] = {}
    distinct: list[torch.Tensor] = []
    index = []
    for state in states:
        key = (state.device, state.dtype, state.data_ptr(), tuple(state.shape), state.stride())
        if key not in positions:
            positions[key] = len(distinct)
            distinct.append(state)
        index.append(positions[key])
    return distinct, index
