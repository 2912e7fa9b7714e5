"""Figures of intervention results: before / after bars, patching maps, route and attribution faithfulness.

Like the other figures they are drawn from ``ColumnDataSource``s; tokens and component ids reach the
page only as canvas text (tick formatters, tooltips through ``CustomJSHover``) or through
``html.escape`` in ``Div``s (with ``disable_math``), so no string from a result can become markup.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import numpy as np
from bokeh.layouts import column, row
from bokeh.models import ColumnDataSource, Div, FactorRange, HoverTool, LayoutDOM, Legend, Range1d
from bokeh.plotting import figure

from attribution.interventions.results import (
    FaithfulnessResult,
    InterventionResult,
    PatchingMap,
    PatchingResult,
    RouteFaithfulness,
)
from attribution.results import TokenizerStyle
from exporters.figure_common import (
    colour_bar,
    colour_mapper,
    responsive_grid_styles,
    short_value,
    token_lookup,
    token_ticks,
)
from exporters.tokens import display_token, display_tokens, page_text, result_style

CELL_PX = 26
MAX_FRAME_PX = 900
BEFORE, AFTER = "#7a8c99", "#c0392b"
_TABLE_STYLE = "border-collapse: collapse; font: 13px system-ui, sans-serif; margin: 6px 0"


def _number(value: float | None, digits: int = 4) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}g}"


def _shown(value: float | str | None) -> str:
    return value if isinstance(value, str) else _number(value)


def _table(caption: str, headers: Sequence[str], rows: Sequence[Sequence[str]], name: str) -> Div:
    """An escaped HTML table in a Div (every cell is text, shown as :func:`~exporters.tokens.page_text`)."""

    def shown(text: object) -> str:
        return html.escape(page_text(str(text)))

    head = "".join(f"<th style='text-align: left; padding: 2px 8px'>{shown(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td style='padding: 2px 8px'>{shown(cell)}</td>" for cell in cells) + "</tr>"
        for cells in rows
    )
    text = (
        f"<table class='ae-table' style='{_TABLE_STYLE}'><caption style='text-align: left'>{shown(caption)}"
        f"</caption><tr>{head}</tr>{body}</table>"
    )
    return Div(text=text, name=name, disable_math=True)


# ---------------------------------------------------------------------------------------------- intervention


def _top_tokens_figure(prediction, title: str, style: TokenizerStyle) -> figure:
    """Paired bars per token (before grey, after red): the union of the top tokens before and after."""
    before = dict(prediction.top_before)
    after = {token: p for token, p, _ in prediction.top_after}
    tokens = list(dict.fromkeys([*before, *after]))
    rows: dict[str, list] = {"x": [], "probability": [], "which": [], "token": [], "colour": []}
    for index, token in enumerate(tokens):
        for offset, which, value, colour in ((-0.2, "before", before, BEFORE), (0.2, "after", after, AFTER)):
            if token in value:  # a token outside a top-k list has no known value there: no bar
                rows["x"].append(index + offset)
                rows["probability"].append(float(value[token]))
                rows["which"].append(which)
                rows["token"].append(index)
                rows["colour"].append(colour)
    plot = figure(
        x_range=Range1d(-0.6, len(tokens) - 0.4),
        frame_height=200,
        sizing_mode="stretch_width",
        min_width=240,
        title=title,
        tools="save",
        toolbar_location="right",
        name="top tokens",
    )
    bars = plot.vbar(
        x="x", top="probability", width=0.38, source=ColumnDataSource(rows), fill_color="colour", line_color=None
    )
    plot.add_tools(
        HoverTool(
            renderers=[bars],
            tooltips=[("token", "@token{custom}"), ("", "@which"), ("probability", "@probability{custom}")],
            formatters={"@token": token_lookup(display_tokens(tokens, style)), "@probability": short_value()},
        )
    )
    plot.xaxis.ticker, plot.xaxis.formatter = token_ticks(display_tokens(tokens, style))
    plot.xaxis.major_label_orientation = math.pi / 4
    plot.xgrid.visible = False
    plot.y_range.start = 0
    plot.yaxis.axis_label = "probability (grey: before, red: after)"
    return plot


def intervention_figure(result: InterventionResult) -> LayoutDOM:
    """Per root position: the top tokens before and after, and a table of the target's numbers."""
    style = result_style(result, [p.input_token for p in result.predictions])
    action = {"patch": "patching", "steer": f"steering (strength {result.strength})"}.get(
        result.mode, f"{result.mode} ablation"
    )
    parts: list[LayoutDOM] = [
        _table(
            f"{action} of {len(result.components)} component(s)",
            ["component"],
            [[c] for c in result.components[:50]]
            + ([[f"… and {len(result.components) - 50} more"]] if len(result.components) > 50 else []),
            name="components",
        )
    ]
    rows = []
    for prediction in result.predictions:
        rows.append(
            [
                f"{prediction.position}: {display_token(prediction.input_token, style)}",
                display_token(prediction.target_token, style),
                _number(prediction.probability_before),
                _number(prediction.probability_after),
                _number(prediction.logit_before),
                _number(prediction.logit_after),
                _number(prediction.logit_diff_before),
                _number(prediction.logit_diff_after),
                _number(prediction.kl_divergence),
            ]
        )
    contrast = next((p.contrast_token for p in result.predictions if p.contrast_token), None)
    parts.append(
        _table(
            "Prediction before → after"
            + (f" (logit difference against {display_token(contrast, style)})" if contrast else ""),
            ["position", "target", "p before", "p after", "logit before", "logit after", "LD before", "LD after", "KL"],
            rows,
            name="predictions",
        )
    )
    for prediction in result.predictions[:8]:
        title = f"next token after position {prediction.position} ({display_token(prediction.input_token, style)})"
        parts.append(_top_tokens_figure(prediction, title, style))
    return column(*parts, sizing_mode="stretch_width")


