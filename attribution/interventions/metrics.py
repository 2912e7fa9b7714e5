"""What an intervention did to the prediction: probabilities, logits, logit differences, top-k, KL.

A root position i is a decoder-side position; the model's output there predicts the next token. Its
target token is, unless the caller names one, the token that follows i in the input (the forced
continuation), or past the end the clean run's own prediction (causal) / the end of sentence (seq2seq).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from attribution.errors import InvalidInputError
from attribution.interventions.results import PredictionChange
from attribution.models import LoadedModel
from attribution.validation import check_unicode


def token_id(loaded: LoadedModel, token: str, *, role: str = "target token") -> int:
    """The vocabulary id of ``token``: a token as the tokenizer shows it (``ĠMary``) or text of one token."""
    tokenizer = loaded.tokenizer
    if not isinstance(token, str) or not token:
        raise InvalidInputError(f"The {role} is empty.")
    if len(token) > 100:
        raise InvalidInputError(f"The {role} is one token: at most 100 characters.")
    check_unicode(token, role)
    vocab = tokenizer.get_vocab()
    if token in vocab:
        return vocab[token]
    ids = tokenizer(token, add_special_tokens=False)["input_ids"]
    if len(ids) != 1 or ids[0] == tokenizer.unk_token_id:
        shown = tokenizer.convert_ids_to_tokens(ids)
        raise InvalidInputError(
            f"The {role} {token!r} is not one token of this model's vocabulary (it splits into {shown}); "
            "give a single token, e.g. ' Mary' with its leading space for GPT-2-style tokenizers."
        )
    return ids[0]


def default_targets(loaded: LoadedModel, decoder_ids: Sequence[int], roots: Sequence[int], clean_logits) -> list[int]:
    """Per root: the next input token, or past the end the clean argmax (causal) / end of sentence (seq2seq)."""
    targets = []
    for root in roots:
        if root + 1 < len(decoder_ids):
            targets.append(int(decoder_ids[root + 1]))
        elif loaded.kind == "seq2seq" and loaded.tokenizer.eos_token_id is not None:
            targets.append(int(loaded.tokenizer.eos_token_id))
        else:
            targets.append(int(clean_logits[root].argmax()))
    return targets


def logit_diff(logits: torch.Tensor, target: int, contrast: int | None) -> float | None:
    return None if contrast is None else float(logits[target] - logits[contrast])


def prediction_changes(
    loaded: LoadedModel,
    before: torch.Tensor,
    after: torch.Tensor,
    roots: Sequence[int],
    targets: Sequence[int],
    contrast: int | None,
    input_tokens: Sequence[str],
    top_k: int = 5,
) -> list[PredictionChange]:
    """One :class:`PredictionChange` per root from the clean and intervened logits ``[T, V]``."""
    convert = loaded.tokenizer.convert_ids_to_tokens
    changes = []
    for root, target in zip(roots, targets, strict=True):
        logits_before, logits_after = before[root].double(), after[root].double()
        log_p_before, log_p_after = logits_before.log_softmax(-1), logits_after.log_softmax(-1)
        p_before, p_after = log_p_before.exp(), log_p_after.exp()
        kl = float((p_before * (log_p_before - log_p_after)).sum().clamp_min(0))
        k = min(top_k, p_before.numel())
        best_before = p_before.topk(k).indices.tolist()
        best_after = p_after.topk(k).indices.tolist()
        changes.append(
            PredictionChange(
                position=int(root),
                input_token=input_tokens[root],
                target_token=str(convert(int(target))),
                contrast_token=None if contrast is None else str(convert(int(contrast))),
                probability_before=float(p_before[target]),
                probability_after=float(p_after[target]),
                logit_before=float(logits_before[target]),
                logit_after=float(logits_after[target]),
                logit_diff_before=logit_diff(logits_before, target, contrast),
                logit_diff_after=logit_diff(logits_after, target, contrast),
                kl_divergence=kl,
                top_before=[(str(convert(i)), float(p_before[i])) for i in best_before],
                top_after=[(str(convert(i)), float(p_after[i]), float(p_after[i] - p_before[i])) for i in best_after],
            )
        )
    return changes
