"""The Space's intervention features: graph-tab Ablate, the Intervene tab, Compare's faithfulness columns.

Handlers are checked against the library on the bundled models; the served app through ``gradio_client``
and Chromium (the app fixture of ``tests/space/gradio_app/test_space_app.py``).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
import torch

from attribution import budget as budget_module
from attribution.cost import estimate_patching_cost, estimate_route_cost
from attribution.errors import BudgetExceededError, CostLimitError, InvalidInputError
from attribution.interventions.ablation import intervene
from attribution.interventions.faithfulness import attribution_faithfulness
from attribution.interventions.results import PatchingResult
from attribution.results import Comparison, ContributionGraph, load_result
from space.gradio_app import context, examples
from space.gradio_app.config import SpaceConfig
from space.gradio_app.tabs import ablate as ablate_tab
from space.gradio_app.tabs import compare as compare_tab
from space.gradio_app.tabs import graph as graph_tab
from space.gradio_app.tabs import intervene as intervene_tab
from tests.support.app_context import offline_context
from tests.support.browser import wait_for_drawing
from tests.support.fakes import TickingClock

PROMPT = "When Mark and Tom went to the market, Mark gave a ball to"
SCREENSHOTS = os.environ.get("ATTRIBUTION_EXPLORER_SCREENSHOTS")


@pytest.fixture(scope="module")
def ctx() -> context.AppContext:
    config = SpaceConfig(models=("tiny-ioi-gpt2", "tiny-synth-translate"), default_model="tiny-ioi-gpt2")
    return offline_context(config)


def test_ablate_an_edge_matches_the_library_and_redraws_the_route(ctx):
    view = graph_tab.run_graph(ctx, "tiny-ioi-gpt2", PROMPT, "", 0.04, False, "-1")
    graph = view.graph
    edge = next(e for e in graph.edges if e.head_weights is not None)
    key = f"{edge.source}->{edge.target}"
    ablated = ablate_tab.ablate_from_graph(ctx, "tiny-ioi-gpt2", PROMPT, "", view.graph_json, key, "zero", 0.04)
    direct = intervene(ctx.load("tiny-ioi-gpt2"), PROMPT, [key]).predictions[0]
    assert ablated.table[0][1:3] == [round(direct.probability_before, 5), round(direct.probability_after, 5)]
    assert ablated.figure is not None and "route after the ablation" in ablated.note
    assert load_result(ablated.result_json).components == [key]
    node = next(n for n in graph.nodes if n.kind == "after_attention")
    by_node = ablate_tab.ablate_from_graph(
        ctx, "tiny-ioi-gpt2", PROMPT, "", view.graph_json, node.id, "mean (over positions)", 0.04
    )
    assert by_node.figure is None and "not re-drawn" in by_node.note
    assert load_result(by_node.result_json).components == [f"decoder:{node.layer}:attention:{node.token_index}"]
    with pytest.raises(InvalidInputError, match="Compute a contribution graph first"):
        ablate_tab.ablate_from_graph(ctx, "tiny-ioi-gpt2", PROMPT, "", "", key, "zero", 0.04)
    with pytest.raises(InvalidInputError, match="text changed"):
        ablate_tab.ablate_from_graph(ctx, "tiny-ioi-gpt2", PROMPT + " x", "", view.graph_json, key, "zero", 0.04)


def test_ablate_and_intervene_show_byte_level_tokens_as_text(tmp_path):
    from tests.support.real_tokenizers import save_bpe_gpt2

    bpe = str(save_bpe_gpt2(tmp_path / "bpe-gpt2"))
    config = SpaceConfig(models=(bpe,), default_model=bpe)
    bpe_ctx = offline_context(config)
    view = graph_tab.run_graph(bpe_ctx, bpe, PROMPT, "", 0.04, False, "-1")
    node = next(n for n in view.graph.nodes if n.kind == "after_attention")
    ablated = ablate_tab.ablate_from_graph(bpe_ctx, bpe, PROMPT, "", view.graph_json, node.id, "zero", 0.04)
    component = f"decoder:{node.layer}:attention:{node.token_index}"
    direct = intervene(bpe_ctx.load(bpe), PROMPT, [component]).predictions[0]
    assert direct.input_token == "Ġto" and direct.top_before[0][0].startswith("Ġ")  # the raw spelling, kept in JSON
    position, *_, top_before, _, _ = ablated.table[0]
    assert position == f"17: ·to → {direct.target_token.replace('Ġ', '·')}"
    assert top_before.startswith(f"{direct.top_before[0][0].replace('Ġ', '·')} {direct.top_before[0][1]:.3f}")
    assert not any("Ġ" in str(cell) for row in ablated.table for cell in row)
    patched = intervene_tab.run_intervene(bpe_ctx, bpe, PROMPT, examples.swap_names(PROMPT), "", "", " Mark", "-1")
    assert patched.summary.startswith(f"logit({direct.target_token.replace('Ġ', '·')}) − logit(·Mark) at position 17")
    # a random model's route has no attention edge: said in the summary, the route table stays empty
    assert patched.route_rows == [] and patched.summary.endswith(
        " Route faithfulness: The route has no attention edge at this threshold, so there is nothing to ablate; "
        "lower the threshold."
    )


def test_intervene_examples_flip_the_answer_and_the_route_beats_random(ctx):
    rows = examples.intervene_examples(ctx.offer.models)
    assert [row[0] for row in rows] == ["tiny-ioi-gpt2", "tiny-synth-translate"]
    for row in rows:
        view = intervene_tab.run_intervene(ctx, *row)
        result = PatchingResult.from_json(view.patching_json)
        assert result.logit_diff_clean > 0 > result.logit_diff_counterfactual  # the counterfactual flips it
        necessity = next(r for r in view.route_rows if r[0].startswith("necessity"))
        assert necessity[1] > 0.5 > necessity[2]
        assert "Spearman" in view.summary


def test_intervene_refuses_bad_requests_and_caps_the_cost(ctx):
    with pytest.raises(InvalidInputError, match="counterfactual"):
        intervene_tab.run_intervene(ctx, "tiny-ioi-gpt2", PROMPT, "", "", "", "", "-1")
    with pytest.raises(InvalidInputError, match="one position"):
        intervene_tab.run_intervene(ctx, "tiny-ioi-gpt2", PROMPT, examples.swap_names(PROMPT), "", "", "", "all")
    capped = dataclasses.replace(ctx, config=dataclasses.replace(ctx.config, max_intervention_passes=50))
    expected = estimate_patching_cost(ctx.load("tiny-ioi-gpt2"), PROMPT).passes
    expected += estimate_route_cost(ctx.load("tiny-ioi-gpt2"), PROMPT, seeds=intervene_tab.ROUTE_SEEDS).passes
    message = (
        rf"This patching sweep and route test would need about {expected} model passes; this deployment allows "
        r"at most 50 per request \(the largest part: patching sweep on tiny-ioi-gpt2: about \d+ model passes "
        r"\(\d+ patched components\)\)\. Use a shorter text or target, or fewer components\."
    )
    with pytest.raises(CostLimitError, match=message):
        intervene_tab.run_intervene(capped, "tiny-ioi-gpt2", PROMPT, examples.swap_names(PROMPT), "", "", "", "-1")
    graph = graph_tab.run_graph(ctx, "tiny-ioi-gpt2", PROMPT, "", 0.04, False, "-1")
    tiny = dataclasses.replace(ctx, config=dataclasses.replace(ctx.config, max_intervention_passes=3))
    with pytest.raises(CostLimitError, match="This ablation would need about"):
        ablate_tab.ablate_from_graph(
            tiny, "tiny-ioi-gpt2", PROMPT, "", graph.graph_json, "decoder:1:ffn:*", "zero", 0.04
        )


def test_swap_names_makes_the_ioi_counterfactual():
    assert examples.swap_names(PROMPT) == "When Mark and Tom went to the market, Tom gave a ball to"


def test_faithfulness_columns_are_the_library_numbers(ctx):
    view = compare_tab.run_comparison(
        ctx,
        "the old cat sees a bird quickly",
        ["tiny-synth-translate"],
        ["saliency", "attention"],
        "ka miru vesa mi avi rapide vidas",
        "0-0 1-2 2-1 3-6 4-3 5-4 6-5",
    )
    headers, rows = compare_tab.faithfulness_table(ctx, view.comparison_json)
    assert headers == ["result", "AER", *compare_tab.FAITHFULNESS_HEADERS]
    loaded = ctx.load("tiny-synth-translate")
    for row, label, aer, result in zip(
        rows, view.comparison.labels, view.comparison.aer, view.comparison.results, strict=True
    ):
        direct = attribution_faithfulness(loaded, result)  # 3 random rankings: the columns do not show them
        assert row == [
            label,
            aer,
            *(
                round(v, 4)
                for v in (direct.comprehensiveness, direct.sufficiency, direct.deletion_aopc, direct.insertion_aopc)
            ),
        ]
    assert rows[0][2] > rows[1][2]  # saliency is more comprehensive than attention on this model


def test_faithfulness_columns_have_no_aer_without_a_gold_alignment(ctx):
    view = compare_tab.run_comparison(
        ctx,
        "the old cat sees a bird quickly",
        ["tiny-synth-translate"],
        ["saliency"],
        "ka miru vesa mi avi rapide vidas",
        "",
    )
    headers, rows = compare_tab.faithfulness_table(ctx, view.comparison_json)
    assert headers == ["result", *compare_tab.FAITHFULNESS_HEADERS]
    direct = attribution_faithfulness(ctx.load("tiny-synth-translate"), view.comparison.results[0])
    assert rows == [
        [
            view.comparison.labels[0],
            round(direct.comprehensiveness, 4),
            round(direct.sufficiency, 4),
            round(direct.deletion_aopc, 4),
            round(direct.insertion_aopc, 4),
        ]
    ]
    forged = view.comparison_json.replace('"model_id": "tiny-synth-translate"', '"model_id": "/etc"')
    with pytest.raises(InvalidInputError, match=r"(Unknown model|cannot load) '/etc'"):
        compare_tab.faithfulness_table(ctx, forged)  # a model id read from the JSON is held to the offer
    for hostile in ("/etc/passwd", "[1]", "{}"):
        with pytest.raises(InvalidInputError, match="is not a result of this app"):
            compare_tab.faithfulness_table(ctx, hostile)


@pytest.mark.server
def test_served_app_intervene_ablate_faithfulness_and_export(served, client):
    summary, plot, _, patching_json = client.predict(
        served.causal, PROMPT, examples.swap_names(PROMPT), "", "", "", "-1", api_name="/intervene"
    )
    assert plot["type"] == "bokeh" and "Spearman" in summary
    assert isinstance(load_result(patching_json), PatchingResult)
    _, graph_json = client.predict(served.causal, PROMPT, "", 0.04, False, "-1", api_name="/graph")
    graph = ContributionGraph.from_json(graph_json)
    edge = next(e for e in graph.edges if e.head_weights is not None)
    note, table, redrawn = client.predict(
        served.causal,
        PROMPT,
        "",
        graph_json,
        None,
        None,
        "edge",
        "zero",
        0.04,
        f"{edge.source}->{edge.target}",
        api_name="/graph_ablate",
    )
    assert "Ablated" in note and table["data"] and redrawn["type"] == "bokeh"
    *_, comparison_json = client.predict(
        "the old cat sees a bird quickly",
        [served.seq2seq],
        ["saliency"],
        "ka miru vesa mi avi rapide vidas",
        "",
        api_name="/compare",
    )
    faithfulness = client.predict(comparison_json, True, api_name="/compare_faithfulness")
    assert faithfulness["headers"][:2] == ["result", "comprehensiveness ↑"]  # no gold alignment: no AER column
    assert Comparison.from_json(comparison_json).labels == [faithfulness["data"][0][0]]
    page, _ = client.predict(
        "Intervene", "HTML page (self-contained, works offline)", "", "", "", patching_json, api_name="/export"
    )
    assert "patching" in Path(page).name and "cdn.bokeh.org" not in Path(page).read_text(encoding="utf-8")


@pytest.mark.server
@pytest.mark.browser
def test_browser_intervene_tab_example_draws(served, new_page):
    session = new_page(served.url, allowed_origin=served.url.rstrip("/"), viewport=(1400, 1100))
    page = session.page
    page.wait_for_selector("#attribute-text textarea", timeout=60_000)
    page.get_by_role("tab", name="Intervene").click()
    page.locator("#intervene-examples").get_by_text(PROMPT[:30]).first.click()
    wait_for_drawing(page, "#intervene-plot")
    assert "logit(" in page.inner_text("#intervene-summary")
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / "space-intervene.png"), full_page=True)
    session.assert_clean()


def _model_state(loaded) -> tuple[torch.Tensor, int]:
    """The model's logits on a fixed input and its number of hooks (what a stopped run must leave as it was)."""
    inputs = loaded.tokenizer(PROMPT, return_tensors="pt")
    with torch.no_grad():
        logits = loaded.model(**inputs).logits.clone()
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in loaded.model.modules())
    return logits, hooks


