"""The graph tab as one workflow, in Chromium at two widths, on a byte-level BPE GPT-2 and a Unigram Marian.

One threshold slider and one "routes from" menu (the figure brings none of its own, nor a details panel),
both re-walking the shown graph without the model when that is exact (counted: the model runs only when the
shown graph cannot answer), and what they draw equal to tracing the model afresh. A translation's routes
start from its whole target by default, with the last prediction written inside the frame. Rebuilding the
figure again and again leaves the number of Bokeh views on the page constant (old ones are released).
Several nodes tapped in the figure (shift+tap adds) are ablated together, and the routes before and after
mark exactly the edges whose weight changed, computed here from the two graphs.
"""

from __future__ import annotations

import pytest

from attribution.contributions import build_contribution_graph
from attribution.interventions.graph_after import graph_after_intervention
from exporters.graph_details import GraphWords
from exporters.tokens import display_token
from space.gradio_app.tabs import ablate as ablate_tab
from space.gradio_app.tabs import graph as graph_tab
from tests.space.gradio_app.test_space_app import (
    PROMPT,
    TRANSLATION,
    WIDTHS,
    _check_panel,
    _choose_model,
    _open_app,
    _reference,
    _screenshot,
    _wait_for_title,
)
from tests.support.browser import wait_for_drawing
from tests.support.graph_page import GRAPH_GEOMETRY_JS, HIGHLIGHTED_EDGES_JS, NODE_POINT_JS

pytestmark = pytest.mark.server  # every test here serves the app

# What the graph figure in the app is made of: its controls and panels (by type and name), the roots of its
# routes (read from its predictions), and the edges it shows (node ids at both ends, in the shown order).
_SHOWN_GRAPH_JS = """
() => {
  const container = document.querySelector('#graph-plot');
  const docs = new Set([...Bokeh.index].filter((view) => container.contains(view.el)).map((v) => v.model.document));
  const [doc] = [...docs];
  if (!doc || !doc.get_model_by_name('edges')) return null;  // between two figures
  const models = [...doc.all_models];
  const nodes = doc.get_model_by_name('nodes').data;
  const edges = doc.get_model_by_name('edges').data;
  const shown = models.find((m) => m.type === 'IndexFilter').indices;
  return {
    documents: docs.size,
    widgets: models.filter((m) => ['Slider', 'Select'].includes(m.type)).map((m) => m.type),
    panels: models.filter((m) => m.name === 'details').length,
    predictions: doc.get_model_by_name('predictions')?.data.text.length ?? 0,
    edges: [...shown].map((e) => `${nodes.id[edges.source_node[e]]}->${nodes.id[edges.target_node[e]]}`),
  };
}
"""
_BOKEH_VIEWS_JS = "() => [[...Bokeh.index].length, Bokeh.documents.length]"


def _pick_root(page, label: str) -> None:
    """Choose an entry of the roots menu by its label, as a user does (type it, Enter)."""
    box = page.locator("#graph-root input").first
    box.fill(label)
    box.press("Enter")
    box.blur()


def _edges(graph) -> list[str]:
    return sorted(f"{edge.source}->{edge.target}" for edge in graph.edges)


