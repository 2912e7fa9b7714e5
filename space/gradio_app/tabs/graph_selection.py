"""The graph tab's selection: the shown graph read back, its menus, and the selected node's or edge's details.

``/graph_choices`` (the menus for a shown graph), ``/graph_selection`` (what a tap in the figure or a menu
selected), ``/graph_node`` and ``/graph_edge`` (a node's logit lens, promoted / suppressed tokens and FFN
neurons; an attention edge's split over heads). None of them runs a model: they read the graph JSON the
browser sends back, and the app queues them with the cheap requests.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gradio as gr

from attribution.contributions.roots import DEFAULT_ROOT, default_roots
from attribution.errors import InvalidInputError
from attribution.results import ContributionGraph, GraphNode
from space.gradio_app.context import read_result_json, refusal
from space.gradio_app.wiring import Page, user_errors

if TYPE_CHECKING:
    from exporters.graph_details import DetailRow, GraphWords

DEFAULT_ROOT_LABEL = "the prediction (last token; translations: whole target)"
ROOT_TOKEN_CHOICES = [(DEFAULT_ROOT_LABEL, DEFAULT_ROOT), ("last token", "-1"), ("all tokens", "all")]
#: Columns of the node table (the same rows as the figure's tap panel).
NODE_TABLE_HEADERS = ["list", "#", "token / neuron", "value", "raw"]
EDGE_TABLE_HEADERS = ["head", "weight"]
NODE_TABLE_MIN_PX, EDGE_TABLE_MIN_PX = 560, 340
NODE_TABLE_LABEL = "Node: logit lens, promoted / suppressed tokens, FFN neurons"
EDGE_TABLE_LABEL = "Edge: split over heads"
#: The graph tab's selection box: the figure writes the tapped node id / edge key into it.
GRAPH_SELECTION_ID = "graph-selection"
GRAPH_SELECTION_INPUT = f"#{GRAPH_SELECTION_ID} textarea, #{GRAPH_SELECTION_ID} input"
#: Selecting in the app's menus selects (highlights) the same nodes and edges in the shown figure: the box holds
#: one id a line (node ids; edge keys, ``source->target`` for attention edges, ``…#kind`` for the others).
SELECT_IN_FIGURE_JS = """
(selected) => {
  const wanted = selected.split('\\n').map((line) => line.trim()).filter(Boolean);
  for (const doc of (window.Bokeh?.documents ?? [])) {
    const nodes = doc.get_model_by_name('nodes');
    const edges = doc.get_model_by_name('edges');
    if (!nodes || !edges) continue;
    const id = nodes.data.id;
    const d = edges.data;
    const n = [];
    const e = [];
    for (const key of wanted) {
      const node = id.indexOf(key);
      if (node >= 0) { n.push(node); continue; }
      const [ends, kind] = key.split('#');
      for (let i = 0; i < d.weight.length; i++) {  // attention edges have heads; the others are keyed by kind
        const attention = d.heads[i] !== '—';
        if (`${id[d.source_node[i]]}->${id[d.target_node[i]]}` === ends && attention === (kind === undefined)) {
          e.push(i);
          break;
        }
      }
    }
    const same = (a, b) => a.length === b.length && a.every((v, i) => v === b[i]);
    if (!same(edges.selected.indices, e)) edges.selected.indices = e;
    if (!same(nodes.selected.indices, n)) nodes.selected.indices = n;
  }
  return [];
}
"""
#: Most ids one selection may hold (a request's text is untrusted: bounded before anything reads it).
MAX_SELECTED = 64


def selected_ids(selected: str | None) -> list[str]:
    """The ids of a selection box, one a line, in the order they were selected (the last is shown)."""
    ids = [line.strip() for line in (selected or "").splitlines() if line.strip()]
    if len(ids) > MAX_SELECTED:
        raise InvalidInputError(f"Select at most {MAX_SELECTED} nodes and edges at once, not {len(ids)}.")
    return ids


def graph_from_json(graph_json: str | None, max_bytes: int | None) -> ContributionGraph:
    """The shown graph, read back like every result JSON a request sends; a user error when there is none."""
    if not graph_json or not graph_json.strip():
        raise InvalidInputError("Compute a contribution graph first.")
    result = read_result_json(graph_json, "contribution graph", max_bytes=max_bytes)
    if not isinstance(result, ContributionGraph):
        raise refusal("contribution graph", max_bytes)
    return result


@dataclass
class GraphChoices:
    """What the graph tab's dropdowns offer once a graph is shown: (label, value) pairs."""

    roots: list[tuple[str, str]]  # the default, "last token (…)", "all tokens", then each target token
    nodes: list[tuple[str, str]]  # node ids
    attention_edges: list[tuple[str, str]]  # edge keys ("source->target") of edges with a per-head split


