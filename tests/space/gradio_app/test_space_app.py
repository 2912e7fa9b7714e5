"""The real Gradio app on 127.0.0.1, driven through gradio_client and through Chromium.

One app per module (launched once, closed at the end) on the bundled tiny models, plus random
models saved to a temporary folder: a third model to overflow the 2-model cache, a BLOOM model
the contribution graph does not support, and a GPT-2 with a trained byte-level BPE tokenizer and
a Marian with a trained Unigram tokenizer (tokens spelled ``ĠMary`` / ``▁Mary``, as real models
spell them). Every tab's API is checked against the library called directly, bad inputs must
come back as the user-facing message with the app still serving, and 8 parallel clients must all
get correct answers. In Chromium, every tab is run at two window widths and checked for what a
user sees (figures filling their panel, titles not covered, tokens as text, taps reaching the
app's tables, the latest request winning); screenshots go to ``SCREENSHOTS``.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
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
from exporters.embed import FRAME_START_PX
from space.gradio_app.examples import ioi_prompts, translation_pairs
from tests.support.browser import fitted_frame, wait_for_drawing
from tests.support.pages import figure_json
from tests.support.paths import REPO
from tests.support.served_app import MAX_INPUT_TOKENS, MAX_NEW_TOKENS, Served

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

#: The test's own models for direct library calls (never the app's cache, whose size is under test).
REFERENCE_MODELS = ModelCache(max_models=4)
#: Far below the default 0.04: many more edges survive, so the graph visibly differs from the default one.
LOW_THRESHOLD = 0.005
PROMPT = ioi_prompts(1)[0]
#: A bundled translation sample with its gold word alignment.
TRANSLATION = translation_pairs(1)[0]


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

    return Document.from_json(figure_json(page)["doc"])


def _reference(model: str) -> LoadedModel:
    return load_model(model, cache=REFERENCE_MODELS)


def _tokens(model: str, text: str) -> list[str]:
    tokenizer = _reference(model).tokenizer
    return tokenizer.convert_ids_to_tokens(tokenizer(text)["input_ids"])


# ---------------------------------------------------------------------------------------- Attribute tab


@pytest.mark.server
def test_offline_app_offers_the_local_models_only(served):
    offer = served.ctx.offer
    assert set(offer.models) >= {served.causal, served.seq2seq}
    assert not offer.custom_allowed
    assert "unreachable" in offer.notice


@pytest.mark.server
def test_attribute_causal_matches_the_library(served, client):
    plot, tokens_html, table, result_json = _attribute(client, served.causal, PROMPT)
    result = AttributionResult.from_json(result_json)
    assert plot["type"] == "bokeh" and json.loads(plot["plot"])["doc"]["roots"]
    assert result.target_tokens[: result.attributed_start] == _tokens(served.causal, PROMPT)
    assert 1 <= result.n_steps <= MAX_NEW_TOKENS
    probabilities = result.step_scores["probability"]
    assert re.findall(r'class="ae-token" data-step="(\d+)"', tokens_html) == [str(i) for i in range(result.n_steps)]
    assert all(f">{token}</span>" in tokens_html for token in result.generated_tokens)
    assert table["headers"] == ["step", "token", "probability"]
    assert [row[2] for row in table["data"]] == [float(f"{p:.4g}") for p in probabilities]
    assert all(0.0 < p <= 1.0 for p in probabilities)

    # The bundled model knows the task: the app explains the right answer.
    assert result.generated_tokens[0].strip() == _indirect_object(PROMPT)
    assert probabilities[0] > 0.9

    direct = attribute(_reference(served.causal), PROMPT, max_new_tokens=MAX_NEW_TOKENS)
    assert direct.target_tokens == result.target_tokens
    np.testing.assert_allclose(result.target_scores, direct.target_scores, rtol=1e-5, atol=1e-7)


@pytest.mark.server
def test_attribute_seq2seq_with_target(served, client):
    _, tokens_html, _, result_json = _attribute(
        client, served.seq2seq, TRANSLATION["source"], TRANSLATION["target"], method="attention"
    )
    result = AttributionResult.from_json(result_json)
    assert result.provenance.model_kind == "seq2seq"
    assert result.method == "attention"
    assert result.source_tokens == _tokens(served.seq2seq, TRANSLATION["source"])
    assert result.source_scores.shape == (len(result.source_tokens), result.n_steps)
    assert tokens_html.count('class="ae-token"') == result.n_steps
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


@pytest.mark.server
def test_graph_root_nodes_and_edges(served, client):
    plot, graph_json = client.predict(served.causal, PROMPT, "", LOW_THRESHOLD, False, "-1", api_name="/graph")
    graph = ContributionGraph.from_json(graph_json)
    roots, nodes, edges, selection = client.predict(graph_json, api_name="/graph_choices")
    assert selection == ""  # a new graph starts with nothing selected
    assert plot["type"] == "bokeh"
    assert graph.target_tokens == _tokens(served.causal, PROMPT)
    assert graph.root_tokens == [len(graph.target_tokens) - 1]
    assert all(edge.weight >= LOW_THRESHOLD for edge in graph.edges)
    assert [value for _, value in roots["choices"][:2]] == ["-1", "all"]
    assert [value for _, value in roots["choices"][2:]] == [str(i) for i in range(len(graph.target_tokens) - 1)]
    assert [value for _, value in nodes["choices"]] == [node.id for node in graph.nodes]

    direct = build_contribution_graph(_reference(served.causal), PROMPT, threshold=LOW_THRESHOLD)
    assert {(e.source, e.target) for e in direct.edges} == {(e.source, e.target) for e in graph.edges}

    root = next(n for n in graph.nodes if n.layer == graph.n_layers and n.token_index == graph.root_tokens[0])
    details = client.predict(graph_json, root.id, api_name="/graph_node")
    top = [row for row in details["data"] if row[0] == "logit lens"]
    assert [(row[2], row[3], row[4]) for row in top] == [(t, float(f"{v:.4g}"), t) for t, v in root.top_tokens]
    assert top, "the root node must have logit-lens tokens"
    assert top[0][2].strip() == _indirect_object(PROMPT)  # the last layer's logit lens is the model's prediction

    ffn = next(n for n in graph.nodes if n.kind == "ffn")
    neurons = [
        row for row in client.predict(graph_json, ffn.id, api_name="/graph_node")["data"] if row[0] == "top neuron"
    ]
    assert [(int(row[4]), row[3]) for row in neurons] == [(i, float(f"{v:.4g}")) for i, v in ffn.top_neurons]

    attention = next(e for e in graph.edges if e.head_weights is not None)
    _, key = next(choice for choice in edges["choices"] if choice[1] == f"{attention.source}->{attention.target}")
    split = client.predict(graph_json, key, api_name="/graph_edge")["data"]
    assert len(split) == graph.n_heads
    assert math.isclose(sum(w for _, w in split), attention.weight, rel_tol=1e-3, abs_tol=1e-4)

    # Moving the slider up re-traces the routes at the new threshold.
    *_, higher_json = client.predict(served.causal, PROMPT, "", 0.3, False, "-1", api_name="/graph_threshold")
    higher = ContributionGraph.from_json(higher_json)
    assert higher.threshold == 0.3
    assert all(edge.weight >= 0.3 for edge in higher.edges)
    assert len(higher.edges) < len(graph.edges)


# ------------------------------------------------------------------------------------------ Compare tab


@pytest.mark.server
def test_compare_agreement_and_aer_match_the_library(served, client):
    source, target, gold = (TRANSLATION[key] for key in ("source", "target", "alignment"))
    plot, comparison_json = client.predict(
        source, [served.seq2seq], ["saliency", "attention"], target, gold, api_name="/compare"
    )
    comparison = Comparison.from_json(comparison_json)
    assert plot["type"] == "bokeh"
    assert comparison.labels == ["saliency", "attention"]
    assert comparison.rank_correlation[0][0] == pytest.approx(1.0)
    loaded = _reference(served.seq2seq)
    shown = json.dumps(plot)  # the figure's agreement table shows the same numbers
    for label, aer, rho in zip(comparison.labels, comparison.aer, comparison.rank_correlation[0], strict=True):
        direct = attribute(loaded, source, method=label, target=target, step_scores=())
        assert aer == pytest.approx(alignment_error_rate(direct, gold))
        assert f"<td>{aer:.3f}</td>" in shown and f"<td>{rho:.3f}</td>" in shown
    assert "AER vs gold" in shown
    # Ground truth: saliency on the bundled translation model recovers the sample's gold alignment exactly.
    assert comparison.aer[0] == 0.0

    plot, comparison_json = client.predict(source, [served.seq2seq], ["saliency"], target, "", api_name="/compare")
    assert "AER vs gold" not in json.dumps(plot)  # no gold alignment: no AER column


# ------------------------------------------------------------------------------------------- Export tab


@pytest.mark.server
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


@pytest.mark.server
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
            "cannot load 'no-such/model': the Hugging Face Hub is unreachable from it",
        ),
        (
            "/compare",
            (PROMPT, [served.causal, served.seq2seq], ["saliency"], "", ""),
            "tiny-ioi-gpt2 is a causal language model",
        ),
        ("/attribute", (served.causal, PROMPT, "", "value_zeroing", [], ""), "value_zeroing is not available"),
        ("/attribute", (served.causal, PROMPT, "", "magic", [], ""), "magic is not in the list of choices"),
        ("/graph", (served.unsupported_graph, "the cat", "", 0.04, False, "-1"), "'gptj'"),
        ("/graph", (served.causal, PROMPT, "", 0.04, False, "seven"), "root token must be a token index"),
        ("/compare", (PROMPT, [served.causal], [], "", ""), "Choose at least one model and one method"),
        ("/export", ("Compare", "Result JSON", "", "", ""), "Nothing to export yet"),
        # the language inputs come last (source, target): validated server-side, whatever the box allows
        ("/graph", (served.seq2seq, "the cat", "", 0.04, False, "-1", "", "deu_Latn"), "has no language codes"),
        ("/attribute", (served.causal, PROMPT, "", "saliency", [], "", "x" * 10_000, ""), "is not a language code"),
        ("/compare", (PROMPT, [served.seq2seq], ["saliency"], "", "", "eng_Latn", ""), "has no language codes"),
    ]


@pytest.mark.server
def test_bad_inputs_show_the_message_and_the_app_keeps_serving(served, client):
    for api_name, args, message in _bad_requests(served):
        with pytest.raises(AppError) as caught:
            client.predict(*args, api_name=api_name)
        assert message in str(caught.value), (api_name, args, str(caught.value))
    *_, result_json = _attribute(client, served.causal, PROMPT)
    assert AttributionResult.from_json(result_json).target_tokens[0] == _tokens(served.causal, PROMPT)[0]


# ------------------------------------------------------------------------------ concurrency and memory


@pytest.mark.server
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


@pytest.mark.server
def test_model_cache_stays_bounded(served, client):
    for model in (served.causal, served.seq2seq, served.extra, served.causal):
        text = TRANSLATION["source"] if model == served.seq2seq else "the cat sees the dog"
        _attribute(client, model, text, method="attention", step_scores=[])
        assert len(served.ctx.cache) <= served.ctx.config.cache_max_models
    assert len(served.ctx.cache) == 2


# ------------------------------------------------------------------------------------------------ browser


@pytest.mark.server
@pytest.mark.browser
@pytest.mark.slow
def test_browser_type_run_draw_slide_export_and_open(served, new_page, tmp_path):
    origin = served.url.rstrip("/")
    session = new_page(served.url, allowed_origin=origin)
    page = session.page
    page.wait_for_selector("#attribute-text textarea", timeout=60_000)
    assert "unreachable" in page.inner_text("#offline-notice")

    # Attribute: type, run, see the heatmap drawn by the BokehJS Gradio serves itself (no CDN).
    page.fill("#attribute-text textarea", PROMPT)
    page.click("#attribute-run")
    wait_for_drawing(page, "#attribute-plot")
    assert page.locator("#attribute-tokens").inner_text().strip()

    # Contribution graph: run, then move the threshold slider and see the graph redrawn.
    page.get_by_role("tab", name="Contribution graph").click()
    page.locator("#graph-examples").get_by_text(PROMPT[:30]).first.click()  # an example fills the inputs and draws
    wait_for_drawing(page, "#graph-plot")
    assert page.input_value("#graph-text textarea") == PROMPT
    page.fill("#graph-text textarea", PROMPT)
    page.click("#graph-run")
    default = wait_for_drawing(page, "#graph-plot")
    page.fill("#graph-threshold input[type=number]", str(LOW_THRESHOLD))
    page.keyboard.press("Tab")  # leaving the typed threshold releases the slider: the graph is recomputed
    low = wait_for_drawing(page, "#graph-plot", different_from=default["checksum"])
    slider = page.locator("#graph-threshold input[type=range]")
    box = slider.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.6, box["y"] + box["height"] / 2)  # 0.3 on a 0–0.5 slider
    high = wait_for_drawing(page, "#graph-plot", different_from=low["checksum"])
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
    wait_for_drawing(exported.page, "body")
    exported.assert_clean()
    session.assert_clean()


# ------------------------------------------------------------------------ what users see, at two widths

#: Where the browser tests leave their screenshots (gitignored): look at them after a run.
SCREENSHOTS = Path(os.environ.get("ATTRIBUTION_EXPLORER_SCREENSHOTS", REPO / "tests" / "artifacts" / "screenshots"))
WIDTHS = (1400, 800)
MARKERS = ("Ġ", "▁", "Ċ")

# The Bokeh views drawn inside one element: the root layouts and every figure with its title.
_PANEL_JS = """
(selector) => {
  const container = document.querySelector(selector);
  const roots = [...(window.Bokeh?.index ?? [])].filter((view) => container.contains(view.el));
  const figures = [];
  const visit = (view) => {
    if (view.model.type === 'Figure' || view.model.type === 'Plot') figures.push(view);
    for (const child of view.child_views ?? []) visit(child);
  };
  roots.forEach(visit);
  return {
    container: container.getBoundingClientRect().width,
    roots: roots.map((view) => view.el.getBoundingClientRect().width),
    titles: figures.map((view) => view.model.title?.text ?? ''),
  };
}
"""

# Is figure `index` (in drawing order) under `selector` showing its whole title? Checks that the
# text fits the figure's width, scrolls it into view, then looks for anything drawn over the text:
# the topmost element at points along it, and any visible element of the surrounding Gradio block
# (a label badge ignores the pointer, so the topmost-element test alone would miss it) whose box
# overlaps the text.
_TITLE_VISIBLE_JS = """
([selector, index]) => {
  const container = document.querySelector(selector);
  const figures = [];
  const visit = (view) => {
    if (view.model.type === 'Figure' || view.model.type === 'Plot') figures.push(view);
    for (const child of view.child_views ?? []) visit(child);
  };
  [...Bokeh.index].filter((view) => container.contains(view.el)).forEach(visit);
  const view = figures[index];
  view.el.scrollIntoView({block: 'center'});
  const title = [...view.renderer_views.values()].find((v) => v.model === view.model.title);
  const box = view.el.getBoundingClientRect();
  const measure = document.createElement('canvas').getContext('2d');
  measure.font = 'bold 13px helvetica, arial, sans-serif';
  const lines = view.model.title.text.split('\\n');
  const widths = lines.map((line) => measure.measureText(line).width);
  const fits = Math.max(...widths) <= title.bbox.width + 1;  // the whole text fits, nothing cut at the right
  const text = {left: box.left + title.bbox.left, right: box.left + title.bbox.left + Math.max(...widths),
                top: box.top + title.bbox.top, bottom: box.top + title.bbox.top + title.bbox.height};
  const points = lines.flatMap((line, i) => {
    const y = text.top + (i + 0.5) * (title.bbox.height / lines.length);
    const width = Math.min(widths[i], title.bbox.width);
    return [4, width / 2, width - 4].map((dx) => [text.left + dx, y]);
  });
  const within = (inner, outer) => {  // walks up through parents and shadow hosts
    for (let node = inner; node; node = node.parentNode ?? node.host) if (node === outer) return true;
    return false;
  };
  const mine = (el) => within(el, view.el);
  const topmost = ([x, y]) => {
    let el = document.elementFromPoint(x, y);
    while (el && el.shadowRoot) {
      const inner = el.shadowRoot.elementFromPoint(x, y);
      if (!inner || inner === el) break;
      el = inner;
    }
    return el;
  };
  const shown = (el) => {
    const style = getComputedStyle(el);
    const r = el.getBoundingClientRect();
    return style.display !== 'none' && style.visibility !== 'hidden' && Number(style.opacity) > 0
      && r.width > 0 && r.height > 0;
  };
  const overlaps = (r) => r.left < text.right && r.right > text.left && r.top < text.bottom && r.bottom > text.top;
  const block = container.closest('.block') ?? container;
  const over = [...block.querySelectorAll('*')].filter(
    (el) => !within(view.el, el) && !mine(el) && shown(el) && overlaps(el.getBoundingClientRect()));
  const covered = [...points.map(topmost).filter((el) => !mine(el)), ...over];
  const inViewport = points.every(([x]) => x >= 0 && x <= document.documentElement.clientWidth);
  return {fits, inViewport, covered: covered.map((el) => el?.outerHTML?.slice(0, 120) ?? 'nothing')};
}
"""

# Every label a figure draws (axis ticks, titles, menu entries, on-figure text) in the documents shown in `selector`.
_DRAWN_LABELS_JS = """
(selector) => {
  const container = document.querySelector(selector);
  const shown = [...Bokeh.index].filter((view) => container.contains(view.el));
  const docs = new Set(shown.map((view) => view.model.document));
  const get = (mapping, key) => (mapping instanceof Map ? mapping.get(key) : mapping?.[key]);
  const labels = [];
  for (const doc of docs) {
    for (const model of doc.all_models) {
      if (model.type === 'CustomJSTickFormatter') labels.push(...(get(model.args, 'labels') ?? []));
      if (model.type === 'Title') labels.push(model.text);
      if (model.type === 'Select') labels.push(...model.options.map((o) => (Array.isArray(o) ? o[1] : o)));
      const words = model.type === 'CustomJSHover' ? get(model.args, 'words') : null;
      if (words) labels.push(...get(words, 'tokens'));
      if (model.type === 'ColumnDataSource') {
        for (const column of ['label', 'text', 'rows']) {
          const values = get(model.data, column);
          if (values) labels.push(...values);
        }
      }
    }
  }
  return labels.map(String);
}
"""

# The rows a Gradio 6 Dataframe shows (text of each cell, in row order); it renders only the rows
# in view (a virtual list), so long tables give their first rows.
_TABLE_ROWS_JS = """
(selector) => [...document.querySelectorAll(`${selector} [role=row].virtual-row`)]
  .sort((a, b) => Number(a.dataset.index) - Number(b.dataset.index))
  .map((row) => [...row.querySelectorAll('[role=gridcell]')].map((cell) => cell.innerText.trim()))
