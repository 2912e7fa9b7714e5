"""Exports embedded in a blog post, in Debian's Chromium: what a blogger pastes, on an ordinary (and hostile) page.

The post is a 700 px article column with body fonts and a dark-mode variant, holding self-contained snippets of
three kinds (the heatmap pasted twice) and two iframe embeds, under a stylesheet with bare element selectors
(``header``, ``h1``, ``dl``, ``dt``, ``table``, ``td``, ``canvas``, ``div``). Every request but ``file://`` is
blocked. In both colour schemes: every figure draws; hover, tap and the slider work in each; nothing is logged as
an error; no id is on the page twice; the computed styles inside the embeds are those of the same post without the
element selectors; every text reads at a contrast of at least 4.5:1 against what is behind it (HTML text from the
rendered colours, canvas text from the colours the figures were drawn with); the iframes take their content's
height; the self-contained snippets run BokehJS once. The tooltips, which BokehJS appends to the page's ``<body>``,
read at 4.5:1 in the embed's scheme and are styled as in the post without the hostile rules.

A second post loads its snippets from the CDN (served here from Bokeh's own files): BokehJS and its widgets bundle
are fetched once each, whatever the number of snippets, and a graph after a heatmap still draws (the failure of
pasted ``<script src=bokeh.js>`` tags).

Screenshots of both schemes go to ``tests/artifacts/screenshots/`` (look at them).
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from bokeh import __version__ as BOKEH_VERSION
from bokeh.util.paths import bokehjs_path

from attribution.results import route_edges
from exporters import export_result
from exporters.graph_details import GraphWords
from tests.support.browser import PageSession
from tests.support.handmade_results import causal_result, comparison, route_graph, seq2seq_result
from tests.support.paths import REPO

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(os.environ.get("ATTRIBUTION_EXPLORER_SCREENSHOTS", REPO / "tests" / "artifacts" / "screenshots"))

#: The blog's own look: body fonts and colours, light and dark.
BLOG_CSS = """
body { margin: 0; font: 17px/1.6 Georgia, "DejaVu Serif", serif; background: #fdfdfb; color: #1d1d1f; }
article { max-width: 700px; margin: 0 auto; padding: 0 16px; }
@media (prefers-color-scheme: dark) { body { background: #121417; color: #e4e4e4; } }
"""
#: What a careless theme does to every element of a kind.
HOSTILE_CSS = """
header { border-bottom: 4px solid #c00; padding: 18px; margin: 20px 0; background: #fee; }
h1 { font: italic 44px/1 Impact, sans-serif; color: #a0f; text-transform: uppercase; }
dl { background: #ff0; padding: 12px; border: 2px solid red; }
dt { font-style: italic; color: #0a0; text-decoration: underline; float: left; }
table { border: 4px double red; border-collapse: separate; }
td { padding: 24px; background: pink; font-size: 22px; }
canvas { border: 3px solid blue; filter: blur(1px); }
div { margin: 13px; padding: 11px; border: 3px dashed red; background: #ff0; font-style: italic; line-height: 3;
      letter-spacing: 3px; text-transform: uppercase; box-shadow: 0 0 6px red; color: #c0c; }
"""
#: The computed properties the hostile rules touch: inside an embed they must read as without them.
STYLE_PROPERTIES = (
    "margin-top", "margin-left", "padding-top", "padding-left", "border-top-width", "border-top-style",
    "border-bottom-width", "background-color", "font-style", "font-size", "font-family", "line-height",
    "letter-spacing", "text-transform", "color", "text-decoration-line", "float", "box-shadow", "filter",
)  # fmt: skip

# Helpers evaluated in a page: elements of the embeds (light DOM and every open shadow root under them), the Bokeh
# root views drawn in each embed, and colours.
_HELPERS_JS = """
const AE = {
  bokeh: () => window.Bokeh[VERSION],
  boxes: () => [...document.querySelectorAll('.ae-embed')],
  deep(root) {
    const found = [];
    const walk = (node) => {
      for (const el of node.children) { found.push(el); if (el.shadowRoot) walk(el.shadowRoot); walk(el); }
    };
    walk(root);
    return found;
  },
  host: (el) => el.parentElement ?? el.getRootNode().host ?? null,
  inside(box, el) { for (let node = el; node; node = AE.host(node)) if (node === box) return true; return false; },
  roots: (box) => [...AE.bokeh().index].filter((view) => AE.inside(box, view.el)),
  views(box) {
    const found = [];
    const visit = (view) => { found.push(view); for (const child of view.child_views ?? []) visit(child); };
    AE.roots(box).forEach(visit);
    return found;
  },
  named: (box, name) => AE.views(box).find((view) => view.model.name === name),
  point(box, name, x, y) {
    const view = AE.named(box, name);
    view.el.scrollIntoView({block: 'center'});
    const rect = view.el.getBoundingClientRect();
    return [rect.left + view.frame.x_scale.compute(x), rect.top + view.frame.y_scale.compute(y)];
  },
  model: (box, name) => AE.roots(box)[0].model.document.get_model_by_name(name),
  rgb(colour) {
    if (colour == null) return null;
    const ctx = document.createElement('canvas').getContext('2d');
    ctx.fillStyle = '#010203';
    ctx.fillStyle = typeof colour === 'object' ? colour.value : colour;
    const hex = ctx.fillStyle;
    if (hex.startsWith('#')) return [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)).concat([1]);
    const m = hex.match(/[\\d.]+/g).map(Number);
    return [m[0], m[1], m[2], m[3] ?? 1];
  },
  css(text) {
    const m = (text || '').match(/[\\d.]+/g);
    return m ? [+m[0], +m[1], +m[2], m.length > 3 ? +m[3] : 1] : null;
  },
  contrast(a, b) {
    const lum = (c) => {
      const linear = (v) => (v / 255 <= 0.04045 ? v / 255 / 12.92 : ((v / 255 + 0.055) / 1.055) ** 2.4);
      const [r, g, bl] = c.slice(0, 3).map(linear);
      return 0.2126 * r + 0.7152 * g + 0.0722 * bl;
    };
    const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p);
    return (x + 0.05) / (y + 0.05);
  },
  behind(el) {  // the opaque colour behind an element, the page's canvas last
    for (let node = el; node; node = AE.host(node)) {
      const colour = AE.css(getComputedStyle(node).backgroundColor);
      if (colour && colour[3] >= 0.99) return colour;
    }
    return AE.css(getComputedStyle(document.body).backgroundColor) ?? [255, 255, 255, 1];
  },
  blend: (fg, bg) => fg[3] >= 1 ? fg : [0, 1, 2].map((i) => fg[i] * fg[3] + bg[i] * (1 - fg[3])).concat([1]),
};
"""

_HTML_CONTRAST_JS = """(box) => {
  const low = [];
  for (const el of AE.deep(box)) {
    const text = [...el.childNodes].filter((n) => n.nodeType === 3).map((n) => n.textContent).join('').trim();
    if (!text || el.tagName === 'STYLE' || el.tagName === 'SCRIPT' || el.getClientRects().length === 0) continue;
    const style = getComputedStyle(el);
    if (style.visibility !== 'visible' || style.display === 'none') continue;
    const bg = AE.behind(el);
    const ratio = AE.contrast(AE.blend(AE.css(style.color), bg), bg);
    if (ratio < 4.5) low.push({text: text.slice(0, 40), tag: el.tagName, color: style.color, bg, ratio});
  }
  return low;
}"""

# Canvas text, from the colours the figure is drawn with: titles, axis and legend labels, colour-bar labels and
# label sets, each against the surface under it (the plot's border for text outside the frame, the frame inside).
_CANVAS_CONTRAST_JS = """(box) => {
  const low = [];
  let checked = 0;
  const check = (what, colour, surface) => {
    const fg = AE.rgb(colour), bg = AE.rgb(surface);
    if (fg == null || bg == null) return;
    checked += 1;
    const ratio = AE.contrast(AE.blend(fg, bg), bg);
    if (ratio < 4.5) low.push({what, fg, bg, ratio});
  };
  for (const view of AE.views(box)) {
    const plot = view.model;
    if (plot.type !== 'Figure' && plot.type !== 'Plot') continue;
    const border = plot.border_fill_color, frame = plot.background_fill_color;
    if (plot.title) check('title', plot.title.text_color, border);
    for (const item of [...plot.left, ...plot.right, ...plot.above, ...plot.below, ...plot.center]) {
      if (item.type === 'LinearAxis' || item.type === 'CategoricalAxis') {
        if (item.visible) { check('axis labels', item.major_label_text_color, border);
                            check('axis name', item.axis_label_text_color, border); }
      } else if (item.type === 'Legend') {
        check('legend', item.label_text_color, item.background_fill_color ?? border);
      } else if (item.type === 'ColorBar') {
        check('colour bar labels', item.major_label_text_color, item.background_fill_color ?? border);
        check('colour bar title', item.title_text_color, item.background_fill_color ?? border);
      } else if (item.type === 'LabelSet' || item.type === 'Label') {
        check(item.type, item.text_color, frame);
      }
    }
  }
  return {low, checked};
}"""

_IDS_JS = """() => {
  const scopes = [document];
  for (const el of AE.deep(document.documentElement)) if (el.shadowRoot) scopes.push(el.shadowRoot);
  const repeated = [];
  for (const scope of scopes) {
    const ids = [...scope.querySelectorAll('[id]')].map((el) => el.id);
    repeated.push(...ids.filter((id, i) => ids.indexOf(id) !== i));
  }
  return repeated;
}"""

_STYLES_JS = """([properties]) => AE.boxes().map((box) => AE.deep(box)
  .filter((el) => el.tagName !== 'STYLE' && el.tagName !== 'SCRIPT')
  .map((el) => {
    const style = getComputedStyle(el);
    return [el.tagName, ...properties.map((name) => style.getPropertyValue(name))];
  }))"""


def _page(body: str, *, hostile: bool) -> str:
    css = BLOG_CSS + (HOSTILE_CSS if hostile else "")
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>A post</title><style>{css}</style>'
        f"</head><body><header><h1>Notes on attribution</h1></header><article>{body}</article></body></html>"
    )


@pytest.fixture(scope="module")
def posts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The post (hostile and plain twins) with self-contained snippets and iframes, and the CDN post."""
    folder = tmp_path_factory.mktemp("blog")
    heatmap = export_result(causal_result(), mode="snippet-inline").html
    graph = export_result(route_graph(), mode="snippet-inline").html
    compared = export_result(comparison(), mode="snippet-inline").html
    frames = [export_result(result, mode="iframe").html for result in (route_graph(), seq2seq_result())]
    paragraph = "<p>Some prose of the post, in the blog's own font, between the figures.</p>"
    body = "\n".join(
        [paragraph, heatmap, paragraph, graph, paragraph, compared, paragraph, heatmap, frames[0], paragraph, frames[1]]
    )
    cdn_body = "\n".join(
        export_result(result, mode="snippet").html for result in (causal_result(), route_graph(), route_graph())
    )
    pages = {
        "hostile": _page(body, hostile=True),
        "plain": _page(body, hostile=False),
        "cdn": _page(cdn_body, hostile=True),
    }
    urls = {}
    for name, text in pages.items():
        path = folder / f"{name}.html"
        path.write_text(text, encoding="utf-8")
        urls[name] = path.as_uri()
    return urls


def _open_post(new_page, url: str, scheme: str) -> PageSession:
    session = new_page(viewport=(1100, 900), color_scheme=scheme)
    session.page.goto(url)
    session.page.evaluate(f"() => {{ const VERSION = {BOKEH_VERSION!r}; {_HELPERS_JS}; window.AE = AE; }}")
    session.page.wait_for_function("() => AE.boxes().every((box) => box.dataset.aeState === 'drawn')", timeout=60_000)
    # Chromium renders an iframe of another origin only near the viewport: each is drawn when scrolled to.
    for frame in session.page.frames[1:]:
        frame.frame_element().scroll_into_view_if_needed()
        frame.evaluate(f"() => {{ const VERSION = {BOKEH_VERSION!r}; {_HELPERS_JS}; window.AE = AE; }}")
        frame.wait_for_function("() => AE.boxes().every((box) => box.dataset.aeState === 'drawn')", timeout=60_000)
        frame.frame_element().wait_for_element_state("stable")
        session.page.wait_for_function("(el) => el.hasAttribute('data-ae-ready')", arg=frame.frame_element())
    session.page.wait_for_timeout(500)  # the frames' last height, one paint after the views exist
    return session


def _screenshot(page: Any, path: Path) -> None:
    """The whole post as a reader sees it: the viewport grown to the post's height first, and the figures
    given time to redraw at it (a ``full_page`` capture resizes under them and catches canvases mid-redraw)."""
    width, height = page.viewport_size["width"], page.viewport_size["height"]
    page.set_viewport_size({"width": width, "height": page.evaluate("() => document.documentElement.scrollHeight")})
    page.wait_for_timeout(1_000)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": width, "height": height})


def _drawn_pixels(page_or_frame: Any, index: int) -> int:
    """Pixels neither transparent nor the plot surface, over the canvases of embed ``index``."""
    return page_or_frame.evaluate(
        """(index) => {
          const box = AE.boxes()[index];
          let drawn = 0;
          for (const canvas of AE.deep(box).filter((el) => el.tagName === 'CANVAS')) {
            if (!canvas.width || !canvas.height) continue;
            const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
            for (let i = 0; i < data.length; i += 4) {
              const r = data[i], g = data[i + 1], b = data[i + 2];
              if (data[i + 3] !== 0 && !(r === g && g === b && (r > 240 || r < 30))) drawn += 1;
            }
          }
          return drawn;
        }""",
        index,
    )


# The tooltip BokehJS shows (a popover it appends to <body>, outside the embed): its text, scheme, computed
# styles and the texts in it that read below 4.5:1.
_TOOLTIP_JS = """([properties]) => {
  const shown = [...document.querySelectorAll('body > div.bk-Tooltip')].filter((el) => el.matches(':popover-open'));
  return shown.map((el) => ({
    text: AE.deep(el.shadowRoot).filter((e) => e.tagName !== 'STYLE')
      .flatMap((e) => [...e.childNodes].filter((n) => n.nodeType === 3).map((n) => n.textContent)).join(' '),
    scheme: el.dataset.aeScheme,
    style: properties.map((name) => getComputedStyle(el).getPropertyValue(name)),
    low: (HTML_CONTRAST)(el.shadowRoot),
  }));
}""".replace("HTML_CONTRAST", _HTML_CONTRAST_JS)


def _screen_point(where: Any, box: int, name: str, point: tuple[float, float]) -> tuple[float, float]:
    """Where data point ``point`` of figure ``name`` in embed ``box`` of a page or an iframe is on the screen
    (scrolled into view first, then measured)."""
    x, y = where.evaluate(f"() => AE.point(AE.boxes()[{box}], {name!r}, {point[0]}, {point[1]})")
    if getattr(where, "parent_frame", None) is not None:  # an iframe's Frame: the page scrolls it into view too
        element = where.frame_element()
        element.scroll_into_view_if_needed()
        height = where.page.viewport_size["height"]
        corner = _settled_box(element)
        if not 0 <= corner["y"] + y < height:  # an iframe taller than the viewport: bring the point itself in
            where.page.evaluate("(dy) => window.scrollBy(0, dy)", corner["y"] + y - height / 2)
            corner = _settled_box(element)
        x, y = x + corner["x"], y + corner["y"]
    return x, y


def _settled_box(element: Any) -> dict[str, float]:
    """``element``'s box once the page has stopped scrolling or laying out (the same in two frames in a row)."""
    box = element.bounding_box()
    for _ in range(50):
        element.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
        again = element.bounding_box()
        if again == box:
            break
        box = again
    return box


def _mouse(where: Any) -> Any:
    """The mouse of the page that shows ``where`` (a Page, or the Frame of an iframe in it)."""
    return getattr(where, "page", where).mouse


def _hover(where: Any, box: int, name: str, point: tuple[float, float], expected: list[str]) -> dict[str, Any]:
    """Move the pointer over data point ``point`` of figure ``name`` in embed ``box``: the one tooltip shown then
    (its ``text`` on one line, holding every ``expected`` string), which reads at 4.5:1 or more and follows the
    embed's scheme."""
    _mouse(where).move(*_screen_point(where, box, name, point), steps=4)
    for _ in range(100):
        tooltips = where.evaluate(_TOOLTIP_JS, [list(STYLE_PROPERTIES)])
        if len(tooltips) == 1 and all(text in " ".join(tooltips[0]["text"].split()) for text in expected):
            break
        where.wait_for_timeout(100)
    assert len(tooltips) == 1, tooltips
    [tooltip] = tooltips
    tooltip["text"] = " ".join(tooltip["text"].split())
    assert all(text in tooltip["text"] for text in expected), tooltip["text"]
    assert tooltip["low"] == [], tooltip
    assert tooltip["scheme"] == where.evaluate(f"() => AE.boxes()[{box}].dataset.aeScheme"), tooltip
    return tooltip


def _check_heatmap_hover(where: Any, box: int) -> dict[str, Any]:
    """Hover a cell of the heatmap in embed ``box``: its tooltip states that cell."""
    expected = ["input token: cat", "generated token: sat", "score: -0.75"]
    return _hover(where, box, "heatmap prefix → generated", (0, 1), expected)


def _graph_interactions(where: Any, box: int) -> None:
    """Tap a node (details panel), then move the threshold slider (fewer edges), in embed ``box``."""
    graph = route_graph()
    usable = [edge for edge in graph.edges if edge.source != "ghost"]
    shown = f"() => AE.model(AE.boxes()[{box}], 'shown edges').indices.length"
    details = f"() => AE.model(AE.boxes()[{box}], 'details').text"
    assert where.evaluate(shown) == len(route_edges(usable, ["o0", "o1"], 0.1)) == 9
    before = where.evaluate(details)
    _mouse(where).click(*_screen_point(where, box, "contribution graph", (1.0, 0.4)))
    where.wait_for_function(f"(before) => ({details})() !== before", arg=before)
    assert where.evaluate(details) == GraphWords(graph).node_details_text(graph.node("a1"))
    handle = where.evaluate_handle(
        f"() => AE.deep(AE.boxes()[{box}]).find((el) => el.classList.contains('noUi-handle'))"
    ).as_element()
    handle.focus()
    for _ in range(44):  # 0.1 → 0.32 in steps of 0.005
        handle.press("ArrowRight")
    where.wait_for_function(f"() => ({shown})() !== 9")
    assert where.evaluate(shown) == len(route_edges(usable, ["o0", "o1"], 0.32)) == 6
    status = where.evaluate(f"() => AE.model(AE.boxes()[{box}], 'status').text")
    assert status == "6 of 9 edges with weight ≥ 0.320"


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_a_blog_post_with_snippets_and_iframes_offline(new_page, posts: dict[str, str], scheme: str) -> None:
    session = _open_post(new_page, posts["hostile"], scheme)
    page = session.page
    frames = page.frames[1:]
    assert page.evaluate("() => AE.boxes().length") == 4 and len(frames) == 2

    # Every figure drew, in the post and in each iframe; each iframe is as tall as its page.
    for index in range(4):
        assert _drawn_pixels(page, index) > 2_000, index
        assert page.evaluate(f"() => AE.boxes()[{index}].dataset.aeScheme") == scheme
    for frame in frames:
        assert _drawn_pixels(frame, 0) > 2_000
        content = frame.evaluate("() => Math.ceil(document.body.getBoundingClientRect().height)")
        height = frame.frame_element().evaluate("(el) => el.getBoundingClientRect().height")
        assert abs(height - content) <= 1 and height != 600, (height, content)
    assert page.evaluate(_IDS_JS) == []
    # BokehJS and its widgets bundle (the graph's slider) ran once each, though all four snippets carry them.
    ran = "() => [...document.head.querySelectorAll('script:not([src])')].map((s) => s.textContent.length)"
    assert len([size for size in page.evaluate(ran) if size > 100_000]) == 2

    # Styles: inside the embeds, what the same post shows without the hostile element rules.
    hostile = page.evaluate(_STYLES_JS, [list(STYLE_PROPERTIES)])
    plain = _open_post(new_page, posts["plain"], scheme)
    assert plain.page.evaluate(_STYLES_JS, [list(STYLE_PROPERTIES)]) == hostile
    assert page.evaluate("() => getComputedStyle(document.querySelector('h1')).fontStyle") == "italic"  # it applies

    # Contrast: every text reads against what is behind it, in the post and inside the iframes.
    for where in (page, *frames):
        for index in range(where.evaluate("() => AE.boxes().length")):
            assert where.evaluate(f"() => ({_HTML_CONTRAST_JS})(AE.boxes()[{index}])") == []
            canvas = where.evaluate(f"() => ({_CANVAS_CONTRAST_JS})(AE.boxes()[{index}])")
            assert canvas["low"] == [] and canvas["checked"] >= 3, canvas
    _screenshot(page, SCREENSHOTS / f"blog-post-{scheme}.png")

    # Hover in both copies of the heatmap and in the comparison; tap and slide in the graph; the same in the
    # iframes (the graph: tap and slider; the patching maps: hover).
    # The tooltips (at the page's top level, not in the embeds) are styled as in the plain post too.
    tooltips = [_check_heatmap_hover(page, index) for index in (0, 3)]
    assert tooltips[0]["style"] == tooltips[1]["style"] == _check_heatmap_hover(plain.page, 0)["style"]
    _hover(page, 2, "heatmap source → target", (0, 0), ["input token: a", "generated token: x", "score: 0.6"])
    _graph_interactions(page, 1)
    _graph_interactions(frames[0], 0)
    _hover(frames[1], 0, "heatmap source → target", (1, 1), ["input token: b", "generated token: y", "score: 0.7"])
    session.assert_clean()
    plain.assert_clean()


def test_cdn_snippets_load_bokehjs_and_its_widgets_once(new_page, posts: dict[str, str]) -> None:
    """A heatmap snippet, then a graph snippet twice, from the CDN: each bundle fetched once, and all draw."""
    fetched: Counter[str] = Counter()
    static = Path(bokehjs_path()) / "js"
    session = new_page(viewport=(1100, 900))

    def serve(route: Any) -> None:
        url = route.request.url
        name = url.rsplit("/", 1)[-1]
        file = static / name.replace(f"-{BOKEH_VERSION}", "")  # bokeh-widgets-3.8.1.min.js: bokeh-widgets.min.js
        if url.startswith("https://cdn.bokeh.org/bokeh/release/") and file.is_file():
            fetched[name] += 1
            headers = {"Access-Control-Allow-Origin": "*"}  # as the CDN answers (the scripts load with CORS)
            route.fulfill(path=str(file), content_type="application/javascript", headers=headers)
        else:
            route.abort()

    session.page.route("https://cdn.bokeh.org/**", serve)
    session.page.goto(posts["cdn"])
    session.page.evaluate(f"() => {{ const VERSION = {BOKEH_VERSION!r}; {_HELPERS_JS}; window.AE = AE; }}")
    session.page.wait_for_function("() => AE.boxes().every((box) => box.dataset.aeState === 'drawn')", timeout=60_000)
    assert dict(fetched) == {f"bokeh-{BOKEH_VERSION}.min.js": 1, f"bokeh-widgets-{BOKEH_VERSION}.min.js": 1}
    for index in range(3):
        assert _drawn_pixels(session.page, index) > 2_000, index
    _check_heatmap_hover(session.page, 0)
    _graph_interactions(session.page, 2)
    session.assert_clean()
