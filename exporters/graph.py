"""Contribution graph: a tokens × layers grid with weighted edges, interactive in a static page.

Tokens run along the bottom, layers upward (0 = embeddings). Seq2seq graphs get an encoder panel
on the left and a decoder panel on the right, with cross-attention edges between them. Edge width
and alpha grow with the weight; each root shows the token it predicts above its column. Hovering
an edge names the tokens and layers it connects (one tooltip at a time, the heaviest edge under
the pointer); tapping a node or an edge fills the details panel with the same rows the app's
tables show (:mod:`exporters.graph_details`), and, inside the app, tells the app which node or
edge is selected. A threshold slider and a route menu re-walk the routes in the browser
(``CustomJS``), with the same algorithm as :func:`attribution.results.route_edges`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
from bokeh.layouts import column, row
from bokeh.models import (
    BoxAnnotation,
    CDSView,
    ColumnDataSource,
    CustomJS,
    CustomJSHover,
    CustomJSTransform,
    Div,
    FixedTicker,
    HoverTool,
    IndexFilter,
    Label,
    LabelSet,
    LayoutDOM,
    Legend,
    LegendItem,
    LinearColorMapper,
    LinearInterpolator,
    PreText,
    Select,
    Slider,
    TapTool,
)
from bokeh.plotting import figure

from attribution.errors import InvalidInputError
from attribution.results import ContributionGraph, GraphEdge, GraphNode, route_edges
from exporters.figure_common import short_model_name, token_ticks, wrapping_block_styles, wrapping_row_styles
from exporters.graph_details import (
    ALL_TOKENS,
    ATTENTION_KINDS,
    KIND_NAMES,
    GraphWords,
    edge_key,
    kind_words,
    top_heads_text,
)
from exporters.tokens import display_tokens

ALL_ROUTES = "all"
EDGE_COLOURS = {"attention": "#3b6fb6", "cross_attention": "#8e44ad", "residual": "#9a9a9a", "ffn": "#e07b24"}
#: Edges marked under the drawn ones (e.g. those an ablation changed).
HIGHLIGHT_COLOUR = "#f5c518"
#: Kinds added to the data model later than this file.
OTHER_COLOUR = "#666666"
NODE_COLOURS = {
    "embedding": "#444444",
    "after_attention": "#3b6fb6",
    "after_cross_attention": "#8e44ad",
    "ffn": "#e07b24",
    "after_ffn": "#222222",
}
# Height of each node kind inside its layer's band (layer l spans (l-1, l]); FFN nodes sit to the
# right of their token's column so FFN edges are visible next to the residual ones.
_KIND_Y = {"embedding": 0.0, "after_attention": -0.6, "after_cross_attention": -0.4, "ffn": -0.2, "after_ffn": 0.0}
_KIND_DX = {"ffn": 0.3}
_KIND_RANK = {"embedding": 0, "after_attention": 1, "after_cross_attention": 2, "ffn": 3, "after_ffn": 4}
PANEL_GAP = 2
#: Plot height: per layer, plus room for the axis labels and the predictions on top.
LAYER_PX, EXTRA_PX, MIN_HEIGHT_PX, MAX_HEIGHT_PX = 80, 170, 420, 980
#: The details panel wraps below the plot when the two do not fit side by side.
PLOT_MIN_PX, PANEL_MIN_PX = 520, 280
#: Width each token column needs for its slanted label to read: a longer text widens the figure, which
#: then scrolls sideways inside its panel, instead of squeezing its labels together.
COLUMN_PX, AXIS_PX = 18, 90
#: Characters' width (px) of the predictions written above the roots, to keep the right-most one inside.
PREDICTION_CHAR_PX, PREDICTION_ANGLE = 7.5, 0.5


#: Within this many pixels of a node, only the node's tooltip shows (not those of the edges meeting there).
NODE_HOVER_PX = 9
HINT = "Tap a node for its top tokens (and FFN neurons), or an edge for its split over heads."

# Walks down from the chosen root node(s), keeping edges at or above the threshold (the JS twin of
# attribution.results.route_edges()); shows the kept edges through the edges' IndexFilter and fades the nodes that are
# off the routes.
_ROUTE_JS = """
const t = slider.value;
const starts = select.value === 'all' ? roots.flat() : roots[Number(select.value)];
const data = edges.data;
const incoming = new Map();
for (let e = 0; e < data.target_node.length; e++) {
  const dst = data.target_node[e];
  if (!incoming.has(dst)) incoming.set(dst, []);
  incoming.get(dst).push(e);
}
const seen = new Set(starts);
const queue = [...starts];
const kept = [];
while (queue.length > 0) {
  for (const e of incoming.get(queue.shift()) ?? []) {
    if (data.weight[e] >= t) {
      kept.push(e);
      const source = data.source_node[e];
      if (!seen.has(source)) { seen.add(source); queue.push(source); }
    }
  }
}
shown.indices = kept.sort((a, b) => a - b);
nodes.data = {...nodes.data, alpha: Array.from(nodes.data.alpha, (_, n) => (seen.has(n) ? 1.0 : 0.15))};
status.text = `${kept.length} of ${data.weight.length} edges with weight ≥ ${t.toFixed(3)}`;
"""

# Edges are drawn between their end nodes' positions (the edges store node indices, not coordinates).
_NODE_POSITION_JS = "return Array.from(xs, (n) => nodes.data[axis][n]);"

# Hovering near a node shows the node's tooltip only: an edge's is left out within `radius` pixels
# of either of its ends (where many edges meet).
_AWAY_FROM_NODES = """
const {vars, data_source} = cb_data;
const coordinates = vars.glyph_view?.renderer?.coordinates;
if (coordinates == null) return true;
const {x_scale, y_scale} = coordinates;
const i = vars.index;
const far = (n) => Math.hypot(
  x_scale.compute(nodes.data.x[n]) - vars.sx, y_scale.compute(nodes.data.y[n]) - vars.sy) > radius;
