"""The Space's handlers called directly, without Gradio: the same checks the app relies on."""

from __future__ import annotations

import json
import os
import re
import time

import pytest

from attribution.errors import InvalidInputError, UnsupportedError
from attribution.models import ModelCache
from attribution.results import ContributionGraph
from space.gradio_app import context
from space.gradio_app.config import SpaceConfig
from space.gradio_app.examples import attribute_examples, compare_examples, graph_examples, translation_pairs
from space.gradio_app.tabs import attribute as attribute_tab
from space.gradio_app.tabs import compare as compare_tab
from space.gradio_app.tabs import export as export_tab
from space.gradio_app.tabs import graph as graph_tab
from space.gradio_app.tabs import graph_selection
from tests.support import texts
from tests.support.app_context import offline_context

PROMPT = texts.IOI_PROMPT


@pytest.fixture(scope="module")
def ctx() -> context.AppContext:
    config = SpaceConfig(max_new_tokens=2, max_input_tokens=40, methods=("saliency", "attention", "value_zeroing"))
    return offline_context(config, cache=ModelCache(max_models=2))


@pytest.fixture(scope="module")
def graph_json(ctx) -> str:
    return graph_tab.run_graph(ctx, "tiny-ioi-gpt2", PROMPT, "", 0.02, False, "-1").graph_json


def test_methods_offered_are_the_config_ones_that_run_somewhere(ctx):
    assert context.offered_methods(ctx.config) == ["saliency", "attention", "value_zeroing"]
    assert "reagent" not in context.offered_methods(SpaceConfig())  # refused on every architecture here


def test_attribution_handler_reports_progress_and_probabilities(ctx):
    reports: list[tuple[float, str]] = []
    view = attribute_tab.run_attribution(
        ctx,
        "tiny-ioi-gpt2",
        PROMPT,
        "",
        "saliency",
        ["probability", "entropy"],
        "",
        progress=lambda done, total, message="": reports.append((done / total, message)),
    )
    assert reports[0] == (0.0, "loading tiny-ioi-gpt2") and reports[-1][0] == 1.0
    assert all(0.0 <= fraction <= 1.0 for fraction, _ in reports)
    assert view.step_headers == ["step", "token", "probability", "entropy"]
    assert [row[1] for row in view.step_table] == view.result.generated_tokens  # word-level: already text
    probabilities = view.result.step_scores["probability"]
    assert [row[2] for row in view.step_table] == [float(f"{p:.4g}") for p in probabilities]
    shades = re.findall(r"rgba\(33, 102, 172, ([0-9.]+)\)", view.tokens_html)
    assert [float(a) for a in shades[: len(probabilities)]] == [round(0.08 + 0.6 * p, 3) for p in probabilities]
    assert "probability <span" in view.tokens_html and "</span> 1</div>" in view.tokens_html  # legend 0 … 1
    with pytest.raises(UnsupportedError, match="value_zeroing is not available for gpt2"):
        attribute_tab.run_attribution(ctx, "tiny-ioi-gpt2", PROMPT, "", "value_zeroing", [], "")
    with pytest.raises(InvalidInputError, match="Unknown method 'occlusion'"):
        attribute_tab.run_attribution(ctx, "tiny-ioi-gpt2", PROMPT, "", "occlusion", [], "")


def test_graph_choices_and_details(graph_json):
    graph = json.loads(graph_json)
    n_tokens = len(graph["target_tokens"])
    choices = graph_selection.graph_choices(graph_json)
    # The default (here the last token), the last token, every route at once, then the other tokens.
    assert [value for _, value in choices.roots] == ["auto", "-1", "all", *map(str, range(n_tokens - 1))]
    assert [label for label, _ in choices.roots[:3]] == [
        f"default: last token ({n_tokens - 1}: to)",
        f"last token ({n_tokens - 1}: to)",
        "all tokens",
    ]
    assert [value for _, value in choices.nodes] == [node["id"] for node in graph["nodes"]]
    attention = [e for e in graph["edges"] if e["head_weights"] is not None]
    assert [value for _, value in choices.attention_edges] == [f"{e['source']}->{e['target']}" for e in attention]
    assert graph_selection.graph_choices("").nodes == []
    residual = next(e for e in graph["edges"] if e["kind"] == "residual")
    with pytest.raises(InvalidInputError, match="not an attention edge"):
        graph_selection.edge_details(graph_json, f"{residual['source']}->{residual['target']}#residual")
    with pytest.raises(InvalidInputError, match="No node 'decoder:99:ffn:0'"):
        graph_selection.node_details(graph_json, "decoder:99:ffn:0")
    with pytest.raises(InvalidInputError, match="Compute a contribution graph first"):
        graph_selection.node_details("", "decoder:1:ffn:0")
    assert graph_selection.node_details(graph_json, None) == []


