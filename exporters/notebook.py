"""The built-in notebook renderer: a result as a cell's output, the same interactive Bokeh figure as its export.

:mod:`attribution.display` calls :func:`notebook_html` when a notebook shows a result; importing
:mod:`exporters` registers it, and the package's entry point (group ``attribution_explorer.notebook``) names it
for a bare ``import attribution``. It imports Bokeh only when it draws.

An output is the export's self-drawing block (:func:`exporters.embed.embed_block`) with the snippet's
provenance header, so several figures in one notebook behave as several snippets on one blog page: the block's
script loads each BokehJS bundle once per page and queues every figure behind it. Offline, and once per
notebook: the first output that needs a bundle (``bokeh``, then ``bokeh-widgets`` / ``bokeh-tables``) carries
it, packed; later outputs carry only the bundles no earlier output did. Jupyter, JupyterLab and VS Code keep a
notebook's outputs in one page, so that is enough; Colab draws each output in a frame of its own, so there every
output carries all its bundles. The memory of what was carried is this kernel's: after clearing every output and
reloading the page while the kernel runs, call :func:`carry_bokehjs_again` (or restart the kernel).
"""

from __future__ import annotations

import re
import sys
from typing import Any

from attribution.display import register_notebook_renderer
from attribution.result_kinds import result_title

#: The bundles earlier outputs of this kernel carried (each runs once on the page, for every later figure).
_carried: set[str] = set()


def notebook_html(result: Any, **options: Any) -> str:
    """The block showing ``result`` (its figure with ``options``, as :func:`exporters.bokeh_html.build_figure`)."""
    from exporters.bokeh_html import build_figure
    from exporters.embed import bundle_names, embed_block
    from exporters.page import provenance_html, provenance_json_script, provenance_record

    layout = build_figure(result, **options)
    needed = bundle_names(layout)
    every_output = _outputs_in_own_frames()
    missing = set(needed) if every_output else set(needed) - _carried
    record = provenance_record(result)
    block = embed_block(
        layout,
        header=provenance_html(result_title(result), record),
        data=provenance_json_script(record, page=False),
        libraries="inline" if missing else "page",
    )
    _carried.update(missing)
    return _without_bundles(block, set(needed) - missing)


def _without_bundles(block: str, names: set[str]) -> str:
    """The block less the packed copies of ``names`` (an earlier output carried them; the page has them)."""
    for name in names:
        block = re.sub(rf'<script type="text/plain" data-ae-bundle="{re.escape(name)}">[^<]*</script>', "", block)
    return block


def _outputs_in_own_frames() -> bool:
    """Whether each output is drawn in a page of its own (Colab), where no output sees another's BokehJS."""
    return "google.colab" in sys.modules


def carry_bokehjs_again() -> None:
    """Make the next figures carry BokehJS again (the page lost it: reloaded with every output cleared)."""
    _carried.clear()


register_notebook_renderer(notebook_html)
