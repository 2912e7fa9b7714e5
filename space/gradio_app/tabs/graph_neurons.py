"""The graph tab's neurons (``/graph_neurons``): the selected FFN node's top neurons read as words.

Per neuron: its activation at the node's token, the tokens its output direction promotes and suppresses
(``W_out[n] · W_U``, :func:`attribution.contributions.neurons.read_neurons`) and the component id that ablates
it; picking one in the menu puts that id into the Ablate section's box. It runs the model (one forward pass),
so it waits with the graph runs, under the request's time budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from attribution.errors import InvalidInputError
from attribution.languages import languages_of
from attribution.progress import Progress, no_progress
from space.gradio_app.context import INTERVENTION_BUDGET_HINT, AppContext
from space.gradio_app.tabs.graph_selection import graph_from_json, selected_ids
from space.gradio_app.wiring import TRACK_PROGRESS, Page, reporter, user_errors

NEURON_HEADERS = ["neuron", "activation", "promotes", "suppresses", "component (ablate it)"]
#: Tokens listed per neuron and direction.
TOP_TOKENS = 5


@dataclass
class NeuronsView:
    rows: list[list[Any]]
    components: list[str]  # the ablation ids, in the rows' order


def read_selected_neurons(
    ctx: AppContext, model: str, graph_json: str | None, selected: str | None, progress: Progress = no_progress
) -> NeuronsView:
    """The top neurons of the last selected node of the shown graph, which must be an FFN node."""
    from attribution.contributions.neurons import read_neurons
    from exporters.tokens import display_token, result_style

    max_bytes = ctx.config.max_result_bytes
    graph = graph_from_json(graph_json, max_bytes)
    ids = selected_ids(selected)
    node = next((n for n in graph.nodes if ids and n.id == ids[-1]), None)
    if node is None or node.kind != "ffn" or not node.top_neurons:
        raise InvalidInputError("Select an FFN node (orange) of the graph: its top neurons are read.")
    progress(0.0, 1, f"loading {model}")
    loaded = ctx.load(model)
    with ctx.time_budget(loaded, "Reading the neurons", progress, hint=INTERVENTION_BUDGET_HINT):
        readings = read_neurons(
            loaded,
            graph.source_text,
            layer=node.layer,
            token_index=node.token_index,
            neurons=[int(neuron) for neuron, _ in node.top_neurons],
            side=node.side,
            target=graph.target_text or None,
            k=TOP_TOKENS,
            max_tokens=ctx.config.max_input_tokens,
            languages=languages_of(graph.provenance),
        )
    style = result_style(graph)

    def words(pairs: list[tuple[str, float]]) -> str:
        return ", ".join(f"{display_token(token, style)} {value:+.3f}" for token, value in pairs)

    rows = [
        [
            reading.neuron,
            round(reading.activation, 4),
            words(reading.promoted),
            words(reading.suppressed),
            reading.component,
        ]
        for reading in readings
    ]
    return NeuronsView(rows, [reading.component for reading in readings])


def build(page: Page, model: gr.Dropdown, graph_json: gr.Code, selection: gr.Textbox, ablate_ids: gr.Textbox) -> None:
    """The section: read the selected FFN node's neurons; picking one fills the Ablate section's id box."""
    with gr.Accordion("Neurons of the selected FFN node", open=True, elem_id="graph-neurons"):
        run = gr.Button("Read the selected FFN node's neurons", elem_id="graph-neurons-run")
        table = gr.Dataframe(headers=NEURON_HEADERS, interactive=False, wrap=True, elem_id="graph-neurons-table")
        pick = gr.Dropdown([], label="Ablate a neuron (fills the Ablate box)", elem_id="graph-neurons-pick")

    @user_errors
    def neurons(model, graph_json, selected, progress=TRACK_PROGRESS):
        view = read_selected_neurons(page.ctx, model, graph_json, selected, progress=reporter(progress))
        return {"headers": NEURON_HEADERS, "data": view.rows}, gr.Dropdown(choices=view.components, value=None)

    run.click(neurons, [model, graph_json, selection], [table, pick], api_name="graph_neurons", **page.groups["graph"])
    pick.input(lambda component: component or "", pick, ablate_ids, queue=False, api_visibility="private")