def _settled_views(page) -> list[int]:
    """Bokeh views and documents on the page once the release of old ones has run (it waits for quiet)."""
    page.wait_for_timeout(800)
    return page.evaluate(_BOKEH_VIEWS_JS)


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("width", WIDTHS)
def test_one_threshold_and_one_roots_control_rewalk_the_graph_without_the_model(
    served, new_page, monkeypatch, width: int
) -> None:
    runs: list[tuple] = []
    run_graph = graph_tab.run_graph

    def counted(ctx, *args, **kwargs):
        runs.append(args[:6])
        return run_graph(ctx, *args, **kwargs)

    monkeypatch.setattr(graph_tab, "run_graph", counted)
    session = _open_app(new_page, served, width)
    page = session.page
    page.get_by_role("tab", name="Contribution graph").click()
    _choose_model(page, "#graph-model", served.bpe)
    page.fill("#graph-text textarea", PROMPT)
    page.click("#graph-run")
    _wait_for_title(page, "#graph-plot", "bpe-gpt2")
    _check_panel(page, "#graph-plot", min_titles=1)
    shown = page.evaluate(_SHOWN_GRAPH_JS)
    # One set of controls and one details view: the tab's, none in the figure.
    assert shown["widgets"] == [] and shown["panels"] == 0, shown
    assert page.locator("#graph-threshold").count() == 1 and page.locator("#graph-root").count() == 1
    loaded = _reference(served.bpe)
    n_tokens = len(build_contribution_graph(loaded, PROMPT, threshold=0.5).target_tokens)
    assert page.input_value("#graph-root input") == f"default: last token ({n_tokens - 1}: ·to)"
    assert len(runs) == 1 and shown["predictions"] == 1
    views = _settled_views(page)

    # Every route at once: the shown graph (the last token's) cannot answer, so the model runs, with no button.
    before = wait_for_drawing(page, "#graph-plot")
    _pick_root(page, "all tokens")
    page.wait_for_function(f"() => ({_SHOWN_GRAPH_JS})()?.predictions === {n_tokens}", timeout=60_000)
    assert len(runs) == 2
    everything = build_contribution_graph(loaded, PROMPT, threshold=0.04, root_tokens="all")
    assert sorted(page.evaluate(_SHOWN_GRAPH_JS)["edges"]) == _edges(everything)
    assert _settled_views(page) == views

    # One token's routes, then a higher threshold: both re-walk the shown graph, no model run.
    words = GraphWords(everything)
    before = wait_for_drawing(page, "#graph-plot")
    _pick_root(page, words.root_label(3))
    page.wait_for_function(f"() => ({_SHOWN_GRAPH_JS})()?.predictions === 1", timeout=60_000)
    one = build_contribution_graph(loaded, PROMPT, threshold=0.04, root_tokens=[3])
    assert sorted(page.evaluate(_SHOWN_GRAPH_JS)["edges"]) == _edges(one)
    before = wait_for_drawing(page, "#graph-plot", different_from=before["checksum"])
    threshold = page.locator("#graph-threshold input[type=number]")
    threshold.fill("0.1")
    threshold.press("Enter")
    wait_for_drawing(page, "#graph-plot", different_from=before["checksum"])
    higher = build_contribution_graph(loaded, PROMPT, threshold=0.1, root_tokens=[3])
    page.wait_for_function(f"(n) => ({_SHOWN_GRAPH_JS})()?.edges.length === n", arg=len(higher.edges), timeout=60_000)
    assert sorted(page.evaluate(_SHOWN_GRAPH_JS)["edges"]) == _edges(higher)
    assert len(runs) == 2, runs  # neither the roots menu nor the threshold ran the model
    # Four figures drawn in this plot: the page holds as many Bokeh views and documents as after the first.
    assert _settled_views(page) == views, views
    assert page.evaluate(_SHOWN_GRAPH_JS)["documents"] == 1
    _screenshot(page, f"graph-workflow-{width}-bpe")
    session.assert_clean()


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("width", WIDTHS)
def test_a_translations_graph_starts_from_its_whole_target_with_every_prediction_shown(
    served, new_page, width: int
) -> None:
    session = _open_app(new_page, served, width)
    page = session.page
    page.get_by_role("tab", name="Contribution graph").click()
    _choose_model(page, "#graph-model", served.unigram)
    page.fill("#graph-text textarea", TRANSLATION["source"])
    page.get_by_label("Target text (seq2seq: the translation to explain; optional)").fill(TRANSLATION["target"])
    page.click("#graph-run")
    _wait_for_title(page, "#graph-plot", "unigram-marian")
    _check_panel(page, "#graph-plot", min_titles=1)
    expected = build_contribution_graph(
        _reference(served.unigram), TRANSLATION["source"], target=TRANSLATION["target"], root_tokens="all"
    )
    assert page.input_value("#graph-root input") == "default: all tokens"
    assert sorted(page.evaluate(_SHOWN_GRAPH_JS)["edges"]) == _edges(expected)
    geometry = page.evaluate(GRAPH_GEOMETRY_JS, "#graph-plot")
    assert len(geometry["predictions"]) == len(expected.target_tokens)
    assert geometry["predictionRight"] <= geometry["frameRight"] + 1, geometry  # the last one is not clipped
    _screenshot(page, f"graph-workflow-{width}-unigram")
    session.assert_clean()


def _tap(page, node: str, *, add: bool) -> None:
    """Tap a node of the shown graph (with shift held: add it to the selection)."""
    x, y = page.evaluate(NODE_POINT_JS, ["#graph-plot", node, None])
    if add:
        page.keyboard.down("Shift")
    page.mouse.click(x, y)
    if add:
        page.keyboard.up("Shift")


