"""Tiny random-initialised models of real architectures, with an in-process word-level tokenizer.

Tests use these where the weights do not matter (does a method run on this architecture? does a
decomposition sum back to the model's own states?) and nothing may be downloaded. Every family
gets the same whitespace word-level vocabulary, so each token is exactly one word of the text,
and a 2-layer, hidden-size-32 configuration of the real transformers class. Biases get random
non-zero values unless ``random_biases=False``: zero biases hide bugs in exactness tests.

    from tests.support.random_models import build_random_model, FAMILIES
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
    BloomConfig,
    FalconConfig,
    Gemma2Config,
    Gemma3TextConfig,
    GemmaConfig,
    GPT2Config,
    GPTBigCodeConfig,
    GPTNeoXConfig,
    LlamaConfig,
    M2M100Config,
    MarianConfig,
    MBartConfig,
    MistralConfig,
    MT5Config,
    Olmo2Config,
    OPTConfig,
    Phi3Config,
    PretrainedConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen3Config,
    T5Config,
    UMT5Config,
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


def _gemma_wide_heads(random_biases: bool) -> PretrainedConfig:
    # Gemma-7B's layout: heads * head_dim (here 2 * 24) wider than the hidden size (32)
    return GemmaConfig(**_decoder_only_common(), num_key_value_heads=1, head_dim=24)


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


def _t5_common() -> dict:
    return {
        "vocab_size": len(VOCAB),
        "d_model": HIDDEN,
        "d_kv": HIDDEN // HEADS,
        "d_ff": FFN,
        "num_layers": LAYERS,
        "num_heads": HEADS,
        "decoder_start_token_id": PAD_ID,
        "pad_token_id": PAD_ID,
        "eos_token_id": EOS_ID,
    }


def _t5(random_biases: bool) -> PretrainedConfig:
    return T5Config(**_t5_common())


def _t5_v1_1(random_biases: bool) -> PretrainedConfig:
    # T5 v1.1 / FLAN-T5: gated-GELU FFN and an untied LM head, so the decoder output is not rescaled
    # (transformers >= 5 keeps ``tie_word_embeddings`` True and reads the untying from ``scale_decoder_outputs``)
    return T5Config(**_t5_common(), feed_forward_proj="gated-gelu", tie_word_embeddings=False)


def _mt5(random_biases: bool) -> PretrainedConfig:
    return MT5Config(**_t5_common())  # gated-GELU FFN, untied LM head (no output rescaling)


def _umt5(random_biases: bool) -> PretrainedConfig:
    return UMT5Config(**_t5_common())  # a relative position bias in every layer


def _qwen3(random_biases: bool) -> PretrainedConfig:
    return Qwen3Config(
        **_decoder_only_common(), num_key_value_heads=1, head_dim=HIDDEN // HEADS, attention_bias=random_biases
    )


def _gemma2(random_biases: bool) -> PretrainedConfig:
    # a short sliding window and small soft-caps so that both change the numbers on a 14-token prompt
    return Gemma2Config(
        **_decoder_only_common(),
        num_key_value_heads=1,
        head_dim=HIDDEN // HEADS,
        query_pre_attn_scalar=HIDDEN // HEADS,
        sliding_window=4,
        attn_logit_softcapping=2.0,
        final_logit_softcapping=0.5,
        attention_bias=random_biases,
    )


def _gemma3_text(random_biases: bool) -> PretrainedConfig:
    return Gemma3TextConfig(
        **_decoder_only_common(),
        num_key_value_heads=1,
        head_dim=HIDDEN // HEADS,
        query_pre_attn_scalar=HIDDEN // HEADS,
        sliding_window=4,
        layer_types=["sliding_attention", "full_attention"],
        attention_bias=random_biases,
    )


def _phi3(random_biases: bool) -> PretrainedConfig:
    # fused qkv_proj with grouped-query heads, rotary on half of each head (Phi-3.5 / Phi-4-mini)
    return Phi3Config(
        **_decoder_only_common() | {"num_attention_heads": 2 * HEADS},
        num_key_value_heads=HEADS,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5},
    )


def _olmo2(random_biases: bool) -> PretrainedConfig:
    return Olmo2Config(**_decoder_only_common(), num_key_value_heads=1, attention_bias=random_biases)


def _falcon_common() -> dict:
    common = _decoder_only_common()
    common.pop("intermediate_size")
    return {**common, "ffn_hidden_size": FFN, "bias": True}


def _falcon(random_biases: bool) -> PretrainedConfig:
    """Falcon-7B's layout: multi-query attention, parallel attention and MLP, rotary."""
    return FalconConfig(**_falcon_common(), multi_query=True, parallel_attn=True)