def graph_choices(graph_json: str | None, *, max_bytes: int | None = None) -> GraphChoices:
    """The menu choices for a shown graph (the generic ones before the first graph).

    Labels come from :mod:`exporters.graph_details`, like the figure's: tokens as text, a root as
    ``"last token (14: ·to)"``, a node as ``"·Mary (3) · L2 after attention"``.
    """
    from exporters.graph_details import ALL_TOKENS, ATTENTION_KINDS, GraphWords, edge_key

    if not graph_json or not graph_json.strip():
        return GraphChoices(list(ROOT_TOKEN_CHOICES), [], [])
    graph = graph_from_json(graph_json, max_bytes)
    words = GraphWords(graph)
    last = len(graph.target_tokens) - 1
    default = words.root_label(last) if default_roots(graph.provenance.model_kind) == -1 else ALL_TOKENS
    roots = [(f"default: {default}", DEFAULT_ROOT), (words.root_label(last), "-1"), (ALL_TOKENS, "all")]
    roots += [(words.root_label(i), str(i)) for i in range(last)]
    return GraphChoices(
        roots=roots,
        nodes=[(words.node_place(node), node.id) for node in graph.nodes],
        attention_edges=[
            (words.edge_title(edge), edge_key(edge)) for edge in graph.edges if edge.kind in ATTENTION_KINDS
        ],
    )


def _graph_rows(words: GraphWords, node: GraphNode) -> list[DetailRow]:
    """The graph's own rows of a node: logit lens, promoted / suppressed tokens, top FFN neurons."""
    return words.node_rows(node)


#: The sections of the one node-details view, in order: each gives its rows (``DetailRow``: list name, rank,
#: item, value, raw) for a node of the shown graph. A module adding a view of nodes appends its section.
NODE_DETAIL_SECTIONS: list[Callable[[GraphWords, GraphNode], list[DetailRow]]] = [_graph_rows]


def node_details(graph_json: str | None, node_id: str | None, *, max_bytes: int | None = None) -> list[list[Any]]:
    """Rows (list, rank, token as text or neuron, value, raw token or neuron index) of a node.

    The rows of each of :data:`NODE_DETAIL_SECTIONS`: first the logit-lens top tokens, promoted and suppressed
    tokens and top FFN neurons (:meth:`exporters.graph_details.GraphWords.node_rows`, which an exported
    figure's tap panel shows too).
    """
    from exporters.figure_common import shown_value
    from exporters.graph_details import GraphWords

    if not node_id:
        return []
    graph = graph_from_json(graph_json, max_bytes)
    try:
        node = graph.node(node_id)
    except KeyError as error:
        raise InvalidInputError(f"No node {node_id[:100]!r} in this graph: recompute it.") from error
    words = GraphWords(graph)
    rows = [row for section in NODE_DETAIL_SECTIONS for row in section(words, node)]
    return [[row.list, row.rank, row.item, float(shown_value(row.value)), row.raw] for row in rows]


def edge_details(graph_json: str | None, key: str | None, *, max_bytes: int | None = None) -> list[list[Any]]:
    """Rows (head, weight) of an attention edge: how its contribution splits over heads."""
    from exporters.figure_common import shown_value
    from exporters.graph_details import ATTENTION_KINDS, GraphWords, edge_rows

    if not key:
        return []
    edge = GraphWords(graph_from_json(graph_json, max_bytes)).find_edge(key)
    if edge is None:
        raise InvalidInputError(f"No edge {key[:200]!r} in this graph: recompute it.")
    if edge.kind not in ATTENTION_KINDS:
        raise InvalidInputError("This edge is not an attention edge: it has no per-head split.")
    return [[head, float(shown_value(weight))] for head, weight in edge_rows(edge)]


@dataclass
class Selection:
    """What the graph tab shows for the selected node or edge (tapped in the figure or picked in a menu)."""

    node_id: str | None  # the node menu's value
    node_title: str  # e.g. "node ·Mary (3) · L2 after attention"
    node_rows: list[list[Any]]
    edge_key: str | None  # the edge menu's value (attention edges only)
    edge_title: str
    edge_rows: list[list[Any]]


