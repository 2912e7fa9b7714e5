"""The graph tab's Ablate section (``/graph_ablate``): ablate the selected node or edge, or a typed component.

Shows the prediction before and after, and the route re-drawn after the ablation. Bounded like every
intervention: its cost in model passes is refused over ``max_intervention_passes`` before anything runs,
and the run stops cleanly at ``time_budget_s``.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gradio as gr

from attribution.errors import InvalidInputError
from attribution.languages import languages_of
from attribution.progress import Progress, no_progress
from attribution.results import ContributionGraph, node_id
from space.gradio_app.context import INTERVENTION_BUDGET_HINT, AppContext, optional, read_result_json
from space.gradio_app.wiring import TRACK_PROGRESS, Page, redraw, reporter, user_errors

if TYPE_CHECKING:
    from attribution.interventions.results import InterventionResult
    from attribution.models import LoadedModel
    from space.gradio_app.tabs.graph_selection import SelectionWidgets

ABLATION_MODES = {"zero": "zero", "mean (over positions)": "mean"}
#: The component each kind of graph node stands for (its id is the node's, with this kind).
_NODE_COMPONENTS = {
    "embedding": "embedding",
    "after_ffn": "after_ffn",
    "ffn": "ffn",
    "after_attention": "attention",
    "after_cross_attention": "cross_attention",
}
PREDICTION_HEADERS = ["position → target", "p before", "p after", "top before", "top after", "KL"]


def graph_component(graph: ContributionGraph, choice: str | None) -> str:
    """The component id of a node picked in the graph tab; edges (``source->target``) and typed component
    ids (``decoder:2:head:1``…) are component ids already (checked against the model when run)."""
    choice = (choice or "").strip()
    if not choice:
        raise InvalidInputError("Pick a node or an attention edge of the graph (or type a component id) to ablate.")
    try:
        node = graph.node(choice)
    except KeyError:
        return choice
    return node_id(node.side, node.layer, _NODE_COMPONENTS[node.kind], node.token_index)


@dataclass
class AblateView:
    table: list[list[Any]]  # (what, before, after) rows
    headers: list[str]
    figure: Any | None  # the route re-drawn after the ablation (None when it cannot be)
    note: str
    result_json: str


def ablate_from_graph(
    ctx: AppContext,
    model: str,
    text: str,
    target: str | None,
    graph_json: str | None,
    choice: str | None,
    mode: str,
    threshold: float,
    progress: Progress = no_progress,
) -> AblateView:
    """Ablate the chosen node / edge: the prediction before and after, and the route re-drawn after it."""
    from attribution.cost import estimate_intervention_cost
    from attribution.interventions.ablation import intervene
    from exporters.bokeh_html import build_figure

    if not graph_json or not graph_json.strip():
        raise InvalidInputError("Compute a contribution graph first, then pick a node or an edge to ablate.")
    graph = read_result_json(graph_json, "contribution graph", max_bytes=ctx.config.max_result_bytes)
    if not isinstance(graph, ContributionGraph):
        raise InvalidInputError("Compute a contribution graph first, then pick a node or an edge to ablate.")
    if mode not in ABLATION_MODES:
        raise InvalidInputError(f"Unknown ablation mode {mode!r}; choose one of {', '.join(ABLATION_MODES)}.")
    component = graph_component(graph, choice)
    progress(0.0, 1, f"loading {model}")
    loaded = ctx.load(model)
    target = optional(target) or (graph.target_text or None)
    if graph.source_text != text:
        raise InvalidInputError("The text changed since the graph was drawn: build the graph again first.")
    ctx.check_texts(loaded, input_text=text, target=target)
    estimate = estimate_intervention_cost(loaded, text, target=target, redraw_graph=True)
    ctx.check_cost([estimate], "This ablation", intervention=True)
    with ctx.time_budget(loaded, "The ablation", progress, hint=INTERVENTION_BUDGET_HINT) as report:
        report(0.2, 1, "ablating")
        result = intervene(
            loaded,
            text,
            [component],
            target=target,
            mode=ABLATION_MODES[mode],
            mean_over="positions",
            root_tokens=list(graph.root_tokens)[:8],
            max_tokens=ctx.config.max_input_tokens,
            languages=languages_of(graph.provenance),  # the graph's languages: the same tokens
        )
        report(0.6, 1, "re-drawing the route")
        after, note = _route_after(ctx, loaded, graph, text, target, component, mode, threshold)
    figure = None if after is None else build_figure(after)
    return AblateView(_prediction_rows(result), PREDICTION_HEADERS, figure, note, result.to_json())


def _route_after(
    ctx: AppContext,
    loaded: LoadedModel,
    graph: ContributionGraph,
    text: str,
    target: str | None,
    component: str,
    mode: str,
    threshold: float,
) -> tuple[ContributionGraph | None, str]:
    """The graph's route re-drawn with ``component`` ablated, and the note saying so (or why it is not)."""
    from attribution.errors import UnsupportedError
    from attribution.interventions.graph_after import graph_after_intervention

    note = f"Ablated {component} ({mode})."
    try:
        after = graph_after_intervention(
            loaded,
            text,
            [component],
            target=target,
            mode=ABLATION_MODES[mode],
            threshold=max(float(threshold), 0.0),
            root_tokens=list(graph.root_tokens),
            max_tokens=ctx.config.max_input_tokens,
            languages=languages_of(graph.provenance),
        )
    except UnsupportedError as error:
        return None, f"{note} The route is not re-drawn: {error}"
    return after, f"{note} The graph below is the route after the ablation."


