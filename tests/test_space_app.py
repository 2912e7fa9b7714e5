"""The real Gradio app on 127.0.0.1, driven through gradio_client and through Chromium.

One app per module (launched once, closed at the end) on the bundled tiny models, plus two random
models saved to a temporary folder: a third model to overflow the 2-model cache, and a BLOOM model
the contribution graph does not support. Every tab's API is checked against the library called
directly, bad inputs must come back as the user-facing message with the app still serving, and 8
parallel clients must all get correct answers.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from bokeh.models import ColumnDataSource, CustomJSTickFormatter

from attribution.compare import alignment_error_rate
from attribution.contributions import build_contribution_graph
from attribution.inseq_runner import attribute
from attribution.models import LoadedModel, ModelCache, load_model
from attribution.results import AttributionResult, Comparison, ContributionGraph
from exporters.page import PROVENANCE_SCRIPT_ID
from space.config import SpaceConfig
from space.examples import ioi_prompts, translation_pairs
from space.handlers import AppContext
from tests.browser import browser, new_page  # noqa: F401  (pytest fixtures)
from tests.local_hub_server import LocalHub, local_hub
from tests.random_models import build_random_model

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

#: The test's own models for direct library calls (never the app's cache, whose size is under test).
REFERENCE_MODELS = ModelCache(max_models=4)
MAX_INPUT_TOKENS = 40
MAX_NEW_TOKENS = 3
#: Far below the default 0.04: many more edges survive, so the graph visibly differs from the default one.
LOW_THRESHOLD = 0.005
PROMPT = ioi_prompts(1)[0]
#: A bundled translation sample with its gold word alignment.
TRANSLATION = translation_pairs(1)[0]


def _save_random(family: str, folder: Path, seed: int = 0) -> str:
    loaded = build_random_model(family, seed=seed)
    loaded.model.save_pretrained(folder)
    loaded.tokenizer.save_pretrained(folder)
    return str(folder)


def _save_random_gptj(folder: Path) -> str:
    """A causal architecture the contribution graph has no adapter for (GPT-J)."""
    from transformers import GPTJConfig, GPTJForCausalLM

    from tests.random_models import VOCAB, word_level_tokenizer

    model = GPTJForCausalLM(GPTJConfig(vocab_size=len(VOCAB), n_embd=32, n_layer=2, n_head=2, rotary_dim=4))
    model.save_pretrained(folder)
    word_level_tokenizer(append_eos=False).save_pretrained(folder)
    return str(folder)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Served:
    url: str
    ctx: AppContext
    causal: str
    seq2seq: str
    extra: str  # a third model, to overflow the 2-model cache
    unsupported_graph: str
    hub: LocalHub  # where the Export tab pushes (the config's hub_endpoint)

    def client(self) -> Client:
        return Client(self.url, verbose=False)


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Served:
    from space.app import build_app, launch

    folder = tmp_path_factory.mktemp("space-models")
    causal, seq2seq = "tiny-ioi-gpt2", "tiny-synth-translate"
    extra = _save_random("gpt2", folder / "extra-gpt2", seed=1)
    unsupported = _save_random_gptj(folder / "gptj")
    previous_cache = os.environ.get("GRADIO_EXAMPLES_CACHE")
    os.environ["GRADIO_EXAMPLES_CACHE"] = str(tmp_path_factory.mktemp("examples-cache"))
    config = SpaceConfig(
        models=(causal, seq2seq, extra, unsupported),
        default_model=causal,
        max_input_tokens=MAX_INPUT_TOKENS,
        max_new_tokens=MAX_NEW_TOKENS,
        cache_max_models=2,
        concurrency_limit=2,
    )
    with local_hub() as hub:
        demo, ctx = build_app(dataclasses.replace(config, hub_endpoint=hub.url), hub_reachable=False)
        port = _free_port()
        launch(demo, port=port, prevent_thread_lock=True, quiet=True)
        try:
            yield Served(f"http://127.0.0.1:{port}/", ctx, causal, seq2seq, extra, unsupported, hub)
        finally:
            demo.close()
            if previous_cache is None:
                os.environ.pop("GRADIO_EXAMPLES_CACHE", None)
            else:
                os.environ["GRADIO_EXAMPLES_CACHE"] = previous_cache


@pytest.fixture(scope="module")
def client(served) -> Client:
    return served.client()


def _attribute(client: Client, model: str, text: str, target: str = "", method: str = "saliency", **options):
    return client.predict(
        model,
        text,
        target,
        method,
        options.get("step_scores", ["probability"]),
        options.get("contrast", ""),
        api_name="/attribute",
    )


def _indirect_object(prompt: str) -> str:
    """The IOI answer: of the two names introduced first, the one not repeated as the subject."""
    first, second = re.search(r"(\w+) and (\w+)", prompt).groups()
    rest = prompt.split(second, 1)[1]
    return second if first in re.findall(r"\w+", rest) else first


def _bokeh_document(page: str):
    """The Bokeh document an exported page draws, decoded from the JSON it embeds."""
    from bokeh.document import Document

    embedded = re.findall(r'<script type="application/json" id="([^"]+)">\s*(.*?)\s*</script>', page, re.S)
    [documents] = [json.loads(text) for element_id, text in embedded if element_id != PROVENANCE_SCRIPT_ID]
    [document] = documents.values()
    return Document.from_json(document)


def _reference(model: str) -> LoadedModel:
    return load_model(model, cache=REFERENCE_MODELS)


def _tokens(model: str, text: str) -> list[str]:
    tokenizer = _reference(model).tokenizer
    return tokenizer.convert_ids_to_tokens(tokenizer(text)["input_ids"])


# ---------------------------------------------------------------------------------------- Attribute tab


def test_offline_app_offers_the_local_models_only(served):
    offer = served.ctx.offer
    assert set(offer.models) >= {served.causal, served.seq2seq}
    assert not offer.custom_allowed
    assert "unreachable" in offer.notice


def test_attribute_causal_matches_the_library(served, client):
    plot, highlighted, table, result_json = _attribute(client, served.causal, PROMPT)
    result = AttributionResult.from_json(result_json)
    assert plot["type"] == "bokeh" and json.loads(plot["plot"])["doc"]["roots"]
    assert result.target_tokens[: result.attributed_start] == _tokens(served.causal, PROMPT)
    assert 1 <= result.n_steps <= MAX_NEW_TOKENS
    probabilities = result.step_scores["probability"]
    assert [h["token"] for h in highlighted] == result.generated_tokens
    assert [h["class_or_confidence"] for h in highlighted] == [round(p, 4) for p in probabilities]
    assert table["headers"] == ["step", "token", "probability"]
    assert [row[2] for row in table["data"]] == [round(p, 6) for p in probabilities]
    assert all(0.0 < p <= 1.0 for p in probabilities)

    # The bundled model knows the task: the app explains the right answer.
    assert result.generated_tokens[0].strip() == _indirect_object(PROMPT)
    assert probabilities[0] > 0.9

    direct = attribute(_reference(served.causal), PROMPT, max_new_tokens=MAX_NEW_TOKENS)
    assert direct.target_tokens == result.target_tokens
    np.testing.assert_allclose(result.target_scores, direct.target_scores, rtol=1e-5, atol=1e-7)


def test_attribute_seq2seq_with_target(served, client):
    _, highlighted, _, result_json = _attribute(
        client, served.seq2seq, TRANSLATION["source"], TRANSLATION["target"], method="attention"
    )
    result = AttributionResult.from_json(result_json)
    assert result.provenance.model_kind == "seq2seq"
    assert result.method == "attention"
    assert result.source_tokens == _tokens(served.seq2seq, TRANSLATION["source"])
    assert result.source_scores.shape == (len(result.source_tokens), result.n_steps)
    assert len(highlighted) == result.n_steps
    # Ground truth: the model's own attention. Inseq's attention is, per step, the mean over layers and heads
    # of the cross-attention (a distribution over the source) and of the decoder self-attention, scaled
    # together to sum to 1: the source column is half of the step's mean cross-attention distribution.
    loaded = _reference(served.seq2seq)
    encoded = loaded.tokenizer(TRANSLATION["source"], return_tensors="pt")
    decoder_ids = torch.tensor([loaded.tokenizer.convert_tokens_to_ids(result.target_tokens[:-1])])
    with torch.no_grad():
        output = loaded.model(**encoded, decoder_input_ids=decoder_ids, output_attentions=True)
    cross = torch.stack(output.cross_attentions).mean(dim=(0, 2))[0].T.numpy()
    np.testing.assert_allclose(cross.sum(axis=0), 1.0, rtol=1e-5)
    np.testing.assert_allclose(result.source_scores, cross / 2, atol=1e-6)
    np.testing.assert_allclose(np.nansum(result.target_scores, axis=0), 0.5, rtol=1e-5)


# ------------------------------------------------------------------------------- Contribution graph tab


def test_graph_root_nodes_and_edges(served, client):
    plot, graph_json = client.predict(served.causal, PROMPT, "", LOW_THRESHOLD, False, "-1", api_name="/graph")
    graph = ContributionGraph.from_json(graph_json)
    roots, nodes, edges = client.predict(graph_json, api_name="/graph_choices")
    assert plot["type"] == "bokeh"
    assert graph.target_tokens == _tokens(served.causal, PROMPT)
    assert graph.root_tokens == [len(graph.target_tokens) - 1]
    assert all(edge.weight >= LOW_THRESHOLD for edge in graph.edges)
    assert [value for _, value in roots["choices"][2:]] == [str(i) for i in range(len(graph.target_tokens))]
    assert [value for _, value in nodes["choices"]] == [node.id for node in graph.nodes]

    direct = build_contribution_graph(_reference(served.causal), PROMPT, threshold=LOW_THRESHOLD)
    assert {(e.source, e.target) for e in direct.edges} == {(e.source, e.target) for e in graph.edges}

    root = next(n for n in graph.nodes if n.layer == graph.n_layers and n.token_index == graph.root_tokens[0])
    details = client.predict(graph_json, root.id, api_name="/graph_node")
    top = [row for row in details["data"] if row[0] == "logit lens"]
    assert [(row[2], row[3]) for row in top] == [(t, round(v, 6)) for t, v in root.top_tokens]
    assert top, "the root node must have logit-lens tokens"
    assert top[0][2].strip() == _indirect_object(PROMPT)  # the last layer's logit lens is the model's prediction

    ffn = next(n for n in graph.nodes if n.kind == "ffn")
    neurons = [
        row for row in client.predict(graph_json, ffn.id, api_name="/graph_node")["data"] if row[0] == "top neuron"
    ]
    assert [(int(row[2]), row[3]) for row in neurons] == [(i, round(v, 6)) for i, v in ffn.top_neurons]

    attention = next(e for e in graph.edges if e.head_weights is not None)
    _, key = next(choice for choice in edges["choices"] if choice[1] == f"{attention.source}->{attention.target}")
    split = client.predict(graph_json, key, api_name="/graph_edge")["data"]
    assert len(split) == graph.n_heads
    assert math.isclose(sum(w for _, w in split), attention.weight, rel_tol=1e-4, abs_tol=1e-5)

    # Moving the slider up re-traces the routes at the new threshold.
    *_, higher_json = client.predict(served.causal, PROMPT, "", 0.3, False, "-1", api_name="/graph_threshold")
    higher = ContributionGraph.from_json(higher_json)
    assert higher.threshold == 0.3
    assert all(edge.weight >= 0.3 for edge in higher.edges)
    assert len(higher.edges) < len(graph.edges)


# ------------------------------------------------------------------------------------------ Compare tab


def test_compare_agreement_and_aer_match_the_library(served, client):
    source, target, gold = (TRANSLATION[key] for key in ("source", "target", "alignment"))
    plot, correlation, aer_table, comparison_json = client.predict(
        source, [served.seq2seq], ["saliency", "attention"], target, gold, api_name="/compare"
    )
    comparison = Comparison.from_json(comparison_json)
    assert plot["type"] == "bokeh"
    assert comparison.labels == ["saliency", "attention"]
    assert correlation["headers"] == ["", "saliency", "attention"]
    assert correlation["data"][0][1] == 1.0
    loaded = _reference(served.seq2seq)
    for label, row in zip(comparison.labels, aer_table["data"], strict=True):
        direct = attribute(loaded, source, method=label, target=target, step_scores=())
        assert row == [label, round(alignment_error_rate(direct, gold), 4)]
    # Ground truth: saliency on the bundled translation model recovers the sample's gold alignment exactly.
    assert aer_table["data"][0] == ["saliency", 0.0]


# ------------------------------------------------------------------------------------------- Export tab


def test_export_every_format(served, client):
    *_, result_json = _attribute(client, served.causal, PROMPT)
    page_path, preview = client.predict(
        "Attribute", "HTML page (self-contained, works offline)", result_json, "", "", api_name="/export"
    )
    page = Path(page_path).read_text(encoding="utf-8")
    assert page.lstrip().lower().startswith("<!doctype html")
    # The page draws this very result: its exact scores, and the model's answer as the first generated token.
    result = AttributionResult.from_json(result_json)
    drawn = _bokeh_document(page)
    [cells] = [source.data for source in drawn.select({"type": ColumnDataSource}) if "value" in source.data]
    finite = result.target_scores[np.isfinite(result.target_scores)]
    np.testing.assert_array_equal(np.sort(np.asarray(cells["value"], dtype=float)), np.sort(finite))
    axes = [formatter.args["labels"] for formatter in drawn.select({"type": CustomJSTickFormatter})]
    assert [token.strip() for token in result.generated_tokens] in [[t.strip() for t in labels] for labels in axes]
    assert result.generated_tokens[0].strip() == _indirect_object(PROMPT)
    assert "cdn.bokeh.org" not in page
    assert preview.startswith("<iframe") and "srcdoc=" in preview and "<script" not in preview

    json_path, _ = client.predict("Attribute", "Result JSON", result_json, "", "", api_name="/export")
    assert AttributionResult.from_file(json_path).to_dict() == AttributionResult.from_json(result_json).to_dict()

    snippet_path, _ = client.predict(
        "Attribute", "Blog snippet (script + div)", result_json, "", "", api_name="/export"
    )
    snippet = Path(snippet_path).read_text(encoding="utf-8")
    assert "<html" not in snippet.lower() and "<script" in snippet


def test_push_to_the_local_hub_and_a_rejected_token(served, client, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # the push goes to 127.0.0.1 only
    token = "hf_test_token_123"
    *_, result_json = _attribute(client, served.causal, PROMPT)
    link = client.predict("Attribute", result_json, "", "", "alice/space-demo", token, api_name="/push")
    url = f"{served.hub.url}/datasets/alice/space-demo/blob/main/index.html"
    assert f'href="{url}"' in link
    commit = served.hub.commits[-1]
    assert (commit.repo_type, commit.repo_id) == ("datasets", "alice/space-demo")
    assert set(commit.files) == {"index.html", "result.json", "README.md"}
    pushed = AttributionResult.from_json(commit.files["result.json"].decode())
    assert pushed.to_dict() == AttributionResult.from_json(result_json).to_dict()
    assert all(token.encode() not in blob for blob in commit.files.values())
    assert all(r.headers.get("authorization") == f"Bearer {token}" for r in served.hub.requests)

    with pytest.raises(AppError, match="Log in with Hugging Face or paste a write token"):
        client.predict("Attribute", result_json, "", "", "alice/space-demo", "", api_name="/push")
    served.hub.fail_with = 401
    try:
        with pytest.raises(AppError, match=r"rejected the token \(401"):
            client.predict("Attribute", result_json, "", "", "alice/space-demo", "hf_wrong", api_name="/push")
    finally:
        served.hub.fail_with = None
    n_commits = len(served.hub.commits)
    client.predict("Attribute", result_json, "", "", "alice/space-demo", token, api_name="/push")
    assert len(served.hub.commits) == n_commits + 1


# ------------------------------------------------------------------------------------------- bad inputs


def _bad_requests(served: Served) -> list[tuple[str, tuple, str]]:
    long_text = " ".join(["the"] * (MAX_INPUT_TOKENS + 5))
    return [
        ("/attribute", (served.causal, "   ", "", "saliency", [], ""), "The input text is empty"),
        ("/attribute", (served.causal, long_text, "", "saliency", [], ""), f"accepts at most {MAX_INPUT_TOKENS}"),
        (
            "/attribute",
            ("no-such/model", PROMPT, "", "saliency", [], ""),
            "no-such/model is not in the list of choices",
        ),
        ("/attribute", (served.causal, PROMPT, "", "value_zeroing", [], ""), "value_zeroing is not available"),
        ("/attribute", (served.causal, PROMPT, "", "magic", [], ""), "magic is not in the list of choices"),
        ("/graph", (served.unsupported_graph, "the cat", "", 0.04, False, "-1"), "'gptj'"),
        ("/graph", (served.causal, PROMPT, "", 0.04, False, "seven"), "root token must be a token index"),
        ("/compare", (PROMPT, [served.causal], [], "", ""), "Choose at least one model and one method"),
        ("/export", ("Compare", "Result JSON", "", "", ""), "Nothing to export yet"),
    ]


def test_bad_inputs_show_the_message_and_the_app_keeps_serving(served, client):
    for api_name, args, message in _bad_requests(served):
        with pytest.raises(AppError) as caught:
            client.predict(*args, api_name=api_name)
        assert message in str(caught.value), (api_name, args, str(caught.value))
    *_, result_json = _attribute(client, served.causal, PROMPT)
    assert AttributionResult.from_json(result_json).target_tokens[0] == _tokens(served.causal, PROMPT)[0]


# ------------------------------------------------------------------------------ concurrency and memory


def test_eight_parallel_clients_all_get_their_own_correct_answer(served):
    prompts = [" ".join(PROMPT.split()[: 6 + i]) for i in range(8)]
    expected = {text: attribute(_reference(served.causal), text, max_new_tokens=MAX_NEW_TOKENS) for text in prompts}
    barrier = threading.Barrier(len(prompts))

    def one_client(text: str) -> tuple[str, AttributionResult]:
        client = served.client()
        barrier.wait()
        *_, result_json = _attribute(client, served.causal, text)
        return text, AttributionResult.from_json(result_json)

    with ThreadPoolExecutor(len(prompts)) as pool:
        answers = list(pool.map(one_client, prompts))
    assert len(answers) == 8
    for text, result in answers:
        assert result.source_text == text
        assert result.target_tokens == expected[text].target_tokens
        np.testing.assert_allclose(result.target_scores, expected[text].target_scores, rtol=1e-5, atol=1e-7)


def test_model_cache_stays_bounded(served, client):
    for model in (served.causal, served.seq2seq, served.extra, served.causal):
        text = TRANSLATION["source"] if model == served.seq2seq else "the cat sees the dog"
        _attribute(client, model, text, method="attention", step_scores=[])
        assert len(served.ctx.cache) <= served.ctx.config.cache_max_models
    assert len(served.ctx.cache) == 2


# ------------------------------------------------------------------------------------------------ browser

# Drawn pixels and a checksum of every canvas under one element (Bokeh draws inside shadow roots).
_CANVAS_SIGNATURE_JS = """
(root) => {
  const canvases = [];
  const walk = (node) => {
    for (const el of node.querySelectorAll('*')) {
      if (el.tagName === 'CANVAS') canvases.push(el);
      if (el.shadowRoot) walk(el.shadowRoot);
    }
  };
  walk(root);
  let drawn = 0, checksum = 0;
  for (const canvas of canvases) {
    if (!canvas.width || !canvas.height) continue;
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 0; i < data.length; i += 4) {
      if (data[i + 3] !== 0 && !(data[i] === 255 && data[i + 1] === 255 && data[i + 2] === 255)) drawn += 1;
      checksum = (checksum * 31 + data[i] + 7 * data[i + 1] + 13 * data[i + 2]) % 1000000007;
    }
  }
  return {drawn, checksum};
}
"""


def _wait_for_drawing(page, selector: str, *, different_from: int | None = None, timeout_s: float = 60) -> dict:
    """Poll the canvases under ``selector`` until they are drawn (and differ from a previous checksum)."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        signature = page.locator(selector).evaluate(_CANVAS_SIGNATURE_JS)
        if signature["drawn"] > 500 and signature["checksum"] != different_from:
            page.wait_for_timeout(500)  # let Bokeh finish the frame, then read it again
            settled = page.locator(selector).evaluate(_CANVAS_SIGNATURE_JS)
            if settled == signature:
                return signature
        if time.monotonic() > deadline:
            raise AssertionError(f"{selector} was not (re)drawn in {timeout_s} s: {signature}")
        page.wait_for_timeout(250)