return far(data_source.data.source_node[i]) && far(data_source.data.target_node[i]);
"""

# A node's and an edge's words, composed in the browser from compact columns (storing the text per
# node and edge would double the page): the twins of GraphWords.node_place / node_details_text /
# edge_title / edge_details_text and of edge_key. `words` holds the token labels, kind names and
# whether to name the side.
_WORDS_JS = r"""
const shown = (value) => String(Number(value.toPrecision(4)));
const node_label = (n) => {
  const d = nodes.data;
  const side = words.seq2seq ? (d.encoder[n] ? 'encoder ' : 'decoder ') : '';
  return `${side}${words.tokens[d.token[n]]} (${d.position[n]}) · L${d.layer[n]} ${words.node_kinds[d.kind[n]]}`;
};
const node_details = (n) => `node ${node_label(n)}${nodes.data.raw[n]}\n${nodes.data.rows[n]}`;
const node_top = (n) => {
  const lines = nodes.data.rows[n].split('\n');
  const start = lines.indexOf('logit lens:');
  if (start < 0) return '—';
  const top = [];
  for (const line of lines.slice(start + 1, start + 4)) {
    if (!line.startsWith('  ')) break;
    top.push(line.trim().replace(/^\d+\. /, '').replace(/  /, ' '));
  }
  return top.join(', ');
};
const edge_title = (e) => {
  const d = edges.data;
  const kind = words.edge_kinds[d.kind[e]].replaceAll('_', '-');
  return `${kind} edge ${node_label(d.source_node[e])} → ${node_label(d.target_node[e])}, weight ${shown(d.weight[e])}`;
};
const edge_details = (e) => (
  edges.data.heads[e] === '—' ? edge_title(e) : `${edge_title(e)}\ntop heads: ${edges.data.heads[e]}`
);
const edge_key = (e) => {
  const d = edges.data;
  const kind = words.edge_kinds[d.kind[e]];
  const base = `${nodes.data.id[d.source_node[e]]}->${nodes.data.id[d.target_node[e]]}`;
  return words.attention_kinds.includes(kind) ? base : `${base}#${kind}`;
};
"""

# Hover lines composed from the hovered row (`special_vars.index`), whatever column names the line.
_EDGE_HOVER_JS = _WORDS_JS + "return edge_title(special_vars.index);"
_NODE_HOVER_JS = _WORDS_JS + "return node_label(special_vars.index);"
_NODE_TOP_HOVER_JS = _WORDS_JS + "return node_top(special_vars.index);"

# Tapping shows a node's (or else an edge's) details in the panel, a Div rendered as text, so
# tokens can never become markup. Shift+tap adds to the selection (several nodes and edges, e.g. to ablate
# together); one tap hitting a node and the edges meeting there selects the node. The panel shows the last
# one tapped. Inside the app, the selected ids (in tapping order, one per line: node ids, edge keys) are
# also written into the app's selection box (an <input>/<textarea> found by `selector`), and an input event
# tells the app, which then shows the last one's details in its own tables.
_TAP_JS = (
    _WORDS_JS
    + """
