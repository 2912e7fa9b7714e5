"""Tokenizers that spell tokens like the real ones, trained in-process (offline, in about a second).

Our bundled models use word-level tokenizers, whose tokens are plain words; real models do not:

- byte-level BPE (GPT-2, RoBERTa/BART, Llama-3, Qwen) spells a leading space ``Ġ``, a newline
  ``Ċ`` and splits non-ASCII characters into byte pieces (``café`` → ``caf`` ``Ã©``);
- SentencePiece / Unigram (Marian, T5, Llama-2) spells a space ``▁`` and keeps ``\\n``/``\\t`` raw.

``save_bpe_gpt2`` and ``save_unigram_marian`` write a small random model with such a tokenizer to a
folder that ``attribution.models.load_model`` (and the app, through the config's local folders)
loads like any Hub model.

    from tests.support.real_tokenizers import byte_level_bpe, save_bpe_gpt2
    tokenizer = byte_level_bpe()
    folder = save_bpe_gpt2(tmp_path / "bpe-gpt2")
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    M2M100Config,
    M2M100ForConditionalGeneration,
    MarianConfig,
    MarianMTModel,
    MBart50TokenizerFast,
    MBartConfig,
    MBartForConditionalGeneration,
    NllbTokenizerFast,
    PreTrainedTokenizerFast,
)

#: What the tokenizers learn from: prompts, a translation pair, a newline, a tab and non-ASCII text.
CORPUS = [
    "When Mary and John went to the store, John gave a drink to Mary.",
    "When Laura and Julia got a bag at the market, Julia decided to give it to Laura.",
    "the tired friend greets this woman today\nka amiko lasu tesu fema hodie salas",
    "A café in Zürich serves crème brûlée — naïve “quotes” and emoji 😀.\tTabbed text.",
    "Then, Mark and Tom had a lot of fun at the school. Mark gave a ball to Tom.",
]
ENDOFTEXT = "<|endoftext|>"
PAD, EOS, UNK = "<pad>", "</s>", "<unk>"
#: The language codes of the NLLB-style tokenizer (NLLB-200 knows 202 such codes).
NLLB_LANGUAGES = ["eng_Latn", "deu_Latn", "fra_Latn", "epo_Latn"]


def byte_level_bpe(vocab_size: int = 400) -> PreTrainedTokenizerFast:
    """A GPT-2-style byte-level BPE tokenizer (``ĠMary``), end of text ``<|endoftext|>``."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[ENDOFTEXT],
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS * 4, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token=ENDOFTEXT, eos_token=ENDOFTEXT, unk_token=ENDOFTEXT
    )


def unigram(vocab_size: int = 160) -> PreTrainedTokenizerFast:
    """A SentencePiece-style Unigram tokenizer (``▁Mary``) with Marian's ``<pad>``/``</s>``/``<unk>``."""
    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=[PAD, EOS, UNK], unk_token=UNK, show_progress=False
    )
    tokenizer.train_from_iterator(CORPUS * 4, trainer)
    eos_id = tokenizer.token_to_id(EOS)
    tokenizer.post_processor = processors.TemplateProcessing(single=f"$A {EOS}", special_tokens=[(EOS, eos_id)])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token=PAD, eos_token=EOS, unk_token=UNK)


def save_bpe_gpt2(folder: Path, *, seed: int = 0, n_layer: int = 2, n_embd: int = 64) -> Path:
    """A random GPT-2 with the byte-level BPE tokenizer, saved as a local model folder."""
    tokenizer = byte_level_bpe()
    torch.manual_seed(seed)
    end = tokenizer.convert_tokens_to_ids(ENDOFTEXT)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=128,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=4,
        bos_token_id=end,
        eos_token_id=end,
    )
    GPT2LMHeadModel(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return Path(folder)


def save_unigram_marian(folder: Path, *, seed: int = 0) -> Path:
    """A random Marian translation model with the Unigram tokenizer, saved as a local model folder."""
    tokenizer = unigram()
    torch.manual_seed(seed)
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    config = MarianConfig(
        **_tiny_translation_sizes(tokenizer),
        decoder_vocab_size=len(tokenizer),
        pad_token_id=pad,
        eos_token_id=eos,
        decoder_start_token_id=pad,
        forced_eos_token_id=eos,
    )
    MarianMTModel(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return Path(folder)


def nllb_bpe(vocab_size: int = 200) -> NllbTokenizerFast:
    """transformers' own NLLB tokenizer over a small SentencePiece-style BPE (``▁Mary``) with the language codes
    :data:`NLLB_LANGUAGES`: ``src_lang`` / ``tgt_lang`` put a code before the source / target, as NLLB-200."""
    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<s>", PAD, EOS, UNK], show_progress=False)
    tokenizer.train_from_iterator(CORPUS * 4, trainer)
    bpe = tokenizer.model
    merges = json.loads(tokenizer.to_str())["model"]["merges"]
    return NllbTokenizerFast(
        vocab=tokenizer.get_vocab(),
        merges=[tuple(merge) for merge in merges],
        extra_special_tokens=list(NLLB_LANGUAGES),
        src_lang=NLLB_LANGUAGES[0],
        unk_token=bpe.unk_token,
    )


def save_nllb_m2m100(folder: Path, *, seed: int = 0) -> Path:
    """A random M2M-100 (NLLB's architecture) with the NLLB-style tokenizer, saved as a local model folder."""
    tokenizer = nllb_bpe()
    torch.manual_seed(seed)
    config = M2M100Config(**_tiny_translation_config(tokenizer))
    M2M100ForConditionalGeneration(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return Path(folder)


def _tiny_translation_sizes(tokenizer) -> dict:
    """The size every tiny random translation model here shares (2 + 2 layers, width 64)."""
    return {
        "vocab_size": len(tokenizer),
        "d_model": 64,
        "encoder_layers": 2,
        "decoder_layers": 2,
        "encoder_attention_heads": 4,
        "decoder_attention_heads": 4,
        "encoder_ffn_dim": 128,
        "decoder_ffn_dim": 128,
        "max_position_embeddings": 128,
    }


def _tiny_translation_config(tokenizer) -> dict:
    """The size and special ids the tiny random multilingual translation models (NLLB, mBART-50) share."""
    return {
        **_tiny_translation_sizes(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "decoder_start_token_id": tokenizer.eos_token_id,
        "scale_embedding": True,
    }


def mbart50_unigram(vocab_size: int = 160) -> MBart50TokenizerFast:
    """transformers' own mBART-50 tokenizer over a small Unigram (``▁Mary``): its 52 language codes (``en_XX``) are
    added after the pieces, and ``src_lang`` / ``tgt_lang`` put a code before the source / target."""
    tokenizer = Tokenizer(models.Unigram())
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=[UNK, "<s>", EOS], unk_token=UNK, show_progress=False
    )
    tokenizer.train_from_iterator(CORPUS * 4, trainer)
    vocab = json.loads(tokenizer.to_str())["model"]["vocab"]
    return MBart50TokenizerFast(vocab=vocab, src_lang="en_XX")


def save_mbart50(folder: Path, *, seed: int = 0) -> Path:
    """A random mBART (mbart-large-50's layout) with the mBART-50 tokenizer, saved as a local model folder."""
    tokenizer = mbart50_unigram()
    torch.manual_seed(seed)
    config = MBartConfig(**_tiny_translation_config(tokenizer), forced_eos_token_id=tokenizer.eos_token_id)
    MBartForConditionalGeneration(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return Path(folder)