def _ablatable(graph) -> list[str]:
    """Three nodes of the graph's routes whose ablation the graph can be re-drawn after: FFN outputs and residual
    states below the last layer (the decoder's, the routes' end), the latest first."""
    nodes = [
        node
        for node in graph.nodes
        if node.side == "decoder" and node.kind in ("ffn", "after_ffn", "embedding") and node.layer < graph.n_layers
    ]
    return [node.id for node in sorted(nodes, key=lambda n: (-n.layer, -n.token_index))[:3]]


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("kind", ["bpe", "unigram"])
def test_several_components_tapped_in_the_figure_ablate_together_and_mark_what_changed(
    served, new_page, width: int, kind: str
) -> None:
    model = served.bpe if kind == "bpe" else served.unigram
    text, target = (PROMPT, "") if kind == "bpe" else (TRANSLATION["source"], TRANSLATION["target"])
    session = _open_app(new_page, served, width)
    page = session.page
    page.get_by_role("tab", name="Contribution graph").click()
    _choose_model(page, "#graph-model", model)
    page.fill("#graph-text textarea", text)
    page.get_by_label("Target text (seq2seq: the translation to explain; optional)").fill(target)
    page.click("#graph-run")
    _wait_for_title(page, "#graph-plot", kind)
    wait_for_drawing(page, "#graph-plot")
    loaded = _reference(model)
    roots = "all" if kind == "unigram" else -1
    shown = build_contribution_graph(loaded, text, target=target or None, threshold=0.04, root_tokens=roots)
    chosen = _ablatable(shown)
    assert len(chosen) == 3, chosen
    for i, node in enumerate(chosen):  # at a user's pace: each tap shown (figure and app agree) before the next
        _tap(page, node, add=i > 0)
        page.wait_for_function(
            "(ids) => document.querySelector('#graph-selection textarea, #graph-selection input').value === ids",
            arg="\n".join(chosen[: i + 1]),
            timeout=30_000,
        )
        page.wait_for_timeout(300)
    page.click("#graph-ablate-run")
    wait_for_drawing(page, "#graph-ablate-plot", timeout_s=120)
    page.wait_for_function(
        "() => document.querySelector('#graph-ablate-note').innerText.includes('Prediction after')", timeout=60_000
    )

    # The ground truth: the library's graph with the three ablated, against the shown one, edge by edge.
    components = [ablate_tab.graph_component(shown, node) for node in chosen]
    after = graph_after_intervention(
        loaded, text, components, target=target or None, threshold=0.04, root_tokens=shown.root_tokens
    )
    weights = [{(e.source, e.target, e.kind): e.weight for e in graph.edges} for graph in (shown, after)]
    moved = {
        f"{s}->{t}" if kind in ("attention", "cross_attention") else f"{s}->{t}#{kind}"
        for s, t, kind in set(weights[0]) | set(weights[1])
        if abs(weights[0].get((s, t, kind), 0.0) - weights[1].get((s, t, kind), 0.0)) > ablate_tab.CHANGED_BY
    }
    before_marked, after_marked = page.evaluate(HIGHLIGHTED_EDGES_JS, "#graph-ablate-plot")
    assert moved and set(before_marked) | set(after_marked) == moved
    assert set(before_marked) <= {f"{s}->{t}#{k}" for s, t, k in weights[0]} | {f"{s}->{t}" for s, t, _ in weights[0]}
    note = page.inner_text("#graph-ablate-note")
    assert all(component in note for component in components) and "→" in note
    _screenshot(page, f"graph-ablate-{width}-{kind}")
    session.assert_clean()


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("width", WIDTHS)
def test_an_ffn_nodes_neurons_read_as_words_and_one_goes_to_the_ablate_box(served, new_page, width: int) -> None:
    from attribution.contributions.neurons import read_neurons
    from tests.space.gradio_app.test_space_app import _TABLE_ROWS_JS

    session = _open_app(new_page, served, width)
    page = session.page
    page.get_by_role("tab", name="Contribution graph").click()
    _choose_model(page, "#graph-model", served.bpe)
    page.fill("#graph-text textarea", PROMPT)
    page.click("#graph-run")
    _wait_for_title(page, "#graph-plot", "bpe")
    wait_for_drawing(page, "#graph-plot")
    loaded = _reference(served.bpe)
    shown = build_contribution_graph(loaded, PROMPT, threshold=0.04)
    ffn = next(node for node in shown.nodes if node.kind == "ffn" and node.top_neurons)
    _tap(page, ffn.id, add=False)
    page.click("#graph-neurons-run")
    page.wait_for_function(
        "() => document.querySelectorAll('#graph-neurons-table [role=row].virtual-row').length > 1", timeout=60_000
    )
    neurons = [int(neuron) for neuron, _ in ffn.top_neurons]
    direct = read_neurons(loaded, PROMPT, layer=ffn.layer, token_index=ffn.token_index, neurons=neurons)
    rows = page.evaluate(_TABLE_ROWS_JS, "#graph-neurons-table")
    assert [int(row[0]) for row in rows] == neurons[: len(rows)]
    assert [row[4] for row in rows] == [reading.component for reading in direct][: len(rows)]
    assert all("Ġ" not in row[2] + row[3] for row in rows)  # tokens read as text
    pick = page.locator("#graph-neurons-pick input").first
    pick.fill(direct[0].component)
    pick.press("Enter")
    page.wait_for_function(
        "(id) => [...document.querySelectorAll('#graph-ablate input, #graph-ablate textarea')]"
        ".some((box) => box.value === id)",
        arg=direct[0].component,
        timeout=30_000,
    )
    _screenshot(page, f"graph-neurons-{width}-bpe")
    session.assert_clean()


