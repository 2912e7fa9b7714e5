"""Figures of the feature views: a node's SAE features, two prompts layer by layer, the neuron / feature viewer.

Every token and name reaches the page escaped: tables are built here with :func:`html.escape` (or the
interventions' escaped table), heatmap labels go through Bokeh's tick formatters and hovers (which escape).
:func:`node_features_html` is the node's feature section on its own, for any details view that shows a node.
"""

from __future__ import annotations

import html
import math

import numpy as np
from bokeh.layouts import column
from bokeh.models import ColumnDataSource, Div, HoverTool, LayoutDOM, Range1d, Span
from bokeh.plotting import figure

from attribution.features.results import LayerComparison, NodeFeatures, TokenScores, TopActivations
from exporters.figure_common import colour_bar, colour_mapper, short_value, token_lookup, token_ticks
from exporters.interventions import _number, _table
from exporters.tokens import display_token, display_tokens, page_text, result_style

#: What a feature's Neuronpedia link must start with to be shown as a link.
NEURONPEDIA_PREFIX = "https://www.neuronpedia.org/"
#: Largest heatmap cell, and the frame width cells shrink to fit.
CELL_PX = 26
MAX_FRAME_PX = 900


def _escaped(text: object) -> str:
    return html.escape(page_text(str(text)))


def _token_list(pairs: TokenScores, style) -> str:
    return ", ".join(f"{_escaped(display_token(token, style))} ({value:+.3g})" for token, value in pairs)


def node_features_html(view: NodeFeatures) -> str:
    """The node's feature section as escaped HTML: the SAE's error stated first, then one row per feature."""
    style = result_style(view)
    summary = (
        f"<p>SAE <b>{_escaped(view.sae_name)}</b> at node <code>{_escaped(view.node)}</code>: "
        f"{view.active_features} active features; it reconstructs {view.reconstruction_share:.1%} of the state "
        f"(|state| {view.state_norm:.4g}, |error| {view.error_norm:.4g}, |b_dec| {view.bias_norm:.4g}, "
        f"unlisted features {view.rest_norm:.4g}).</p>"
    )
    rows = []
    for row in view.features:
        url = row.neuronpedia_url or ""
        link = (  # a saved result is untrusted: only a Neuronpedia page becomes a link
            f"<a href='{html.escape(url, quote=True)}' target='_blank' rel='noopener'>Neuronpedia</a>"
            if url.startswith(NEURONPEDIA_PREFIX)
            else ""
        )
        rows.append(
            f"<tr><td>{row.feature}</td><td>{row.activation:.4g}</td><td>{row.term_norm:.4g}</td>"
            f"<td>{_token_list(row.promoted, style)}</td><td>{_token_list(row.suppressed, style)}</td>"
            f"<td>{link}</td></tr>"
        )
    head = "".join(
        f"<th style='text-align: left; padding: 2px 8px'>{name}</th>"
        for name in ("feature", "activation", "|a·d|", "promotes", "suppresses", "")
    )
    return (
        f"<div class='ae-node-features'>{summary}<table class='ae-table' style='border-collapse: collapse; "
        f"font: 13px system-ui, sans-serif'><tr>{head}</tr>{''.join(rows)}</table></div>"
    )


def node_features_figure(view: NodeFeatures) -> LayoutDOM:
    """The feature section, and the listed features' activations as bars."""
    labels = [str(row.feature) for row in view.features]
    plot = figure(
        title=f"feature activations at {view.node}",
        x_range=labels or ["none"],
        height=220,
        sizing_mode="stretch_width",
        tools="hover,save",
        name="feature activations",
    )
    source = ColumnDataSource({"feature": labels, "activation": [row.activation for row in view.features]})
    plot.vbar(x="feature", top="activation", width=0.8, source=source)
    plot.select_one(HoverTool).tooltips = [("feature", "@feature"), ("activation", "@activation{0.0000}")]
    plot.xaxis.axis_label = "feature"
    return column(Div(text=node_features_html(view), disable_math=True), plot, sizing_mode="stretch_width")