def _falcon_rw(random_biases: bool) -> PretrainedConfig:
    """falcon-rw-1b's layout: ALiBi, one key/value head per head, sequential blocks."""
    return FalconConfig(**_falcon_common(), alibi=True, multi_query=False, parallel_attn=False)


def _falcon_new(random_biases: bool) -> PretrainedConfig:
    """Falcon-40B / Falcon 2's layout: grouped key/value heads interleaved with their queries, two LayerNorms."""
    common = _falcon_common() | {"num_attention_heads": 2 * HEADS}
    return FalconConfig(**common, new_decoder_architecture=True, num_kv_heads=HEADS, num_ln_in_parallel_attn=2)


def _gpt_bigcode(random_biases: bool) -> PretrainedConfig:
    """StarCoder / SantaCoder: multi-query attention (one key/value head) in a fused c_attn."""
    return GPTBigCodeConfig(
        vocab_size=len(VOCAB), n_positions=MAX_POSITIONS, n_embd=HIDDEN, n_layer=LAYERS, n_head=HEADS, **_SPECIAL_IDS
    )


def _gpt_bigcode_mha(random_biases: bool) -> PretrainedConfig:
    return GPTBigCodeConfig(**_gpt_bigcode(random_biases).to_diff_dict() | {"multi_query": False})


def _bloom(random_biases: bool) -> PretrainedConfig:
    return BloomConfig(vocab_size=len(VOCAB), hidden_size=HIDDEN, n_layer=LAYERS, n_head=HEADS, **_SPECIAL_IDS)


def _m2m_100(random_biases: bool) -> PretrainedConfig:
    """M2M-100 / NLLB: pre-LN, final encoder and decoder LayerNorms, embeddings scaled by sqrt(d)."""
    return M2M100Config(**_encoder_decoder_common(), decoder_start_token_id=EOS_ID, scale_embedding=True)


def _mbart(random_biases: bool) -> PretrainedConfig:
    """mBART: pre-LN, embedding and final LayerNorms, scaled embeddings (as mbart-large-50's config)."""
    return MBartConfig(**_encoder_decoder_common(), decoder_start_token_id=EOS_ID, scale_embedding=True)


def _opt_post_ln(random_biases: bool) -> PretrainedConfig:
    """OPT-350m's layout: LayerNorm after each residual add, project_in/out around a smaller embedding."""
    common = _decoder_only_common()
    common.pop("intermediate_size")
    return OPTConfig(
        **common, ffn_dim=FFN, word_embed_proj_dim=HIDDEN // 2, enable_bias=True, do_layer_norm_before=False
    )


def _gpt_neox_sequential(random_biases: bool) -> PretrainedConfig:
    return GPTNeoXConfig(**_decoder_only_common(), rotary_pct=0.5, attention_bias=True, use_parallel_residual=False)


#: family name -> (config builder, model kind). The family name is transformers' ``model_type``.
CONFIG_BUILDERS: dict[str, tuple[Callable[[bool], PretrainedConfig], str]] = {
    "gpt2": (_gpt2, "causal"),
    "gpt_neox": (_gpt_neox, "causal"),
    "opt": (_opt, "causal"),
    "llama": (_llama, "causal"),
    "qwen2": (_qwen2, "causal"),
    "mistral": (_mistral, "causal"),
    "gemma": (_gemma, "causal"),
    "qwen3": (_qwen3, "causal"),
    "gemma2": (_gemma2, "causal"),
    "gemma3_text": (_gemma3_text, "causal"),
    "olmo2": (_olmo2, "causal"),
    "phi3": (_phi3, "causal"),
    "falcon": (_falcon, "causal"),
    "gpt_bigcode": (_gpt_bigcode, "causal"),
    "bloom": (_bloom, "causal"),
    "marian": (_marian, "seq2seq"),
    "bart": (_bart, "seq2seq"),
    "m2m_100": (_m2m_100, "seq2seq"),
    "mbart": (_mbart, "seq2seq"),
    "t5": (_t5, "seq2seq"),
    "mt5": (_mt5, "seq2seq"),
    "umt5": (_umt5, "seq2seq"),
}
FAMILIES = tuple(CONFIG_BUILDERS)
CAUSAL_FAMILIES = tuple(f for f, (_, kind) in CONFIG_BUILDERS.items() if kind == "causal")
SEQ2SEQ_FAMILIES = tuple(f for f, (_, kind) in CONFIG_BUILDERS.items() if kind == "seq2seq")
#: Other layouts of a family (``family-variant``): the contribution tests run them too.
VARIANT_BUILDERS: dict[str, tuple[Callable[[bool], PretrainedConfig], str]] = {
    "opt-post-ln": (_opt_post_ln, "causal"),
    "gpt_neox-sequential": (_gpt_neox_sequential, "causal"),
    "falcon-rw": (_falcon_rw, "causal"),
    "falcon-new": (_falcon_new, "causal"),
    "gpt_bigcode-mha": (_gpt_bigcode_mha, "causal"),
    "t5-v1_1": (_t5_v1_1, "seq2seq"),
    "gemma-wide-heads": (_gemma_wide_heads, "causal"),
}
VARIANTS = tuple(VARIANT_BUILDERS)