const n = nodes.selected.indices;
const e = edges.selected.indices;
const state = (nodes.aeTapped ??= {nodes: [], edges: [], order: []});
const newEdges = e.filter((i) => !state.edges.includes(i));
if (newEdges.length > 0 && n.some((i) => !state.nodes.includes(i))) {
  edges.selected.indices = e.filter((i) => !newEdges.includes(i));  // the node wins; this runs again
  return;
}
state.nodes = [...n];
state.edges = [...e];
const selected = [...n.map((i) => `n${i}`), ...e.map((i) => `e${i}`)];
state.order = [...state.order.filter((s) => selected.includes(s)), ...selected.filter((s) => !state.order.includes(s))];
const show = (text) => { if (panel) panel.text = text; };  // the app shows the details itself: no panel
const last = state.order.at(-1);
if (last === undefined) show(hint);
else if (last[0] === 'n') show(node_details(Number(last.slice(1))));
else show(edge_details(Number(last.slice(1))));
const id = state.order.map((s) => (s[0] === 'n' ? nodes.data.id[Number(s.slice(1))] : edge_key(Number(s.slice(1)))));
if (selector) {
  const field = document.querySelector(selector);
  if (field && field.value !== id.join('\\n')) {
    field.value = id.join('\\n');
    field.dispatchEvent(new Event('input', {bubbles: true}));
  }
}
"""
)


@dataclass
class _Layout:
    """Where each node and token goes: x offsets of the decoder panel, y of each node."""

    decoder_offset: int
    encoder_layers: int
    decoder_layers: int

    def x(self, node: GraphNode) -> float:
        base = node.token_index + (self.decoder_offset if node.side == "decoder" else 0)
        return base + _KIND_DX.get(node.kind, 0.0)

    def y(self, node: GraphNode) -> float:
        if node.kind == "embedding" or node.layer == 0:
            return 0.0
        return node.layer + _KIND_Y.get(node.kind, 0.0)


def _layout(graph: ContributionGraph, *, seq2seq: bool) -> _Layout:
    if not seq2seq:
        return _Layout(decoder_offset=0, encoder_layers=0, decoder_layers=graph.n_layers)
    encoder_layers = getattr(graph, "n_encoder_layers", 0) or graph.n_layers
    return _Layout(
        decoder_offset=len(graph.source_tokens) + PANEL_GAP,
        encoder_layers=encoder_layers,
        decoder_layers=graph.n_layers,
    )


def _usable_edges(graph: ContributionGraph) -> list[GraphEdge]:
    ids = {node.id for node in graph.nodes}
    return [edge for edge in graph.edges if edge.source in ids and edge.target in ids]


def root_nodes(graph: ContributionGraph) -> dict[int, str]:
    """Target token index → id of the node its route starts from (its top-most decoder node)."""
    n_target = len(graph.target_tokens)
    roots = {}
    for token in graph.root_tokens:
        index = token + n_target if token < 0 else token
        candidates = [n for n in graph.nodes if n.side == "decoder" and n.token_index == index]
        if candidates:
            roots[index] = max(candidates, key=lambda n: (n.layer, _KIND_RANK.get(n.kind, -1))).id
    return roots


def _nodes_source(graph: ContributionGraph, geometry: _Layout, words: GraphWords) -> ColumnDataSource:
    """Where each node is and what it is, in numbers, plus its id and its details' rows as text."""
    nodes = graph.nodes
    n_source = len(graph.source_tokens)
    details = [words.node_details_text(n).split("\n", 1) for n in nodes]  # title line, then the rows
    return ColumnDataSource(
        {
            "x": np.array([geometry.x(n) for n in nodes], dtype=np.float32),
            "y": np.array([geometry.y(n) for n in nodes], dtype=np.float32),
            "alpha": np.ones(len(nodes), dtype=np.float32),
            "id": [n.id for n in nodes],
            "encoder": np.array([n.side == "encoder" for n in nodes], dtype=np.int8),
            "token": np.array([n.token_index + (0 if n.side == "encoder" else n_source) for n in nodes], np.int32),
            "position": np.array([n.token_index for n in nodes], dtype=np.int32),
            "layer": np.array([n.layer for n in nodes], dtype=np.int32),
            "kind": np.array([_code(list(KIND_NAMES), n.kind) for n in nodes], dtype=np.int8),
            "raw": [words.node_title(n).removeprefix(f"node {words.node_place(n)}") for n in nodes],
            "rows": [rows for _, rows in details],
        },
        name="nodes",
    )