# The logit-lens grid's cells as drawn: (layer, position, top token as shown, probability, node id, tappable).
_LENS_CELLS_JS = """
() => {
  const container = document.querySelector('#graph-lens-plot');
  const docs = new Set([...Bokeh.index].filter((view) => container.contains(view.el)).map((v) => v.model.document));
  const d = [...docs][0].get_model_by_name('lens cells').data;
  return [...d.x.keys()].map((i) => [d.y[i], d.x[i], d.text[i], d.probability[i], d.node_id[i], d.in_graph[i]]);
}
"""


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("kind", ["bpe", "unigram"])
def test_the_logit_lens_grid_is_the_graph_nodes_lens_and_a_tapped_cell_selects_its_node(
    served, new_page, width: int, kind: str
) -> None:
    from tests.support.graph_page import DATA_POINT_JS

    model = served.bpe if kind == "bpe" else served.unigram
    text, target = (PROMPT, "") if kind == "bpe" else (TRANSLATION["source"], TRANSLATION["target"])
    session = _open_app(new_page, served, width)
    page = session.page
    page.get_by_role("tab", name="Contribution graph").click()
    _choose_model(page, "#graph-model", model)
    page.fill("#graph-text textarea", text)
    page.get_by_label("Target text (seq2seq: the translation to explain; optional)").fill(target)
    page.click("#graph-run")
    _wait_for_title(page, "#graph-plot", kind)
    page.click("#graph-lens-run")
    wait_for_drawing(page, "#graph-lens-plot", timeout_s=120)
    roots = "all" if kind == "unigram" else -1
    graph = build_contribution_graph(_reference(model), text, target=target or None, threshold=0.04, root_tokens=roots)
    cells = {cell[4]: cell for cell in page.evaluate(_LENS_CELLS_JS)}
    assert len(cells) == (graph.n_layers + 1) * len(graph.target_tokens)
    words = GraphWords(graph)
    lensed = [n for n in graph.nodes if n.side == "decoder" and n.kind in ("embedding", "after_ffn") and n.top_tokens]
    assert lensed
    for node in lensed:  # the grid's cell is the graph node's own logit lens
        layer, position, token, probability, _, tappable = cells[node.id]
        assert (layer, position, tappable) == (node.layer, node.token_index, True)
        assert token == display_token(node.top_tokens[0][0], words.style)
        assert probability == pytest.approx(node.top_tokens[0][1], rel=1e-4, abs=1e-6)
    root = lensed[0]
    page.mouse.click(
        *page.evaluate(DATA_POINT_JS, ["#graph-lens-plot", "logit lens grid", root.token_index, root.layer])
    )
    page.wait_for_function(
        "(id) => document.querySelector('#graph-selection textarea, #graph-selection input').value === id",
        arg=root.id,
        timeout=30_000,
    )
    page.wait_for_function(
        "() => document.querySelectorAll('#graph-node-table [role=row].virtual-row').length > 1", timeout=30_000
    )
    _screenshot(page, f"graph-lens-{width}-{kind}")
    session.assert_clean()
