"""Static exports of Attribution Explorer results: HTML pages, blog snippets, Hub commits.

Exporters are plugins (entry-point group ``attribution_explorer.exporters``); ``bokeh`` is built in.
This package reads result objects or their JSON files only: it never needs a model. Importing it registers
the notebook renderer (:mod:`exporters.notebook`): results then draw themselves in notebooks.
"""

import exporters.notebook  # noqa: F401  (registers the renderer with attribution.display)
from exporters.base import (
    ENTRY_POINT_GROUP,
    Export,
    Exporter,
    ExporterError,
    available_exporters,
    export_result,
    get_exporter,
    register_exporter,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "Export",
    "Exporter",
    "ExporterError",
    "available_exporters",
    "export_result",
    "get_exporter",
    "register_exporter",
]
