"""The Gradio app (the Hugging Face Space): one module per tab, each pairing its layout with its handlers.

    from space.gradio_app import build_app, launch
    demo, ctx = build_app(SpaceConfig.load(), hub_reachable=False)
    launch(demo, port=7860)

- :mod:`.build`: :func:`build_app` (the tabs of ``TABS`` around one shared page) and :func:`launch`;
- :mod:`.tabs`: ``attribute``, ``graph`` (+ ``graph_selection``, ``ablate``), ``compare`` (+ ``corpus``),
  ``intervene``, ``export``;
- :mod:`.context` (no Gradio): the shared :class:`~.context.AppContext` (config, offered models, model
  cache, export files), progress, the request caps (model passes, time budget) and reading result JSON;
- :mod:`.wiring` (Gradio): the page being built, error and progress adapters, common widgets;
- :mod:`.config` (the operator's ``space/config.json``), :mod:`.views` (latest request wins, examples
  computed once), :mod:`.export_store` (bounded download files), :mod:`.request_guard` (bounded
  requests and uploads), :mod:`.examples` (example rows);
- :mod:`.serve`: the ``serve`` command, which the command line finds through its entry point.

Importing this package is light: ``build_app`` and ``launch`` are imported (with Gradio) on first use,
so that ``attribution-explorer serve --help`` answers without Gradio.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["build_app", "launch"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module("space.gradio_app.build"), name)
