"""Attribution heatmap: input tokens (rows) × generated tokens (columns), step-score bars above.

As in Inseq's own heatmaps, the parts of a result are stacked: the step-score bars on top, then
source→target (seq2seq), then target→target (or, for a causal model, prefix→generated, where the
NaN future cells are left empty). Every part shares the generated-token columns and stretches to
the width it is given; its height grows with its number of rows. Every panel's title names the
method and the model (first line) and the part (second line), so panels stay identifiable in a
comparison grid. Hover shows the token pair
(as text, with the raw spelling) and the score to 4 significant digits.
"""

from __future__ import annotations

import base64
import math

import numpy as np
from bokeh.layouts import column
from bokeh.models import (
    ColumnDataSource,
    CustomAction,
    CustomJS,
    GlyphRenderer,
    HoverTool,
    LayoutDOM,
    LinearColorMapper,
    Plot,
    Range1d,
)
from bokeh.plotting import figure

from attribution.errors import InvalidInputError
from attribution.results import AttributionResult
from exporters.figure_common import (
    axis_px,
    colour_bar,
    colour_mapper,
    short_model_name,
    short_value,
    token_lookup,
    token_ticks,
)
from exporters.tokens import display_tokens, hover_token, page_text, result_style

#: Height of one token row: large for short inputs, smaller (down to 12 px) for long ones.
ROW_PX, MIN_ROW_PX = 24, 12
#: Height budget the rows of one panel aim for before rows shrink.
PANEL_ROWS_PX = 560
BARS_HEIGHT = 90
#: Right border of every panel (room for the toolbar), so bars and cells line up.
RIGHT_PX = 40
#: Few columns read best with horizontal labels; more get vertical ones.
HORIZONTAL_LABELS_UP_TO = 10
#: Step scores that are probabilities: their bars always span 0…1.
PROBABILITY_SCORES = {"probability", "contrast_prob"}
#: Longest contrast target a title shows (the whole one is in the result JSON).
MAX_CONTRAST_CHARS = 40
#: Cell values are written in cells of rows at least this tall (smaller ones are unreadable) ...
VALUES_MIN_ROW_PX = 16
#: ... and, by default, when there are at most this many columns (the toggle shows them anyway).
VALUES_SHOWN_UP_TO = 12
#: A cell whose colour is this far along the scale (of its largest magnitude) gets white text.
LIGHT_TEXT_FROM = 0.55
#: The toolbar icon of the "values in cells" button: "0.5" written small.
VALUES_ICON = (
    "data:image/svg+xml;base64,"
    + base64.b64encode(
        b'<svg xmlns="http://www.w3.org/2000/svg" width="20" height="20"><text x="10" y="14" font-size="10" '
        b'font-family="sans-serif" text-anchor="middle" fill="#444">0.5</text></svg>'
    ).decode()
)
#: Outline of a cell that a gold alignment links (a source word and a target word).
GOLD_COLOUR = "#111111"


def heatmap_parts(result: AttributionResult) -> list[tuple[str, list[str], np.ndarray]]:
    """The panels to draw: (part name, row tokens (raw), matrix [rows, steps]) from top to bottom."""
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


