"""attribution.models: loading by path / bundled name / Hub id, kind detection, errors, the cache."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace
from transformers import (
    BertConfig,
    BertModel,
    GPT2Config,
    GPT2LMHeadModel,
    MarianConfig,
    MarianMTModel,
    PreTrainedTokenizerFast,
)

from attribution import models
from attribution.errors import HubUnreachableError, InvalidInputError, ModelLoadError
from attribution.models import LoadedModel, ModelCache, hub_reachable, load_model

WORDS = ["<pad>", "<unk>", "</s>", "the", "cat", "sat", "on", "mat", "a", "dog"]


def _tokenizer() -> PreTrainedTokenizerFast:
    backend = Tokenizer(WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    backend.pre_tokenizer = Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>", eos_token="</s>")


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory) -> dict[str, Path]:
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("models")
    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=len(WORDS), n_positions=8))
    marian = MarianMTModel(
        MarianConfig(
            vocab_size=len(WORDS),
            d_model=16,
            encoder_layers=1,
            decoder_layers=1,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
            encoder_ffn_dim=32,
            decoder_ffn_dim=32,
            max_position_embeddings=16,
            pad_token_id=0,
            eos_token_id=2,
            decoder_start_token_id=0,
        )
    )
    bert = BertModel(
        BertConfig(num_hidden_layers=1, hidden_size=16, num_attention_heads=2, intermediate_size=32, vocab_size=10)
    )
    dirs = {}
    for name, model in {"gpt2": gpt2, "marian": marian, "bert": bert}.items():
        dirs[name] = root / name
        model.save_pretrained(dirs[name])
        _tokenizer().save_pretrained(dirs[name])
    return dirs


def test_local_causal_and_seq2seq_folders_load_with_their_kind_and_eager_attention(model_dirs):
    causal = load_model(str(model_dirs["gpt2"]), cache=None)
    seq2seq = load_model(str(model_dirs["marian"]), cache=None)
    assert (causal.kind, causal.model_type) == ("causal", "gpt2")
    assert (seq2seq.kind, seq2seq.model_type) == ("seq2seq", "marian")
    assert causal.model.config._attn_implementation == "eager"
    assert not causal.model.training
    assert causal.max_input_tokens == 8
    # The loaded weights are the saved ones, not a fresh initialisation.
    saved = GPT2LMHeadModel.from_pretrained(model_dirs["gpt2"])
    assert torch.equal(saved.transformer.wte.weight, causal.model.transformer.wte.weight)


def test_dtype_option_is_applied(model_dirs):
    loaded = load_model(str(model_dirs["gpt2"]), dtype="bfloat16", cache=None)
    assert loaded.dtype == torch.bfloat16
    with pytest.raises(InvalidInputError, match="Unknown dtype"):
        load_model(str(model_dirs["gpt2"]), dtype="float8", cache=None)


def test_encoder_only_model_is_refused_clearly(model_dirs):
    with pytest.raises(ModelLoadError, match="neither a causal language model nor a sequence-to-sequence"):
        load_model(str(model_dirs["bert"]), cache=None)


@pytest.mark.parametrize("name", ["", "   "])
def test_empty_model_name_is_an_input_error(name):
    with pytest.raises(InvalidInputError, match="No model given"):
        load_model(name, cache=None)


def test_folder_that_is_not_a_model(tmp_path):
    with pytest.raises(ModelLoadError, match="not a model folder"):
        load_model(str(tmp_path), cache=None)
    with pytest.raises(ModelLoadError, match="No such model folder"):
        load_model(str(tmp_path / "missing" / "deeper"), cache=None)


def test_remote_code_is_refused_unless_the_operator_allows_it(tmp_path):
    (tmp_path / "config.json").write_text(
        json.dumps({"model_type": "my-custom", "auto_map": {"AutoConfig": "configuration_my.MyConfig"}})
    )
    (tmp_path / "configuration_my.py").write_text(
        "from transformers import PretrainedConfig\nclass MyConfig(PretrainedConfig):\n    model_type = 'my-custom'\n"
    )
    with pytest.raises(ModelLoadError, match="ATTRIBUTION_EXPLORER_TRUST_REMOTE_CODE"):
        load_model(str(tmp_path), cache=None)


def test_hub_id_offline_fails_with_the_bundled_models_named():
    with pytest.raises(HubUnreachableError) as error:
        load_model("someone/some-model-that-is-not-cached", cache=None)
    for name in models.BUNDLED_MODELS:
        assert name in str(error.value)


def test_unreachable_hub_is_detected_without_retries(monkeypatch):
    """With HF_HUB_OFFLINE unset but no route to the Hub, we never hand transformers a network load."""
    import socket

    with socket.socket() as sock:  # a port on loopback that nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    monkeypatch.setattr(models.hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(models.hf_constants, "ENDPOINT", f"http://127.0.0.1:{closed_port}")
    monkeypatch.setattr(models, "_hub_probe_cache", {})
    assert hub_reachable() is False
    calls = []
    real = models.AutoConfig.from_pretrained

    def recording_from_pretrained(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(models.AutoConfig, "from_pretrained", recording_from_pretrained)
    with pytest.raises(HubUnreachableError, match="unreachable"):
        load_model("gpt2-not-cached-anywhere/x", cache=None)
    assert calls and all(kwargs["local_files_only"] for kwargs in calls)


def test_validate_text_rejects_empty_and_too_long(model_dirs):
    loaded = load_model(str(model_dirs["gpt2"]), cache=None)
    for text in ["", "   \n\t"]:
        with pytest.raises(InvalidInputError, match="empty"):
            loaded.validate_text(text)
    assert loaded.validate_text("the cat sat") == "the cat sat"
    with pytest.raises(InvalidInputError, match=r"9 tokens long.*at most 8"):
        loaded.validate_text("the cat sat on the mat a dog sat")
    with pytest.raises(InvalidInputError, match="at most 2"):
        loaded.validate_text("the cat sat", max_tokens=2)


def _fake_loaded(name: str, n_params: int) -> LoadedModel:
    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=4, n_head=1, vocab_size=n_params, n_positions=4))
    return LoadedModel(model_id=name, model=model, tokenizer=None, kind="causal")


def test_cache_reuses_models_and_evicts_least_recently_used_by_count():
    cache = ModelCache(max_models=2, max_bytes=10**12)
    loads = []

    def loader(name):
        loads.append(name)
        return _fake_loaded(name, 10)

    a = cache.get_or_load(("a",), lambda: loader("a"))
    assert cache.get_or_load(("a",), lambda: loader("a")) is a
    cache.get_or_load(("b",), lambda: loader("b"))
    cache.get_or_load(("a",), lambda: loader("a"))  # a is now most recently used
    cache.get_or_load(("c",), lambda: loader("c"))
    assert loads == ["a", "b", "c"]
    assert ("a",) in cache and ("c",) in cache and ("b",) not in cache
    assert len(cache) == 2


def test_cache_is_bounded_by_bytes():
    one = _fake_loaded("x", 1000)
    cache = ModelCache(max_models=10, max_bytes=int(one.n_bytes * 2.5))
    for name in "abcd":
        cache.get_or_load((name,), lambda name=name: _fake_loaded(name, 1000))
        assert cache.n_bytes <= cache.max_bytes
    assert len(cache) == 2


def test_concurrent_requests_for_one_model_load_it_once():
    cache = ModelCache(max_models=2, max_bytes=10**12)
    started = threading.Event()
    loads = []

    def slow_loader():
        loads.append(1)
        started.wait(timeout=5)
        return _fake_loaded("a", 10)

    results = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get_or_load(("a",), slow_loader))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    started.set()
    for thread in threads:
        thread.join(timeout=10)
    assert len(loads) == 1
    assert len(results) == 8 and all(r is results[0] for r in results)