@pytest.mark.parametrize("request_kind", ["ablate", "intervene", "faithfulness"])
def test_each_intervention_request_stops_at_its_time_budget_and_leaves_the_model_as_it_was(
    ctx, monkeypatch, request_kind
):
    """A clock that advances one second per reading makes the 30 s budget run out mid-run, deterministically."""
    graph = graph_tab.run_graph(ctx, "tiny-ioi-gpt2", PROMPT, "", 0.04, False, "-1")
    comparison = compare_tab.run_comparison(ctx, PROMPT, ["tiny-ioi-gpt2"], ["saliency"], "", "")
    loaded = ctx.load("tiny-ioi-gpt2")
    before = _model_state(loaded)
    requests = {
        "ablate": lambda: ablate_tab.ablate_from_graph(
            ctx, "tiny-ioi-gpt2", PROMPT, "", graph.graph_json, "decoder:1:ffn:*", "zero", 0.04
        ),
        "intervene": lambda: intervene_tab.run_intervene(
            ctx, "tiny-ioi-gpt2", PROMPT, examples.swap_names(PROMPT), "", "", "", "-1"
        ),
        "faithfulness": lambda: compare_tab.faithfulness_table(ctx, comparison.comparison_json),
    }
    what = {"ablate": "The ablation", "intervene": "The patching sweep", "faithfulness": "The faithfulness evaluation"}
    monkeypatch.setattr(budget_module, "_now", TickingClock())
    with pytest.raises(BudgetExceededError) as stopped:
        requests[request_kind]()
    assert str(stopped.value) == (
        f"{what[request_kind]} was stopped: it ran past this deployment's time budget of 30 s. "
        "Try a shorter text or target."
    )
    monkeypatch.undo()
    after = _model_state(loaded)
    assert torch.equal(after[0], before[0]) and after[1] == before[1]
