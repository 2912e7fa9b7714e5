"""What a model reads for a text: token ids per side, the same for the contribution graph and interventions.

Causal models read the prompt followed by its continuation (``target``), tokenised as one text the way
Inseq's attribution reads it. Seq2seq models read the source on the encoder side and the decoder start
token followed by the target on the decoder side; a missing target is generated greedily. Token
positions and component ids of both the graph and the interventions index these ids.
"""

from __future__ import annotations

import torch

from attribution.errors import InvalidInputError
from attribution.languages import NO_LANGUAGES, Languages, generation_kwargs
from attribution.models import LoadedModel, decode_text, prompt_with_continuation

#: Longest target generated when a seq2seq model is given no target.
MAX_GENERATED_TOKENS = 64


def prepare_inputs(
    loaded: LoadedModel,
    text: str,
    target: str | None,
    max_tokens: int | None,
    languages: Languages = NO_LANGUAGES,
) -> tuple[dict[str, torch.Tensor], list[int], list[int], str]:
    """Model inputs (a batch of one), source ids (seq2seq), decoder-side ids, and the target text explained.

    Tokenises with the tokenizer's current languages (callers set ``languages`` with
    :func:`~attribution.languages.languages_set`); ``languages`` makes generation start with the target code.
    """
    tokenizer, device = loaded.tokenizer, loaded.device
    if loaded.kind == "causal":
        # With a target: the same whole text Inseq attribution reads (so both give the same tokens).
        whole = prompt_with_continuation(text, target) if target else text
        ids = tokenizer(whole, add_special_tokens=True)["input_ids"]
        limit = min(x for x in (max_tokens, loaded.max_input_tokens, 10**9) if x)
        if len(ids) > limit:
            raise InvalidInputError(f"Prompt and target are {len(ids)} tokens long; at most {limit} are accepted here.")
        return {"input_ids": torch.tensor([ids], device=device)}, [], ids, target or ""
    source_ids = tokenizer(text, add_special_tokens=True)["input_ids"]
    start = loaded.config.decoder_start_token_id
    eos = tokenizer.eos_token_id
    if target is None:
        longest = min(MAX_GENERATED_TOKENS, (loaded.max_input_tokens or MAX_GENERATED_TOKENS + 1) - 1)
        with torch.no_grad():
            # transformers 5 types generate() on GenerationMixin, which every Auto*LM class loaded here mixes in
            generated = loaded.model.generate(  # type: ignore[operator]
                torch.tensor([source_ids], device=device),
                max_new_tokens=longest,
                do_sample=False,
                num_beams=1,
                **generation_kwargs(loaded, languages),
            )[0].tolist()
        decoder_ids = generated[:-1] if generated[-1] == eos and len(generated) > 1 else generated
        target = decode_text(tokenizer, generated)
    else:
        if not target.strip():
            raise InvalidInputError("The target text is empty: give a translation or leave it out to generate one.")
        labels = tokenizer(text_target=target, add_special_tokens=True)["input_ids"]
        decoder_ids = [start, *(labels[:-1] if labels and labels[-1] == eos else labels)]
        limit = min(x for x in (max_tokens, loaded.max_input_tokens, 10**9) if x)
        if len(decoder_ids) > limit:
            raise InvalidInputError(f"The target is {len(decoder_ids)} tokens long; at most {limit} are accepted here.")
    inputs = {
        "input_ids": torch.tensor([source_ids], device=device),
        "decoder_input_ids": torch.tensor([decoder_ids], device=device),
    }
    return inputs, source_ids, decoder_ids, target


def pad_token_id(loaded: LoadedModel) -> int:
    """The id padded positions get: the model's own pad id (M2M-100 counts positions from it), else any id
    (masked positions are never read)."""
    for candidate in (loaded.model.config.pad_token_id, loaded.tokenizer.pad_token_id, loaded.tokenizer.eos_token_id):
        if isinstance(candidate, int):
            return candidate
    return 0
