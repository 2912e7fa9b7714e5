"""The app served in the test process on 127.0.0.1 (``served`` in ``tests/space/gradio_app/conftest.py``).

The bundled tiny models plus random models saved to a temporary folder: a third model to overflow the
2-model cache, a GPT-J the contribution graph does not support, and a GPT-2 with a trained byte-level BPE
tokenizer and a Marian with a trained Unigram tokenizer; its Export tab pushes to a local Hub.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gradio_client import Client

from space.gradio_app.context import AppContext
from tests.support.local_hub_server import LocalHub
from tests.support.random_models import build_random_model

#: The served app's limits.
MAX_INPUT_TOKENS = 40
MAX_NEW_TOKENS = 3


def save_random(family: str, folder: Path, seed: int = 0) -> str:
    """A random-initialised model of ``family`` saved to ``folder``, loadable by path like a checkpoint."""
    loaded = build_random_model(family, seed=seed)
    loaded.model.save_pretrained(folder)
    loaded.tokenizer.save_pretrained(folder)
    return str(folder)


def save_random_gptj(folder: Path) -> str:
    """A causal architecture the contribution graph has no adapter for (GPT-J)."""
    from transformers import GPTJConfig, GPTJForCausalLM

    from tests.support.random_models import VOCAB, word_level_tokenizer

    model = GPTJForCausalLM(GPTJConfig(vocab_size=len(VOCAB), n_embd=32, n_layer=2, n_head=2, rotary_dim=4))
    model.save_pretrained(folder)
    word_level_tokenizer(append_eos=False).save_pretrained(folder)
    return str(folder)


@dataclass
class Served:
    """Where the app serves, its shared context, and the names of the models it offers."""

    url: str
    ctx: AppContext
    causal: str
    seq2seq: str
    extra: str  # a third model, to overflow the 2-model cache
    unsupported_graph: str
    hub: LocalHub  # where the Export tab pushes (the config's hub_endpoint)
    bpe: str  # a random GPT-2 with a byte-level BPE tokenizer (ĠMary)
    unigram: str  # a random Marian with a Unigram tokenizer (▁Mary)

    def client(self) -> Client:
        return Client(self.url, verbose=False)
