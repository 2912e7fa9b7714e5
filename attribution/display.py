"""Results in notebooks: every result shows its interactive figure in Jupyter, JupyterLab, VS Code and Colab.

A result left as the last expression of a cell, or ``result.show()``, draws the same figure as its export. The
library draws nothing itself (it never imports Bokeh, the exporters or the app): a *notebook renderer*,
``render(result, **options) -> html``, does, and is found in one of two ways:

1. registered in this process with :func:`register_notebook_renderer` (``import exporters`` registers the
   built-in one, :func:`exporters.notebook.notebook_html`), or
2. declared in the Python entry-point group :data:`ENTRY_POINT_GROUP` by an installed package, loaded on the
   first display; this package declares the built-in one there, so after ``pip install`` a bare
   ``import attribution`` is enough.

Why a renderer slot and not a ``_repr_html_`` that imports the exporters: ``attribution`` sits below
``exporters`` (``tests/project/test_import_graph.py``), and a third party may draw results its own way, as it may add
an exporter. Why an entry point besides the slot: a notebook user should not have to know which package draws.

IPython asks :meth:`NotebookDisplay._repr_mimebundle_`, which answers ``text/html`` (the figure) and a one-line
``text/plain`` (what a terminal or a frontend without HTML shows; a graph's dataclass repr runs to megabytes).
Without a renderer, or when drawing fails with one of our errors, only the line is shown, saying why.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import metadata
from typing import Any, Protocol

from attribution.errors import AttributionExplorerError, InvalidInputError
from attribution.result_kinds import find_kind, result_title

#: Packages declare a notebook renderer here: ``name = "module:function"``; the first by name is used.
ENTRY_POINT_GROUP = "attribution_explorer.notebook"


class NotebookRenderer(Protocol):
    """Draws a result as HTML for a notebook cell's output; ``options`` are its figure's (as for an export)."""

    def __call__(self, result: Any, **options: Any) -> str: ...


_renderer: NotebookRenderer | None = None


def register_notebook_renderer(render: NotebookRenderer) -> None:
    """Draw results in notebooks with ``render`` from now on, in this process (it replaces any earlier one)."""
    global _renderer
    _renderer = render


def notebook_renderer() -> NotebookRenderer | None:
    """The registered renderer, else the first one an installed package declares (then kept), else None."""
    if _renderer is None:
        declared = sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda entry: entry.name)
        if declared:
            register_notebook_renderer(declared[0].load())
    return _renderer


def summary_line(result: Any) -> str:
    """One line naming the result, e.g. ``AttributionResult: saliency attribution — tiny-ioi-gpt2``."""
    name = type(result).__name__
    return f"{name}: {result_title(result)}" if find_kind(result) is not None else name


def _no_renderer() -> InvalidInputError:
    return InvalidInputError(
        "nothing draws results in this notebook: `import exporters` first (it needs Bokeh: "
        "pip install 'attribution-explorer[notebook]')"
    )


class NotebookDisplay:
    """What every result class shares in a notebook: its figure as the cell's output, and :meth:`show`."""

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        """IPython's display hook: the interactive figure and a one-line text (only the line when it cannot draw)."""
        line = summary_line(self)
        try:
            render = notebook_renderer()
            if render is None:
                raise _no_renderer()
            return {"text/plain": line, "text/html": render(self)}
        except (AttributionExplorerError, ImportError) as error:  # said on the line, not as a traceback per display
            return {"text/plain": f"{line} (no figure: {error})"}

    def show(self, **options: Any) -> None:
        """Draw the figure in the notebook now, with the figure's options, e.g. ``graph.show(threshold=0.1)``.

        Outside IPython (a plain script) there is nowhere to draw: it prints the result's line and how to get
        the figure as a file instead of printing a page of HTML.
        """
        render = notebook_renderer()
        if render is None:
            raise _no_renderer()
        display = _ipython_display()
        if display is None:
            print(f"{summary_line(self)} (drawn in a notebook; in a script: exporters.export_result(...).write(path))")
            return
        display({"text/plain": summary_line(self), "text/html": render(self, **options)}, raw=True)


def _ipython_display() -> Callable[..., Any] | None:
    """IPython's ``display`` when this process runs an IPython shell (a notebook kernel), else None."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return None
    return display if get_ipython() is not None else None
