"""Exported pages in Debian's Chromium, every network request blocked: drawing, hover, tap, slider, escaping."""

from __future__ import annotations

from typing import Any

import pytest

from attribution.results import route_edges
from exporters import export_result
from exporters.graph_details import GraphWords
from tests.support.browser import COUNT_DRAWN_PIXELS_JS, PageSession
from tests.support.graph_page import GRAPH_GEOMETRY_JS
from tests.support.handmade_results import causal_result, comparison, route_graph, seq2seq_result
from tests.support.hostile_inputs import XSS_IMG, XSS_SCRIPT
from tests.support.paths import SCREENSHOTS
from tests.support.synthetic_results import synthetic_graph

pytestmark = pytest.mark.browser
#: A long prompt: at 800 px its token labels used to be squeezed unreadably.
LONG_PROMPT_TOKENS = 53

# Page coordinates of data point (x, y) in the Bokeh figure called `name` (views live in Bokeh.index).
_SCREEN_POINT_JS = """([name, x, y]) => {
  let found = null;
  const visit = (view) => {
    if (view.model.name === name) found = view;
    for (const child of view.child_views ?? []) visit(child);
  };
  for (const view of Bokeh.index) visit(view);
  const box = found.el.getBoundingClientRect();
  return [box.left + found.frame.x_scale.compute(x), box.top + found.frame.y_scale.compute(y)];
}"""

_SHOWN_EDGES_JS = """() => {
  const doc = Bokeh.documents[0];
  const filters = [...doc.all_models].filter((m) => m.type === 'IndexFilter');
  return filters.reduce((n, f) => n + f.indices.length, 0);
}"""

# Every <img> in the document and open shadow roots: an injected one would show up here.
_IMAGES_JS = """() => {
  const found = [];
  const walk = (root) => {
    for (const el of root.querySelectorAll('*')) {
      if (el.tagName === 'IMG') found.push(el.outerHTML);
      if (el.shadowRoot) walk(el.shadowRoot);
    }
  };
  walk(document);
  return found;
}"""


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Self-contained pages of every figure type (and of hostile inputs), as file:// URLs."""
    folder = tmp_path_factory.mktemp("pages")
    xss_graph = route_graph()
    xss_graph.target_tokens = [XSS_SCRIPT, XSS_IMG]
    xss_graph.nodes[3].top_tokens = [(XSS_IMG, 1.0), (XSS_SCRIPT, 0.5)]
    xss_comparison = comparison()
    xss_comparison.labels = [XSS_SCRIPT, XSS_IMG]
    hostile_heatmap = causal_result([XSS_SCRIPT, XSS_IMG, "</script><script>alert(2)</script>", "$$x^2$$"])
    hostile_heatmap.provenance.model_id = XSS_IMG
    results: dict[str, tuple[Any, dict[str, Any]]] = {
        "heatmap causal": (causal_result(), {}),
        "heatmap seq2seq": (seq2seq_result(), {}),
        "graph causal": (route_graph(), {}),
        "graph seq2seq": (synthetic_graph("seq2seq", n_tokens=5, n_source=4, root_tokens=[2, 4]), {}),
        "graph long": (synthetic_graph("causal", n_tokens=LONG_PROMPT_TOKENS, root_tokens=[50, 52]), {}),
        "compare": (comparison(), {}),
        "xss heatmap": (hostile_heatmap, {"title": XSS_SCRIPT}),
        "xss graph": (xss_graph, {"title": XSS_IMG}),
        "xss compare": (xss_comparison, {}),
    }
    urls = {}
    for name, (result, options) in results.items():
        path = export_result(result, **options).write(folder / f"{name.replace(' ', '_')}.html")
        urls[name] = path.as_uri()
    urls["cdn"] = export_result(causal_result(), mode="cdn").write(folder / "cdn.html").as_uri()
    iframe = export_result(route_graph(), mode="snippet").iframe_html
    host = folder / "blog_post.html"
    host.write_text(f"<!DOCTYPE html><html><body><h1>My post</h1>{iframe}</body></html>", encoding="utf-8")
    urls["iframe"] = host.as_uri()
    return urls


def open_figure(new_page, url: str) -> PageSession:
    session = new_page(url, viewport=(1400, 1000))
    session.page.wait_for_function("() => window.Bokeh && [...Bokeh.index].length > 0", timeout=10_000)
    session.page.wait_for_timeout(300)  # one paint after the views exist
    return session


@pytest.mark.parametrize("name", ["heatmap causal", "heatmap seq2seq", "graph causal", "graph seq2seq", "compare"])
def test_every_figure_draws_offline_without_errors(new_page, pages: dict[str, str], name: str) -> None:
    session = open_figure(new_page, pages[name])
    pixels = session.drawn_pixels()
    assert pixels["canvases"] >= 1 and pixels["drawn"] > 2_000, pixels
    session.assert_clean()  # includes: not a single request left file://


