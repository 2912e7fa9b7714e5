"""exporters: plugin registry, figure data, page modes, provenance, escaping in the HTML, CLI (no browser)."""

from __future__ import annotations

import base64
import gzip
import html
import json
import math
import re
import textwrap
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from bokeh.models import Div, GlyphRenderer, HoverTool, LinearColorMapper, Plot, Rect, Segment

from attribution.errors import InvalidInputError
from attribution.results import (
    Comparison,
    GraphEdge,
    route_edges,
)
from exporters import Export, ExporterError, available_exporters, export_result, get_exporter
from exporters.base import MODES
from exporters.bokeh_html import BokehExporter, build_figure
from exporters.figure_common import DIVERGING_PALETTE, SEQUENTIAL_PALETTE, responsive_grid_styles, short_model_name
from exporters.graph import EDGE_COLOURS, root_nodes
from exporters.hub import readme_for
from exporters.page import (
    PROVENANCE_ATTRIBUTE,
    PROVENANCE_SCRIPT_ID,
    provenance_html,
    provenance_meta_tags,
    provenance_record,
)
from space.cli import main
from tests.support.handmade_results import causal_result, comparison, route_graph, seq2seq_result
from tests.support.hostile_inputs import XSS_IMG, XSS_SCRIPT
from tests.support.pages import figure_json
from tests.support.synthetic_results import synthetic_attribution, synthetic_graph


def renderers_of(layout) -> list[GlyphRenderer]:
    return list(layout.select({"type": GlyphRenderer}))


# ---------------------------------------------------------------- registry and plugins


def test_builtin_exporter_is_found_by_name_and_unknown_names_are_clear() -> None:
    assert "bokeh" in available_exporters()
    assert isinstance(get_exporter("bokeh"), BokehExporter)
    with pytest.raises(InvalidInputError, match=r"unknown exporter 'nope'; available: .*bokeh"):
        get_exporter("nope")


def test_third_party_exporter_installed_through_entry_points_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real distribution on sys.path: a module plus its .dist-info with an entry_points.txt.
    (tmp_path / "markdown_table_exporter.py").write_text(
        textwrap.dedent(
            """
            from exporters import Export

            class MarkdownTableExporter:
                name = "markdown-table"

                def export(self, result, *, kind=None, mode="standalone", **options):
                    row = " | ".join(result.generated_tokens)
                    return Export(html=f"| {row} |", mode=mode, kind=kind, title="table")
            """
        )
    )
    dist_info = tmp_path / "markdown_table_exporter-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: markdown-table-exporter\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(
        "[attribution_explorer.exporters]\nmarkdown-table = markdown_table_exporter:MarkdownTableExporter\n"
        "broken = markdown_table_exporter_missing:Nothing\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))

    assert {"bokeh", "markdown-table", "broken"} <= set(available_exporters())
    export = export_result(causal_result(), exporter="markdown-table", mode="cdn")
    assert (export.html, export.kind, export.mode) == ("| sat | on |", "heatmap", "cdn")
    with pytest.raises(
        ExporterError, match=r"exporter 'broken' \(markdown_table_exporter_missing:Nothing\) could not be loaded"
    ):
        get_exporter("broken")


# ---------------------------------------------------------------- heatmap


def test_causal_heatmap_draws_finite_cells_with_their_values_on_a_diverging_scale() -> None:
    layout = build_figure(causal_result())
    cells = next(r for r in renderers_of(layout) if isinstance(r.glyph, Rect))
    data = cells.data_source.data
    # 5 finite cells of the 4 × 2 prefix matrix; the 3 NaN (future) cells are not drawn.
    got = sorted(zip(data["y"].tolist(), data["x"].tolist(), data["value"].tolist(), strict=True))
    assert got == [(0, 0, 0.5), (0, 1, -0.25), (1, 0, -0.75), (1, 1, 0.125), (2, 1, 0.375)]
    hover = next(t for t in layout.select({"type": HoverTool}) if t.renderers == [cells])
    assert hover.formatters["@y"].args["labels"] == ["The", "cat", "sat", "on"]  # rows: every target token
    assert hover.formatters["@x"].args["labels"] == ["sat", "on"]  # columns: the generated tokens
    mapper = cells.glyph.fill_color.transform
    assert (mapper.low, mapper.high, tuple(mapper.palette)) == (-0.75, 0.75, tuple(DIVERGING_PALETTE))
    bars = next(r for r in renderers_of(layout) if r.glyph.__class__.__name__ == "VBar")
    assert bars.data_source.data["top"] == [0.5, 0.25]


