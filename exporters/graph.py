"""Contribution graph: a tokens × layers grid with weighted edges, interactive in a static page.

Tokens run along the bottom, layers upward (0 = embeddings). Seq2seq graphs get an encoder panel
on the left and a decoder panel on the right, with cross-attention edges between them. Edge width
and alpha grow with the weight; hovering an edge shows its weight and top heads; tapping a node
fills the side panel with its logit-lens tokens. A threshold slider and a route selector re-walk
the routes in the browser (``CustomJS``), with the same algorithm as :func:`route_edges`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
from bokeh.layouts import column, row
from bokeh.models import (
    BoxAnnotation,
    CDSView,
    ColumnDataSource,
    CustomJS,
    FixedTicker,
    HoverTool,
    IndexFilter,
    Label,
    LayoutDOM,
    LinearInterpolator,
    PreText,
    Select,
    Slider,
    TapTool,
)
from bokeh.plotting import figure
from bokeh.transform import factor_cmap

from attribution.errors import InvalidInputError
from attribution.results import ContributionGraph, GraphEdge, GraphNode
from exporters.figure_common import display_token, token_ticks

ALL_ROUTES = "all"
EDGE_COLOURS = {"attention": "#3b6fb6", "cross_attention": "#8e44ad", "residual": "#9a9a9a", "ffn": "#e07b24"}
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
SIDE_PANEL_PX = 300
HINT = "Tap a node to see its top tokens."

# Walks down from the chosen root node(s), keeping edges at or above the threshold (the JS twin of
# route_edges()); shows the kept edges through each edge kind's IndexFilter and fades the nodes that
# are off the routes. `groups[g]` is the source of one edge kind, `filters[g]` its filter.
_ROUTE_JS = """
const t = slider.value;
const starts = select.value === 'all' ? roots.flat() : roots[Number(select.value)];
const incoming = new Map();
groups.forEach((group, g) => {
  const dst = group.data.target_node;
  for (let e = 0; e < dst.length; e++) {
    if (!incoming.has(dst[e])) incoming.set(dst[e], []);
    incoming.get(dst[e]).push([g, e]);
  }
});
const seen = new Set(starts);
const queue = [...starts];
const kept = groups.map(() => []);
let total = 0;
while (queue.length > 0) {
  for (const [g, e] of incoming.get(queue.shift()) ?? []) {
    const data = groups[g].data;
    if (data.weight[e] >= t) {
      kept[g].push(e);
      const source = data.source_node[e];
      if (!seen.has(source)) { seen.add(source); queue.push(source); }
    }
  }
}
groups.forEach((group, g) => {
  total += group.data.weight.length;
  filters[g].indices = kept[g].sort((a, b) => a - b);
});
const shown = kept.reduce((n, k) => n + k.length, 0);
nodes.data = {...nodes.data, alpha: Array.from(nodes.data.alpha, (_, n) => (seen.has(n) ? 1.0 : 0.15))};
status.text = `${shown} of ${total} edges with weight ≥ ${t.toFixed(3)}`;
"""

# The side panel is a PreText: its text is set as a text node, so tokens can never become markup.
_TAP_JS = """
const i = nodes.selected.indices;
if (i.length === 0) { panel.text = hint; return; }
const d = nodes.data;
const n = i[0];
panel.text = [
  `token: ${d.token[n]} (position ${d.position[n]}, ${d.side[n]})`,
  `node: layer ${d.layer[n]}, ${d.kind[n]}`,
  `top tokens: ${d.top_tokens[n]}`,
  `promoted: ${d.promoted[n]}`,
  `suppressed: ${d.suppressed[n]}`,
].join("\\n");
"""


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


def is_seq2seq(graph: ContributionGraph) -> bool:
    return graph.provenance.model_kind == "seq2seq" or any(n.side == "encoder" for n in graph.nodes)


def _layout(graph: ContributionGraph) -> _Layout:
    if not is_seq2seq(graph):
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


def route_edges(edges: list[GraphEdge], start_node_ids: list[str], threshold: float) -> list[GraphEdge]:
    """Edges on the routes from ``start_node_ids`` at ``threshold``: walk down, keep weight ≥ threshold."""
    incoming: dict[str, list[GraphEdge]] = {}
    for edge in edges:
        incoming.setdefault(edge.target, []).append(edge)
    seen, queue, kept = set(start_node_ids), deque(start_node_ids), []
    while queue:
        for edge in incoming.get(queue.popleft(), []):
            if edge.weight >= threshold:
                kept.append(edge)
                if edge.source not in seen:
                    seen.add(edge.source)
                    queue.append(edge.source)
    return kept


def _pairs_text(pairs: list[tuple[str, float]] | None) -> str:
    return ", ".join(f"{display_token(str(token))} ({float(value):.3g})" for token, value in pairs or []) or "—"


def _heads_text(edge: GraphEdge, top: int = 3) -> str:
    heads = list(edge.head_weights or [])
    best = sorted(range(len(heads)), key=lambda h: -heads[h])[:top]
    return ", ".join(f"h{h} {heads[h]:.3f}" for h in best) or "—"


def _token_of(graph: ContributionGraph, node: GraphNode) -> str:
    tokens = graph.source_tokens if node.side == "encoder" else graph.target_tokens
    return display_token(tokens[node.token_index]) if 0 <= node.token_index < len(tokens) else "?"


def _nodes_source(graph: ContributionGraph, geometry: _Layout) -> ColumnDataSource:
    nodes = graph.nodes
    return ColumnDataSource(
        {
            "x": np.array([geometry.x(n) for n in nodes], dtype=np.float32),
            "y": np.array([geometry.y(n) for n in nodes], dtype=np.float32),
            "alpha": np.ones(len(nodes), dtype=np.float32),
            "token": [_token_of(graph, n) for n in nodes],
            "position": np.array([n.token_index for n in nodes], dtype=np.int32),
            "layer": np.array([n.layer for n in nodes], dtype=np.int32),
            "kind": [n.kind.replace("_", " ") for n in nodes],
            "side": [n.side for n in nodes],
            "top_tokens": [_pairs_text(getattr(n, "top_tokens", None)) for n in nodes],
            "promoted": [_pairs_text(getattr(n, "promoted", None)) for n in nodes],
            "suppressed": [_pairs_text(getattr(n, "suppressed", None)) for n in nodes],
        },
        name="nodes",
    )


def _edge_group(graph: ContributionGraph, geometry: _Layout, edges: list[GraphEdge], kind: str) -> ColumnDataSource:
    """The drawing data of all edges of one kind (one renderer per kind keeps the page small)."""
    index_of = {node.id: i for i, node in enumerate(graph.nodes)}
    sources = [graph.nodes[index_of[e.source]] for e in edges]
    targets = [graph.nodes[index_of[e.target]] for e in edges]
    data = {
        "x0": np.array([geometry.x(n) for n in sources], dtype=np.float32),
        "y0": np.array([geometry.y(n) for n in sources], dtype=np.float32),
        "x1": np.array([geometry.x(n) for n in targets], dtype=np.float32),
        "y1": np.array([geometry.y(n) for n in targets], dtype=np.float32),
        "source_node": np.array([index_of[e.source] for e in edges], dtype=np.int32),
        "target_node": np.array([index_of[e.target] for e in edges], dtype=np.int32),
        "weight": np.array([e.weight for e in edges], dtype=np.float64),
    }
    if kind.endswith("attention"):
        data["heads"] = [_heads_text(e) for e in edges]
    return ColumnDataSource(data, name=f"edges {kind}")


def graph_figure(
    graph: ContributionGraph, *, root_token: int | None = None, threshold: float | None = None
) -> LayoutDOM:
    """The interactive graph layout: figure, threshold slider, route selector, status and side panel."""
    if not graph.nodes:
        raise InvalidInputError("this contribution graph has no nodes to draw")
    roots = root_nodes(graph)
    if not roots:
        raise InvalidInputError("none of the graph's root tokens has a node to start a route from")
    if root_token is not None:
        root_token = root_token + len(graph.target_tokens) if root_token < 0 else root_token
        if root_token not in roots:
            raise InvalidInputError(f"token {root_token} is not a route root of this graph; roots: {sorted(roots)}")
    start = graph.threshold if threshold is None else float(threshold)
    if not graph.threshold <= start <= 1.0:
        raise InvalidInputError(f"threshold must be between the graph's own {graph.threshold} and 1, not {start}")

    geometry = _layout(graph)
    index_of = {node.id: i for i, node in enumerate(graph.nodes)}
    root_order = sorted(roots)
    edges = _usable_edges(graph)
    kinds = [k for k in EDGE_COLOURS if any(e.kind == k for e in edges)]
    kinds += sorted({e.kind for e in edges} - set(kinds))  # kinds added to the data model later

    # Initial state, computed in Python with the same walk the slider runs in the browser.
    starts = [roots[root_token]] if root_token is not None else [roots[t] for t in root_order]
    kept = {id(edge) for edge in route_edges(edges, starts, start)}
    reached = {index_of[s] for s in starts} | {index_of[e.source] for e in edges if id(e) in kept}
    nodes_source = _nodes_source(graph, geometry)
    nodes_source.data["alpha"] = np.array([1.0 if n in reached else 0.15 for n in range(len(graph.nodes))], np.float32)

    n_columns = geometry.decoder_offset + len(graph.target_tokens)
    n_rows = max(geometry.encoder_layers, geometry.decoder_layers)
    plot = figure(
        frame_width=max(420, min(1800, 24 * n_columns)),
        frame_height=max(320, min(900, 70 * n_rows)),
        x_range=(-1.0, n_columns),
        y_range=(-0.6, n_rows + 0.6),
        tools="pan,wheel_zoom,box_zoom,reset,save",
        toolbar_location="above",
        name="contribution graph",
    )
    _draw_panels(plot, graph, geometry)
    groups, filters = [], []
    for kind in kinds:
        members = [e for e in edges if e.kind == kind]
        group = _edge_group(graph, geometry, members, kind)
        shown = IndexFilter(indices=[i for i, e in enumerate(members) if id(e) in kept], name=f"shown {kind}")
        renderer = plot.segment(
            x0="x0",
            y0="y0",
            x1="x1",
            y1="y1",
            source=group,
            view=CDSView(filter=shown),
            line_width={"field": "weight", "transform": LinearInterpolator(x=[0, 1], y=[1, 9])},
            line_alpha={"field": "weight", "transform": LinearInterpolator(x=[0, 1], y=[0.25, 1])},
            line_color=EDGE_COLOURS.get(kind, "#666666"),
            legend_label=kind.replace("_", " "),
        )
        tooltips = [("edge", kind.replace("_", " ")), ("weight", "@weight{0.00000}")]
        if "heads" in group.data:
            tooltips.append(("top heads", "@heads"))
        plot.add_tools(HoverTool(renderers=[renderer], tooltips=tooltips, line_policy="interp"))
        groups.append(group)
        filters.append(shown)
    node_renderer = plot.scatter(
        x="x",
        y="y",
        source=nodes_source,
        size=9,
        fill_color=factor_cmap("kind", list(NODE_COLOURS.values()), [k.replace("_", " ") for k in NODE_COLOURS]),
        line_color="white",
        fill_alpha="alpha",
        line_alpha="alpha",
    )
    plot.add_tools(
        HoverTool(
            renderers=[node_renderer], tooltips=[("token", "@token"), ("layer", "@layer"), ("node", "@kind (@side)")]
        ),
        TapTool(renderers=[node_renderer]),
    )
    if plot.legend:
        legend = plot.legend[0]
        plot.center.remove(legend)
        legend.orientation = "horizontal"
        legend.click_policy = "hide"
        plot.add_layout(legend, "above")
    positions = list(range(len(graph.source_tokens))) if geometry.decoder_offset else []
    tokens = list(graph.source_tokens) if geometry.decoder_offset else []
    positions += [geometry.decoder_offset + i for i in range(len(graph.target_tokens))]
    tokens += list(graph.target_tokens)
    plot.xaxis.ticker, plot.xaxis.formatter = token_ticks(tokens, positions=positions)
    plot.xaxis.major_label_orientation = 1.2
    plot.yaxis.ticker = FixedTicker(ticks=list(range(n_rows + 1)))
    plot.yaxis.axis_label = "layer (0 = embeddings)"
    plot.grid.visible = False

    slider = Slider(
        start=graph.threshold, end=1.0, value=start, step=0.005, title="edge threshold", width=SIDE_PANEL_PX
    )
    select = Select(
        title="route from target token",
        value=str(root_order.index(root_token)) if root_token is not None else ALL_ROUTES,
        options=[(ALL_ROUTES, "all roots")]
        + [(str(i), f"{token}: {display_token(graph.target_tokens[token])}") for i, token in enumerate(root_order)],
        width=SIDE_PANEL_PX,
    )
    status = PreText(
        text=f"{len(kept)} of {len(edges)} edges with weight ≥ {start:.3f}", name="status", width=SIDE_PANEL_PX
    )
    panel = PreText(text=HINT, name="node_panel", width=SIDE_PANEL_PX)
    update = CustomJS(
        args={
            "slider": slider,
            "select": select,
            "roots": [[index_of[roots[token]]] for token in root_order],
            "groups": groups,
            "filters": filters,
            "nodes": nodes_source,
            "status": status,
        },
        code=_ROUTE_JS,
    )
    slider.js_on_change("value", update)
    select.js_on_change("value", update)
    nodes_source.selected.js_on_change(
        "indices", CustomJS(args={"nodes": nodes_source, "panel": panel, "hint": HINT}, code=_TAP_JS)
    )
    return row(plot, column(slider, select, status, panel, width=SIDE_PANEL_PX + 20))


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
        plot.add_layout(
            Label(x=left, y=layers + 0.4, text=name, text_font_size="12px", text_color="#555555", y_offset=2)
        )