def row_px(n_rows: int) -> int:
    """Pixel height of a token row for a panel of ``n_rows`` rows."""
    return max(MIN_ROW_PX, min(ROW_PX, PANEL_ROWS_PX // max(n_rows, 1)))


def result_heading(result: AttributionResult, label: str | None = None) -> str:
    """``"saliency — tiny-ioi-gpt2"`` (or a comparison's own label with the model): names every panel; a
    contrastive result adds what it is contrasted with (``vs “ John”``)."""
    model = short_model_name(result.provenance.model_id)
    if label is None:
        heading = page_text(f"{result.method} — {model}")
    else:
        label = page_text(label)
        heading = label if page_text(result.provenance.model_id) in label or model in label else f"{label} — {model}"
    contrast = contrast_text(result)
    return heading if contrast is None else f"{heading} vs “{contrast}”"


def contrast_text(result: AttributionResult, *, most: int = MAX_CONTRAST_CHARS) -> str | None:
    """The contrast target as a title shows it: a causal model's alternative continuation (its prompt left out),
    a seq2seq model's alternative output; at most ``most`` characters; None for a plain result."""
    contrast = result.contrast_target
    if contrast is None:
        return None
    if result.provenance.model_kind != "seq2seq" and contrast.startswith(result.source_text or ""):
        contrast = contrast[len(result.source_text or "") :]
    shown = page_text(contrast.strip()) or "∅"
    return shown if len(shown) <= most else shown[: most - 1] + "…"


def _cells(matrix: np.ndarray) -> ColumnDataSource:
    rows, cols = np.nonzero(np.isfinite(matrix))
    return ColumnDataSource(
        {"x": cols.astype(np.int32), "y": rows.astype(np.int32), "value": matrix[rows, cols].astype(np.float64)}
    )


def _label_orientation(n_columns: int) -> float:
    return 0.0 if n_columns <= HORIZONTAL_LABELS_UP_TO else math.pi / 2


def _panel(
    title: str,
    labels: list[str],
    hovers: list[str],
    columns: tuple[list[str], list[str]],
    matrix: np.ndarray,
    mapper: LinearColorMapper,
    *,
    x_range: Range1d,
    left_px: int,
    score_label: str,
    with_colour_bar: bool,
) -> figure:
    n_rows, n_cols = matrix.shape
    column_labels, column_hovers = columns
    plot = figure(
        title=title,
        x_range=x_range,
        y_range=Range1d(n_rows - 0.5, -0.5),
        sizing_mode="stretch_width",
        frame_height=max(3 * MIN_ROW_PX, n_rows * row_px(n_rows)),
        min_border_left=left_px,
        min_border_right=RIGHT_PX,
        tools="pan,wheel_zoom,box_zoom,reset,save",
        toolbar_location="right",
        name=f"heatmap {title.splitlines()[-1]}",
    )
    cells = plot.rect(
        x="x",
        y="y",
        width=1,
        height=1,
        source=_cells(matrix),
        fill_color={"field": "value", "transform": mapper},
        line_color=None,
    )
    _write_values(plot, matrix, mapper, n_rows)
    plot.add_tools(
        HoverTool(
            renderers=[cells],
            tooltips=[
                ("input token", "@y{custom}"),
                ("generated token", "@x{custom}"),
                (score_label, "@value{custom}"),
            ],
            formatters={"@y": token_lookup(hovers), "@x": token_lookup(column_hovers), "@value": short_value()},
        )
    )
    plot.yaxis.ticker, plot.yaxis.formatter = token_ticks(labels)
    plot.xaxis.ticker, plot.xaxis.formatter = token_ticks(column_labels)
    plot.xaxis.major_label_orientation = _label_orientation(n_cols)
    plot.xaxis.axis_label = "generated token"
    plot.grid.visible = False
    if with_colour_bar:
        plot.add_layout(colour_bar(mapper, score_label), "above")
    return plot


def cell_text(value: float) -> str:
    """A cell's value as written in it: 2 significant digits, short (``0.35``, ``-0.012``, ``1.2e+03``)."""
    return f"{value:.2g}"


def _write_values(plot: figure, matrix: np.ndarray, mapper: LinearColorMapper, n_rows: int) -> None:
    """The value of every finite cell written in it (a text glyph named ``cell values``), dark on light cells
    and white on dark ones; shown by default for small matrices, toggled by :func:`add_values_toggles`."""
    rows, cols = np.nonzero(np.isfinite(matrix))
    values = matrix[rows, cols].astype(np.float64)
    largest = max(abs(float(mapper.low)), abs(float(mapper.high))) or 1.0
    strong = np.abs(values) / largest >= LIGHT_TEXT_FROM
    font_px = max(8, min(11, row_px(n_rows) - 6))
    source = ColumnDataSource(
        {
            "x": cols.astype(np.int32),
            "y": rows.astype(np.int32),
            "text": [cell_text(float(v)) for v in values],
            "colour": ["#ffffff" if s else "#222222" for s in strong],
        }
    )
    text = plot.text(
        x="x",
        y="y",
        text="text",
        source=source,
        text_color="colour",
        text_align="center",
        text_baseline="middle",
        text_font_size=f"{font_px}px",
        name="cell values",
    )
    text.visible = row_px(n_rows) >= VALUES_MIN_ROW_PX and matrix.shape[1] <= VALUES_SHOWN_UP_TO


def add_values_toggles(layout: LayoutDOM) -> None:
    """A "values in cells" button in the toolbar of every heatmap panel in ``layout``: it shows or hides the
    written values of all of them at once (browser-side, in the main BokehJS bundle: it works in a static
    export as in the app)."""
    texts = [r for r in layout.select({"name": "cell values"}) if isinstance(r, GlyphRenderer)]
    panels = [p for p in layout.select({"type": Plot}) if (p.name or "").startswith("heatmap ")]
    shown = any(t.visible for t in texts)
    tools = [
        CustomAction(
            icon=VALUES_ICON,
            description="values in cells (show / hide)",
            active_callback="auto",
            active=shown,
            name="values toggle",
        )
        for _ in panels
    ]
    sync = CustomJS(
        args={"texts": texts, "tools": tools},
        code="for (const t of texts) t.visible = cb_obj.active;"
        " for (const o of tools) if (o !== cb_obj && o.active !== cb_obj.active) o.active = cb_obj.active;",
    )
    for panel, tool in zip(panels, tools, strict=True):
        tool.js_on_change("active", sync)
        panel.add_tools(tool)


def outline_gold(
    plot: figure, links: set[tuple[int, int]], row_words: list[int | None], column_words: list[int | None]
) -> None:
    """Outline the cells whose row token and column token belong to a gold-linked (source word, target word)."""
    cells = [
        (column, row)
        for row, source_word in enumerate(row_words)
        for column, target_word in enumerate(column_words)
        if source_word is not None and target_word is not None and (source_word, target_word) in links
    ]
    if not cells:
        return
    source = ColumnDataSource({"x": [c for c, _ in cells], "y": [r for _, r in cells]})
    plot.rect(
        x="x",
        y="y",
        width=0.92,
        height=0.92,
        source=source,
        fill_color=None,
        line_color=GOLD_COLOUR,
        line_width=2,
        name="gold links",
    )


def step_score_bars(
    result: AttributionResult, name: str, *, x_range: Range1d, left_px: int, title: str, hovers: list[str]
) -> figure:
    """Bars of one step score (e.g. the probability of each generated token), over the columns."""
    values = np.asarray(result.step_scores[name], dtype=float)
    keep = [i for i in range(min(len(values), result.n_steps)) if math.isfinite(values[i])]
    source = ColumnDataSource({"x": keep, "top": [float(values[i]) for i in keep]})
    kept = [float(values[i]) for i in keep]
    y_range = (
        Range1d(0, 1)
        if name in PROBABILITY_SCORES
        else Range1d(min(0.0, *kept, 0.0) * 1.05, max(0.0, *kept, 0.0) * 1.05 or 1.0)
    )
    plot = figure(
        title=title,
        x_range=x_range,
        y_range=y_range,
        sizing_mode="stretch_width",
        height=BARS_HEIGHT,
        min_border_left=left_px,
        min_border_right=RIGHT_PX,
        tools="",
        toolbar_location=None,
        name="step scores",
    )
    bars = plot.vbar(x="x", top="top", width=0.8, source=source, fill_color="#7a8c99", line_color=None)
    plot.add_tools(
        HoverTool(
            renderers=[bars],
            tooltips=[("generated token", "@x{custom}"), (page_text(name), "@top{custom}")],
            formatters={"@x": token_lookup(hovers), "@top": short_value()},
        )
    )
    plot.xaxis.visible = False
    plot.xgrid.visible = False
    plot.yaxis.ticker.desired_num_ticks = 3
    return plot


def heatmap_figure(
    result: AttributionResult,
    *,
    step_score: str | None = None,
    mapper: LinearColorMapper | None = None,
    show_step_scores: bool = True,
    score_label: str | None = None,
    label: str | None = None,
    gold_links: set[tuple[int, int]] | None = None,
    with_toggle: bool = True,
    words: bool = True,
) -> LayoutDOM:
    """The heatmap layout for one result; ``mapper`` lets a comparison share one colour scale.

    ``label`` names the result in panel titles (default: method — model). ``step_score`` draws the bars of that
    step score only; by default every step score of the result gets its own row of bars (as Inseq's ``show()``).
    ``gold_links`` (source word, target word) outline the cells of the tokens they link. ``with_toggle`` adds the
    "values in cells" toolbar button (a comparison adds its own, for all its heatmaps at once). ``words`` adds,
    when some word was split into several tokens, the same scores aggregated to words below the token view.
    """
    parts = heatmap_parts(result)
    style = result_style(result)
    heading = result_heading(result, label)
    if mapper is None:
        mapper = colour_mapper([m for _, _, m in parts], signed=result.is_signed)
    score = score_label or f"{page_text(result.method)} score"
    generated = result.generated_tokens
    columns = (display_tokens(generated, style), [hover_token(t, style) for t in generated])
    row_labels = [display_tokens(tokens, style) for _, tokens, _ in parts]
    left = axis_px(label for labels in row_labels for label in labels)
    x_range = Range1d(-0.5, len(generated) - 0.5)
    panels = []
    for bars_name in _step_score_names(result, step_score) if show_step_scores else []:
        bars_title = f"{heading}\n{page_text(bars_name)} of each generated token"
        panels.append(
            step_score_bars(result, bars_name, x_range=x_range, left_px=left, title=bars_title, hovers=columns[1])
        )
    for index, ((part, tokens, matrix), labels) in enumerate(zip(parts, row_labels, strict=True)):
        panel = _panel(
            f"{heading}\n{part}",
            labels,
            [hover_token(t, style) for t in tokens],
            columns,
            matrix,
            mapper,
            x_range=x_range,
            left_px=left,
            score_label=score,
            with_colour_bar=index == 0,
        )
        if gold_links and index == 0:
            outline_gold(panel, gold_links, *_linked_words(result))
        panels.append(panel)
    if words:
        panels += _word_panels(result, heading, left)
    layout = column(*panels, sizing_mode="stretch_width", name="heatmap")
    if with_toggle:
        add_values_toggles(layout)
    return layout


def _word_sides(result: AttributionResult) -> tuple[list[int | None], str, list[int | None]] | None:
    """(row word ids, the text they index, column word ids) of the word view; None without word ids."""
    if result.target_word_ids is None:
        return None
    if result.source_scores is not None and result.source_scores.size:
        if result.source_word_ids is None:
            return None
        return result.source_word_ids, result.source_text, result.target_word_ids[result.attributed_start :]
    start = result.attributed_start
    return result.target_word_ids[:start], result.target_text, result.target_word_ids[start:]


def word_labels(result: AttributionResult) -> tuple[list[str], list[str]] | None:
    """The words of the rows and columns of :func:`attribution.compare.word_level_scores` (the source or prompt
    words, the target or continuation words, in order), or None when the result has no word ids."""
    sides = _word_sides(result)
    if sides is None:
        return None
    row_ids, row_text, column_ids = sides

    def labels(ids: list[int | None], text: str) -> list[str]:
        split = text.split()
        return [page_text(split[w]) if w < len(split) else str(w) for w in sorted({w for w in ids if w is not None})]

    return labels(row_ids, row_text), labels(column_ids, result.target_text)


def _some_word_split(ids: list[int | None]) -> bool:
    known = [w for w in ids if w is not None]
    return len(known) > len(set(known))


def _word_panels(result: AttributionResult, heading: str, left_px: int) -> list[figure]:
    """The word view: |scores| summed over each word's tokens and averaged over the steps of each generated word
    (:func:`attribution.compare.word_level_scores`, what the alignment error rate reads), on its own scale; none
    when every word is one token (it would repeat the token view) or the result has no word ids."""
    from attribution.compare import word_level_scores

    sides, words = _word_sides(result), word_labels(result)
    if sides is None or words is None or not (_some_word_split(sides[0]) or _some_word_split(sides[2])):
        return []
    rows, columns = words
    try:
        matrix = word_level_scores(result)
    except InvalidInputError:
        return []
    if matrix.shape != (len(rows), len(columns)) or not matrix.size:
        return []
    part = "source → target" if result.source_scores is not None else "prompt → continuation"
    mapper = colour_mapper([matrix], signed=False)
    panel = _panel(
        f"{heading}\nwords: {part}",
        rows,
        rows,
        (columns, columns),
        matrix,
        mapper,
        x_range=Range1d(-0.5, len(columns) - 0.5),
        left_px=max(left_px, axis_px(rows)),
        score_label="|score| per word",
        with_colour_bar=True,
    )
    panel.xaxis.axis_label = "generated word"
    return [panel]


def _step_score_names(result: AttributionResult, requested: str | None) -> list[str]:
    """The step scores drawn as bars: the one requested, else every one the result has."""
    if requested is None:
        return list(result.step_scores)
    if requested not in result.step_scores:
        available = ", ".join(result.step_scores) or "none"
        raise InvalidInputError(f"no step score {requested!r} in this result (available: {available})")
    return [requested]


def _linked_words(result: AttributionResult) -> tuple[list[int | None], list[int | None]]:
    """Per row of the first panel and per column, the word a gold alignment names it by (None: no word):
    source (or prompt) words and target (or continuation) words, each renumbered from 0 in order, as
    :func:`attribution.compare.word_level_scores` numbers them."""
    if result.target_word_ids is None:
        return [], []
    steps = result.target_word_ids[result.attributed_start :]
    if result.source_scores is not None and result.source_scores.size:
        rows = result.source_word_ids or []
    else:
        rows = [*result.target_word_ids[: result.attributed_start], *[None] * result.n_steps]
    return _renumbered(rows), _renumbered(steps)


def _renumbered(word_ids: list[int | None]) -> list[int | None]:
    order = {word: index for index, word in enumerate(sorted({w for w in word_ids if w is not None}))}
    return [None if word is None else order[word] for word in word_ids]