def _heatmap(matrix: np.ndarray, title: str, rows: list[str], tokens: list[str], marked: int | None) -> figure:
    n_rows, n_cols = matrix.shape
    cell = max(8, min(CELL_PX, MAX_FRAME_PX // max(n_cols, 1)))
    y, x = np.indices(matrix.shape)
    source = ColumnDataSource({"x": x.ravel(), "y": y.ravel(), "value": matrix.ravel().astype(np.float64)})
    mapper = colour_mapper([matrix], signed=False)
    plot = figure(
        title=title,
        x_range=Range1d(-0.5, n_cols - 0.5),
        y_range=Range1d(-0.5, n_rows - 0.5),
        frame_height=max(90, n_rows * cell),
        sizing_mode="stretch_width",
        min_width=max(150, min(MAX_FRAME_PX, n_cols * cell)),
        tools="hover,save,reset",
        name=title,
    )
    plot.rect(x="x", y="y", width=1, height=1, source=source, fill_color={"field": "value", "transform": mapper})
    plot.add_layout(colour_bar(mapper, "relative L2"), "above")
    hover = plot.select_one(HoverTool)
    hover.tooltips = [("layer", "@y{custom}"), ("position", "@x{custom}"), ("relative L2", "@value{custom}")]
    hover.formatters = {"@y": token_lookup(rows), "@x": token_lookup(tokens), "@value": short_value()}
    plot.xaxis.ticker, plot.xaxis.formatter = token_ticks(tokens)
    plot.yaxis.ticker, plot.yaxis.formatter = token_ticks(rows)
    plot.xaxis.major_label_orientation = math.pi / 2
    if marked is not None:
        plot.add_layout(Span(location=marked, dimension="width", line_color="#d62728", line_width=2))
    plot.grid.visible = False
    return plot


def layer_comparison_figure(comparison: LayerComparison) -> LayoutDOM:
    """Relative L2 of the states (layers × positions) and of each block's contribution, the divergence marked."""
    style = result_style(comparison, [*comparison.tokens_a, *comparison.tokens_b])
    tokens = [
        a if a == b else f"{a} / {b}"
        for a, b in zip(
            display_tokens(comparison.tokens_a, style), display_tokens(comparison.tokens_b, style), strict=True
        )
    ]
    n_layers = len(comparison.state_relative_l2)
    layers = ["embedding", *(f"after block {layer}" for layer in range(1, n_layers))]
    blocks = [f"block {layer}" for layer in range(1, n_layers)]
    diverged = comparison.divergence_layer
    heading = (
        f"The states first differ by more than {comparison.threshold:g} (relative L2) at "
        f"{'no layer' if diverged is None else layers[diverged]} (marked red)."
    )
    return column(
        Div(text=f"<p>{_escaped(heading)}</p>", disable_math=True),
        _heatmap(np.array(comparison.state_relative_l2, dtype=float), "states", layers, tokens, diverged),
        _heatmap(np.array(comparison.block_relative_l2, dtype=float), "block contributions", blocks, tokens, None),
        sizing_mode="stretch_width",
    )


def _example_row(example, style) -> str:
    cells = [
        f"<b style='background: #ffe08a'>{_escaped(display_token(token, style))}</b>"
        if i == example.context_position
        else _escaped(display_token(token, style))
        for i, token in enumerate(example.context)
    ]
    return (
        f"<tr><td>{example.activation:.4g}</td><td>{_escaped(example.record)}</td><td>{example.position}</td>"
        f"<td>{' '.join(cells)}</td></tr>"
    )


def top_activations_html(viewer: TopActivations) -> str:
    """Where the unit fires most: one escaped row per example, the token in its context highlighted."""
    style = result_style(viewer, [token for example in viewer.examples for token in example.context])
    head = "".join(
        f"<th style='text-align: left; padding: 2px 8px'>{name}</th>"
        for name in ("activation", "record", "position", "context")
    )
    rows = "".join(_example_row(example, style) for example in viewer.examples)
    return (
        f"<p>{_escaped(viewer.unit)}: the {len(viewer.examples)} largest activations over {viewer.records} records "
        f"({viewer.tokens} tokens).</p><table class='ae-table' style='border-collapse: collapse; "
        f"font: 13px system-ui, sans-serif'><tr>{head}</tr>{rows}</table>"
    )


def top_activations_figure(viewer: TopActivations) -> LayoutDOM:
    """What the unit writes (through the unembedding) and where it fires most."""
    style = result_style(viewer)
    writes = _table(
        f"{viewer.unit} writes (output direction through the unembedding)",
        ["promotes", "logit", "suppresses", "logit"],
        [
            [display_token(up, style), _number(up_value), display_token(down, style), _number(down_value)]
            for (up, up_value), (down, down_value) in zip(viewer.promoted, viewer.suppressed, strict=False)
        ],
        name="writes",
    )
    labels = [f"{i + 1}. {display_token(example.token, style)}" for i, example in enumerate(viewer.examples)]
    plot = figure(
        title=f"largest activations of {viewer.unit}",
        x_range=labels or ["none"],
        height=220,
        sizing_mode="stretch_width",
        tools="hover,save",
        name="top activations",
    )
    source = ColumnDataSource(
        {
            "example": labels,
            "activation": [example.activation for example in viewer.examples],
            "record": [example.record for example in viewer.examples],
        }
    )
    plot.vbar(x="example", top="activation", width=0.8, source=source)
    plot.select_one(HoverTool).tooltips = [("record", "@record"), ("activation", "@activation{0.0000}")]
    plot.xaxis.major_label_orientation = math.pi / 3
    return column(
        writes,
        plot,
        Div(text=top_activations_html(viewer), disable_math=True, name="examples"),
        sizing_mode="stretch_width",
    )