def _prediction_rows(result: InterventionResult) -> list[list[Any]]:
    """One row per measured position: its target's probability before and after, the top tokens, the KL."""
    from exporters.tokens import display_token, result_style

    style = result_style(result, [p.input_token for p in result.predictions])
    return [
        [
            f"{prediction.position}: {display_token(prediction.input_token, style)} → "
            f"{display_token(prediction.target_token, style)}",
            round(prediction.probability_before, 5),
            round(prediction.probability_after, 5),
            ", ".join(f"{display_token(t, style)} {p:.3f}" for t, p in prediction.top_before[:3]),
            ", ".join(f"{display_token(t, style)} {p:.3f}" for t, p, _ in prediction.top_after[:3]),
            round(prediction.kl_divergence, 5),
        ]
        for prediction in result.predictions
    ]


def _endpoint(ctx: AppContext):
    """``/graph_ablate``: the typed component id, when given, overrides the selected node or edge."""

    @user_errors
    def ablate(model, text, target, graph_json, node, edge, what, mode, threshold, typed, progress=TRACK_PROGRESS):
        choice = (typed or "").strip() or (edge if what == "edge" else node)
        inputs = (model, text, target, graph_json, choice, mode, threshold)
        view = ablate_from_graph(ctx, *inputs, progress=reporter(progress))
        table = {"headers": view.headers, "data": view.table}
        return html.escape(view.note), table, view.figure

    return ablate


def build(
    page: Page,
    model: gr.Dropdown,
    text: gr.Textbox,
    target: gr.Textbox,
    graph_json: gr.Code,
    selection: SelectionWidgets,
    threshold: gr.Slider,
) -> None:
    """The section, at the end of the graph tab (it ablates in the shown graph, with the tab's threshold)."""
    with gr.Accordion("Ablate the selected node or edge", open=False, elem_id="graph-ablate"):
        with gr.Row():
            what = gr.Radio(["edge", "node"], value="edge", label="Ablate the selected")
            mode = gr.Radio(list(ABLATION_MODES), value="zero", label="Mode")
            typed = gr.Textbox(
                label="…or a component id (overrides the selection)",
                placeholder="decoder:2:head:1, decoder:1:ffn:*, decoder:3:neuron:7@5",
            )
        run = gr.Button("Ablate", elem_id="graph-ablate-run")
        note = gr.Markdown(elem_id="graph-ablate-note")
        table = gr.Dataframe(label="Prediction before → after", interactive=False)
        # A heading, not Gradio's label badge (which would sit on the figure's own title).
        gr.Markdown("**Route after the ablation**")
        plot = gr.Plot(label="Route after the ablation", show_label=False, elem_id="graph-ablate-plot")

    redraw(run.click, plot).then(
        _endpoint(page.ctx),
        [model, text, target, graph_json, selection.node, selection.edge, what, mode, threshold, typed],
        [note, table, plot],
        api_name="graph_ablate",
        **page.groups["intervention"],
    )
