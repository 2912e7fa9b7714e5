"""Pieces shared by the figures: token axes, colour scales, value formatting.

Tokens are drawn on the canvas (axis labels) or shown in hover tooltips, which Bokeh escapes; they
never go through Bokeh's TeX or HTML paths (``major_label_overrides`` would parse ``$$…$$``).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from bokeh.models import ColorBar, CustomJSHover, CustomJSTickFormatter, FixedTicker, LinearColorMapper
from bokeh.palettes import Blues256, RdBu11

#: Negative → blue, zero → white, positive → red.
DIVERGING_PALETTE = RdBu11
#: Zero → white, large → dark blue.
SEQUENTIAL_PALETTE = tuple(reversed(Blues256))


def display_token(token: str) -> str:
    """A token as shown on an axis: control characters made visible, empty ones marked."""
    shown = token.replace("\n", "⏎").replace("\t", "⇥").replace("\r", "␍")
    return shown if shown.strip() else repr(shown)


def token_ticks(tokens: list[str], *, positions: list[int] | None = None) -> tuple[FixedTicker, CustomJSTickFormatter]:
    """A tick at each token's position (default ``0..n-1``) labelled with the token as plain text."""
    positions = list(range(len(tokens))) if positions is None else positions
    labels = [display_token(token) for token in tokens]
    formatter = CustomJSTickFormatter(
        args={"positions": positions, "labels": labels},
        code="const i = positions.indexOf(Math.round(tick)); return i >= 0 ? labels[i] : '';",
    )
    return FixedTicker(ticks=positions), formatter


def token_lookup(tokens: list[str]) -> CustomJSHover:
    """Tooltip formatter ``@index{custom}`` → the token at that index (tokens are stored once, not per cell)."""
    labels = [display_token(token) for token in tokens]
    return CustomJSHover(args={"labels": labels}, code="return labels[Math.round(value)] ?? '';")


def exact_value() -> CustomJSHover:
    """Tooltip formatter ``@value{custom}`` → the shortest text that round-trips the float64 exactly."""
    return CustomJSHover(code="return String(value);")


def colour_mapper(matrices: Iterable[np.ndarray | None], *, signed: bool) -> LinearColorMapper:
    """Diverging, symmetric around 0 for signed scores; sequential from 0 for non-negative ones."""
    finite = [np.abs(m[np.isfinite(m)]) for m in matrices if m is not None and np.isfinite(m).any()]
    largest = max((float(v.max()) for v in finite), default=0.0) or 1.0
    if signed:
        return LinearColorMapper(palette=DIVERGING_PALETTE, low=-largest, high=largest, nan_color="#eeeeee")
    return LinearColorMapper(palette=SEQUENTIAL_PALETTE, low=0.0, high=largest, nan_color="#eeeeee")


def colour_bar(mapper: LinearColorMapper, title: str) -> ColorBar:
    return ColorBar(color_mapper=mapper, title=title, width=12, label_standoff=6)
