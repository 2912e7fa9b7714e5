"""The graph tab's logit lens over the whole sequence (``/graph_lens``): a layers × positions grid of top tokens.

Drawn for the shown graph's input (:func:`attribution.contributions.lens_grid.logit_lens_grid`, read as the
graph's nodes are); tapping a cell of a node the graph holds selects it, like a tap in the graph. It runs
the model (one forward pass), so it waits with the graph runs, under the request's time budget.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from attribution.languages import languages_of
from attribution.progress import Progress, no_progress
from space.gradio_app.context import INTERVENTION_BUDGET_HINT, AppContext
from space.gradio_app.tabs.graph_selection import GRAPH_SELECTION_INPUT, graph_from_json
from space.gradio_app.wiring import TRACK_PROGRESS, Page, redraw, reporter, user_errors


def lens_grid_for_graph(ctx: AppContext, model: str, graph_json: str | None, progress: Progress = no_progress) -> Any:
    """The grid figure of the shown graph's input; its cells of the graph's nodes write into the selection box."""
    from attribution.contributions.lens_grid import logit_lens_grid
    from exporters.lens_grid import lens_grid_figure
    from exporters.tokens import result_style

    graph = graph_from_json(graph_json, ctx.config.max_result_bytes)
    progress(0.0, 1, f"loading {model}")
    loaded = ctx.load(model)
    with ctx.time_budget(loaded, "The logit-lens grid", progress, hint=INTERVENTION_BUDGET_HINT):
        grid = logit_lens_grid(
            loaded,
            graph.source_text,
            target=graph.target_text or None,
            final_norm=graph.final_norm_in_logit_lens,
            max_tokens=ctx.config.max_input_tokens,
            languages=languages_of(graph.provenance),
        )
    return lens_grid_figure(
        grid,
        style=result_style(graph),
        graph_nodes=[node.id for node in graph.nodes],
        selection_input=GRAPH_SELECTION_INPUT,
    )


def build(page: Page, model: gr.Dropdown, graph_json: gr.Code) -> None:
    """The section: a button drawing the grid of the shown graph's input."""
    with gr.Accordion("Logit lens over the sequence", open=True, elem_id="graph-lens"):
        run = gr.Button("Draw the logit lens of every layer and token", elem_id="graph-lens-run")
        plot = gr.Plot(label="Logit lens", show_label=False, elem_id="graph-lens-plot")

    @user_errors
    def lens(model, graph_json, progress=TRACK_PROGRESS):
        return lens_grid_for_graph(page.ctx, model, graph_json, progress=reporter(progress))

    redraw(run.click, plot).then(lens, [model, graph_json], plot, api_name="graph_lens", **page.groups["graph"])