def test_seq2seq_heatmap_stacks_source_and_target_panels_on_a_sequential_scale() -> None:
    layout = build_figure(seq2seq_result(), step_score="entropy")
    cells = [r for r in renderers_of(layout) if isinstance(r.glyph, Rect)]
    assert len(cells) == 2
    # layout.select() returns a set: find each part by its panel's name, not by position.
    source, target = (
        next(
            r for r in layout.select_one({"name": f"heatmap {part} → target"}).renderers if isinstance(r.glyph, Rect)
        ).data_source.data
        for part in ("source", "target")
    )
    assert len(source["x"]) == 6 and sorted(set(source["y"].tolist())) == [0, 1, 2]  # a, b, c
    assert sorted(zip(target["y"].tolist(), target["x"].tolist(), strict=True)) == [(0, 0), (0, 1), (1, 1)]
    mapper = cells[0].glyph.fill_color.transform
    assert mapper is cells[1].glyph.fill_color.transform  # one colour scale for both parts
    assert (mapper.low, mapper.high, tuple(mapper.palette)) == (0.0, 0.7, tuple(SEQUENTIAL_PALETTE))
    bars = next(r for r in renderers_of(layout) if r.glyph.__class__.__name__ == "VBar")
    assert bars.data_source.data["top"] == [0.1, 0.2]
    # Stacked as in Inseq: bars, then source → target, then target → target, all one width, one x range.
    panels = [child.name for child in layout.children]
    assert panels == ["step scores", "heatmap source → target", "heatmap target → target"]
    assert {child.sizing_mode for child in layout.children} == {"stretch_width"}
    assert len({id(child.x_range) for child in layout.children}) == 1
    assert [child.title.text for child in layout.children] == [
        "saliency — tiny-synth-translate\nentropy of each generated token",
        "saliency — tiny-synth-translate\nsource → target",
        "saliency — tiny-synth-translate\ntarget → target",
    ]
    with pytest.raises(
        InvalidInputError, match=r"no step score 'loss' in this result \(available: probability, entropy\)"
    ):
        build_figure(seq2seq_result(), step_score="loss")


@pytest.mark.parametrize(
    ("model_id", "shown"),
    [
        ("gpt2", "gpt2"),
        ("Helsinki-NLP/opus-mt-en-de", "Helsinki-NLP/opus-mt-en-de"),
        ("/tmp/models/bpe-gpt2", "bpe-gpt2"),
        ("./models/bpe-gpt2/", "bpe-gpt2"),
        ("C:\\models\\tiny", "tiny"),
    ],
)
def test_titles_name_local_models_by_their_folder(model_id: str, shown: str) -> None:
    assert short_model_name(model_id) == shown
    result = causal_result(model_id=model_id)
    assert build_figure(result).children[0].title.text.startswith(f"input_x_gradient — {shown}\n")


def test_mis_shaped_scores_are_a_clear_error() -> None:
    result = causal_result()
    result.target_scores = result.target_scores[:, :1]
    with pytest.raises(InvalidInputError, match=r"scores have shape \(4, 1\), expected \(4, 2\)"):
        export_result(result)


# ---------------------------------------------------------------- graph


@pytest.mark.parametrize(
    ("starts", "threshold", "expected"),
    [
        (["o1"], 0.1, {("a1", "o1"), ("f1", "o1"), ("a1", "f1"), ("e1", "a1", 0.5), ("e0", "a1"), ("e1", "a1", 0.15)}),
        (["o1"], 0.32, {("a1", "o1"), ("e1", "a1", 0.5), ("e0", "a1")}),
        (["o1"], 0.6, {("a1", "o1")}),
        (["o0"], 0.1, {("a0", "o0"), ("e0", "a0", 0.6), ("e0", "a0", 0.4)}),
    ],
)
def test_route_walk_keeps_exactly_the_edges_reachable_above_the_threshold(
    starts: list[str], threshold: float, expected: set[tuple]
) -> None:
    graph = route_graph()
    usable = [e for e in graph.edges if e.source != "ghost"]
    kept = route_edges(usable, starts, threshold)

    def key(edge: GraphEdge) -> tuple:
        duplicated = sum(1 for e in usable if (e.source, e.target) == (edge.source, edge.target)) > 1
        return (edge.source, edge.target, edge.weight) if duplicated else (edge.source, edge.target)

    assert {key(e) for e in kept} == expected
    assert len(kept) == len(expected)


