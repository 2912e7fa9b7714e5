"""Attribution heatmap: input tokens (rows) × generated tokens (columns), step-score bars above.

Seq2seq results get two panels side by side, source→target and target→target; causal results one
panel, the prefix matrix (NaN future cells are left empty). Hover shows the token pair and the
exact value; the colour scale is diverging for signed methods and sequential otherwise.
"""

from __future__ import annotations

import math

import numpy as np
from bokeh.layouts import column, row
from bokeh.models import ColumnDataSource, HoverTool, LayoutDOM, LinearColorMapper, Range1d
from bokeh.plotting import figure

from attribution.errors import InvalidInputError
from attribution.results import AttributionResult
from exporters.figure_common import colour_bar, colour_mapper, exact_value, token_lookup, token_ticks

CELL_PX = 26
MIN_CELL_PX = 6
MAX_PANEL_PX = 1000
MIN_FRAME_PX = 150
BARS_HEIGHT = 80
AXIS_PX = 120  # left border of every panel, so bars and cells line up


def heatmap_parts(result: AttributionResult) -> list[tuple[str, list[str], np.ndarray]]:
    """The panels to draw: (title, row tokens, matrix [rows, steps]) in left-to-right order."""
    parts = []
    if result.source_scores is not None and result.source_scores.size:
        parts.append(("source → target", result.source_tokens, np.asarray(result.source_scores, dtype=float)))
    if result.target_scores is not None and result.target_scores.size:
        title = "target → target" if parts or result.provenance.model_kind == "seq2seq" else "prefix → generated"
        parts.append((title, result.target_tokens, np.asarray(result.target_scores, dtype=float)))
    if not parts:
        raise InvalidInputError("this attribution result has no scores to draw")
    for title, tokens, matrix in parts:
        if matrix.shape != (len(tokens), result.n_steps):
            raise InvalidInputError(
                f"{title} scores have shape {matrix.shape}, expected ({len(tokens)}, {result.n_steps}) "
                "(tokens × attributed steps)"
            )
    return parts


def _cell_px(n_rows: int, n_cols: int) -> int:
    return max(MIN_CELL_PX, min(CELL_PX, MAX_PANEL_PX // max(n_rows, n_cols, 1)))


def _cells(tokens: list[str], generated: list[str], matrix: np.ndarray) -> ColumnDataSource:
    rows, cols = np.nonzero(np.isfinite(matrix))
    values = matrix[rows, cols]
    return ColumnDataSource(
        {
            "x": cols.astype(np.int32),
            "y": rows.astype(np.int32),
            "value": values.astype(np.float64),
        }
    )


def _panel(
    title: str,
    tokens: list[str],
    generated: list[str],
    matrix: np.ndarray,
    mapper: LinearColorMapper,
    *,
    cell: int,
    x_range: Range1d,
    with_colour_bar: bool,
    score_label: str,
) -> figure:
    n_rows, n_cols = matrix.shape
    plot = figure(
        title=title,
        x_range=x_range,
        y_range=Range1d(n_rows - 0.5, -0.5),
        frame_width=max(MIN_FRAME_PX, n_cols * cell),
        frame_height=max(MIN_FRAME_PX // 2, n_rows * cell),
        min_border_left=AXIS_PX,
        tools="pan,wheel_zoom,box_zoom,reset,save",
        toolbar_location="right",
        name=f"heatmap {title}",
    )
    cells = plot.rect(
        x="x",
        y="y",
        width=1,
        height=1,
        source=_cells(tokens, generated, matrix),
        fill_color={"field": "value", "transform": mapper},
        line_color=None,
    )
    plot.add_tools(
        HoverTool(
            renderers=[cells],
            tooltips=[
                ("input token", "@y{custom}"),
                ("generated token", "@x{custom}"),
                (score_label, "@value{custom}"),
            ],
            formatters={"@y": token_lookup(tokens), "@x": token_lookup(generated), "@value": exact_value()},
        )
    )
    plot.yaxis.ticker, plot.yaxis.formatter = token_ticks(tokens)
    plot.xaxis.ticker, plot.xaxis.formatter = token_ticks(generated)
    plot.xaxis.major_label_orientation = math.pi / 2
    plot.xaxis.axis_label = "generated token"
    plot.grid.visible = False
    if with_colour_bar:
        plot.add_layout(colour_bar(mapper, "score"), "right")
    return plot


def step_score_bars(result: AttributionResult, name: str, *, x_range: Range1d, frame_width: int) -> figure:
    """Bars of one step score (e.g. the probability of each generated token), over the columns."""
    generated = result.generated_tokens
    values = np.asarray(result.step_scores[name], dtype=float)
    keep = [i for i in range(min(len(values), len(generated))) if math.isfinite(values[i])]
    source = ColumnDataSource(
        {
            "x": keep,
            "top": [float(values[i]) for i in keep],
        }
    )
    plot = figure(
        x_range=x_range,
        frame_width=frame_width,
        frame_height=BARS_HEIGHT,
        min_border_left=AXIS_PX,
        tools="",
        toolbar_location=None,
        title=name,
    )
    bars = plot.vbar(x="x", top="top", width=0.8, source=source, fill_color="#7a8c99", line_color=None)
    plot.add_tools(
        HoverTool(
            renderers=[bars],
            tooltips=[("generated token", "@x{custom}"), (name, "@top{custom}")],
            formatters={"@x": token_lookup(generated), "@top": exact_value()},
        )
    )
    plot.xaxis.visible = False
    plot.xgrid.visible = False
    plot.yaxis.ticker.desired_num_ticks = 3
    return plot


def _step_score_name(result: AttributionResult, requested: str | None) -> str | None:
    if requested is not None:
        if requested not in result.step_scores:
            available = ", ".join(result.step_scores) or "none"
            raise InvalidInputError(f"no step score {requested!r} in this result (available: {available})")
        return requested
    if "probability" in result.step_scores:
        return "probability"
    return next(iter(result.step_scores), None)


def heatmap_figure(
    result: AttributionResult,
    *,
    step_score: str | None = None,
    mapper: LinearColorMapper | None = None,
    show_step_scores: bool = True,
    score_label: str | None = None,
) -> LayoutDOM:
    """The heatmap layout for one result; ``mapper`` lets a comparison share one colour scale."""
    parts = heatmap_parts(result)
    generated = result.generated_tokens
    if mapper is None:
        mapper = colour_mapper([m for _, _, m in parts], signed=result.is_signed)
    label = score_label or f"{result.method} score"
    cell = _cell_px(max(len(t) for _, t, _ in parts), len(generated))
    x_range = Range1d(-0.5, len(generated) - 0.5)
    bars_name = _step_score_name(result, step_score) if show_step_scores else None
    panels = []
    for index, (title, tokens, matrix) in enumerate(parts):
        last = index == len(parts) - 1
        heat = _panel(
            title,
            tokens,
            generated,
            matrix,
            mapper,
            cell=cell,
            x_range=x_range,
            with_colour_bar=last,
            score_label=label,
        )
        if bars_name is None:
            panels.append(heat)
        else:
            bars = step_score_bars(
                result, bars_name, x_range=x_range, frame_width=max(MIN_FRAME_PX, len(generated) * cell)
            )
            panels.append(column(bars, heat))
    return row(*panels) if len(panels) > 1 else panels[0]