def test_a_translations_default_root_is_the_whole_target(ctx):
    """Its last token predicts only ``</s>``: the default routes start from every target token."""
    pair = translation_pairs(1)[0]
    inputs = ("tiny-synth-translate", pair["source"], pair["target"], 0.04, False)
    graph = ContributionGraph.from_json(graph_tab.run_graph(ctx, *inputs, "auto").graph_json)
    assert graph.root_tokens == list(range(len(graph.target_tokens)))
    assert graph_selection.graph_choices(graph.to_json()).roots[0] == ("default: all tokens", "auto")
    causal_json = graph_tab.run_graph(ctx, "tiny-ioi-gpt2", PROMPT, "", 0.04, False, "").graph_json
    causal = ContributionGraph.from_json(causal_json)
    assert causal.root_tokens == [len(causal.target_tokens) - 1]


def test_the_roots_menu_and_the_threshold_rewalk_the_shown_graph_without_the_model(ctx):
    """Both controls take the cheap step when it is exact, and it equals tracing the model again."""
    from attribution.contributions import build_contribution_graph

    shown = graph_tab.run_graph(ctx, "tiny-ioi-gpt2", PROMPT, "", 0.02, False, "all").graph_json
    n_tokens = len(ContributionGraph.from_json(shown).target_tokens)
    inputs = ("tiny-ioi-gpt2", PROMPT, "")
    for root, threshold in (("3", 0.02), ("-1", 0.1), ("2,5", 0.05), ("auto", 0.02)):
        view = graph_tab.rewalked_shown_graph(*inputs, threshold, False, root, shown, max_bytes=None)
        roots = [n_tokens - 1] if root == "auto" else [int(i) for i in root.split(",")]
        traced = build_contribution_graph(ctx.load("tiny-ioi-gpt2"), PROMPT, threshold=threshold, root_tokens=roots)
        assert [(e.source, e.target, e.kind) for e in view.graph.edges] == [
            (e.source, e.target, e.kind) for e in traced.edges
        ]
        assert view.graph.root_tokens == sorted(i % n_tokens for i in roots)
    narrowed = graph_tab.rewalked_shown_graph(*inputs, 0.02, False, "3", shown, max_bytes=None).graph_json
    # Roots the shown graph does not hold, or a lower threshold, need the model: the cheap step says so.
    assert graph_tab.rewalked_shown_graph(*inputs, 0.02, False, "all", narrowed, max_bytes=None) is None
    assert graph_tab.rewalked_shown_graph(*inputs, 0.01, False, "3", narrowed, max_bytes=None) is None
    assert graph_tab.rewalked_shown_graph(*inputs, 0.02, False, "99", shown, max_bytes=None) is None
    assert graph_tab.rethreshold_graph(ctx, *inputs, 0.02, False, "all", narrowed).graph.root_tokens == list(
        range(n_tokens)
    )  # the model recomputes what the cheap step cannot