def _code(known: list[str], value: str) -> int:
    """The index of ``value`` in ``known`` (appended when new: kinds added to the data model later)."""
    if value not in known:
        known.append(value)
    return known.index(value)


def _edges_source(graph: ContributionGraph, edges: list[GraphEdge], edge_kinds: list[str]) -> ColumnDataSource:
    """The drawing data of every edge, in one source (one renderer: one hover tooltip at a time).

    Only numbers and the top heads: an edge is drawn between its end nodes' positions, and its words
    are composed from theirs (see ``_WORDS_JS``).
    """
    index_of = {node.id: i for i, node in enumerate(graph.nodes)}
    return ColumnDataSource(
        {
            "source_node": np.array([index_of[e.source] for e in edges], dtype=np.int32),
            "target_node": np.array([index_of[e.target] for e in edges], dtype=np.int32),
            "weight": np.array([e.weight for e in edges], dtype=np.float64),
            "kind": np.array([_code(edge_kinds, e.kind) for e in edges], dtype=np.int8),
            "heads": [top_heads_text(e) if e.kind in ATTENTION_KINDS else "—" for e in edges],
        },
        name="edges",
    )


def _check_options(
    graph: ContributionGraph, roots: dict[int, str], root_token: int | None, threshold: float | None
) -> tuple[int | None, float]:
    if root_token is not None:
        root_token = root_token + len(graph.target_tokens) if root_token < 0 else root_token
        if root_token not in roots:
            raise InvalidInputError(f"token {root_token} is not a route root of this graph; roots: {sorted(roots)}")
    start = graph.threshold if threshold is None else float(threshold)
    if not graph.threshold <= start <= 1.0:
        raise InvalidInputError(f"threshold must be between the graph's own {graph.threshold} and 1, not {start}")
    return root_token, start


def route_menu(graph: ContributionGraph, words: GraphWords) -> list[tuple[str, str]]:
    """The figure's route choices: ``all tokens`` (when there are several roots), then each root by name."""
    root_order = sorted(root_nodes(graph))
    entries = [(str(i), words.root_label(token)) for i, token in enumerate(root_order)]
    return ([(ALL_ROUTES, ALL_TOKENS)] if len(root_order) > 1 else []) + entries