def test_heatmap_hover_shows_the_token_pair_and_value(new_page, pages: dict[str, str]) -> None:
    session = open_figure(new_page, pages["heatmap causal"])
    assert "-0.75" not in session.deep_text()
    session.page.mouse.move(*session.page.evaluate(_SCREEN_POINT_JS, ["heatmap prefix → generated", 0, 1]))
    session.page.wait_for_timeout(300)
    text = " ".join(session.deep_text().split())
    assert "input token: cat" in text and "generated token: sat" in text and "score: -0.75" in text
    session.assert_clean()


def test_a_long_value_is_shown_with_four_significant_digits(new_page, tmp_path) -> None:
    result = causal_result()
    result.target_scores[1, 0] = -0.123456789012345678
    page_url = export_result(result).write(tmp_path / "digits.html").as_uri()
    session = open_figure(new_page, page_url)
    session.page.mouse.move(*session.page.evaluate(_SCREEN_POINT_JS, ["heatmap prefix → generated", 0, 1]))
    session.page.wait_for_timeout(300)
    text = " ".join(session.deep_text().split())
    assert "score: -0.1235" in text and "-0.12345" not in text


def test_graph_hover_tap_slider_and_route_choice_change_what_is_shown(
    new_page,
    pages: dict[str, str],
) -> None:
    graph = route_graph()
    usable = [e for e in graph.edges if e.source != "ghost"]
    session = open_figure(new_page, pages["graph causal"])
    page = session.page
    assert page.evaluate(_SHOWN_EDGES_JS) == len(route_edges(usable, ["o0", "o1"], 0.1)) == 9

    # Hover the middle of the e0 → a1 attention edge (token 0, layer 0 → token 1, after attention):
    # one tooltip, naming the tokens and layers it connects.
    page.mouse.move(*page.evaluate(_SCREEN_POINT_JS, ["contribution graph", 0.5, (0.0 + 0.4) / 2]))
    page.wait_for_timeout(300)
    text = " ".join(session.deep_text().split())
    edge = "attention edge When (0) · L0 embedding → Mary (1) · L1 after attention, weight 0.35"
    assert f"edge: {edge}" in text and "top heads: h0 0.300, h1 0.050" in text
    assert text.count("edge: ") == 1

    # Tap node a1 (after attention of "Mary"): the details panel shows its rows. The pointer is on a
    # node where three edges meet: the node's tooltip shows, none of the edges'.
    page.mouse.click(*page.evaluate(_SCREEN_POINT_JS, ["contribution graph", 1.0, 0.4]))
    page.wait_for_timeout(300)
    text = " ".join(session.deep_text().split())
    assert "node: Mary (1) · L1 after attention" in text and "edge: " not in text
    panel = page.evaluate("() => Bokeh.documents[0].get_model_by_name('details').text")
    assert panel == GraphWords(graph).node_details_text(graph.node("a1"))
    assert panel.splitlines()[:3] == ["node Mary (1) · L1 after attention", "logit lens:", "  1. Mary  0.75"]

    # Tap the middle of the e0 → a1 attention edge: the panel shows its split over heads.
    page.mouse.click(*page.evaluate(_SCREEN_POINT_JS, ["contribution graph", 0.5, (0.0 + 0.4) / 2]))
    page.wait_for_timeout(300)
    panel = page.evaluate("() => Bokeh.documents[0].get_model_by_name('details').text")
    attention = next(e for e in graph.edges if (e.source, e.target, e.kind) == ("e0", "a1", "attention"))
    assert panel == GraphWords(graph).edge_details_text(attention) == f"{edge}\ntop heads: h0 0.300, h1 0.050"

    # Slider: 44 key presses of 0.005 from 0.1 → threshold 0.32.
    before = session.drawn_pixels()["drawn"]
    page.locator(".noUi-handle").first.focus()
    for _ in range(44):
        page.keyboard.press("ArrowRight")
    page.wait_for_timeout(300)
    threshold = page.evaluate("() => [...Bokeh.documents[0].all_models].find((m) => m.type === 'Slider').value")
    assert threshold == pytest.approx(0.32)
    expected = route_edges(usable, ["o0", "o1"], threshold)
    assert page.evaluate(_SHOWN_EDGES_JS) == len(expected) == 6
    status = page.evaluate("() => Bokeh.documents[0].get_model_by_name('status').text")
    assert status == "6 of 9 edges with weight ≥ 0.320"
    assert session.drawn_pixels()["drawn"] < before  # thinner drawing: fewer edges on the canvas

    # Route choice: only the route from "Mary" (root index 1 of the sorted roots [0, 1]).
    page.locator("select").select_option(label="last token (1: Mary)")
    page.wait_for_timeout(300)
    assert page.evaluate(_SHOWN_EDGES_JS) == len(route_edges(usable, ["o1"], threshold)) == 3
    session.assert_clean()


def test_cdn_page_fetches_only_bokehjs_from_the_cdn(new_page, pages: dict[str, str]) -> None:
    session = new_page(pages["cdn"])
    session.page.wait_for_timeout(300)
    assert session.blocked_requests
    assert all(url.startswith("https://cdn.bokeh.org/bokeh/release/") for url in session.blocked_requests)