def test_the_selection_shows_the_same_rows_as_the_figure(graph_json):
    from exporters.graph_details import GraphWords

    graph = ContributionGraph.from_json(graph_json)
    words = GraphWords(graph)
    ffn = next(node for node in graph.nodes if node.kind == "ffn" and node.top_neurons)
    chosen = graph_selection.graph_selection(graph_json, ffn.id)
    assert chosen.node_id == ffn.id and chosen.edge_key is None
    assert chosen.node_title == words.node_title(ffn)
    expected = [[r.list, r.rank, r.item, float(f"{r.value:.4g}"), r.raw] for r in words.node_rows(ffn)]
    assert chosen.node_rows == expected == graph_selection.node_details(graph_json, ffn.id)
    neurons = [row for row in chosen.node_rows if row[0] == "top neuron"]
    assert [(int(row[4]), row[3]) for row in neurons] == [(n, float(f"{v:.4g}")) for n, v in ffn.top_neurons]
    for row in chosen.node_rows:  # the figure's tap panel lists the very same items
        assert f"  {row[1]}. {row[2]}  " in words.node_details_text(ffn)

    attention = next(edge for edge in graph.edges if edge.kind == "attention")
    chosen = graph_selection.graph_selection(graph_json, f"{attention.source}->{attention.target}")
    assert chosen.node_id is None and chosen.edge_key == f"{attention.source}->{attention.target}"
    assert chosen.edge_title == words.edge_title(attention)
    assert [row[0] for row in chosen.edge_rows] == list(range(graph.n_heads))
    assert sum(row[1] for row in chosen.edge_rows) == pytest.approx(attention.weight, abs=1e-3)

    residual = next(edge for edge in graph.edges if edge.kind == "residual")
    chosen = graph_selection.graph_selection(graph_json, f"{residual.source}->{residual.target}#residual")
    assert chosen.edge_title.startswith("residual edge ") and chosen.edge_rows == [] and chosen.edge_key is None
    assert graph_selection.graph_selection(graph_json, "") == graph_selection.Selection(None, "", [], None, "", [])
    assert graph_selection.graph_selection("", "decoder:1:ffn:0").node_rows == []  # no graph shown (yet): nothing
    with pytest.raises(InvalidInputError, match="No node or edge 'nonsense'"):
        graph_selection.graph_selection(graph_json, "nonsense")


def test_generated_tokens_are_escaped_and_shaded_on_a_zero_to_one_scale():
    from tests.support.handmade_results import causal_result

    result = causal_result(["The", "cat", "<b>sat</b>", "on"])
    html = attribute_tab.generated_tokens_html(result)
    assert "<b>sat</b>" not in html and "&lt;b&gt;sat&lt;/b&gt;" in html
    assert re.findall(r"rgba\(33, 102, 172, ([0-9.]+)\)", html)[:2] == ["0.380", "0.230"]  # p = 0.5, 0.25
    result.step_scores = {}
    assert "Tick the <i>probability</i> step score" in attribute_tab.generated_tokens_html(result)
    assert attribute_tab.step_score_table(result) == (["step", "token"], [[0, "<b>sat</b>"], [1, "on"]])


def test_comparing_a_causal_and_a_seq2seq_model_says_what_is_wrong(ctx):
    with pytest.raises(InvalidInputError) as caught:
        compare_tab.run_comparison(ctx, PROMPT, ["tiny-ioi-gpt2", "tiny-synth-translate"], ["saliency"], "", "")
    message = str(caught.value)
    assert "tiny-ioi-gpt2 is a causal language model" in message
    assert "tiny-synth-translate is a sequence-to-sequence model" in message
    assert "Compare causal models with each other, or sequence-to-sequence models with each other" in message


def test_an_offline_app_says_why_it_cannot_load_a_typed_model(ctx):
    with pytest.raises(InvalidInputError, match="cannot load 'gpt2': the Hugging Face Hub is unreachable from it"):
        attribute_tab.run_attribution(ctx, "gpt2", PROMPT, "", "saliency", [], "")


@pytest.mark.parametrize(
    ("hub_message", "shown"),
    [
        (
            "the Hub rejected the token (401 Unauthorized): log in again or set HF_TOKEN; the local files are kept",
            "The Hub rejected the token (401 Unauthorized): sign in again or paste another write token. "
            "Nothing was published; your result is still here (download it with 'Create file').",
        ),
        (
            "no Hugging Face token: run `hf auth login` or set HF_TOKEN; the local files are kept",
            "No Hugging Face token: sign in with Hugging Face or paste a write token. "
            "Nothing was published; your result is still here (download it with 'Create file').",
        ),
    ],
)
def test_push_errors_are_worded_for_people_in_a_browser(hub_message: str, shown: str):
    assert export_tab.for_browser_users(hub_message) == shown


