"""Prompts as a chat model reads them: the user's text inside the tokenizer's chat template.

An instruct model (Qwen2.5-Instruct, SmolLM2-Instruct, Llama-3.2-Instruct...) was trained on conversations
written in its chat template (role markers, turn ends) and answers a bare prompt as it would an unusual
document. Attributing its answer to the bare prompt explains an input it never sees in use; with
:func:`chat_prompt` the attributed input is the text the model reads in a chat, special tokens included,
ending where its answer begins (the template's generation prompt). The result's tokens then show the role
markers too, and they take their share of the attribution.
"""

from __future__ import annotations

from typing import Any

from attribution.errors import InvalidInputError


def has_chat_template(tokenizer: Any) -> bool:
    """Whether ``tokenizer`` carries a chat template (instruct and chat models do; base models usually not)."""
    return bool(getattr(tokenizer, "chat_template", None))


def chat_prompt(tokenizer: Any, text: str) -> str:
    """``text`` as the user's turn of a chat in ``tokenizer``'s template, followed by the start of the answer."""
    if not has_chat_template(tokenizer):
        raise InvalidInputError(
            "This model has no chat template, so the prompt is used as typed: untick 'chat template' "
            "(instruct models carry one)."
        )
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
    )


def prepared_prompt(tokenizer: Any, text: str, *, chat: bool) -> str:
    """The prompt a run attributes: ``text`` in the chat template when ``chat``, else ``text`` as typed."""
    return chat_prompt(tokenizer, text) if chat else text
