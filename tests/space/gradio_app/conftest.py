"""Fixtures of the app's tests: the app served in this process (one per test module) and a client of it."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator

import pytest
from gradio_client import Client

from space.gradio_app.config import SpaceConfig
from tests.support.app_server import free_port
from tests.support.local_hub_server import local_hub
from tests.support.real_tokenizers import save_bpe_gpt2, save_unigram_marian
from tests.support.served_app import MAX_INPUT_TOKENS, MAX_NEW_TOKENS, Served, save_random, save_random_gptj


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The app on 127.0.0.1 with the models of ``tests.support.served_app``, closed when the module is done."""
    from space.gradio_app import build_app, launch

    folder = tmp_path_factory.mktemp("space-models")
    causal, seq2seq = "tiny-ioi-gpt2", "tiny-synth-translate"
    extra = save_random("gpt2", folder / "extra-gpt2", seed=1)
    unsupported = save_random_gptj(folder / "gptj")
    bpe = str(save_bpe_gpt2(folder / "bpe-gpt2"))
    unigram = str(save_unigram_marian(folder / "unigram-marian"))
    # The Intervene tab caches its examples in Gradio's folder: this test's own, not the checkout's.
    previous_cache = os.environ.get("GRADIO_EXAMPLES_CACHE")
    os.environ["GRADIO_EXAMPLES_CACHE"] = str(tmp_path_factory.mktemp("examples-cache"))
    config = SpaceConfig(
        models=(causal, seq2seq, extra, unsupported, bpe, unigram),
        default_model=causal,
        max_input_tokens=MAX_INPUT_TOKENS,
        max_new_tokens=MAX_NEW_TOKENS,
        cache_max_models=2,
        concurrency_limit=2,
    )
    with local_hub() as hub:
        demo, ctx = build_app(dataclasses.replace(config, hub_endpoint=hub.url), hub_reachable=False)
        port = free_port()
        launch(demo, port=port, prevent_thread_lock=True, quiet=True)
        try:
            yield Served(f"http://127.0.0.1:{port}/", ctx, causal, seq2seq, extra, unsupported, hub, bpe, unigram)
        finally:
            demo.close()
            if previous_cache is None:
                os.environ.pop("GRADIO_EXAMPLES_CACHE", None)
            else:
                os.environ["GRADIO_EXAMPLES_CACHE"] = previous_cache


@pytest.fixture(scope="module")
def client(served: Served) -> Client:
    return served.client()