def test_graph_figure_starts_from_the_python_route_and_skips_dangling_edges() -> None:
    graph = route_graph()
    assert root_nodes(graph) == {0: "o0", 1: "o1"}
    layout = build_figure(graph, root_token=-1, threshold=0.32)
    segments = [r for r in renderers_of(layout) if isinstance(r.glyph, Segment)]
    total = sum(len(r.data_source.data["weight"]) for r in segments)
    assert total == 9  # the edge from the missing "ghost" node is dropped
    shown = {(float(r.data_source.data["weight"][i])) for r in segments for i in r.view.filter.indices}
    assert shown == {0.7, 0.5, 0.35}
    nodes = layout.select_one({"name": "nodes"})
    # Off the route: a0, f1 and o0 (graph.nodes order: e0 e1 a0 a1 f1 o0 o1).
    assert [i for i in range(7) if nodes.data["alpha"][i] < 1] == [2, 4, 5]
    assert layout.select_one({"name": "status"}).text == "3 of 9 edges with weight ≥ 0.320"
    heads = next(r for r in segments if "heads" in r.data_source.data).data_source.data["heads"]
    assert "h0 0.300, h1 0.050" in heads
    with pytest.raises(InvalidInputError, match=r"token 5 is not a route root of this graph; roots: \[0, 1\]"):
        build_figure(graph, root_token=5)
    with pytest.raises(InvalidInputError, match="threshold must be between"):
        build_figure(graph, threshold=0.05)


def test_seq2seq_graph_puts_the_encoder_left_of_the_decoder_with_cross_attention_between() -> None:
    graph = synthetic_graph("seq2seq", n_tokens=4, n_source=3, root_tokens=[1, 3], threshold=0.01)
    layout = build_figure(graph)
    nodes = layout.select_one({"name": "nodes"}).data
    encoder_x = [x for x, encoder in zip(nodes["x"], nodes["encoder"], strict=True) if encoder]
    decoder_x = [x for x, encoder in zip(nodes["x"], nodes["encoder"], strict=True) if not encoder]
    assert encoder_x and decoder_x and max(encoder_x) < min(decoder_x)
    edges = layout.select_one({"name": "edges"}).data
    cross_code = list(EDGE_COLOURS).index("cross_attention")  # edge kinds are coded in EDGE_COLOURS' order
    cross = [i for i, kind in enumerate(edges["kind"]) if kind == cross_code]
    assert len(cross) == sum(e.kind == "cross_attention" for e in graph.edges) > 0
    x = nodes["x"]  # an edge is drawn from its source node's position to its target node's
    starts, ends = edges["source_node"], edges["target_node"]
    assert all(x[starts[i]] <= max(encoder_x) < min(decoder_x) <= x[ends[i]] for i in cross)


def test_graph_with_an_edge_kind_added_later_still_exports() -> None:
    graph = route_graph()
    graph.edges.append(GraphEdge("e1", "o1", "skip", 0.2))  # type: ignore[arg-type]
    layout = build_figure(graph)
    edges = layout.select_one({"name": "edges"}).data
    skip = len(EDGE_COLOURS)  # a kind the figure does not know gets the next code (and a neutral colour)
    assert [w for w, kind in zip(edges["weight"].tolist(), edges["kind"], strict=True) if kind == skip] == [0.2]


# ---------------------------------------------------------------- comparison


def test_comparison_shares_one_colour_scale_and_shows_agreement_numbers() -> None:
    layout = build_figure(comparison())
    mappers = {id(r.glyph.fill_color.transform) for r in renderers_of(layout) if isinstance(r.glyph, Rect)}
    assert len(mappers) == 1
    mapper = next(iter(layout.select({"type": LinearColorMapper})))
    assert (mapper.low, mapper.high) == (-2.8, 2.8)  # |0.7 × -4| is the largest value of both results
    table = layout.select_one({"name": "agreement"}).text
    assert "<td>-0.500</td>" in table and "<td>0.250</td>" in table and "AER vs gold" in table


class _TableParser(HTMLParser):
    """The caption (a ``<caption>`` or the ``<p>`` above the table) and the rows (cell texts) of an HTML table."""

    def __init__(self) -> None:
        super().__init__()
        self.caption, self.rows, self._in_caption = "", [], False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("th", "td"):
            self.rows[-1].append("")
        self._in_caption = tag in ("caption", "p")

    def handle_endtag(self, tag: str) -> None:
        self._in_caption = False if tag in ("caption", "p") else self._in_caption

    def handle_data(self, data: str) -> None:
        if self._in_caption:
            self.caption += data
        elif self.rows and self.rows[-1]:
            self.rows[-1][-1] += data


