"""The built-in exporter: interactive Bokeh figures as HTML pages or blog snippets.

Registered through the ``attribution_explorer.exporters`` entry point as ``bokeh``.
:func:`build_figure` is also what the Space shows through ``gr.Plot``.
"""

from __future__ import annotations

from typing import Any

from bokeh.models import LayoutDOM

from attribution.errors import InvalidInputError
from attribution.results import AttributionResult, Comparison, ContributionGraph, ResultType
from exporters.base import Export, check_mode, load_any_result, resolve_kind
from exporters.compare_view import comparison_figure
from exporters.graph import graph_figure
from exporters.heatmap import heatmap_figure
from exporters.interventions import (
    faithfulness_figure,
    intervention_figure,
    patching_figure,
    route_faithfulness_figure,
)
from exporters.page import iframe_snippet, render_page, render_snippet

_FIGURE_OPTIONS = {
    "heatmap": {"step_score"},
    "graph": {"root_token", "threshold", "selection_input"},
    "compare": set(),
    "corpus": {"max_table_rows", "max_details"},
    "intervention": set(),
    "patching": set(),
    "route_faithfulness": set(),
    "faithfulness": set(),
}
#: figure functions of the intervention kinds (exporters.interventions)
_INTERVENTION_FIGURES = {
    "intervention": intervention_figure,
    "patching": patching_figure,
    "route_faithfulness": route_faithfulness_figure,
    "faithfulness": faithfulness_figure,
}
_INTERVENTION_TITLES = {
    "intervention": "intervention",
    "patching": "activation patching",
    "route_faithfulness": "route faithfulness",
    "faithfulness": "attribution faithfulness",
}


def build_figure(result: ResultType, *, kind: str | None = None, **options: Any) -> LayoutDOM:
    """The Bokeh layout for a result (object or JSON path); options depend on the kind.

    heatmap: ``step_score`` (name of the bars above, default ``"probability"``);
    graph: ``root_token`` (target token index whose route is shown first), ``threshold``,
    ``selection_input`` (CSS selector of a page input that receives the tapped node id / edge key).
    """
    loaded = load_any_result(result)
    kind = resolve_kind(loaded, kind)
    unknown = set(options) - _FIGURE_OPTIONS[kind]
    if unknown:
        raise InvalidInputError(f"unknown option(s) for a {kind} figure: {', '.join(sorted(unknown))}")
    if isinstance(loaded, AttributionResult):
        return heatmap_figure(loaded, **options)
    if isinstance(loaded, ContributionGraph):
        return graph_figure(loaded, **options)
    if kind in _INTERVENTION_FIGURES:
        return _INTERVENTION_FIGURES[kind](loaded)
    if kind == "corpus":
        from exporters.corpus_report import corpus_report_figure

        return corpus_report_figure(loaded, **options)  # type: ignore[arg-type]
    assert isinstance(loaded, Comparison)
    return comparison_figure(loaded)


def default_title(result: ResultType, kind: str) -> str:
    """E.g. ``"saliency attribution — gpt2"`` or ``"contribution graph — tiny-ioi-gpt2"``."""
    if isinstance(result, AttributionResult):
        return f"{result.method} attribution — {result.provenance.model_id}"
    if isinstance(result, ContributionGraph):
        return f"contribution graph — {result.provenance.model_id}"
    if kind in _INTERVENTION_TITLES:
        return f"{_INTERVENTION_TITLES[kind]} — {result.provenance.model_id}"
    if kind == "corpus":
        return f"corpus report — {result.model_id}, {', '.join(result.methods)}"  # type: ignore[union-attr]
    return f"comparison — {', '.join(result.labels)}"


class BokehExporter:
    """Exports heatmaps, contribution graphs and comparisons with Bokeh."""

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
        title = title or default_title(result, kind)
        layout = build_figure(result, kind=kind, **options)
        if mode == "snippet":
            page = render_page(layout, result, title=title, mode="standalone")
            layout = build_figure(result, kind=kind, **options)  # a model can belong to one document only
            snippet = render_snippet(layout, result, title=title)
            return Export(
                html=snippet, mode=mode, kind=kind, title=title, iframe_html=iframe_snippet(page, title=title)
            )
        return Export(html=render_page(layout, result, title=title, mode=mode), mode=mode, kind=kind, title=title)