def randomize_biases(model: torch.nn.Module, *, seed: int, std: float = 0.1) -> None:
    """Give every bias parameter (and BART-family ``final_logits_bias`` buffer) random non-zero values
    (initialisation leaves them at zero)."""
    generator = torch.Generator().manual_seed(seed + 1)
    biases = [p for name, p in model.named_parameters() if name.endswith("bias")]
    biases += [b for name, b in model.named_buffers() if name.endswith("final_logits_bias")]
    with torch.no_grad():
        for bias in biases:
            bias.copy_(torch.randn(bias.shape, generator=generator) * std)


def randomize_norm_weights(model: torch.nn.Module, *, seed: int, std: float = 0.1) -> None:
    """Add random noise to every norm's weight (initialised to all ones, or all zeros in Gemma's ``1 + w``)
    so that a norm applied with the wrong gain cannot go unnoticed."""
    generator = torch.Generator().manual_seed(seed + 2)
    with torch.no_grad():
        for module in model.modules():
            weight = getattr(module, "weight", None)
            if type(module).__name__.endswith("Norm") and isinstance(weight, torch.nn.Parameter):
                weight.add_(torch.randn(weight.shape, generator=generator) * std)


def build_random_model(family: str, *, seed: int = 0, random_biases: bool = True) -> LoadedModel:
    """A 2-layer random-initialised ``family`` (or variant) model (eager attention, eval mode) with its tokenizer.

    ``random_biases`` gives biases and norm weights random values (initialisation leaves biases at
    zero and norm gains at one).
    """
    builders = CONFIG_BUILDERS | VARIANT_BUILDERS
    if family not in builders:
        raise ValueError(f"unknown family {family!r}; choose one of {', '.join(builders)}")
    builder, kind = builders[family]
    config = builder(random_biases)
    auto_class = AutoModelForSeq2SeqLM if kind == "seq2seq" else AutoModelForCausalLM
    torch.manual_seed(seed)
    model = auto_class.from_config(config, attn_implementation="eager")
    if random_biases:
        randomize_biases(model, seed=seed)
        randomize_norm_weights(model, seed=seed)
    model.eval()
    tokenizer = word_level_tokenizer(append_eos=kind == "seq2seq")
    return LoadedModel(model_id=f"random-{family}", model=model, tokenizer=tokenizer, kind=kind)


def build_never_ending_model(family: str, *, seed: int = 0) -> LoadedModel:
    """A random model whose generation never ends (``</s>`` suppressed): it runs to its token limit."""
    loaded = build_random_model(family, seed=seed)
    loaded.model.generation_config.suppress_tokens = [loaded.tokenizer.eos_token_id]
    return loaded


#: The BART family (BART, Marian, mBART, M2M-100): attention too quiet at random init for a graph edge to show.
BART_FAMILIES = ("bart", "marian", "mbart", "m2m_100")


def louder_attention(loaded: LoadedModel, factor: float = 6.0) -> LoadedModel:
    """Scale BART-family (BART, Marian, mBART, M2M-100) value and output projections: at their random init
    (std 0.02) attention adds under 0.1% to the residual stream, so no attention or cross-attention edge would
    pass a threshold."""
    with torch.no_grad():
        for name, parameter in loaded.model.named_parameters():
            if name.endswith(("v_proj.weight", "out_proj.weight")):
                parameter.mul_(factor)
    return loaded