def _agreement(layout) -> _TableParser:
    div = layout.select_one({"name": "agreement"})
    assert div.disable_math and div.text.startswith("<style>") and div.text.endswith("</table></div>")
    parsed = _TableParser()
    parsed.feed(div.text)
    return parsed


def test_comparison_grid_and_agreement_table_of_three_results() -> None:
    three = comparison()
    third = seq2seq_result()
    third.method = "occlusion"
    three.results.append(third)
    three.labels.append("$$x$$ occlusion")
    three.rank_correlation = [[1.0, -0.5, None], [-0.5, 1.0, 0.125], [None, 0.125, 1.0]]
    three.aer = [0.25, None]  # shorter than the results: the third has none
    layout = build_figure(three)
    grid = layout.select_one({"name": "comparison grid"})
    assert len(grid.children) == 3  # one block per result, wrapping in the CSS grid
    # the page's width, shared: equal grid columns, as many as fit; a block may shrink below its content's width
    assert (layout.name, layout.sizing_mode, grid.sizing_mode) == ("comparison", "stretch_width", "stretch_width")
    assert grid.styles == responsive_grid_styles()
    assert all((block.sizing_mode, block.styles) == ("stretch_width", {"min-width": "0"}) for block in grid.children)
    assert layout.select_one({"name": "agreement"}).sizing_mode == "stretch_width"
    headings = [f"{label} — tiny-synth-translate" for label in ("saliency", "attention", "$$x$$ occlusion")]
    assert [block.name for block in grid.children] == [f"compared {heading}" for heading in headings]
    for block, heading in zip(grid.children, headings, strict=True):  # every panel names its result
        titles = [plot.title.text for plot in block.select({"type": Plot})]
        assert titles and all(title.startswith(heading + "\n") for title in titles), titles
    assert not any(plot.title.text == "probability" for plot in layout.select({"type": Plot}))  # no bars
    assert {tool.tooltips[-1][0] for tool in layout.select({"type": HoverTool})} == {"score"}
    table = _agreement(layout)
    assert table.caption == (
        "Rank correlation (Spearman's ρ) between the attributions; "
        "alignment error rate against the gold word alignment (lower is better). "
        "Outlined cells: the gold alignment's links (source word → target word)"
    )
    assert table.rows == [
        ["", "saliency", "attention", "$$x$$ occlusion", "AER vs gold"],
        ["saliency", "1.000", "-0.500", "—", "0.250"],
        ["attention", "-0.500", "1.000", "0.125", "—"],
        ["$$x$$ occlusion", "—", "0.125", "1.000", "—"],
    ]
    three.aer = [None, None, None]
    table = _agreement(build_figure(three))
    assert table.caption == (
        "Rank correlation (Spearman's ρ) between the attributions. "
        "Outlined cells: the gold alignment's links (source word → target word)"
    )
    assert table.rows[0] == ["", "saliency", "attention", "$$x$$ occlusion"] and len(table.rows[1]) == 4


def test_malformed_comparisons_are_refused_with_their_counts() -> None:
    empty = Comparison(results=[], labels=[], rank_correlation=[])
    with pytest.raises(InvalidInputError) as refused:
        build_figure(empty, kind="compare")
    assert str(refused.value) == "this comparison holds no results"
    for field_name in ("labels", "rank_correlation"):
        short = comparison()
        setattr(short, field_name, getattr(short, field_name)[:1])
        with pytest.raises(InvalidInputError) as refused:
            build_figure(short)
        labels, rows = len(short.labels), len(short.rank_correlation)
        assert str(refused.value) == f"comparison has 2 results but {labels} labels and {rows} correlation rows"


# ---------------------------------------------------------------- pages, modes, provenance


def _provenance_json(page: str) -> dict:
    """A page's provenance (its id) or a snippet's (its attribute: a post may hold the same snippet twice)."""
    attribute = rf'(?:id="{PROVENANCE_SCRIPT_ID}"|{PROVENANCE_ATTRIBUTE})'
    match = re.search(rf'<script type="application/json" {attribute}>(.*?)</script>', page, re.S)
    assert match, "no provenance script"
    return json.loads(match.group(1))