def test_iframe_snippet_draws_inside_a_host_page_offline(new_page, pages: dict[str, str]) -> None:
    session = new_page(pages["iframe"])
    frame = session.page.frames[1]
    frame.wait_for_function("() => window.Bokeh && [...Bokeh.index].length > 0", timeout=10_000)
    session.page.wait_for_timeout(300)
    assert frame.evaluate(_SHOWN_EDGES_JS) == 9
    pixels = frame.evaluate(COUNT_DRAWN_PIXELS_JS)
    assert pixels["drawn"] > 2_000, pixels
    session.assert_clean()


@pytest.mark.parametrize("name", ["xss heatmap", "xss graph", "xss compare"])
def test_injected_strings_render_as_text_and_never_run(new_page, pages: dict[str, str], name: str) -> None:
    session = open_figure(new_page, pages[name])
    page = session.page
    if name == "xss heatmap":
        page.mouse.move(*page.evaluate(_SCREEN_POINT_JS, ["heatmap prefix → generated", 0, 1]))
        page.wait_for_timeout(300)
        assert f"input token: {XSS_IMG}" in " ".join(session.deep_text().split())
        assert page.title() == XSS_SCRIPT
        assert XSS_IMG in session.deep_text()  # the model id in the provenance header, as text
    elif name == "xss graph":
        page.mouse.click(*page.evaluate(_SCREEN_POINT_JS, ["contribution graph", 1.0, 0.4]))
        page.wait_for_timeout(300)
        panel = page.evaluate("() => Bokeh.documents[0].get_model_by_name('details').text")
        assert panel.startswith(f"node {XSS_IMG} (1) · L1 after attention")
        assert f"1. {XSS_IMG}  1" in panel and f"2. {XSS_SCRIPT}  0.5" in session.deep_text()
        assert f"last token (1: {XSS_IMG})" in session.deep_text()  # the route menu's option
    else:
        assert XSS_SCRIPT in session.deep_text() and XSS_IMG in session.deep_text()
    assert page.evaluate(_IMAGES_JS) == []
    session.assert_clean()  # includes: no alert() dialog opened


# Widths of the page, the viewport and each compared result's block, and the blocks' tops.
_COMPARE_GEOMETRY_JS = """() => {
  const blocks = [];
  const visit = (view) => {
    if ((view.model.name ?? '').startsWith('compared ')) {
      const box = view.el.getBoundingClientRect();
      blocks.push({name: view.model.name, left: box.left, right: box.right, top: box.top, width: box.width});
    }
    for (const child of view.child_views ?? []) visit(child);
  };
  for (const view of Bokeh.index) visit(view);
  return {page: document.documentElement.scrollWidth, viewport: document.documentElement.clientWidth, blocks};
}"""


@pytest.mark.parametrize("width", [1400, 800])
def test_compare_page_wraps_its_heatmaps_instead_of_overflowing(new_page, pages, width: int) -> None:
    session = new_page(pages["compare"], viewport=(width, 1000))
    session.page.wait_for_function("() => window.Bokeh && [...Bokeh.index].length > 0", timeout=10_000)
    session.page.wait_for_timeout(500)
    geometry = session.page.evaluate(_COMPARE_GEOMETRY_JS)
    assert geometry["page"] <= geometry["viewport"], geometry
    first, second = sorted(geometry["blocks"], key=lambda block: (block["top"], block["left"]))
    assert all(block["left"] >= 0 and block["right"] <= geometry["viewport"] for block in (first, second))
    if width == 1400:  # side by side, sharing the width
        assert first["top"] == second["top"] and first["width"] > 0.4 * width
    else:  # one under the other, each the full width
        assert second["top"] > first["top"] and min(first["width"], second["width"]) > 0.8 * geometry["viewport"]
    session.assert_clean()


@pytest.mark.parametrize("width", [800, 1400])
def test_a_long_prompts_graph_widens_and_scrolls_and_keeps_its_predictions_inside(
    new_page, pages: dict[str, str], width: int
) -> None:
    """53 tokens at 800 px: each token keeps a readable column (the figure scrolls sideways in its panel instead
    of squeezing its labels), and the right-most root's prediction is written inside the plot's frame."""
    from exporters.graph import COLUMN_PX

    session = new_page(pages["graph long"], viewport=(width, 1000))
    session.page.wait_for_function("() => window.Bokeh && [...Bokeh.index].length > 0", timeout=10_000)
    session.page.wait_for_timeout(500)
    shown = session.page.evaluate(GRAPH_GEOMETRY_JS, None)
    assert shown["column"] >= COLUMN_PX - 0.5, shown  # 11 px labels, slanted: a column each
    if width == 800:
        assert shown["scrollWidth"] > shown["clientWidth"] + 200, shown  # the panel scrolls the wide figure
    assert len(shown["predictions"]) == 2 and shown["predictionRight"] <= shown["frameRight"] + 1, shown
    width_px = session.page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert width_px[0] <= width_px[1], width_px  # the page itself does not overflow: the figure's panel scrolls
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    session.page.screenshot(path=str(SCREENSHOTS / f"export-graph-long-{width}.png"), full_page=True)
    session.assert_clean()