def graph_figure(
    graph: ContributionGraph,
    *,
    root_token: int | None = None,
    threshold: float | None = None,
    selection_input: str | None = None,
    controls: bool = True,
    title: str | None = None,
    highlight_edges: Collection[str] = (),
) -> LayoutDOM:
    """The interactive graph layout: controls, figure, and the details panel.

    ``selection_input`` is a CSS selector of an ``<input>``/``<textarea>`` in the page that should
    receive the id of the tapped node or the key of the tapped edge (the app's selection box).
    ``controls=False`` leaves out the figure's own threshold slider, route menu and details panel, for a
    page that has its own (the app: one set of controls, one details view; it re-walks the graph itself).
    ``title`` replaces the plot's title; ``highlight_edges`` (edge keys, :func:`edge_key`) are drawn marked,
    under the edges (e.g. those an ablation changed).
    """
    if not graph.nodes:
        raise InvalidInputError("this contribution graph has no nodes to draw")
    roots = root_nodes(graph)
    if not roots:
        raise InvalidInputError("none of the graph's root tokens has a node to start a route from")
    root_token, start = _check_options(graph, roots, root_token, threshold)
    words = GraphWords(graph)
    geometry = _layout(graph, seq2seq=words.seq2seq)
    index_of = {node.id: i for i, node in enumerate(graph.nodes)}
    root_order = sorted(roots)
    edges = _usable_edges(graph)

    # Initial state, computed in Python with the same walk the slider runs in the browser.
    starts = [roots[root_token]] if root_token is not None else [roots[t] for t in root_order]
    kept = {id(edge) for edge in route_edges(edges, starts, start)}
    reached = {index_of[s] for s in starts} | {index_of[e.source] for e in edges if id(e) in kept}
    nodes_source = _nodes_source(graph, geometry, words)
    nodes_source.data["alpha"] = np.array([1.0 if n in reached else 0.15 for n in range(len(graph.nodes))], np.float32)
    edge_kinds = list(EDGE_COLOURS)
    edges_source = _edges_source(graph, edges, edge_kinds)
    shown = IndexFilter(indices=[i for i, e in enumerate(edges) if id(e) in kept], name="shown edges")

    n_columns = geometry.decoder_offset + len(graph.target_tokens)
    room = _predictions_room(graph, roots, words)
    n_rows = max(geometry.encoder_layers, geometry.decoder_layers)
    plot = figure(
        title=title or f"Contribution graph — {short_model_name(graph.provenance.model_id)}",
        sizing_mode="stretch_width",
        min_width=max(PLOT_MIN_PX, int(COLUMN_PX * (n_columns + 1 + room)) + AXIS_PX),
        height=max(MIN_HEIGHT_PX, min(MAX_HEIGHT_PX, LAYER_PX * n_rows + EXTRA_PX)),
        x_range=(-1.0, n_columns + room),
        y_range=(-0.6, n_rows + 1.0),
        tools="pan,wheel_zoom,box_zoom,reset,save",
        toolbar_location="right",
        name="contribution graph",
    )
    _draw_panels(plot, graph, geometry)
    _draw_highlights(plot, edges, edges_source, nodes_source, set(highlight_edges))
    edge_renderer = plot.segment(
        x0=_end_of("source_node", "x", nodes_source),
        y0=_end_of("source_node", "y", nodes_source),
        x1=_end_of("target_node", "x", nodes_source),
        y1=_end_of("target_node", "y", nodes_source),
        source=edges_source,
        view=CDSView(filter=shown),
        line_width={"field": "weight", "transform": LinearInterpolator(x=[0, 1], y=[1, 9])},
        line_alpha={"field": "weight", "transform": LinearInterpolator(x=[0, 1], y=[0.25, 1])},
        line_color=_by_code("kind", [EDGE_COLOURS.get(kind, OTHER_COLOUR) for kind in edge_kinds]),
        nonselection_line_alpha=0.25,
        selection_line_color="#d62728",
    )
    lookup = {
        "seq2seq": words.seq2seq,
        "tokens": display_tokens([*graph.source_tokens, *graph.target_tokens], words.style),
        "node_kinds": [kind_words(kind) for kind in KIND_NAMES],
        "edge_kinds": edge_kinds,
        "attention_kinds": list(ATTENTION_KINDS),
    }
    sources = {"nodes": nodes_source, "edges": edges_source, "words": lookup}
    plot.add_tools(
        HoverTool(
            renderers=[edge_renderer],
            tooltips=[("edge", "@weight{custom}"), ("top heads", "@heads")],
            formatters={"@weight": CustomJSHover(args=sources, code=_EDGE_HOVER_JS)},
            line_policy="interp",
            sort_by=[("weight", "descending")],
            limit=1,
            filters={"@weight": CustomJS(args={"radius": NODE_HOVER_PX, "nodes": nodes_source}, code=_AWAY_FROM_NODES)},
        )
    )
    node_renderer = plot.scatter(
        x="x",
        y="y",
        source=nodes_source,
        size=10,
        fill_color=_by_code("kind", [NODE_COLOURS.get(kind, OTHER_COLOUR) for kind in KIND_NAMES]),
        line_color="white",
        fill_alpha="alpha",
        line_alpha="alpha",
        selection_line_color="#d62728",
        nonselection_fill_alpha="alpha",
    )
    plot.add_tools(
        HoverTool(
            renderers=[node_renderer],
            tooltips=[("node", "@id{custom}"), ("logit lens", "@rows{custom}")],
            formatters={
                "@id": CustomJSHover(args=sources, code=_NODE_HOVER_JS),
                "@rows": CustomJSHover(args=sources, code=_NODE_TOP_HOVER_JS),
            },
            limit=1,
        ),
        TapTool(renderers=[node_renderer, edge_renderer]),
    )
    _draw_predictions(plot, graph, geometry, roots, words)
    codes = edges_source.data["kind"]
    legend_items = [
        LegendItem(label=kind.replace("_", " "), renderers=[edge_renderer], index=int(np.flatnonzero(codes == code)[0]))
        for code, kind in enumerate(edge_kinds)
        if (codes == code).any()
    ]
    plot.add_layout(Legend(items=legend_items, orientation="horizontal"), "above")
    positions = list(range(len(graph.source_tokens))) if geometry.decoder_offset else []
    tokens = list(graph.source_tokens) if geometry.decoder_offset else []
    positions += [geometry.decoder_offset + i for i in range(len(graph.target_tokens))]
    tokens += list(graph.target_tokens)
    plot.xaxis.ticker, plot.xaxis.formatter = token_ticks(display_tokens(tokens, words.style), positions=positions)
    plot.xaxis.major_label_orientation = 1.2
    plot.yaxis.ticker = FixedTicker(ticks=list(range(n_rows + 1)))
    plot.yaxis.axis_label = "layer (0 = embeddings)"
    plot.grid.visible = False

    status = PreText(text=f"{len(kept)} of {len(edges)} edges with weight ≥ {start:.3f}", name="status")
    # The plot keeps its least width (a column per token): a narrower panel scrolls it sideways.
    scrolled = column(plot, sizing_mode="stretch_width", styles={"overflow-x": "auto", "overflow-y": "hidden"})
    if not controls:
        _on_tap(sources, None, selection_input)
        return column(status, scrolled, sizing_mode="stretch_width", name="graph")
    menu = route_menu(graph, words)
    slider = Slider(start=graph.threshold, end=1.0, value=start, step=0.005, title="edge threshold", width=260)
    select = Select(
        title="routes from",
        value=str(root_order.index(root_token)) if root_token is not None else menu[0][0],
        options=menu,
        width=260,
    )
    panel = Div(
        text=HINT,
        render_as_text=True,
        name="details",
        sizing_mode="stretch_width",
        styles={"white-space": "pre-wrap", "font": "12px/1.45 ui-monospace, monospace", "overflow-wrap": "anywhere"},
    )
    update = CustomJS(
        args={
            "slider": slider,
            "select": select,
            "roots": [[index_of[roots[token]]] for token in root_order],
            "edges": edges_source,
            "shown": shown,
            "nodes": nodes_source,
            "status": status,
        },
        code=_ROUTE_JS,
    )
    slider.js_on_change("value", update)
    select.js_on_change("value", update)
    _on_tap(sources, panel, selection_input)
    row_of_controls = row(slider, select, status, styles=wrapping_row_styles(), sizing_mode="stretch_width")
    scrolled.styles = {**scrolled.styles, "flex": f"3 1 {PLOT_MIN_PX}px", "min-width": "0"}
    body = row(
        scrolled,
        column(panel, sizing_mode="stretch_width", styles={**wrapping_block_styles(PANEL_MIN_PX), "flex-grow": "0.3"}),
        sizing_mode="stretch_width",
        styles=wrapping_row_styles(),
    )
    return column(row_of_controls, body, sizing_mode="stretch_width", name="graph")