def test_every_mode_pages_snippets_and_the_iframe() -> None:
    result = causal_result()
    standalone, cdn, snippet, inline, frame = (export_result(result, mode=mode) for mode in MODES)
    assert isinstance(standalone, Export) and standalone.kind == "heatmap"
    assert "<script src=" not in standalone.html and "cdn.bokeh.org" not in standalone.html
    assert len(standalone.html) > 1_000_000  # BokehJS itself is inside
    assert '<script src="https://cdn.bokeh.org/bokeh/release/bokeh-3.8.1.min.js" crossorigin' in cdn.html
    assert len(cdn.html) < 100_000
    # A snippet never loads BokehJS with a tag of its own (a second copy on a page breaks the figures drawn
    # after it): its script loads what is missing, once per page, from the CDN or from the snippet itself.
    for part in (snippet, inline):
        assert "<!DOCTYPE" not in part.html and "<script src=" not in part.html and "data-root-id" not in part.html
        assert not re.search(r"\sid=", part.html) and "\n\n" not in part.html  # no id; no blank line for Markdown
    assert figure_json(snippet.html)["bundles"] == [
        {"name": "bokeh", "url": "https://cdn.bokeh.org/bokeh/release/bokeh-3.8.1.min.js"}
    ]
    assert figure_json(inline.html)["bundles"] == [{"name": "bokeh"}] and "cdn.bokeh.org" not in inline.html
    [packed] = re.findall(r'<script type="text/plain" data-ae-bundle="bokeh">(.*?)</script>', inline.html)
    from bokeh.resources import INLINE

    assert gzip.decompress(base64.b64decode(packed)).decode() == INLINE.clone(components=["bokeh"]).js_raw[0]
    assert len(snippet.html) < 100_000 < 700_000 > len(inline.html)  # BokehJS gzipped: ~0.45 MB
    for export in (snippet, inline):  # the iframe embed comes with each snippet (the CLI writes it next to it)
        assert export.iframe_html.split(" srcdoc=")[0] == frame.html.split(" srcdoc=")[0]
    inner = html.unescape(re.search(r'srcdoc="([^"]*)"', frame.html).group(1))
    assert inner.startswith("<!DOCTYPE html>") and "cdn.bokeh.org" not in inner  # the self-contained page
    assert frame.html.count("<iframe") == 1 and "attribution-explorer:height" in frame.html  # it sizes itself
    assert standalone.iframe_html is None and frame.iframe_html is None


def test_every_page_shows_and_carries_its_provenance() -> None:
    page = export_result(causal_result()).html
    record = _provenance_json(page)
    assert record["model_id"] == "tiny-ioi-gpt2" and record["model_revision"] == "abc123"
    assert record["method"] == "input_x_gradient" and record["parameters"] == {"n_steps": 7}
    assert record["library_versions"] == {"torch": "2.13.0", "inseq": "0.7.1"}
    assert record["created_at"] == "2026-11-25T10:00:00+00:00" and record["exporter_versions"]["bokeh"] == "3.8.1"
    assert '<meta name="attribution-explorer:model-id" content="tiny-ioi-gpt2">' in page
    assert '<meta name="attribution-explorer:model-revision" content="abc123">' in page
    assert "<ae-key>model</ae-key><ae-value>tiny-ioi-gpt2 (revision abc123, gpt2)</ae-value>" in page
    assert "<ae-key>parameters</ae-key><ae-value>n_steps=7</ae-value>" in page

    graph_record = _provenance_json(export_result(route_graph(), mode="cdn").html)
    assert graph_record["parameters"]["threshold"] == 0.1 and graph_record["parameters"]["root_tokens"] == [0, -1]
    compare_record = _provenance_json(export_result(comparison(), mode="cdn").html)
    assert [c["label"] for c in compare_record["compared"]] == ["saliency", "attention"]


def test_user_strings_are_escaped_in_every_html_context() -> None:
    tokens = [XSS_SCRIPT, XSS_IMG, "</script><script>alert(2)</script>", "$$x^2$$"]
    result = causal_result(tokens, model_id=XSS_IMG)
    result.method_params = {"note": XSS_SCRIPT}
    for mode in ("standalone", "cdn", "snippet"):
        export = export_result(result, mode=mode, title=XSS_SCRIPT)
        for text in (export.html, export.iframe_html or ""):
            assert XSS_SCRIPT not in text and "<img src=x" not in text and "<script>alert(2)" not in text
    page = export_result(result, title=XSS_IMG).html
    assert "<title>&quot;&gt;&lt;img src=x onerror=alert(1)&gt;</title>" in page
    record = _provenance_json(page)  # the JSON still holds the exact strings
    assert record["model_id"] == XSS_IMG and record["parameters"]["note"] == XSS_SCRIPT
    graph = route_graph()
    graph.target_tokens = [XSS_SCRIPT, XSS_IMG]
    graph.nodes[0].top_tokens = [(XSS_IMG, 1.0)]
    assert "<img src=x" not in export_result(graph).html