"""

# Page coordinates of node `id` in the graph figure under `selector`.
_NODE_POINT_JS = """
([selector, id]) => {
  const container = document.querySelector(selector);
  let plot = null;
  const visit = (view) => {
    if (view.model.name === 'contribution graph') plot = view;
    for (const child of view.child_views ?? []) visit(child);
  };
  [...Bokeh.index].filter((view) => container.contains(view.el)).forEach(visit);
  const nodes = plot.model.document.get_model_by_name('nodes');
  const i = nodes.data.id.indexOf(id);
  plot.el.scrollIntoView({block: 'center'});
  const box = plot.el.getBoundingClientRect();
  const [x, y] = [plot.frame.x_scale.compute(nodes.data.x[i]), plot.frame.y_scale.compute(nodes.data.y[i])];
  return [box.left + x, box.top + y];
}
"""


def _shown_figure(page, selector: str) -> dict:
    """Wait until the figure under ``selector`` is drawn and settled, then describe it."""
    page.wait_for_function(
        "(s) => [...(window.Bokeh?.index ?? [])].some((v) => document.querySelector(s).contains(v.el))",
        arg=selector,
        timeout=90_000,
    )
    wait_for_drawing(page, selector)
    return page.evaluate(_PANEL_JS, selector)


def _wait_for_title(page, selector: str, needle: str) -> None:
    """Wait until a figure under ``selector`` has a title containing ``needle`` (e.g. the model's name)."""
    page.wait_for_function(
        f"([s, needle]) => ({_PANEL_JS})(s).titles.some((title) => title.includes(needle))",
        arg=[selector, needle],
        timeout=90_000,
    )


def _check_panel(page, selector: str, *, min_titles: int) -> dict:
    """The checks every tab must pass: no sideways overflow, full-width figures, visible titles, text labels."""
    panel = _shown_figure(page, selector)
    width = page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert width[0] <= width[1], f"the page overflows sideways: {width}"
    assert panel["roots"] and all(root >= 0.8 * panel["container"] for root in panel["roots"]), panel
    titles = [title for title in panel["titles"] if title]
    assert len(titles) >= min_titles, panel["titles"]
    for index, title in enumerate(panel["titles"]):
        if title:
            seen = page.evaluate(_TITLE_VISIBLE_JS, [selector, index])
            assert seen["fits"] and seen["inViewport"] and not seen["covered"], (title, seen)
    labels = page.evaluate(_DRAWN_LABELS_JS, selector)
    assert labels and not [label for label in labels if any(marker in label for marker in MARKERS)]
    return panel


def _screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def _choose_model(page, dropdown: str, model: str) -> None:
    """Type a model into a (single-choice) model dropdown and pick it."""
    box = page.locator(f"{dropdown} input").first
    box.fill(model)
    box.press("Enter")
    box.blur()


def _attribute_plan(served: Served, text: str) -> int:
    """The passes the app estimates for the BPE model on ``text`` with no target (its output generated first)."""
    from space.gradio_app.tabs.attribute import plan_request

    plan, _ = plan_request(served.ctx, served.bpe, text, "", "saliency", ["probability"], "", "", "")
    assert plan.estimate.steps <= MAX_NEW_TOKENS
    return plan.estimate.passes


def _compare_plan(served: Served, text: str, target: str) -> int:
    """The passes the app estimates for the Unigram model's comparison of three methods on ``text``."""
    from space.gradio_app.tabs.compare import plan_comparison

    methods = ["saliency", "input_x_gradient", "attention"]
    plans, _, _ = plan_comparison(served.ctx, text, [served.unigram], methods, target, "", "", "")
    return sum(plan.estimate.passes for plan in plans)


def _wait_for_cost_line(page, selector: str, served: Served, passes: int) -> None:
    """The line under a run button shows the estimate of the current inputs before anything runs."""
    cap = served.ctx.config.max_model_passes
    expected = f"About {passes:,} model passes (this deployment allows {cap:,} per request)."
    page.wait_for_function(
        "([selector, text]) => document.querySelector(selector)?.innerText.includes(text)",
        arg=[selector, expected],
        timeout=30_000,
    )
    assert page.locator(selector).is_visible()


def _open_app(new_page, served, width: int):
    session = new_page(served.url, allowed_origin=served.url.rstrip("/"), viewport=(width, 1000))
    session.page.wait_for_selector("#attribute-text textarea", timeout=60_000)
    return session


@pytest.mark.server
@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("width", WIDTHS)
def test_attribute_tab_at_width(served, new_page, width: int) -> None:
    session = _open_app(new_page, served, width)
    page = session.page
    page.locator("#attribute-examples tbody tr").first.click()  # the IOI example: fills the inputs and runs
    _check_panel(page, "#attribute-plot", min_titles=2)  # step-score bars and the prefix heatmap
    assert "probability 0" in page.inner_text("#attribute-tokens")  # legend 0 … 1, not −1 … +1
    _screenshot(page, f"attribute-{width}-example")

    _choose_model(page, "#attribute-model", served.bpe)
    _wait_for_cost_line(
        page, "#attribute-cost", served, _attribute_plan(served, page.input_value("#attribute-text textarea"))
    )
    page.click("#attribute-run")
    _wait_for_title(page, "#attribute-plot", "bpe-gpt2")
    panel = _check_panel(page, "#attribute-plot", min_titles=2)
    assert any("bpe-gpt2" in title for title in panel["titles"])
    tokens = page.inner_text("#attribute-tokens")
    steps = page.evaluate(_TABLE_ROWS_JS, "#attribute-steps")
    assert len(steps) == MAX_NEW_TOKENS and not any(marker in tokens + json.dumps(steps) for marker in MARKERS)
    assert "·" in page.evaluate(_DRAWN_LABELS_JS, "#attribute-plot").__str__()  # leading spaces are marked
    _screenshot(page, f"attribute-{width}-bpe")
    session.assert_clean()


_PROGRESS_TARGETS_JS = """() => {
  const shown = new Set();
  for (const el of document.querySelectorAll('.progress-text, .progress-level, .eta-bar')) {
    const block = el.closest('[id]');
    if (block && el.getBoundingClientRect().height > 0) shown.add(block.id);
  }
  return [...shown];
}"""


@pytest.mark.browser
@pytest.mark.slow
def test_a_new_request_dismisses_an_old_error_and_shows_one_progress_bar(served, new_page) -> None:
    """An error toast does not stay over the next result; a run shows its progress on the figure."""
    session = _open_app(new_page, served, 1400)
    page = session.page
    page.fill("#attribute-text textarea", "   ")
    page.click("#attribute-run")
    page.wait_for_selector('[data-testid="toast-close"]', timeout=30_000)  # "The input text is empty…"
    assert "empty" in page.inner_text("body")
    page.fill("#attribute-text textarea", PROMPT)
    page.click("#attribute-run")
    page.wait_for_function("() => !document.querySelector('[data-testid=\"toast-close\"]')", timeout=10_000)
    seen: set[str] = set()
    for _ in range(600):  # while it runs: where progress is drawn (the figure only, not each output)
        seen.update(page.evaluate(_PROGRESS_TARGETS_JS))
        if page.evaluate("() => [...(window.Bokeh?.index ?? [])].length > 0"):
            break
        page.wait_for_timeout(20)
    assert "attribute-plot" in seen, seen  # the progress shows on the figure (Gradio may time the other outputs)
    _check_panel(page, "#attribute-plot", min_titles=2)
    session.assert_clean()


# The agreement table under the compared heatmaps: its text, and any cell whose text is cut.
_AGREEMENT_JS = """
(selector) => {
  const container = document.querySelector(selector);
  const divs = [...Bokeh.index].filter((view) => container.contains(view.el));
  let table = null;
  const visit = (view) => {
    if (view.model.name === 'agreement') table = view;
    for (const child of view.child_views ?? []) visit(child);
  };
  divs.forEach(visit);
  const cells = [...table.shadow_el.querySelectorAll('th, td')];
  return {
    text: cells.map((cell) => cell.textContent).join(' '),
    clipped: cells.filter((cell) => cell.scrollWidth > cell.clientWidth + 1).map((cell) => cell.textContent),
  };
}
"""


def _table_rows_match(shown: list[list[str]], expected: list[list]) -> None:
    """A Gradio table's cells (text) against the handler's rows: text columns exactly, numbers to 4 digits."""
    assert shown and len(shown) == min(len(expected), len(shown)), (shown, expected)
    for cells, row in zip(shown, expected[: len(shown)], strict=True):
        for cell, value in zip(cells, row, strict=True):
            if isinstance(value, float):
                assert float(cell) == pytest.approx(value, rel=1e-3, abs=1e-6), (cells, row)
            else:
                assert cell == str(value), (cells, row)


@pytest.mark.server
@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("width", WIDTHS)
def test_graph_tab_at_width_and_a_tap_fills_the_apps_tables(served, new_page, width: int) -> None:
    from exporters.graph_details import GraphWords
    from space.gradio_app.tabs.graph_selection import node_details

    session = _open_app(new_page, served, width)
    page = session.page
    page.get_by_role("tab", name="Contribution graph").click()
    page.locator("#graph-examples tbody tr").first.click()
    _check_panel(page, "#graph-plot", min_titles=1)
    _screenshot(page, f"graph-{width}-example")

    _choose_model(page, "#graph-model", served.bpe)
    page.fill("#graph-text textarea", PROMPT)
    page.click("#graph-run")
    _wait_for_title(page, "#graph-plot", "bpe-gpt2")
    _check_panel(page, "#graph-plot", min_titles=1)
    tokens = _tokens(served.bpe, PROMPT)
    graph = build_contribution_graph(_reference(served.bpe), PROMPT, threshold=0.04)  # what the app computed
    root = f"decoder:{graph.n_layers}:after_ffn:{len(tokens) - 1}"
    assert graph.node(root).top_tokens
    assert page.input_value("#graph-root input").startswith(f"last token ({len(tokens) - 1}: ·")

    # Tap the root node in the figure: the app's selection and its node table follow.
    page.mouse.click(*page.evaluate(_NODE_POINT_JS, ["#graph-plot", root]))
    page.wait_for_function(
        "(id) => document.querySelector('#graph-selection textarea, #graph-selection input').value === id",
        arg=root,
        timeout=30_000,
    )
    page.wait_for_function(
        "() => document.querySelectorAll('#graph-node-table [role=row].virtual-row').length > 2", timeout=30_000
    )
    expected = node_details(graph.to_json(), root)
    _table_rows_match(page.evaluate(_TABLE_ROWS_JS, "#graph-node-table"), expected)
    assert not any(marker in row[2] for row in expected for marker in MARKERS)  # the token column reads as text
    assert any(marker in row[4] for row in expected for marker in MARKERS)  # the raw column keeps the spelling
    assert page.input_value("#graph-node input").startswith("·to (")  # the node menu shows the tapped node
    panel = page.evaluate(
        "() => [...Bokeh.documents].map((d) => d.get_model_by_name('details')).filter(Boolean).at(-1).text"
    )
    assert [line.split()[1] for line in panel.splitlines() if line.startswith("  1. ")] == [
        row[2] for row in expected if row[1] == 1
    ]  # the figure's own panel lists the same items
    _screenshot(page, f"graph-{width}-bpe-tapped")

    # The other way round: a node picked in the app's menu is selected (highlighted) in the figure.
    first = next(node.id for node in graph.nodes if node.id != root and node.top_tokens)
    menu = page.locator("#graph-node input").first
    menu.fill(GraphWords(graph).node_place(graph.node(first)))
    menu.press("Enter")
    page.wait_for_function(
        "(id) => { const nodes = [...Bokeh.documents].map((d) => d.get_model_by_name('nodes')).filter(Boolean).at(-1);"
        " return nodes.selected.indices.length === 1 && nodes.data.id[nodes.selected.indices[0]] === id; }",
        arg=first,
        timeout=30_000,
    )
    _table_rows_match(page.evaluate(_TABLE_ROWS_JS, "#graph-node-table"), node_details(graph.to_json(), first))
    session.assert_clean()


@pytest.mark.server
@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("width", WIDTHS)
def test_compare_tab_at_width(served, new_page, width: int) -> None:
    session = _open_app(new_page, served, width)
    page = session.page
    page.get_by_role("tab", name="Compare").click()
    page.locator("#compare-examples tbody tr").first.click()  # a translation with its gold alignment
    _check_panel(page, "#compare-plot", min_titles=4)  # two methods × (source → target, target → target)
    assert "AER vs gold" in page.evaluate(_AGREEMENT_JS, "#compare-plot")["text"]
    _wait_for_title(page, "#compare-difference", "A − B: saliency − attention")  # the first two, chosen for you
    _screenshot(page, f"compare-{width}-example")

    models = page.locator("#compare-models input").first
    models.click()
    models.press("Backspace")
    models.fill(served.unigram)
    models.press("Enter")
    page.fill("#compare-gold textarea, #compare-gold input", "")
    page.get_by_role("checkbox", name="input_x_gradient", exact=True).check()  # a long label, a cheap method
    _wait_for_cost_line(
        page,
        "#compare-cost",
        served,
        _compare_plan(served, page.input_value("#compare-text textarea"), translation_pairs(1)[0]["target"]),
    )
    page.click("#compare-run")
    _wait_for_title(page, "#compare-plot", "unigram-marian")
    panel = _check_panel(page, "#compare-plot", min_titles=6)  # three methods × two parts
    assert all("unigram-marian" in title for title in panel["titles"] if title)
    table = page.evaluate(_AGREEMENT_JS, "#compare-plot")
    assert "AER vs gold" not in table["text"]  # no gold alignment: no AER column
    assert "input_x_gradient" in table["text"] and not table["clipped"], table  # labels whole, none cut
    _screenshot(page, f"compare-{width}-unigram")
    session.assert_clean()


# The agreement table of a comparison page (a Bokeh Div named "agreement"): its text and where its bottom is.
_PAGE_AGREEMENT_JS = """() => {
  const views = [];
  const visit = (view) => { views.push(view); for (const child of view.child_views ?? []) visit(child); };
  [...Bokeh.index].forEach(visit);
  const table = views.find((view) => view.model.name === 'agreement');
  return {text: table.shadow_el.textContent, bottom: table.el.getBoundingClientRect().bottom};
}"""


@pytest.mark.server
@pytest.mark.browser
@pytest.mark.slow
def test_the_export_preview_takes_its_pages_height(served, new_page) -> None:
    """The Export tab's preview of a comparison is as tall as its page: the ρ/AER table under the figures shows."""
    session = _open_app(new_page, served, 1400)
    page = session.page
    page.get_by_role("tab", name="Compare").click()
    page.locator("#compare-examples tbody tr").first.click()
    _shown_figure(page, "#compare-plot")
    page.get_by_role("tab", name="Export").click()
    assert page.get_by_label("Compare", exact=True).is_checked()
    page.click("#export-run")
    frame, height, content = fitted_frame(page, "#export-preview iframe.ae-frame")
    assert abs(height - content) <= 1 and height != FRAME_START_PX, (height, content)
    table = frame.evaluate(_PAGE_AGREEMENT_JS)
    assert "AER vs gold" in table["text"] and 0 < table["bottom"] <= height, (table, height)
    _screenshot(page, "export-preview-compare")
    session.assert_clean()


@pytest.mark.server
@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("width", WIDTHS)
def test_intervene_tab_at_width(served, new_page, width: int) -> None:
    from space.gradio_app.examples import swap_names

    session = _open_app(new_page, served, width)
    page = session.page
    page.get_by_role("tab", name="Intervene").click()
    page.locator("#intervene-examples tbody tr").first.click()  # IOI with the names swapped
    # the head and position maps, each as exact and attribution patching
    panel = _check_panel(page, "#intervene-plot", min_titles=4)
    assert sorted(set(panel["titles"]) - {""}) == ["attribution patching", "exact patching"]
    _screenshot(page, f"intervene-{width}-example")

    _choose_model(page, "#intervene-model", served.bpe)
    page.fill("#intervene-text textarea", PROMPT)
    page.fill("#intervene-counterfactual textarea", swap_names(PROMPT))
    # a random model predicts the same token after both prompts: name the contrast (one token, its space typed)
    page.get_by_label("Contrast token (default: the counterfactual's prediction)").fill(" Mark")
    page.click("#intervene-run")
    page.wait_for_function(  # the new run's summary (while it runs, the box shows Gradio's timer)
        "() => document.querySelector('#intervene-summary').innerText.includes('logit(·Mark)')", timeout=120_000
    )
    _check_panel(page, "#intervene-plot", min_titles=4)  # the position map's labels are BPE tokens, shown as text
    summary = page.inner_text("#intervene-summary")
    assert not any(marker in summary for marker in MARKERS), summary
    _screenshot(page, f"intervene-{width}-bpe")
    session.assert_clean()


def _wait_until(page, condition, timeout_s: float) -> bool:
    """Poll ``condition`` while the page keeps running (a blocking wait would also stall Playwright's
    request routing, so the page's own requests could not reach the app)."""
    import time

    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        page.wait_for_timeout(100)
    return True


@pytest.mark.server
@pytest.mark.browser
@pytest.mark.slow
def test_the_graph_shows_the_latest_request_only(served, new_page, monkeypatch) -> None:
    """Enter in the threshold box starts a request; an example clicked meanwhile wins, whatever ends last."""
    from space.gradio_app.tabs import graph as graph_tab

    gate, started, finished = threading.Event(), threading.Event(), threading.Event()
    run_graph = graph_tab.run_graph

    def held_back(ctx, model, *args, **kwargs):
        if model != served.extra:
            return run_graph(ctx, model, *args, **kwargs)
        started.set()
        try:
            gate.wait(120)  # until the newer request is on screen
            return run_graph(ctx, model, *args, **kwargs)
        finally:
            finished.set()

    monkeypatch.setattr(graph_tab, "run_graph", held_back)
    session = _open_app(new_page, served, 1400)
    page = session.page
    page.get_by_role("tab", name="Contribution graph").click()
    _choose_model(page, "#graph-model", served.extra)
    page.fill("#graph-text textarea", "the cat sees the dog")
    threshold = page.locator("#graph-threshold input[type=number]")
    threshold.fill("0.05")
    threshold.press("Enter")  # request 1: Enter applies the typed threshold
    assert _wait_until(page, started.is_set, 60), "Enter in the threshold box did not start a request"
    page.locator("#graph-examples tbody tr").nth(2).click()  # request 2: a translation example
    _wait_for_title(page, "#graph-plot", served.seq2seq)
    gate.set()  # request 1 now finishes, after request 2
    assert _wait_until(page, finished.is_set, 60)
    page.wait_for_function(  # request 1's answer has arrived once the plot's progress tracker is gone
        "() => !document.querySelector('#graph-plot .wrap:not(.hide)')", timeout=30_000
    )
    page.wait_for_timeout(1_000)
    assert page.evaluate(_PANEL_JS, "#graph-plot")["titles"] == [f"Contribution graph — {served.seq2seq}"]
    root = page.input_value("#graph-root input")  # the menus belong to the translation's graph too
    assert root.startswith("last token (") and root.endswith(f": {TRANSLATION['target'].split()[-1]})"), root
    assert page.input_value("#graph-text textarea") == TRANSLATION["source"]
    session.assert_clean()
