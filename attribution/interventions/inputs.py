"""Inputs of an intervention: the clean input, counterfactual / reference inputs of the same length, batches.

Tokenisation is the model anatomy's (:func:`attribution.anatomy.inputs.prepare_inputs`), the contribution
graph's too, so positions and component ids mean the same tokens in both. Causal models: ``text`` is the prompt and
``target`` an optional continuation. Seq2seq models: ``text`` is the source and ``target`` the target
sentence (generated greedily when None); counterfactuals keep the clean target unless given one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from attribution.anatomy.adapters import ArchitectureSpec
from attribution.anatomy.inputs import prepare_inputs
from attribution.anatomy.shape import ModelShape, shape_of
from attribution.errors import InvalidInputError
from attribution.languages import NO_LANGUAGES, Languages
from attribution.models import LoadedModel


@dataclass
class PreparedInput:
    text: str
    target_text: str
    inputs: dict[str, torch.Tensor]  # batch of one
    source_ids: list[int]  # seq2seq encoder tokens (empty for causal models)
    decoder_ids: list[int]  # the decoder side: the whole sequence of a causal model

    def tokens(self, loaded: LoadedModel) -> tuple[list[str], list[str]]:
        convert = loaded.tokenizer.convert_ids_to_tokens
        source = [str(t) for t in convert(self.source_ids)] if self.source_ids else []
        return source, [str(t) for t in convert(self.decoder_ids)]


def prepare(
    loaded: LoadedModel,
    text: str,
    target: str | None = None,
    *,
    max_tokens: int | None = None,
    role: str = "input",
    languages: Languages = NO_LANGUAGES,
) -> PreparedInput:
    """Check and tokenise an input (``role`` names it in messages: the input, a counterfactual, a reference).

    ``languages`` (already set on the tokenizer by the caller) makes a generated target start with its code.
    """
    text = loaded.validate_text(text, role="input text" if role == "input" else role, max_tokens=max_tokens)
    if target:  # refused before tokenizing when far too long or not valid Unicode
        loaded.precheck_text(target, role="target" if role == "input" else f"{role}'s target", max_tokens=max_tokens)
    inputs, source_ids, decoder_ids, target_text = prepare_inputs(loaded, text, target, max_tokens, languages)
    return PreparedInput(text, target_text, inputs, source_ids, decoder_ids)


def prepare_like(
    loaded: LoadedModel,
    clean: PreparedInput,
    text: str,
    target: str | None = None,
    *,
    role: str = "counterfactual",
    max_tokens: int | None = None,
) -> PreparedInput:
    """Another input that must tokenise to exactly as many tokens as ``clean`` on each side."""
    if target is None and (loaded.kind == "seq2seq" or clean.target_text):
        target = clean.target_text
    other = prepare(loaded, text, target, max_tokens=max_tokens, role=role)
    for side, mine, theirs in (
        ("source", clean.source_ids, other.source_ids),
        ("target", clean.decoder_ids, other.decoder_ids),
    ):
        if len(mine) != len(theirs):
            what = "text" if loaded.kind == "causal" else side
            raise InvalidInputError(
                f"The {role} {what} has {len(theirs)} tokens and the input {len(mine)}: patching and mean "
                "ablation replace activations position by position, so both must have the same length "
                "(change words one for one)."
            )
    return other


def batch(prepared: list[PreparedInput] | PreparedInput, repeat: int = 1) -> dict[str, torch.Tensor]:
    """The inputs of several same-length inputs side by side (or one repeated ``repeat`` times)."""
    if isinstance(prepared, PreparedInput):
        return {name: tensor.repeat(repeat, 1) for name, tensor in prepared.inputs.items()}
    return {name: torch.cat([p.inputs[name] for p in prepared], 0) for name in prepared[0].inputs}


def model_shape(spec: ArchitectureSpec, prepared: PreparedInput) -> ModelShape:
    """The components of ``spec``'s model on the tokens of ``prepared``."""
    return shape_of(spec, n_encoder=len(prepared.source_ids), n_decoder=len(prepared.decoder_ids))