class _MarkupParser(HTMLParser):
    """Collects the elements, attributes and text of an HTML fragment."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.update(name for name, _ in attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _html_markup(layout) -> list[_MarkupParser]:
    """Every piece of the layout that BokehJS renders as HTML (Div without render_as_text), parsed."""
    parsed = []
    for div in layout.select({"type": Div}):
        assert not div.render_as_text
        parser = _MarkupParser()
        parser.feed(div.text)
        parsed.append(parser)
    return parsed


def test_comparison_labels_and_other_user_strings_are_escaped() -> None:
    """Labels, method names, model ids, gold alignment and contrast target of a comparison loaded from JSON."""
    hostile = comparison()
    hostile.labels = [XSS_SCRIPT, XSS_IMG]
    hostile.gold_alignment = XSS_IMG + "<!--"
    hostile.results[0].method = XSS_SCRIPT
    hostile.results[1].provenance.model_id = XSS_IMG
    hostile.results[1].contrast_target = "--><script>alert(3)</script>"
    layout = build_figure(hostile)
    [table] = _html_markup(layout)  # the agreement table is the only markup: labels head the plots as plain text
    assert table.tags <= {"style", "div", "p", "table", "tr", "th", "td"} and table.attributes <= {"class"}
    titles = [plot.title.text.split("\n")[0] for plot in layout.select({"type": Plot})]
    # shown as text; the second label already holds its model id, so the model is not repeated
    contrast = " vs “--><script>alert(3)</script>”"  # a contrastive result's title names its contrast, as text
    assert sorted(set(titles)) == sorted([f"{XSS_SCRIPT} — tiny-synth-translate", XSS_IMG + contrast])
    assert [cell for cell in table.text if cell in hostile.labels] == [XSS_SCRIPT, XSS_IMG] * 2  # header, rows
    for mode in ("standalone", "cdn", "snippet"):
        export = export_result(hostile, mode=mode)  # the default title holds the labels too
        for text in (export.html, export.iframe_html or ""):
            assert XSS_SCRIPT not in text and "<img src=x" not in text and "<script>alert(3)" not in text, mode
            assert "<!--" not in text.replace("<!-- ", "")  # only the snippet's own comment opens one
    record = _provenance_json(export_result(hostile, mode="cdn").html)
    assert [entry["label"] for entry in record["compared"]] == [XSS_SCRIPT, XSS_IMG]
    assert record["parameters"]["gold_alignment"] == XSS_IMG + "<!--"
    export = export_result(hostile, mode="cdn", title=XSS_IMG)
    for repo_type in ("dataset", "space"):
        _, front_matter, body = readme_for(export, hostile, repo_type).split("---\n", 2)
        assert XSS_SCRIPT not in body and "<img src=x" not in body  # the Hub renders the Markdown as HTML
        assert f"# {html.escape(XSS_IMG)}" in body and html.escape(XSS_SCRIPT) in body  # title; method
        if repo_type == "space":  # the front matter is YAML data: the title as one quoted string
            assert f"title: {json.dumps(XSS_IMG)}" in front_matter.splitlines()


def test_hub_card_front_matter_and_description() -> None:
    """The repo card: Space front matter (title cut at 60 characters, not ASCII-escaped), then the facts."""
    result = causal_result()
    space_card = readme_for(export_result(result, mode="cdn", title="é" * 61), result, "space")
    assert space_card.split("\n---\n")[0].splitlines() == [
        "---",
        "tags:",
        "- attribution-explorer",
        "- interpretability",
        f'title: "{"é" * 57}..."',
        "sdk: static",
        "app_file: index.html",
        "emoji: 🔎",
        "colorFrom: blue",
        "colorTo: purple",
        "pinned: false",
    ]
    assert space_card.split("\n---\n")[1].splitlines() == [
        "",
        f"# {'é' * 61}",
        "",
        "An interactive heatmap made with Attribution Explorer: open `index.html` in a browser.",
        "",
        "- model: `tiny-ioi-gpt2`",
        "- method: input_x_gradient",
        "- computed: 2026-11-25T10:00:00+00:00",
        "- data: `result.json` (readable with `attribution.results.load_result_file`)",
    ]
    compared = comparison()
    compared.results[0].provenance.created_at = "2026-11-24T09:00:00+00:00"
    compared.results[1].provenance.model_id = "other-model"
    export = export_result(compared, mode="cdn", title="x" * 60)
    assert f'title: "{"x" * 60}"' in readme_for(export, compared, "space").splitlines()  # 60: kept whole
    dataset_card = readme_for(export, compared, "dataset")
    assert dataset_card.startswith("---\ntags:\n- attribution-explorer\n- interpretability\n---\n\n# ")
    assert "- model: `other-model`, `tiny-synth-translate`\n- method: attention, saliency\n" in dataset_card
    assert "- computed: 2026-11-24T09:00:00+00:00\n" in dataset_card  # the first result's


ATTRIBUTE_BREAKOUT = 'x" onload="alert(1)" data-x="&'  # no angle brackets: only attribute quoting stops it


class _TagParser(HTMLParser):
    """The start tags of a page with their attributes, as a browser reads them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _tags(markup: str, name: str) -> list[dict[str, str | None]]:
    parser = _TagParser()
    parser.feed(markup)
    return [attrs for tag, attrs in parser.tags if tag == name]