# ------------------------------------------------------------------------------------------------- patching


def _map_names(names: Sequence[str], style: TokenizerStyle) -> list[str]:
    """Row or column names as shown: a position's ``"index: raw token"`` with the token as text."""
    shown = []
    for name in names:
        index, separator, token = name.partition(": ")
        shown.append(f"{index}: {display_token(token, style)}" if separator and index.isdigit() else page_text(name))
    return shown


def _map_heading(item: PatchingMap) -> str:
    """The map's name and what its rows are: heads by block (1 … n), the residual stream by layer (0 = embeddings)."""
    if item.column_label == "position":
        what = f"the residual stream at each {item.row_label} (0 = the embeddings, l = after block l) and position"
    else:
        what = f"the output of each {item.column_label} of each {item.row_label}"
    return f"<b>{html.escape(page_text(item.name))}</b> — patching {html.escape(page_text(what))}"


def _map_panel(item: PatchingMap, matrix: np.ndarray, title: str, mapper, style: TokenizerStyle) -> figure:
    n_rows, n_cols = matrix.shape
    cell = max(8, min(CELL_PX, MAX_FRAME_PX // max(n_cols, 1)))
    rows, cols = np.indices(matrix.shape)
    finite = np.isfinite(matrix)
    source = ColumnDataSource(
        {
            "x": cols[finite].astype(np.int32),
            "y": rows[finite].astype(np.int32),
            "value": matrix[finite].astype(np.float64),
        }
    )
    plot = figure(
        title=title,
        x_range=Range1d(-0.5, n_cols - 0.5),
        y_range=Range1d(-0.5, n_rows - 0.5),
        frame_height=max(100, n_rows * cell),
        sizing_mode="stretch_width",
        min_width=max(150, min(MAX_FRAME_PX, n_cols * cell)),  # wraps below the other map before cells get tiny
        tools="hover,save,reset",
        toolbar_location="right",
        name=f"patching {page_text(item.name)} {title}",
    )
    plot.rect(
        x="x",
        y="y",
        width=1,
        height=1,
        source=source,
        fill_color={"field": "value", "transform": mapper},
        line_color=None,
    )
    hover = plot.select_one(HoverTool)
    row_label, column_label = page_text(item.row_label), page_text(item.column_label)
    hover.tooltips = [
        (row_label, "@y{custom}"),
        (column_label, "@x{custom}"),
        ("recovered", "@value{custom}"),
    ]
    hover.formatters = {
        "@y": token_lookup(_map_names(item.row_names, style)),
        "@x": token_lookup(_map_names(item.column_names, style)),
        "@value": short_value(),
    }
    plot.xaxis.ticker, plot.xaxis.formatter = token_ticks(_map_names(item.column_names, style))
    plot.yaxis.ticker, plot.yaxis.formatter = token_ticks(_map_names(item.row_names, style))
    plot.xaxis.major_label_orientation = math.pi / 2 if item.column_label == "position" else 0
    plot.xaxis.axis_label, plot.yaxis.axis_label = column_label, row_label
    plot.grid.visible = False
    return plot


def patching_figure(result: PatchingResult) -> LayoutDOM:
    """Each map as exact and attribution-patching heatmaps side by side on one diverging colour scale."""
    names = [name.partition(": ")[2] or name for item in result.maps for name in (*item.row_names, *item.column_names)]
    style = result_style(result, names)
    parts: list[LayoutDOM] = [
        _table(
            f"Activation patching ({result.direction}) at position {result.root_position}",
            ["", "input", "counterfactual"],
            [
                ["text", result.source_text, result.counterfactual_text],
                *([["target", result.target_text, result.counterfactual_target]] if result.target_text else []),
                [
                    f"logit({display_token(result.target_token, style)}) − "
                    f"logit({display_token(result.contrast_token, style)})",
                    _number(result.logit_diff_clean),
                    _number(result.logit_diff_counterfactual),
                ],
            ],
            name="patching inputs",
        )
    ]
    agreement = []
    for item in result.maps:
        matrices = [m for m in (item.exact, item.approximate) if m is not None]
        mapper = colour_mapper(matrices, signed=True)
        panels = [
            _map_panel(item, matrix, label, mapper, style)
            for matrix, label in ((item.exact, "exact patching"), (item.approximate, "attribution patching"))
            if matrix is not None
        ]
        panels[-1].add_layout(colour_bar(mapper, "recovered", orientation="vertical"), "right")
        parts.append(Div(text=_map_heading(item), disable_math=True, sizing_mode="stretch_width"))
        parts.append(row(*panels, sizing_mode="stretch_width", styles=responsive_grid_styles(panels[0].min_width + 80)))
        forward = result.seconds_forward or float("nan")
        agreement.append(
            [
                item.name,
                _number(item.spearman, 3),
                _number(item.top10_overlap, 2),
                _number(item.seconds_exact / forward if item.seconds_exact else None, 3),
                _number(item.seconds_approximate / forward if item.seconds_approximate else None, 3),
            ]
        )
    parts.append(
        _table(
            "Exact vs attribution patching (times in forward passes)",
            ["map", "Spearman", "top-10 overlap", "exact time", "attribution-patching time"],
            agreement,
            name="patching agreement",
        )
    )
    return column(*parts, sizing_mode="stretch_width")


# ------------------------------------------------------------------------------------- route faithfulness


def route_faithfulness_figure(result: RouteFaithfulness) -> LayoutDOM:
    """Target probability after removing (necessity) / keeping only (sufficiency) the route vs random sets."""
    labels, values, kinds = [], [], []
    for test, route, randoms in (
        ("necessity", result.necessity, result.random_necessity),
        ("sufficiency", result.sufficiency, result.random_sufficiency),
    ):
        labels.append((test, "route"))
        values.append(route.probability)
        kinds.append("route")
        for effect in randoms:
            labels.append((test, f"random {effect.seed}"))
            values.append(effect.probability)
            kinds.append("random")
    source = ColumnDataSource({"x": labels, "p": values, "kind": kinds})
    plot = figure(
        x_range=FactorRange(*labels),
        frame_height=220,
        sizing_mode="stretch_width",
        min_width=max(300, min(MAX_FRAME_PX, 28 * len(labels))),
        title=f"p({display_token(result.target_token, result_style(result))}) after the intervention "
        f"(clean: {result.probability_clean:.3g})",
        tools="hover,save",
        tooltips=[("set", "@x"), ("probability", "@p{custom}")],
        name="route faithfulness",
    )
    plot.select_one(HoverTool).formatters = {"@p": short_value()}
    from bokeh.transform import factor_cmap

    plot.vbar(
        x="x",
        top="p",
        width=0.85,
        source=source,
        line_color=None,
        fill_color=factor_cmap("kind", palette=[AFTER, BEFORE], factors=["route", "random"]),
    )
    plot.y_range.start = 0
    plot.xaxis.major_label_orientation = math.pi / 3
    plot.xgrid.visible = False
    rows = [[what, _shown(route), _shown(random)] for what, route, random in result.table()]
    clean_ld = "" if result.logit_diff_clean is None else f", logit difference {result.logit_diff_clean:.4g}"
    table = _table(
        f"Route from position {result.root_position} at threshold {result.threshold:g} vs random edge sets "
        f"(clean: p {result.probability_clean:.4g}{clean_ld})",
        ["", "route", "random sets (mean; weights: each)"],
        rows,
        name="route faithfulness table",
    )
    return column(plot, table, sizing_mode="stretch_width")


# ------------------------------------------------------------------------------------ method faithfulness


def faithfulness_figure(result: FaithfulnessResult) -> LayoutDOM:
    """Deletion and insertion curves with their areas, and the ERASER numbers against a random ranking."""
    source = ColumnDataSource(
        {"x": result.curve_fractions, "deletion": result.deletion_curve, "insertion": result.insertion_curve}
    )
    plot = figure(
        frame_height=220,
        sizing_mode="stretch_width",
        min_width=360,
        x_range=Range1d(0, 1),
        title=f"{page_text(result.explanation)}: p(explained token) as top-ranked tokens are removed / restored",
        tools="hover,save",
        tooltips=[("fraction", "@x"), ("deletion", "@deletion{custom}"), ("insertion", "@insertion{custom}")],
        name="faithfulness curves",
    )
    plot.select_one(HoverTool).formatters = {"@deletion": short_value(), "@insertion": short_value()}
    deletion = plot.line("x", "deletion", source=source, color=AFTER, line_width=2)
    insertion = plot.line("x", "insertion", source=source, color="#2e86c1", line_width=2)
    plot.add_layout(
        Legend(
            items=[
                (f"deletion (AOPC {result.deletion_aopc:.3g})", [deletion]),
                (f"insertion (AOPC {result.insertion_aopc:.3g})", [insertion]),
            ]
        ),
        "right",
    )
    plot.xaxis.axis_label = "fraction of input tokens"
    table = _table(
        f"ERASER faithfulness over {result.n_steps} step(s); removed tokens become: {result.replacement}",
        ["", result.explanation, f"random ranking ({result.random_seeds} seeds)"],
        [
            [
                "comprehensiveness (higher is better)",
                _number(result.comprehensiveness),
                _number(result.random_comprehensiveness),
            ],
            ["sufficiency (lower is better)", _number(result.sufficiency), _number(result.random_sufficiency)],
        ],
        name="faithfulness table",
    )
    return column(plot, table, sizing_mode="stretch_width")
