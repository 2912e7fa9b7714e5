"""The Bokeh figure of each result kind, registered by the kind's name (:mod:`attribution.result_kinds`).

The drawing half of a result kind: the library's entry says what a kind is (class, schema, title, file
stem), this registry how the built-in exporter draws it and which options its figure takes from users
(``build_figure(result, **options)``, the app, the CLI). It lives here, keyed by name, rather than in the
library's entry, so that ``attribution`` names no exporter code (see :mod:`attribution.result_kinds`).
A new kind registers its figure with :func:`register_figure`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from attribution.errors import InvalidInputError
from attribution.result_kinds import result_kinds

if TYPE_CHECKING:
    from bokeh.models import LayoutDOM


@dataclass(frozen=True)
class Figure:
    """``draw(result, **options)`` returns the kind's Bokeh layout; ``options`` are the keywords users may give.

    ``draw`` is the function or its ``"module:function"`` path, imported when a figure is drawn: this
    registry answers the command line's questions (which kinds, which options) without loading Bokeh.
    """

    draw: Callable[..., LayoutDOM] | str
    options: tuple[str, ...] = ()

    def drawing_function(self) -> Callable[..., LayoutDOM]:
        if not isinstance(self.draw, str):
            return self.draw
        module, _, name = self.draw.partition(":")
        return getattr(importlib.import_module(module), name)


_FIGURES: dict[str, Figure] = {
    "heatmap": Figure("exporters.heatmap:heatmap_figure", ("step_score",)),
    "graph": Figure("exporters.graph:graph_figure", ("root_token", "threshold", "selection_input", "controls")),
    "compare": Figure("exporters.compare_view:comparison_figure", ("difference",)),
    "corpus": Figure("exporters.corpus_report:corpus_report_figure", ("max_table_rows", "max_details")),
    "intervention": Figure("exporters.interventions:intervention_figure"),
    "patching": Figure("exporters.interventions:patching_figure"),
    "route_faithfulness": Figure("exporters.interventions:route_faithfulness_figure"),
    "faithfulness": Figure("exporters.interventions:faithfulness_figure"),
    "node_features": Figure("exporters.features:node_features_figure"),
    "layer_comparison": Figure("exporters.features:layer_comparison_figure"),
    "top_activations": Figure("exporters.features:top_activations_figure"),
}


def register_figure(kind: str, draw: Callable[..., LayoutDOM] | str, *, options: tuple[str, ...] = ()) -> None:
    """Draw results of the kind named ``kind`` with ``draw(result, **options)`` (a function or its path)."""
    _FIGURES[kind] = Figure(draw, tuple(options))


def figure_of(kind: str) -> Figure:
    """The registered figure of the kind named ``kind``; one clear error when it has none."""
    if kind not in _FIGURES:
        raise InvalidInputError(f"no figure draws a {kind!r} result (register one with exporters.figures)")
    return _FIGURES[kind]


def figure_options(kind: str) -> tuple[str, ...]:
    """The options a kind's figure takes, e.g. ``("step_score",)`` for a heatmap."""
    return figure_of(kind).options


def file_export_kinds() -> list[str]:
    """Kinds ``attribution-explorer export FILE --kind`` offers: stored as one JSON file, and drawn here."""
    return [kind.name for kind in result_kinds() if kind.schema is not None and kind.name in _FIGURES]