def graph_selection(graph_json: str | None, selected: str | None, *, max_bytes: int | None = None) -> Selection:
    """Details of ``selected``: a node id, or an edge key as :func:`exporters.graph_details.edge_key` writes it
    (of several, one a line, the last).

    The figure writes the tapped items' ids into the app's selection box; the menus write theirs.
    Nothing selected (or no graph yet) gives empty tables.
    """
    from exporters.graph_details import ATTENTION_KINDS, GraphWords

    ids = selected_ids(selected)
    if not graph_json or not graph_json.strip() or not ids:
        return Selection(None, "", [], None, "", [])
    selected = ids[-1]  # the last one selected: the one whose details show
    graph = graph_from_json(graph_json, max_bytes)
    words = GraphWords(graph)
    edge = words.find_edge(selected)
    if edge is not None:
        rows = edge_details(graph_json, selected, max_bytes=max_bytes) if edge.kind in ATTENTION_KINDS else []
        key = selected if edge.kind in ATTENTION_KINDS else None
        return Selection(None, "", [], key, words.edge_title(edge), rows)
    try:
        node = graph.node(selected)
    except KeyError as error:
        raise InvalidInputError(f"No node or edge {selected[:200]!r} in this graph: recompute it.") from error
    rows = node_details(graph_json, selected, max_bytes=max_bytes)
    return Selection(selected, words.node_title(node), rows, None, "", [])


@dataclass
class SelectionWidgets:
    """The selection box (hidden; the figure writes into it), the node and edge menus and their tables."""

    selection: gr.Textbox
    node: gr.Dropdown
    node_table: gr.Dataframe
    edge: gr.Dropdown
    edge_table: gr.Dataframe


def layout() -> SelectionWidgets:
    # The selected node id or edge key: written by a tap in the figure or by the menus below;
    # the details tables follow it (and later actions on the selection can read it).
    selection = gr.Textbox(
        label="Selected node or edge", visible="hidden", elem_id=GRAPH_SELECTION_ID, interactive=True
    )
    with gr.Row():  # side by side when there is room, one under the other otherwise
        with gr.Column(min_width=NODE_TABLE_MIN_PX, scale=3):
            node = gr.Dropdown(
                [], label="Node (or tap one in the figure)", elem_id="graph-node", allow_custom_value=True
            )
            node_table = gr.Dataframe(
                headers=NODE_TABLE_HEADERS,
                label=NODE_TABLE_LABEL,
                interactive=False,
                wrap=True,
                elem_id="graph-node-table",
            )
        with gr.Column(min_width=EDGE_TABLE_MIN_PX, scale=2):
            edge = gr.Dropdown(
                [],
                label="Attention edge (or tap one in the figure)",
                elem_id="graph-edge",
                allow_custom_value=True,
            )
            edge_table = gr.Dataframe(
                headers=EDGE_TABLE_HEADERS,
                label=EDGE_TABLE_LABEL,
                interactive=False,
                elem_id="graph-edge-table",
            )
    return SelectionWidgets(selection, node, node_table, edge, edge_table)


def connect(page: Page, graph_json: gr.Code, root: gr.Dropdown, shown: SelectionWidgets) -> None:
    """A new graph refills the menus; a selection (tap or menu) fills the tables and highlights it in the figure."""
    max_bytes = page.ctx.config.max_result_bytes
    light = page.groups["light"]

    def graph_dropdowns(graph_json):
        """A new graph (or none, while one is computed): fresh menus, nothing selected."""
        choices = graph_choices(graph_json, max_bytes=max_bytes)
        return (
            gr.Dropdown(choices=choices.roots),
            gr.Dropdown(choices=choices.nodes, value=None),
            gr.Dropdown(choices=choices.attention_edges, value=None),
            "",
        )

    @user_errors
    def show_selection(graph_json, selected):
        chosen = graph_selection(graph_json, selected, max_bytes=max_bytes)
        return (
            gr.Dropdown(value=chosen.node_id),
            gr.Dataframe(value=chosen.node_rows, label=chosen.node_title or NODE_TABLE_LABEL),
            gr.Dropdown(value=chosen.edge_key),
            gr.Dataframe(value=chosen.edge_rows, label=chosen.edge_title or EDGE_TABLE_LABEL),
        )

    menus = [root, shown.node, shown.edge, shown.selection]
    graph_json.change(user_errors(graph_dropdowns), graph_json, menus, api_name="graph_choices", **light)
    selected_outputs = [shown.node, shown.node_table, shown.edge, shown.edge_table]
    shown.selection.change(
        show_selection, [graph_json, shown.selection], selected_outputs, api_name="graph_selection", **light
    )
    shown.selection.change(None, shown.selection, None, js=SELECT_IN_FIGURE_JS)
    private = {"queue": False, "api_visibility": "private"}
    shown.node.input(lambda node: node or "", shown.node, shown.selection, **private)
    shown.edge.input(lambda edge: edge or "", shown.edge, shown.selection, **private)
    node = functools.partial(node_details, max_bytes=max_bytes)
    edge = functools.partial(edge_details, max_bytes=max_bytes)
    shown.node.change(user_errors(node), [graph_json, shown.node], shown.node_table, api_name="graph_node", **light)
    shown.edge.change(user_errors(edge), [graph_json, shown.edge], shown.edge_table, api_name="graph_edge", **light)
