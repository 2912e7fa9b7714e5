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
from exporters.base import Export, check_mode, load_any_result, resolve_kind
from exporters.figures import figure_of
from exporters.page import iframe_snippet, render_page, render_snippet


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
        layout = build_figure(result, kind=kind, **options)
        if mode == "snippet":
            page = render_page(layout, result, title=title, mode="standalone")
            layout = build_figure(result, kind=kind, **options)  # a model can belong to one document only
            snippet = render_snippet(layout, result, title=title)
            return Export(
                html=snippet, mode=mode, kind=kind, title=title, iframe_html=iframe_snippet(page, title=title)
            )
        return Export(html=render_page(layout, result, title=title, mode=mode), mode=mode, kind=kind, title=title)