def test_attribute_values_keep_user_strings_inside_their_quotes() -> None:
    """Meta tags and the snippet's iframe: a quote in a model id or title cannot add an attribute."""
    result = causal_result(model_id=ATTRIBUTE_BREAKOUT)
    page = export_result(result, mode="cdn", title=ATTRIBUTE_BREAKOUT).html
    metas = {attrs["name"]: attrs for attrs in _tags(page, "meta") if str(attrs.get("name")).startswith("attribution")}
    assert set(metas["attribution-explorer:model-id"]) == {"name", "content"}
    assert metas["attribution-explorer:model-id"]["content"] == ATTRIBUTE_BREAKOUT
    assert _provenance_json(page)["model_id"] == ATTRIBUTE_BREAKOUT  # "&" and quotes survive the JSON escaping
    snippet = export_result(result, mode="snippet", title=ATTRIBUTE_BREAKOUT)
    [iframe] = _tags(snippet.iframe_html, "iframe")
    assert set(iframe) == {"class", "title", "srcdoc", "style", "sandbox"} and iframe["title"] == ATTRIBUTE_BREAKOUT
    assert iframe["srcdoc"].startswith("<!DOCTYPE html>") and iframe["srcdoc"].rstrip().endswith("</html>")  # whole
    assert _provenance_json(iframe["srcdoc"])["model_id"] == ATTRIBUTE_BREAKOUT
    assert iframe["style"] == "display: block; width: 100%; height: 600px; border: 0"  # until its page tells


def test_meta_tags_header_rows_and_snippet_parts_are_exact() -> None:
    record = provenance_record(comparison())
    record["exported_at"], record["exporter_versions"] = "2026-12-01T00:00:00+00:00", {"bokeh": "3.8.1"}
    record["compared"][1]["model_id"], record["compared"][1]["created_at"] = "second-model", "2027-01-01"
    assert provenance_meta_tags(record) == (
        '<meta name="attribution-explorer:model-id" content="tiny-synth-translate">'
        '<meta name="attribution-explorer:model-revision" content="abc123">'
        '<meta name="attribution-explorer:method" content="saliency, attention">'
        '<meta name="attribution-explorer:created-at" content="2026-11-25T10:00:00+00:00">'
        '<meta name="attribution-explorer:exported-at" content="2026-12-01T00:00:00+00:00">'
        '<meta name="attribution-explorer:library-versions" content="torch=2.13.0; inseq=0.7.1; bokeh=3.8.1">'
    )
    header = provenance_html("T", provenance_record(causal_result()))
    assert header.startswith(
        '<ae-provenance><ae-title class="ae-title">T</ae-title><ae-facts><ae-fact><ae-key>model</ae-key>'
        "<ae-value>tiny-ioi-gpt2 ("
    )
    assert (
        "</ae-value></ae-fact><ae-fact><ae-key>method</ae-key><ae-value>input_x_gradient</ae-value></ae-fact>"
        "<ae-fact><ae-key>parameters</ae-key><ae-value>n_steps=7</ae-value></ae-fact><ae-fact><ae-key>libraries"
    ) in header
    page_header = provenance_html("T", provenance_record(causal_result()), heading=True)
    assert page_header.startswith('<ae-provenance><h1 class="ae-title">T</h1><ae-facts>')  # a page's own heading
    snippet = export_result(route_graph(), mode="snippet", title="G").html
    lines = snippet.split("\n")
    assert lines[0] == (
        "<!-- G: made with Attribution Explorer. Paste it anywhere, as often as you like: "
        "it loads BokehJS from cdn.bokeh.org, once per page. -->"
    )
    assert lines[1] == '<div class="ae-embed">' and lines[-1] == "</div>"
    assert [bundle["url"] for bundle in figure_json(snippet)["bundles"]] == [
        "https://cdn.bokeh.org/bokeh/release/bokeh-3.8.1.min.js",  # and only the widgets the graph uses
        "https://cdn.bokeh.org/bokeh/release/bokeh-widgets-3.8.1.min.js",
    ]
    assert _provenance_json(snippet)["parameters"]["threshold"] == 0.1


# ---------------------------------------------------------------- API and CLI errors


def test_export_result_reads_json_paths_and_refuses_bad_requests(tmp_path: Path) -> None:
    path = tmp_path / "graph.json"
    graph = route_graph()
    graph.to_json(path)
    with pytest.raises(InvalidInputError, match=r"`edges\[9\]\.source` names node 'ghost', which is not in `nodes`"):
        export_result(path)  # an object may hold a dangling edge (the figure drops it); a saved JSON may not
    graph.edges = [edge for edge in graph.edges if edge.source != "ghost"]
    graph.to_json(path)
    assert export_result(path, mode="cdn").kind == "graph"
    with pytest.raises(InvalidInputError, match="is drawn as 'graph', not 'heatmap'"):
        export_result(path, kind="heatmap")
    with pytest.raises(InvalidInputError, match="unknown output mode 'pdf'"):
        export_result(path, mode="pdf")
    with pytest.raises(InvalidInputError, match="result file not found"):
        export_result(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"schema": "something-else"}')
    with pytest.raises(InvalidInputError, match="cannot read a result from"):
        export_result(tmp_path / "bad.json")
    with pytest.raises(InvalidInputError, match="unknown option"):
        build_figure(route_graph(), step_score="probability")


def test_cli_writes_page_and_snippet_files_and_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result_path = tmp_path / "result.json"
    seq2seq_result().to_json(result_path)
    assert (
        main(["export", str(result_path), "--kind", "heatmap", "--mode", "cdn", "--out", str(tmp_path / "a.html")]) == 0
    )
    assert "cdn.bokeh.org" in (tmp_path / "a.html").read_text(encoding="utf-8")
    assert main(["export", str(result_path), "--mode", "snippet", "--out", str(tmp_path / "s" / "b.html")]) == 0
    assert '<iframe class="ae-frame"' in (tmp_path / "s" / "b.iframe.html").read_text(encoding="utf-8")
    capsys.readouterr()
    assert main(["export", str(tmp_path / "nope.json"), "--out", str(tmp_path / "c.html")]) == 2
    assert capsys.readouterr().err == f"error: result file not found: {tmp_path / 'nope.json'}\n"
    assert main(["export", str(result_path), "--kind", "graph", "--out", str(tmp_path / "c.html")]) == 2
    assert not (tmp_path / "c.html").exists()


def test_synthetic_results_follow_the_data_model() -> None:
    """The benchmark's inputs: contributions into a node sum to 1 before pruning, heads sum to the weight."""
    graph = synthetic_graph("seq2seq", n_tokens=5, n_source=4, threshold=0.0, root_tokens=list(range(5)))
    sums: dict[str, float] = {}
    for edge in graph.edges:
        sums[edge.target] = sums.get(edge.target, 0.0) + edge.weight
        if edge.head_weights is not None:
            assert math.isclose(sum(edge.head_weights), edge.weight, rel_tol=1e-9, abs_tol=1e-12)
    assert all(math.isclose(total, 1.0, rel_tol=1e-9) for total in sums.values())
    result = synthetic_attribution("causal", n_prompt=3, n_generated=2)
    assert np.isnan(result.target_scores[3:, 0]).all() and np.isnan(result.target_scores[4:, 1]).all()
    assert not np.isnan(result.target_scores[:3, 0]).any()
