"""Offline stand-ins of the Hub models the Space's profiles offer: their published configs, random weights.

A stand-in has the real model's architecture and sizes (layers, widths, heads, vocabulary: the same
arithmetic, so the same cost per pass) and a real-tokenizer stand-in of its kind
(:mod:`tests.support.real_tokenizers`: byte-level BPE for GPT-2, Qwen and SmolLM, Unigram for Marian, NLLB's
and mBART-50's own tokenizer classes). The tokenizers are trained on a few sentences, so texts from their
corpus split about as the real ones do and other texts into more pieces (an estimate from them is an upper
bound). Nothing is downloaded.

    loaded = stand_in("Qwen/Qwen2.5-0.5B-Instruct", device="meta")  # estimation only: no memory, no weights
    loaded = stand_in("gpt2")  # random weights on the CPU, ready to run
    save_to_hub_cache("gpt2", cache, small=True)  # as `preload_from_hub` leaves it: loads by Hub id offline
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    GPT2Config,
    LlamaConfig,
    MBartConfig,
    PretrainedConfig,
    Qwen2Config,
)

from attribution.models import LoadedModel
from benchmarks.contributions import CONFIGS as BENCHMARK_CONFIGS
from tests.support.real_tokenizers import byte_level_bpe, mbart50_unigram, nllb_bpe, unigram


def _distilgpt2() -> PretrainedConfig:
    return GPT2Config(n_layer=6)  # distilgpt2: GPT-2 small's widths, 6 layers


def _smollm2_135m() -> PretrainedConfig:
    return LlamaConfig(  # HuggingFaceTB/SmolLM2-135M(-Instruct)
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        max_position_embeddings=8192,
        rms_norm_eps=1e-5,
        rope_theta=100000.0,
        vocab_size=49152,
        tie_word_embeddings=True,
        hidden_act="silu",
        bos_token_id=1,
        eos_token_id=2,
    )


def _qwen2_5_1_5b() -> PretrainedConfig:
    config = BENCHMARK_CONFIGS["qwen2.5-0.5b"][0]()  # Qwen/Qwen2.5-1.5B(-Instruct): the 0.5B layout, wider and deeper
    config.hidden_size, config.intermediate_size = 1536, 8960
    config.num_hidden_layers, config.num_attention_heads = 28, 12
    config.layer_types = None  # one per layer: the constructor below fills them for the new depth
    config.eos_token_id = 151645
    return Qwen2Config(**config.to_dict())


def _opus_mt_en_fr() -> PretrainedConfig:
    config = BENCHMARK_CONFIGS["opus-mt-en-de"][0]()  # the same Marian layout, a larger vocabulary
    config.vocab_size = config.decoder_vocab_size = 59514
    config.pad_token_id = config.decoder_start_token_id = 59513
    return config


def _mbart_large_50() -> PretrainedConfig:
    return MBartConfig(  # facebook/mbart-large-50-many-to-many-mmt
        d_model=1024,
        encoder_layers=12,
        decoder_layers=12,
        encoder_attention_heads=16,
        decoder_attention_heads=16,
        encoder_ffn_dim=4096,
        decoder_ffn_dim=4096,
        max_position_embeddings=1024,
        vocab_size=250054,
        scale_embedding=True,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        decoder_start_token_id=2,
    )


def _benchmark(name: str) -> Callable[[], PretrainedConfig]:
    return BENCHMARK_CONFIGS[name][0]


#: Hub id -> (published config, "causal" or "seq2seq", tokenizer stand-in).
PUBLISHED: dict[str, tuple[Callable[[], PretrainedConfig], str, Callable[[], object]]] = {
    "gpt2": (_benchmark("gpt2"), "causal", byte_level_bpe),
    "distilgpt2": (_distilgpt2, "causal", byte_level_bpe),
    "HuggingFaceTB/SmolLM2-135M-Instruct": (_smollm2_135m, "causal", byte_level_bpe),
    "Qwen/Qwen2.5-0.5B-Instruct": (_benchmark("qwen2.5-0.5b"), "causal", byte_level_bpe),
    "Qwen/Qwen2.5-1.5B-Instruct": (_qwen2_5_1_5b, "causal", byte_level_bpe),
    "Helsinki-NLP/opus-mt-en-de": (_benchmark("opus-mt-en-de"), "seq2seq", unigram),
    "Helsinki-NLP/opus-mt-en-fr": (_opus_mt_en_fr, "seq2seq", unigram),
    "facebook/nllb-200-distilled-600M": (_benchmark("nllb-600m"), "seq2seq", nllb_bpe),
    "facebook/mbart-large-50-many-to-many-mmt": (_mbart_large_50, "seq2seq", mbart50_unigram),
}


def published_config(model_id: str, *, layers: int | None = None) -> PretrainedConfig:
    """The published config of ``model_id``, every stack cut to ``layers`` layers when given (widths as published)."""
    from benchmarks.contributions import _with_layers

    if model_id not in PUBLISHED:
        raise KeyError(f"no published config for {model_id!r} here: add it to tests/support/published_models.py")
    config = _with_layers(PUBLISHED[model_id][0](), layers)
    if layers is not None and getattr(config, "layer_types", None):
        config.layer_types = config.layer_types[:layers]  # Qwen2 keeps one attention type per layer
    return config


def stand_in(model_id: str, *, device: str = "cpu", small: bool = False, seed: int = 0) -> LoadedModel:
    """A random-weight model of ``model_id``'s published config (``device="meta"``: shapes only, for estimates).

    ``small``: one layer per stack and the tokenizer's vocabulary and special ids (widths as published): the
    architecture at a fraction of the memory, for tests that start an app with every model of a profile.
    """
    _, kind, make_tokenizer = PUBLISHED[model_id]
    tokenizer = make_tokenizer()
    config = published_config(model_id, layers=1 if small else None)
    if small:
        _fit_vocabulary(config, tokenizer)
    model_class = AutoModelForCausalLM if kind == "causal" else AutoModelForSeq2SeqLM
    torch.manual_seed(seed)
    with torch.device(device):
        model = model_class.from_config(config, attn_implementation="eager")
    return LoadedModel(model_id, model.eval(), tokenizer, kind)


def _fit_vocabulary(config: PretrainedConfig, tokenizer) -> None:
    """The tokenizer's vocabulary size and special ids in ``config`` (every id a model looks up then exists)."""
    marian_start = getattr(config, "decoder_start_token_id", None) == config.pad_token_id  # Marian starts with pad
    config.vocab_size = len(tokenizer)
    if hasattr(config, "decoder_vocab_size"):
        config.decoder_vocab_size = len(tokenizer)
    end = tokenizer.eos_token_id
    config.eos_token_id = end
    config.bos_token_id = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else end
    config.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end
    if hasattr(config, "decoder_start_token_id"):
        config.decoder_start_token_id = config.pad_token_id if marian_start else end


def save_to_hub_cache(model_id: str, cache: Path, *, small: bool = False, seed: int = 0) -> Path:
    """:func:`stand_in` saved where the Hub client keeps ``model_id`` in the cache folder ``cache`` (``HF_HUB_CACHE``),
    as a Space's ``preload_from_hub`` leaves it: ``from_pretrained(model_id)`` then loads it offline."""
    loaded = stand_in(model_id, small=small, seed=seed)
    repo = Path(cache) / f"models--{model_id.replace('/', '--')}"
    commit = hashlib.sha1(f"{model_id} {small} {seed}".encode()).hexdigest()
    snapshot = repo / "snapshots" / commit
    loaded.model.save_pretrained(snapshot)
    loaded.tokenizer.save_pretrained(snapshot)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot
