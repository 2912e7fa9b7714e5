"""Tiny random-initialised models of real architectures, with an in-process word-level tokenizer.

Tests use these where the weights do not matter (does a method run on this architecture? does a
decomposition sum back to the model's own states?) and nothing may be downloaded. Every family
gets the same whitespace word-level vocabulary, so each token is exactly one word of the text,
and a 2-layer, hidden-size-32 configuration of the real transformers class. Biases get random
non-zero values unless ``random_biases=False``: zero biases hide bugs in exactness tests.

    from tests.random_models import build_random_model, FAMILIES
    loaded = build_random_model("llama", seed=0)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    BartConfig,
    GemmaConfig,
    GPT2Config,
    GPTNeoXConfig,
    LlamaConfig,
    MarianConfig,
    MistralConfig,
    OPTConfig,
    PretrainedConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
    T5Config,
)

from attribution.models import LoadedModel

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)
PAD_ID, BOS_ID, EOS_ID, UNK_ID = range(4)

#: The words every random model knows (anything else becomes ``<unk>``).
WORDS = [
    "when",
    "mary",
    "and",
    "john",
    "went",
    "to",
    "the",
    "store",
    "gave",
    "a",
    "drink",
    "bottle",
    "of",
    "milk",
    "book",
    "der",
    "die",
    "das",
    "haus",
    "katze",
    "hund",
    "sieht",
    "ein",
    "eine",
    "rot",
    "blau",
    "klein",
    "groß",
    "the",
    "cat",
    "dog",
    "house",
    "sees",
    "red",
    "blue",
    "small",
    "big",
    ",",
    ".",
    "?",
    "!",
    "is",
    "was",
    "it",
    "he",
    "she",
    "they",
]
VOCAB = {token: i for i, token in enumerate(dict.fromkeys([*SPECIAL_TOKENS, *WORDS, *(w.capitalize() for w in WORDS)]))}
MAX_POSITIONS = 64
HIDDEN = 32
LAYERS = 2
HEADS = 2
FFN = 64


def word_level_tokenizer(*, append_eos: bool) -> PreTrainedTokenizerFast:
    """A whitespace word-level tokenizer over :data:`VOCAB`; seq2seq encoders get ``</s>`` appended."""
    backend = Tokenizer(models.WordLevel(vocab=VOCAB, unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    if append_eos:
        backend.post_processor = processors.TemplateProcessing(
            single=f"$A {EOS}", pair=f"$A {EOS} $B {EOS}", special_tokens=[(EOS, EOS_ID)]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        model_max_length=MAX_POSITIONS,
    )


_SPECIAL_IDS = {"pad_token_id": PAD_ID, "bos_token_id": BOS_ID, "eos_token_id": EOS_ID}


def _decoder_only_common() -> dict:
    return {
        "vocab_size": len(VOCAB),
        "hidden_size": HIDDEN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "intermediate_size": FFN,
        "max_position_embeddings": MAX_POSITIONS,
        **_SPECIAL_IDS,
    }


def _gpt2(random_biases: bool) -> PretrainedConfig:
    return GPT2Config(
        vocab_size=len(VOCAB), n_positions=MAX_POSITIONS, n_embd=HIDDEN, n_layer=LAYERS, n_head=HEADS, **_SPECIAL_IDS
    )


def _gpt_neox(random_biases: bool) -> PretrainedConfig:
    return GPTNeoXConfig(**_decoder_only_common(), rotary_pct=0.5, attention_bias=True)


def _opt(random_biases: bool) -> PretrainedConfig:
    common = _decoder_only_common()
    common.pop("intermediate_size")
    return OPTConfig(**common, ffn_dim=FFN, word_embed_proj_dim=HIDDEN, enable_bias=True)


def _llama(random_biases: bool) -> PretrainedConfig:
    return LlamaConfig(
        **_decoder_only_common(), num_key_value_heads=1, attention_bias=random_biases, mlp_bias=random_biases
    )


def _qwen2(random_biases: bool) -> PretrainedConfig:
    return Qwen2Config(**_decoder_only_common(), num_key_value_heads=1)


def _mistral(random_biases: bool) -> PretrainedConfig:
    return MistralConfig(**_decoder_only_common(), num_key_value_heads=1, head_dim=HIDDEN // HEADS)


def _gemma(random_biases: bool) -> PretrainedConfig:
    return GemmaConfig(**_decoder_only_common(), num_key_value_heads=1, head_dim=HIDDEN // HEADS)


def _encoder_decoder_common() -> dict:
    return {
        "vocab_size": len(VOCAB),
        "d_model": HIDDEN,
        "encoder_layers": LAYERS,
        "decoder_layers": LAYERS,
        "encoder_attention_heads": HEADS,
        "decoder_attention_heads": HEADS,
        "encoder_ffn_dim": FFN,
        "decoder_ffn_dim": FFN,
        "max_position_embeddings": MAX_POSITIONS,
        **_SPECIAL_IDS,
    }


def _marian(random_biases: bool) -> PretrainedConfig:
    return MarianConfig(**_encoder_decoder_common(), decoder_start_token_id=PAD_ID, decoder_vocab_size=len(VOCAB))


def _bart(random_biases: bool) -> PretrainedConfig:
    return BartConfig(**_encoder_decoder_common(), decoder_start_token_id=EOS_ID, forced_bos_token_id=None)


def _t5(random_biases: bool) -> PretrainedConfig:
    return T5Config(
        vocab_size=len(VOCAB),
        d_model=HIDDEN,
        d_kv=HIDDEN // HEADS,
        d_ff=FFN,
        num_layers=LAYERS,
        num_heads=HEADS,
        decoder_start_token_id=PAD_ID,
        pad_token_id=PAD_ID,
        eos_token_id=EOS_ID,
    )


#: family name -> (config builder, model kind). The family name is transformers' ``model_type``.
CONFIG_BUILDERS: dict[str, tuple[Callable[[bool], PretrainedConfig], str]] = {
    "gpt2": (_gpt2, "causal"),
    "gpt_neox": (_gpt_neox, "causal"),
    "opt": (_opt, "causal"),
    "llama": (_llama, "causal"),
    "qwen2": (_qwen2, "causal"),
    "mistral": (_mistral, "causal"),
    "gemma": (_gemma, "causal"),
    "marian": (_marian, "seq2seq"),
    "bart": (_bart, "seq2seq"),
    "t5": (_t5, "seq2seq"),
}
FAMILIES = tuple(CONFIG_BUILDERS)
CAUSAL_FAMILIES = tuple(f for f, (_, kind) in CONFIG_BUILDERS.items() if kind == "causal")
SEQ2SEQ_FAMILIES = tuple(f for f, (_, kind) in CONFIG_BUILDERS.items() if kind == "seq2seq")


def randomize_biases(model: torch.nn.Module, *, seed: int, std: float = 0.1) -> None:
    """Give every bias parameter random non-zero values (initialisation leaves them at zero)."""
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("bias"):
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)


def build_random_model(family: str, *, seed: int = 0, random_biases: bool = True) -> LoadedModel:
    """A 2-layer random-initialised ``family`` model (eager attention, eval mode) with its tokenizer."""
    if family not in CONFIG_BUILDERS:
        raise ValueError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")
    builder, kind = CONFIG_BUILDERS[family]
    config = builder(random_biases)
    auto_class = AutoModelForSeq2SeqLM if kind == "seq2seq" else AutoModelForCausalLM
    torch.manual_seed(seed)
    model = auto_class.from_config(config, attn_implementation="eager")
    if random_biases:
        randomize_biases(model, seed=seed)
    model.eval()
    tokenizer = word_level_tokenizer(append_eos=kind == "seq2seq")
    return LoadedModel(model_id=f"random-{family}", model=model, tokenizer=tokenizer, kind=kind)