def test_export_and_push_refuse_bad_requests_before_any_work(ctx, graph_json):
    with pytest.raises(InvalidInputError, match="Unknown export format 'PDF'"):
        export_tab.make_export(ctx, graph_json, "contribution graph", "PDF")
    with pytest.raises(InvalidInputError, match="Nothing to export yet: run the compare tab first"):
        export_tab.make_export(ctx, " ", "compare", "Result JSON")
    with pytest.raises(InvalidInputError, match="cannot be read back"):
        export_tab.make_export(ctx, '{"schema": "nonsense"}', "attribute", "Result JSON")
    with pytest.raises(InvalidInputError, match="Type the Hub repository"):
        export_tab.push_to_hub(ctx, graph_json, "contribution graph", " ", "hf_token")
    with pytest.raises(InvalidInputError, match="Log in with Hugging Face or paste a write token"):
        export_tab.push_to_hub(ctx, graph_json, "contribution graph", "alice/demo", None)
    old_export = ctx.exports.write("old.json", "{}")
    os.utime(old_export, (time.time() - ctx.config.export_max_age_s - 1,) * 2)
    view = export_tab.make_export(ctx, graph_json, "contribution graph", "Result JSON")
    assert view.path.name == "contribution-graph_tiny-ioi-gpt2.json"
    assert json.loads(view.path.read_text()) == json.loads(graph_json)
    assert not old_export.parent.exists() and view.path.exists()  # exports older than an hour are pruned


def test_compare_refuses_too_many_runs_and_empty_choices(ctx):
    with pytest.raises(InvalidInputError, match="Choose at least one model and one method"):
        compare_tab.run_comparison(ctx, PROMPT, ["tiny-ioi-gpt2"], [], "", "")
    many = SpaceConfig(methods=("saliency", "attention", "input_x_gradient", "deeplift"))
    big = offline_context(many, cache=ModelCache(max_models=1))
    with pytest.raises(InvalidInputError, match="8 model × method pairs is too many"):
        compare_tab.run_comparison(big, PROMPT, ["tiny-ioi-gpt2", "tiny-synth-translate"], list(many.methods), "", "")


def test_every_tab_has_examples_on_the_bundled_models():
    bundled = ("tiny-ioi-gpt2", "tiny-synth-translate")
    assert {row[0] for row in attribute_examples(bundled)} == set(bundled)
    assert {row[0] for row in graph_examples(bundled)} == set(bundled)
    pair = translation_pairs(1)[0]
    assert compare_examples(bundled)[0] == [
        pair["source"],
        ["tiny-synth-translate"],
        ["saliency", "attention"],
        pair["target"],
        pair["alignment"],
        "",  # no source / target language: the bundled model translates one pair
        "",
    ]


def _model_dropdowns(demo) -> list:
    import gradio as gr

    return [b for b in demo.blocks.values() if isinstance(b, gr.Dropdown) and b.label == "Model"]


def test_online_app_offers_the_config_models_and_typed_ids():
    from space.gradio_app import build_app

    config = SpaceConfig(models=("gpt2", "Helsinki-NLP/opus-mt-en-de"), default_model="gpt2")
    demo, ctx = build_app(config, hub_reachable=True)
    dropdowns = _model_dropdowns(demo)
    assert len(dropdowns) == 4  # Attribute, Contribution graph, Intervene and Features
    for dropdown in dropdowns:
        assert [value for _, value in dropdown.choices][:2] == ["gpt2", "Helsinki-NLP/opus-mt-en-de"]
        assert dropdown.value == "gpt2" and dropdown.allow_custom_value
    assert ctx.offer.notice == "" and ctx.offer.custom_allowed

    demo_mode, demo_ctx = build_app(
        SpaceConfig(models=("gpt2",), default_model="gpt2", demo_mode=True), hub_reachable=True
    )
    # A typed id reaches the handler (the menu does not silently revert it), which refuses it in words.
    assert all(dropdown.allow_custom_value and dropdown.info is None for dropdown in _model_dropdowns(demo_mode))
    with pytest.raises(InvalidInputError, match="Unknown model 'someone/model': this app offers only gpt2"):
        demo_ctx.check_model("someone/model")