def _draw_highlights(
    plot: figure, edges: list[GraphEdge], edges_source: ColumnDataSource, nodes: ColumnDataSource, keys: set[str]
) -> None:
    """A wide band under each edge named in ``keys`` (its filter, named ``highlighted edges``, lists them)."""
    if not keys:
        return
    marked = IndexFilter(indices=[i for i, e in enumerate(edges) if edge_key(e) in keys], name="highlighted edges")
    plot.segment(
        x0=_end_of("source_node", "x", nodes),
        y0=_end_of("source_node", "y", nodes),
        x1=_end_of("target_node", "x", nodes),
        y1=_end_of("target_node", "y", nodes),
        source=edges_source,
        view=CDSView(filter=marked),
        line_width=12,
        line_color=HIGHLIGHT_COLOUR,
        line_alpha=0.75,
        nonselection_line_alpha=0.75,
    )


def before_after_figure(
    before: ContributionGraph, after: ContributionGraph, *, changed: Collection[str], titles: tuple[str, str]
) -> LayoutDOM:
    """Two graphs of one input side by side (wrapping one under the other when narrow), the ``changed`` edges
    (edge keys) marked in both: e.g. the routes before and after an ablation."""
    panels = [
        graph_figure(graph, controls=False, title=title, highlight_edges=changed)
        for graph, title in zip((before, after), titles, strict=True)
    ]
    for panel in panels:
        panel.styles = wrapping_block_styles(PLOT_MIN_PX)
    return row(*panels, sizing_mode="stretch_width", styles=wrapping_row_styles(), name="before and after")


