"""The built-in exporter: interactive Bokeh figures as HTML pages or blog snippets.

Registered through the ``attribution_explorer.exporters`` entry point as ``bokeh``.
:func:`build_figure` is also what the Space shows through ``gr.Plot``.
"""

from __future__ import annotations

from typing import Any

from bokeh.models import LayoutDOM

from attribution.errors import InvalidInputError
from attribution.result_kinds import result_title
from attribution.results import ResultType
from exporters.base import PAGE_MODES, Export, check_mode, load_any_result, resolve_kind
from exporters.figures import figure_of
from exporters.page import render_iframe, render_page, render_snippet


def build_figure(result: ResultType, *, kind: str | None = None, **options: Any) -> LayoutDOM:
    """The Bokeh layout for a result (object or JSON path); options depend on the kind
    (:func:`exporters.figures.figure_options`).

    heatmap: ``step_score`` (name of the bars above, default ``"probability"``);
    graph: ``root_token`` (target token index whose route is shown first), ``threshold``,
    ``selection_input`` (CSS selector of a page input that receives the tapped node id / edge key);
    corpus: ``max_table_rows``, ``max_details``.
    """
    loaded = load_any_result(result)
    kind = resolve_kind(loaded, kind)
    figure = figure_of(kind)
    unknown = set(options) - set(figure.options)
    if unknown:
        raise InvalidInputError(f"unknown option(s) for a {kind} figure: {', '.join(sorted(unknown))}")
    return figure.drawing_function()(loaded, **options)


class BokehExporter:
    """Exports every result kind that has a figure (:mod:`exporters.figures`) with Bokeh."""

    name = "bokeh"

    def export(
        self,
        result: ResultType,
        *,
        kind: str | None = None,
        mode: str = "standalone",
        title: str | None = None,
        **options: Any,
    ) -> Export:
        kind = resolve_kind(result, kind)
        mode = check_mode(mode)
        title = title or result_title(result)

        def draw() -> LayoutDOM:  # a model belongs to one document only: each rendering gets its own layout
            return build_figure(result, kind=kind, **options)

        if mode in PAGE_MODES:
            return Export(html=render_page(draw(), result, title=title, mode=mode), mode=mode, kind=kind, title=title)
        frame = render_iframe(render_page(draw(), result, title=title, mode="standalone"), title=title)
        if mode == "iframe":
            return Export(html=frame, mode=mode, kind=kind, title=title)
        snippet = render_snippet(draw(), result, title=title, inline=mode == "snippet-inline")
        return Export(html=snippet, mode=mode, kind=kind, title=title, iframe_html=frame)
