"""The recipe "Adding a tab" (README, Development), followed step by step by a toy tab: this module is the tab.

1. A module with the tab's handler, a plain function of widget values and the app context, and ``build(page)``,
   which lays out the widgets inside ``gr.Tab`` and connects the button to an endpoint wrapped in
   ``user_errors``, with an ``api_name`` and the options of its queue group.
2. The module in the app's tabs (``TABS`` in ``space/gradio_app/build.py``; here ``build_app(..., tabs=...)``).

Then the app shows the tab after the others, its endpoint answers through ``gradio_client`` with what the
model's own tokenizer says, and a refusal is the handler's one line while the app keeps serving.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import gradio as gr
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from transformers import AutoTokenizer

from attribution.errors import InvalidInputError
from attribution.models import bundled_model_path
from space.gradio_app import build_app, launch
from space.gradio_app.build import TABS
from space.gradio_app.config import SpaceConfig
from space.gradio_app.context import AppContext
from space.gradio_app.wiring import Page, user_errors
from tests.support.app_context import offline_context
from tests.support.app_server import free_port

MODEL = "tiny-ioi-gpt2"
TEXT = "When Mary and John went to the store"


# Step 1: the handler (no Gradio) ...
def tokens_of(ctx: AppContext, model: str, text: str) -> list[str]:
    """The tokens ``model`` reads in ``text``, as its tokenizer spells them."""
    loaded = ctx.load(model)  # an offered model, through the app's bounded cache
    ctx.check_texts(loaded, input_text=text)  # empty, not Unicode, over the operator's token limit: one line
    return loaded.tokenizer.tokenize(text)


# ... and the layout, connected to an endpoint that calls it.
def build(page: Page) -> None:
    with gr.Tab("Tokens", id="tokens"):
        model = page.model_dropdown(elem_id="tokens-model")
        text = gr.Textbox(label="Text", elem_id="tokens-text")
        run = gr.Button("Tokenize", elem_id="tokens-run")
        shown = gr.JSON(label="Tokens", elem_id="tokens-shown")

    @user_errors
    def tokens(model, text):
        return tokens_of(page.ctx, model, text)

    run.click(tokens, [model, text], shown, api_name="tokens", **page.groups["attribution"])  # it loads a model


CONFIG = SpaceConfig(models=(MODEL,), default_model=MODEL, cache_examples="off", max_input_tokens=12)


@pytest.fixture(scope="module")
def app() -> Iterator[tuple[gr.Blocks, str]]:
    # Step 2: the tab among the app's tabs.
    demo, _ = build_app(CONFIG, hub_reachable=False, tabs=(*TABS, sys.modules[__name__]))
    port = free_port()
    launch(demo, port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield demo, f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


def test_the_handler_answers_without_gradio() -> None:
    ctx = offline_context(CONFIG)
    expected = AutoTokenizer.from_pretrained(bundled_model_path(MODEL)).tokenize(TEXT)
    assert tokens_of(ctx, MODEL, TEXT) == expected and len(expected) == 8
    with pytest.raises(InvalidInputError, match=r"^This app cannot load 'gpt9': the Hugging Face Hub is unreachable"):
        tokens_of(ctx, "gpt9", TEXT)


@pytest.mark.server
def test_the_tab_comes_after_the_others_and_its_endpoint_answers(app: tuple[gr.Blocks, str]) -> None:
    demo, url = app
    tabs = [block.label for block in demo.blocks.values() if isinstance(block, gr.Tab)]
    assert tabs == ["Attribute", "Contribution graph", "Compare", "Intervene", "Features", "Export", "Tokens"]
    client = Client(url, verbose=False)
    expected = AutoTokenizer.from_pretrained(bundled_model_path(MODEL)).tokenize(TEXT)
    assert client.predict(MODEL, TEXT, api_name="/tokens") == expected
    with pytest.raises(AppError, match=r"^The input text is 15 tokens long; tiny-ioi-gpt2 accepts at most 12"):
        client.predict(MODEL, f"{TEXT}, John gave a drink to Mary", api_name="/tokens")
    assert client.predict(MODEL, "Mary", api_name="/tokens") == ["Mary"]  # still serving
    groups = {fn.api_name: fn.concurrency_id for fn in demo.fns.values() if fn.api_name}
    assert groups["tokens"] == "attribution" and groups["attribute"] == "attribution"  # the other tabs are all there
