"""Pieces shared by the figures: token axes, colour scales, value formatting, responsive sizing.

Tokens are drawn on the canvas (axis labels) or shown in hover tooltips, which Bokeh escapes; they
never go through Bokeh's TeX or HTML paths (``major_label_overrides`` would parse ``$$…$$``).
Labels are display tokens (:mod:`exporters.tokens`); hovers add the raw spelling.

Figures stretch to the width of whatever holds them (a page, a blog column, a Gradio panel) and
take a height that grows with the number of tokens or layers, so nothing is drawn at a third of
the available width or clipped sideways.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from bokeh.models import ColorBar, CustomJSHover, CustomJSTickFormatter, FixedTicker, LinearColorMapper
from bokeh.palettes import Blues256, RdBu11

from exporters.tokens import page_text

#: Negative → blue, zero → white, positive → red.
DIVERGING_PALETTE = RdBu11
#: Zero → white, large → dark blue.
SEQUENTIAL_PALETTE = tuple(reversed(Blues256))
#: Significant digits of a score in hovers and panels (the JSON keeps every digit).
SHOWN_DIGITS = 4
#: Width a side-by-side block needs before it wraps onto the next line (CSS flex basis).
BLOCK_MIN_PX = 420
#: Horizontal gap between wrapped blocks.
BLOCK_GAP_PX = 16

#: The colours figures are drawn in on a light page (Bokeh's defaults and ours), and what each becomes when
#: the page around an embedded figure is dark: surfaces go dark, text and lines go light, and the few colours
#: of our own that would vanish on a dark surface (the graph's darkest nodes, its panel shading, the
#: prediction labels) get a lighter twin. Data colours (heatmap palettes, edge kinds) stay as they are, so a
#: figure reads the same in both schemes. Applied in the browser (:mod:`exporters.embed`), per model.
DARK_COLOURS = {
    "#ffffff": "#16191f",  # plot and colour-bar surfaces, node outlines
    "white": "#16191f",
    "#444444": "#d2d6dc",  # titles, axis and legend labels; the graph's embedding nodes
    "black": "#c5cad2",  # axis lines and ticks
    "#000000": "#c5cad2",
    "#e5e5e5": "#3a3f48",  # grid lines, plot outline, legend border
    "#e6e6e6": "#3a3f48",  # the slider's empty bar
    "#f1f1f1": "#262a31",  # legend items
    "#222222": "#eceff3",  # the graph's after-FFN nodes
    "#555555": "#b9bec6",  # the graph's panel names
    "#eef3fb": "#1b2536",  # the graph's encoder panel
    "#f6effa": "#2a2033",  # the graph's decoder panel
    "#b03a2e": "#ff8f80",  # the graph's predicted tokens
}


def token_ticks(labels: list[str], *, positions: list[int] | None = None) -> tuple[FixedTicker, CustomJSTickFormatter]:
    """A tick at each label's position (default ``0..n-1``), labelled with the (display) token as plain text."""
    positions = list(range(len(labels))) if positions is None else positions
    formatter = CustomJSTickFormatter(
        args={"positions": positions, "labels": list(labels)},
        code="const i = positions.indexOf(Math.round(tick)); return i >= 0 ? labels[i] : '';",
    )
    return FixedTicker(ticks=positions), formatter


def token_lookup(labels: list[str]) -> CustomJSHover:
    """Tooltip formatter ``@index{custom}`` → the label at that index (labels are stored once, not per cell)."""
    return CustomJSHover(args={"labels": list(labels)}, code="return labels[Math.round(value)] ?? '';")


def short_value() -> CustomJSHover:
    """Tooltip formatter ``@value{custom}`` → the value with :data:`SHOWN_DIGITS` significant digits."""
    return CustomJSHover(
        args={"digits": SHOWN_DIGITS},
        code="return Number.isFinite(value) ? String(Number(value.toPrecision(digits))) : String(value);",
    )


def shown_value(value: float) -> str:
    """The Python twin of :func:`short_value`: 4 significant digits, written as JavaScript writes numbers.

    (Texts composed in the browser and in Python then read the same: ``0.35``, ``1``, ``0.00001``.)
    """
    rounded = float(f"{float(value):.{SHOWN_DIGITS}g}")
    if rounded == 0 or 1e-6 <= abs(rounded) < 1e21:
        return str(np.format_float_positional(abs(rounded), trim="-")).join(("-" if rounded < 0 else "", ""))
    return repr(rounded)


def colour_mapper(matrices: Iterable[np.ndarray | None], *, signed: bool) -> LinearColorMapper:
    """Diverging, symmetric around 0 for signed scores; sequential from 0 for non-negative ones."""
    finite = [np.abs(m[np.isfinite(m)]) for m in matrices if m is not None and np.isfinite(m).any()]
    largest = max((float(v.max()) for v in finite), default=0.0) or 1.0
    if signed:
        return LinearColorMapper(palette=DIVERGING_PALETTE, low=-largest, high=largest, nan_color="#eeeeee")
    return LinearColorMapper(palette=SEQUENTIAL_PALETTE, low=0.0, high=largest, nan_color="#eeeeee")


def colour_bar(mapper: LinearColorMapper, title: str, *, orientation: str = "horizontal") -> ColorBar:
    """A colour bar: horizontal (put it above a panel: it takes height, not width, so stacked panels
    stay aligned) or vertical (beside a panel)."""
    if orientation == "vertical":
        return ColorBar(color_mapper=mapper, title=title, width=12, label_standoff=6)
    return ColorBar(
        color_mapper=mapper,
        title=title,
        orientation="horizontal",
        height=10,
        width=220,
        location=(0, 0),
        padding=4,
        title_standoff=4,
        label_standoff=4,
        major_label_text_font_size="10px",
        title_text_font_size="11px",
    )


def axis_px(labels: Iterable[str], *, least: int = 48, most: int = 220) -> int:
    """Room for a y axis of token labels (about 7 px per character at Bokeh's 11 px font)."""
    longest = max((len(label) for label in labels), default=0)
    return max(least, min(most, 7 * longest + 20))


def short_model_name(model_id: str) -> str:
    """A model as named in titles: a Hub id as it is, a local folder by its own name (not its whole path)."""
    if model_id.startswith(("/", "./", "../", "~", "\\")) or (len(model_id) > 2 and model_id[1:3] in (":\\", ":/")):
        model_id = model_id.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] or model_id
    return page_text(model_id)


def responsive_grid_styles(min_px: int = BLOCK_MIN_PX) -> dict[str, str]:
    """CSS for a Bokeh row laid out as a grid of equal columns, as many as fit at ``min_px`` each.

    Children wrap onto new lines instead of overflowing sideways, and a lone child on the last line
    keeps the others' width (so compared heatmaps stay the same size).
    """
    return {
        "display": "grid",
        "grid-template-columns": f"repeat(auto-fit, minmax(min({min_px}px, 100%), 1fr))",
        "gap": f"{BLOCK_GAP_PX}px",
    }


def wrapping_block_styles(min_px: int = BLOCK_MIN_PX) -> dict[str, str]:
    """CSS for a child of a wrapping row: share the width, wrap below ``min_px``."""
    return {"flex": f"1 1 {min_px}px", "min-width": f"min({min_px}px, 100%)"}


def wrapping_row_styles() -> dict[str, str]:
    """CSS that lets a Bokeh row wrap its children onto new lines instead of overflowing sideways."""
    return {"flex-wrap": "wrap", "gap": f"{BLOCK_GAP_PX}px", "row-gap": f"{BLOCK_GAP_PX}px"}
