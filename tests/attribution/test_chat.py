"""Chat templates: the attributed prompt is what an instruct model reads in a chat, role markers included."""

from __future__ import annotations

import pytest

from attribution.chat import chat_prompt, has_chat_template, prepared_prompt
from attribution.errors import InvalidInputError
from attribution.inseq_runner import attribute
from tests.support.published_models import stand_in

#: A ChatML chat template (the conversation format of Qwen2.5-Instruct and SmolLM2-Instruct), written here.
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
PROMPT = "When Mary and John went to the store, John gave a drink to"


@pytest.fixture
def chat_model():
    """A one-layer Qwen2.5-Instruct stand-in whose byte-level BPE knows ChatML's markers as special tokens."""
    loaded = stand_in("Qwen/Qwen2.5-0.5B-Instruct", small=True)
    loaded.tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    loaded.tokenizer.chat_template = CHATML
    loaded.model.resize_token_embeddings(len(loaded.tokenizer))
    return loaded


def test_the_chat_prompt_is_the_users_turn_then_the_start_of_the_answer(chat_model):
    expected = f"<|im_start|>user\n{PROMPT}<|im_end|>\n<|im_start|>assistant\n"
    assert chat_prompt(chat_model.tokenizer, PROMPT) == expected
    assert prepared_prompt(chat_model.tokenizer, PROMPT, chat=True) == expected
    assert prepared_prompt(chat_model.tokenizer, PROMPT, chat=False) == PROMPT
    tokens = chat_model.tokenizer.tokenize(expected)
    assert tokens.count("<|im_start|>") == 2 and tokens.count("<|im_end|>") == 1  # each marker one token


def test_an_attribution_of_the_chat_prompt_explains_the_role_markers_too(chat_model):
    shown = chat_prompt(chat_model.tokenizer, PROMPT)
    result = attribute(chat_model, shown, method="saliency", target="Mary", step_scores=())
    assert result.target_tokens[0] == "<|im_start|>"  # what the model read first
    assert [t for t in result.target_tokens if t.startswith("<|im_")] == ["<|im_start|>", "<|im_end|>", "<|im_start|>"]
    marker = result.target_tokens.index("<|im_end|>")
    assert result.target_scores[marker, 0] > 0  # the turn's end takes its share of the answer's saliency


def test_a_model_without_a_chat_template_says_so():
    plain = stand_in("gpt2", small=True)
    assert not has_chat_template(plain.tokenizer)
    with pytest.raises(InvalidInputError, match="no chat template"):
        chat_prompt(plain.tokenizer, PROMPT)
