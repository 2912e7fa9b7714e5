"""The logit lens over the whole sequence as a figure: layers upward, tokens along the bottom, a cell per state.

Each cell shows its top next token (as text) and is shaded by its probability; hovering names the node, the
token and the probability. Cells of states the shown graph holds (its nodes) can be tapped: inside the app
the tap writes the node's id into the app's selection box, which selects it in the graph and shows its
details; the others are drawn faded (they are off the graph's routes).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from bokeh.layouts import column
from bokeh.models import ColumnDataSource, CustomJS, FixedTicker, HoverTool, LabelSet, LayoutDOM, TapTool
from bokeh.palettes import Blues256
from bokeh.plotting import figure
from bokeh.transform import linear_cmap

from attribution.tokenizer_style import TokenizerStyle
from exporters.figure_common import colour_bar, token_ticks
from exporters.tokens import display_token, display_tokens

if TYPE_CHECKING:
    from attribution.contributions.lens_grid import LogitLensGrid

#: A cell's least width: room for a short token.
CELL_PX, LAYER_PX = 46, 34

# A tap on a cell of a graph node writes its id into the app's selection box (found by `selector`).
_TAP_JS = """
const i = cells.selected.indices;
if (i.length === 0 || !selector) return;
const id = cells.data.node_id[i[0]];
if (!cells.data.in_graph[i[0]]) return;
const field = document.querySelector(selector);
if (field && field.value !== id) {
  field.value = id;
  field.dispatchEvent(new Event('input', {bubbles: true}));
}
"""


def lens_grid_figure(
    grid: LogitLensGrid,
    *,
    style: TokenizerStyle = "plain",
    graph_nodes: Collection[str] = (),
    selection_input: str | None = None,
    title: str = "Logit lens: each state's top next token",
) -> LayoutDOM:
    """The grid; ``graph_nodes`` are the node ids of the shown graph (their cells can be tapped)."""
    nodes = set(graph_nodes)
    cells = [cell for row in grid.cells for cell in row]
    source = ColumnDataSource(
        {
            "x": [cell.position for cell in cells],
            "y": [cell.layer for cell in cells],
            "probability": [cell.probability for cell in cells],
            "text": [display_token(cell.token, style) for cell in cells],
            "node_id": [cell.node_id for cell in cells],
            "in_graph": [cell.node_id in nodes for cell in cells],
            "alpha": [1.0 if cell.node_id in nodes else 0.45 for cell in cells],
        },
        name="lens cells",
    )
    n_tokens = len(grid.tokens)
    plot = figure(
        title=title,
        sizing_mode="stretch_width",
        min_width=CELL_PX * (n_tokens + 1) + 90,
        height=LAYER_PX * (grid.n_layers + 1) + 170,
        x_range=(-0.5, n_tokens - 0.5),
        y_range=(-0.5, grid.n_layers + 0.5),
        tools="save,reset",
        toolbar_location="right",
        name="logit lens grid",
    )
    mapper = linear_cmap("probability", list(reversed(Blues256))[40:], 0.0, 1.0)
    rects = plot.rect(
        "x",
        "y",
        0.96,
        0.9,
        source=source,
        fill_color=mapper,
        fill_alpha="alpha",
        line_color=None,
        selection_line_color="#d62728",
        selection_line_width=2,
        nonselection_fill_alpha="alpha",
    )
    plot.add_layout(
        LabelSet(
            x="x",
            y="y",
            text="text",
            source=source,
            text_font_size="10px",
            text_align="center",
            text_baseline="middle",
            text_color="#111111",
        )
    )
    plot.add_tools(
        HoverTool(
            renderers=[rects], tooltips=[("node", "@node_id"), ("top token", "@text"), ("p", "@probability{0.000}")]
        ),
        TapTool(renderers=[rects]),
    )
    source.selected.js_on_change("indices", CustomJS(args={"cells": source, "selector": selection_input}, code=_TAP_JS))
    plot.xaxis.ticker, plot.xaxis.formatter = token_ticks(display_tokens(grid.tokens, style))
    plot.xaxis.major_label_orientation = 1.2
    plot.yaxis.ticker = FixedTicker(ticks=list(range(grid.n_layers + 1)))
    plot.yaxis.axis_label = "layer (0 = embeddings)"
    plot.grid.visible = False
    plot.add_layout(colour_bar(mapper["transform"], "probability of the top token"), "above")
    return column(plot, sizing_mode="stretch_width", styles={"overflow-x": "auto"}, name="logit lens")