def _on_tap(sources: dict, panel: Div | None, selection_input: str | None) -> None:
    """A tap shows the node's or edge's details in ``panel`` (when there is one) and tells the app about it."""
    tap = CustomJS(args={**sources, "panel": panel, "hint": HINT, "selector": selection_input}, code=_TAP_JS)
    sources["nodes"].selected.js_on_change("indices", tap)
    sources["edges"].selected.js_on_change("indices", tap)


def _end_of(end: str, axis: str, nodes: ColumnDataSource) -> dict:
    """An edge end's coordinate: the ``axis`` position of the node its ``end`` column points to."""
    look_up = CustomJSTransform(args={"nodes": nodes, "axis": axis}, v_func=_NODE_POSITION_JS)
    return {"field": end, "transform": look_up}


def _by_code(field: str, colours: list[str]) -> dict:
    """A colour per integer code in ``field`` (0 → ``colours[0]``, …)."""
    mapper = LinearColorMapper(palette=colours, low=-0.5, high=len(colours) - 0.5)
    return {"field": field, "transform": mapper}


def _predictions_room(graph: ContributionGraph, roots: dict[int, str], words: GraphWords) -> float:
    """Columns right of the last token for the right-most prediction, which the frame would clip.

    Slanted predictions (several roots) run rightwards; the room is what the text needs at the plot's
    least width (:data:`COLUMN_PX` a column), more than enough when the plot is wider. One prediction is
    written leftwards when it sits in the right half: it needs none.
    """
    nodes = {node.id: node for node in graph.nodes}
    texts = [words.predicted_tokens(nodes[roots[token]]) for token in sorted(roots)]
    texts = [text for text in texts if text]
    if len(texts) < 2:
        return 0.0
    return float(np.ceil(len(texts[-1]) * PREDICTION_CHAR_PX * np.cos(PREDICTION_ANGLE) / COLUMN_PX))


def _draw_predictions(
    plot: figure, graph: ContributionGraph, geometry: _Layout, roots: dict[int, str], words: GraphWords
) -> None:
    """Above each root's column, the token its final state predicts (its last-layer logit lens)."""
    nodes = {node.id: node for node in graph.nodes}
    entries = [(geometry.x(nodes[node_id]), words.predicted_tokens(nodes[node_id])) for node_id in roots.values()]
    entries = [(x, text) for x, text in entries if text]
    if not entries:
        return
    top = max(geometry.encoder_layers, geometry.decoder_layers)
    source = ColumnDataSource(
        {"x": [x for x, _ in entries], "y": [top + 0.25] * len(entries), "text": [t for _, t in entries]},
        name="predictions",
    )
    single = len(entries) == 1
    n_columns = geometry.decoder_offset + len(graph.target_tokens)
    # One prediction reads horizontally, kept inside the frame; several are slanted so they do not overlap.
    align = "left" if not single else ("right" if entries[0][0] > n_columns / 2 else "left")
    plot.add_layout(
        LabelSet(
            x="x",
            y="y",
            text="text",
            source=source,
            text_font_size="12px" if single else "10px",
            text_font_style="bold",
            text_color="#b03a2e",
            angle=0.0 if single else PREDICTION_ANGLE,
            text_align=align,
            x_offset=6 if align == "left" else -6,
        )
    )


def _draw_panels(plot: figure, graph: ContributionGraph, geometry: _Layout) -> None:
    """Shaded encoder / decoder panels with their names (seq2seq only)."""
    if not geometry.decoder_offset:
        return
    n_source, n_target = len(graph.source_tokens), len(graph.target_tokens)
    spans = [
        ("encoder", -0.5, n_source - 0.5, geometry.encoder_layers, "#eef3fb"),
        (
            "decoder",
            geometry.decoder_offset - 0.5,
            geometry.decoder_offset + n_target - 0.5,
            geometry.decoder_layers,
            "#f6effa",
        ),
    ]
    for name, left, right, layers, colour in spans:
        plot.add_layout(
            BoxAnnotation(
                left=left,
                right=right,
                bottom=-0.4,
                top=layers + 0.4,
                fill_color=colour,
                fill_alpha=0.8,
                level="underlay",
            )
        )
        plot.add_layout(Label(x=left, y=-0.55, text=name, text_font_size="11px", text_color="#555555"))
