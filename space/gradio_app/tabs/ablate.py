"""The graph tab's Ablate section (``/graph_ablate``): ablate the selection (one or several nodes and edges
tapped in the figure, shift+tap adding), the selected node or edge of the menus, or typed components, together.

Shows the prediction before and after (its change on top), and the routes before and after side by side, the
edges whose weight changed marked in both. Bounded like every intervention: its cost in model passes is
refused over ``max_intervention_passes`` before anything runs, and the run stops cleanly at ``time_budget_s``.
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
NOTHING_CHOSEN = (
    "Select nodes or edges of the graph (tap; shift+tap adds more), pick one in the menus, or type component ids "
    "to ablate."
)
#: Edges whose weight moved by more than this are marked as changed (an ablation moves every weight downstream
#: of it a little; these are the changes one can see).
CHANGED_BY = 0.01
#: What the section ablates: the figure's selection, the node or edge menu's choice.
ABLATE_WHAT = ["selection", "edge", "node"]


def graph_component(graph: ContributionGraph, choice: str | None) -> str:
    """The component id of a node picked in the graph tab; edges (``source->target``) and typed component
    ids (``decoder:2:head:1``…) are component ids already (checked against the model when run)."""
    choice = (choice or "").strip()
    if not choice:
        raise InvalidInputError(NOTHING_CHOSEN)
    try:
        node = graph.node(choice)
    except KeyError:
        _, _, suffix = choice.partition("#")  # an attention edge's head, or the kind of a residual / FFN edge
        if suffix and not suffix.lstrip("-").isdigit():
            raise InvalidInputError(
                f"A {suffix[:20]!r} edge is no component of its own: ablate a node it joins, or an attention edge."
            ) from None
        return choice
    return node_id(node.side, node.layer, _NODE_COMPONENTS[node.kind], node.token_index)


def graph_components(graph: ContributionGraph, choices: list[str]) -> list[str]:
    """The component ids of several choices (nodes, edges, typed ids), each once, in order."""
    if not choices:
        raise InvalidInputError(NOTHING_CHOSEN)
    return list(dict.fromkeys(graph_component(graph, choice) for choice in choices))


@dataclass
class AblateView:
    table: list[list[Any]]  # (what, before, after) rows
    headers: list[str]
    figure: Any | None  # the routes before and after, side by side (None when they cannot be re-drawn)
    note: str  # what was ablated, the prediction's change, what the figure shows
    result_json: str
    changed: list[str]  # edge keys of the edges whose weight changed (marked in the figure)


def ablate_from_graph(
    ctx: AppContext,
    model: str,
    text: str,
    target: str | None,
    graph_json: str | None,
    choices: list[str],
    mode: str,
    threshold: float,
    progress: Progress = no_progress,
) -> AblateView:
    """Ablate the chosen nodes / edges together: the prediction before and after, and the routes before and
    after side by side with the edges whose weight changed marked."""
    from attribution.cost import estimate_intervention_cost
    from attribution.interventions.ablation import intervene

    if not graph_json or not graph_json.strip():
        raise InvalidInputError("Compute a contribution graph first, then pick a node or an edge to ablate.")
    graph = read_result_json(graph_json, "contribution graph", max_bytes=ctx.config.max_result_bytes)
    if not isinstance(graph, ContributionGraph):
        raise InvalidInputError("Compute a contribution graph first, then pick a node or an edge to ablate.")
    if mode not in ABLATION_MODES:
        raise InvalidInputError(f"Unknown ablation mode {mode!r}; choose one of {', '.join(ABLATION_MODES)}.")
    components = graph_components(graph, choices)
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
            components,
            target=target,
            mode=ABLATION_MODES[mode],
            mean_over="positions",
            root_tokens=list(graph.root_tokens)[:8],
            max_tokens=ctx.config.max_input_tokens,
            languages=languages_of(graph.provenance),  # the graph's languages: the same tokens
        )
        report(0.6, 1, "re-drawing the route")
        after, note = _route_after(ctx, loaded, graph, text, target, components, mode, threshold)
    figure, changed = _before_after(graph, after, components, threshold)
    note = f"{_prediction_change(result)} {note}"
    return AblateView(_prediction_rows(result), PREDICTION_HEADERS, figure, note, result.to_json(), changed)


def _before_after(
    graph: ContributionGraph, after: ContributionGraph | None, components: list[str], threshold: float
) -> tuple[Any | None, list[str]]:
    """The routes before (the shown graph, at the ablation's threshold) and after, side by side, and the keys of
    the edges whose weight changed (marked in both)."""
    from attribution.contributions.changes import changed_edges
    from exporters.graph import before_after_figure
    from exporters.graph_details import edge_key_of

    if after is None:
        return None, []
    before = graph.at_threshold(max(float(threshold), graph.threshold)) if not graph.renormalized else graph
    changed = [edge_key_of(*change.key) for change in changed_edges(before, after, tolerance=CHANGED_BY)]
    ablated = ", ".join(components)
    titles = (
        "Before",
        f"After ablating {ablated}" if len(ablated) <= 60 else f"After ablating {len(components)} components",
    )
    return before_after_figure(before, after, changed=changed, titles=titles), changed


def _prediction_change(result: InterventionResult) -> str:
    """The measured prediction's change in words: ``·to → ·Mary 0.93 → ·John 0.41`` (the last position)."""
    from exporters.tokens import display_token, result_style

    if not result.predictions:
        return ""
    prediction = result.predictions[-1]
    style = result_style(result, [p.input_token for p in result.predictions])
    top_before = prediction.top_before[0] if prediction.top_before else ("?", 0.0)
    top_after = prediction.top_after[0] if prediction.top_after else ("?", 0.0, 0.0)
    return (
        f"**Prediction after {display_token(prediction.input_token, style)}: "
        f"{display_token(top_before[0], style)} {top_before[1]:.2f} → "
        f"{display_token(top_after[0], style)} {top_after[1]:.2f}** (p of "
        f"{display_token(prediction.target_token, style)}: {prediction.probability_before:.3f} → "
        f"{prediction.probability_after:.3f})."
    )


def _route_after(
    ctx: AppContext,
    loaded: LoadedModel,
    graph: ContributionGraph,
    text: str,
    target: str | None,
    components: list[str],
    mode: str,
    threshold: float,
) -> tuple[ContributionGraph | None, str]:
    """The graph's routes re-drawn with ``components`` ablated, and the note saying so (or why they are not)."""
    from attribution.errors import UnsupportedError
    from attribution.interventions.graph_after import graph_after_intervention

    note = f"Ablated {', '.join(components)} ({mode})."
    try:
        after = graph_after_intervention(
            loaded,
            text,
            components,
            target=target,
            mode=ABLATION_MODES[mode],
            threshold=max(float(threshold), 0.0),
            root_tokens=list(graph.root_tokens),
            max_tokens=ctx.config.max_input_tokens,
            languages=languages_of(graph.provenance),
        )
    except UnsupportedError as error:
        return None, f"{note} The route is not re-drawn: {error}"
    return after, (
        f"{note} Below: the routes before and after, the edges whose weight changed by more than {CHANGED_BY:g} "
        "(or that appear or vanish) marked in yellow."
    )


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


def ablation_choices(
    what: str, node: str | None, edge: str | None, typed: str | None, selected: str | None
) -> list[str]:
    """What to ablate: typed component ids (comma- or line-separated; they override the rest), else the figure's
    selection (several ids, one a line), the edge menu's or the node menu's choice."""
    from space.gradio_app.tabs.graph_selection import MAX_SELECTED, selected_ids

    typed_ids = [part.strip() for part in (typed or "").replace("\n", ",").split(",") if part.strip()]
    if len(typed_ids) > MAX_SELECTED:
        raise InvalidInputError(f"Ablate at most {MAX_SELECTED} components at once, not {len(typed_ids)}.")
    if typed_ids:
        return typed_ids
    if what == "selection":
        return selected_ids(selected)
    chosen = edge if what == "edge" else node
    return [chosen.strip()] if chosen and chosen.strip() else []


def _endpoint(ctx: AppContext):
    """``/graph_ablate``: the typed component ids, when given, override the selection or the menus' choice."""

    @user_errors
    def ablate(
        model,
        text,
        target,
        graph_json,
        node,
        edge,
        what,
        mode,
        threshold,
        typed,
        selected=None,
        progress=TRACK_PROGRESS,
    ):
        choices = ablation_choices(what, node, edge, typed, selected)
        inputs = (model, text, target, graph_json, choices, mode, threshold)
        view = ablate_from_graph(ctx, *inputs, progress=reporter(progress))
        table = {"headers": view.headers, "data": view.table}
        return html.escape(view.note, quote=False), table, view.figure

    return ablate


def build(
    page: Page,
    model: gr.Dropdown,
    text: gr.Textbox,
    target: gr.Textbox,
    graph_json: gr.Code,
    selection: SelectionWidgets,
    threshold: gr.Slider,
) -> gr.Textbox:
    """The section, beside the graph (it ablates in the shown graph, with the tab's threshold); its box of
    component ids (other sections fill it: a neuron to ablate)."""
    with gr.Accordion("Ablate the selection", open=True, elem_id="graph-ablate"):
        with gr.Row():
            what = gr.Radio(ABLATE_WHAT, value="selection", label="Ablate (tap nodes / edges; shift+tap adds)")
            mode = gr.Radio(list(ABLATION_MODES), value="zero", label="Mode")
            typed = gr.Textbox(
                label="…or component ids (comma-separated; override the selection)",
                placeholder="decoder:2:head:1, decoder:1:ffn:*, decoder:3:neuron:7@5",
            )
        run = gr.Button("Ablate", elem_id="graph-ablate-run")
        note = gr.Markdown(elem_id="graph-ablate-note")
        plot = gr.Plot(label="Routes before and after", show_label=False, elem_id="graph-ablate-plot")
        table = gr.Dataframe(
            headers=PREDICTION_HEADERS,
            label="Prediction before → after",
            interactive=False,
            elem_id="graph-ablate-table",
        )

    inputs = [model, text, target, graph_json, selection.node, selection.edge, what, mode, threshold, typed]
    redraw(run.click, plot).then(
        _endpoint(page.ctx),
        [*inputs, selection.selection],
        [note, table, plot],
        api_name="graph_ablate",
        **page.groups["intervention"],
    )
    return typed