@pytest.mark.browser
@pytest.mark.slow
def test_browser_type_run_draw_slide_export_and_open(served, new_page, tmp_path):  # noqa: F811
    origin = served.url.rstrip("/")
    session = new_page(served.url, allowed_origin=origin)
    page = session.page
    page.wait_for_selector("#attribute-text textarea", timeout=60_000)
    assert "unreachable" in page.inner_text("#offline-notice")

    # Attribute: type, run, see the heatmap drawn by the BokehJS Gradio serves itself (no CDN).
    page.fill("#attribute-text textarea", PROMPT)
    page.click("#attribute-run")
    _wait_for_drawing(page, "#attribute-plot")
    assert page.locator("#attribute-tokens").inner_text().strip()

    # Contribution graph: run, then move the threshold slider and see the graph redrawn.
    page.get_by_role("tab", name="Contribution graph").click()
    page.locator("#graph-examples").get_by_text(PROMPT[:30]).first.click()  # an example fills the inputs and draws
    _wait_for_drawing(page, "#graph-plot")
    assert page.input_value("#graph-text textarea") == PROMPT
    page.fill("#graph-text textarea", PROMPT)
    page.click("#graph-run")
    default = _wait_for_drawing(page, "#graph-plot")
    page.fill("#graph-threshold input[type=number]", str(LOW_THRESHOLD))
    page.keyboard.press("Tab")  # leaving the typed threshold releases the slider: the graph is recomputed
    low = _wait_for_drawing(page, "#graph-plot", different_from=default["checksum"])
    slider = page.locator("#graph-threshold input[type=range]")
    box = slider.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.6, box["y"] + box["height"] / 2)  # 0.3 on a 0–0.5 slider
    high = _wait_for_drawing(page, "#graph-plot", different_from=low["checksum"])
    assert len({default["checksum"], low["checksum"], high["checksum"]}) == 3

    # Export: the graph as a self-contained page, downloaded, then opened with the network blocked.
    page.get_by_role("tab", name="Export").click()
    assert page.get_by_label("Contribution graph").is_checked()  # the current view is the default export
    page.click("#export-run")
    link = page.locator("#export-file a[download]").first
    link.wait_for(timeout=60_000)
    with page.expect_download() as download_info:
        link.click()
    saved = tmp_path / "export.html"
    download_info.value.save_as(saved)
    assert "contribution-graph" in download_info.value.suggested_filename
    exported = new_page(saved.as_uri())
    _wait_for_drawing(exported.page, "body")
    exported.assert_clean()
    session.assert_clean()
