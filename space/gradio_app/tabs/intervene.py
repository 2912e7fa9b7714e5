"""The Intervene tab (``/intervene``): patching sweeps, exact and attribution patching side by side, and whether the
contribution graph's route is necessary and sufficient.

Bounded like every intervention: its cost in model passes is refused over ``max_intervention_passes``
before anything runs, and the run stops cleanly at ``time_budget_s``.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gradio as gr

from attribution.contributions.roots import parse_root_tokens
from attribution.errors import InvalidInputError
from attribution.progress import Progress, no_progress, part
from space.gradio_app.context import INTERVENTION_BUDGET_HINT, AppContext, optional, rounded
from space.gradio_app.examples import intervene_examples
from space.gradio_app.wiring import TRACK_PROGRESS, Page, Shown, redraw, reporter, user_errors

if TYPE_CHECKING:
    from attribution.interventions.results import PatchingResult, RouteFaithfulness
    from attribution.models import LoadedModel

#: Random edge sets the Intervene tab compares a route with.
ROUTE_SEEDS = 3
ROUTE_HEADERS = ["route faithfulness", "route", "random edge sets"]


@dataclass
class InterveneView:
    figure: Any
    route_rows: list[list[Any]]
    summary: str
    patching_json: str


def run_intervene(
    ctx: AppContext,
    model: str,
    text: str,
    counterfactual: str,
    target: str | None,
    counterfactual_target: str | None,
    contrast_token: str | None,
    root_token: str | None,
    progress: Progress = no_progress,
) -> InterveneView:
    """Patching sweeps (exact and attribution patching side by side) and the route's faithfulness."""
    from attribution.cost import estimate_patching_cost, estimate_route_cost
    from attribution.interventions.sweeps import patching_sweep
    from exporters.bokeh_html import build_figure

    if not (counterfactual or "").strip() and not (counterfactual_target or "").strip():
        raise InvalidInputError("Type a counterfactual input of the same length (e.g. swap the names).")
    root = parse_root_tokens(root_token)
    if not isinstance(root, int):
        raise InvalidInputError("The Intervene tab measures one position: give one token index (-1 = the last).")
    progress(0.0, 1, f"loading {model}")
    loaded = ctx.load(model)
    text_target, other_target = optional(target), optional(counterfactual_target)
    counterfactual = optional(counterfactual) or text
    texts = {"counterfactual": counterfactual, "target": text_target, "counterfactual_target": other_target}
    ctx.check_texts(loaded, input_text=text, **texts)
    estimates = [
        estimate_patching_cost(loaded, text, target=text_target),
        estimate_route_cost(loaded, text, target=text_target, seeds=ROUTE_SEEDS),
    ]
    ctx.check_cost(estimates, "This patching sweep and route test", intervention=True)
    with ctx.time_budget(loaded, "The patching sweep", progress, hint=INTERVENTION_BUDGET_HINT) as report:
        result = patching_sweep(
            loaded,
            text,
            counterfactual,
            target=text_target,
            counterfactual_target=other_target,
            root_token=root,
            contrast_token=optional(contrast_token),
            max_tokens=ctx.config.max_input_tokens,
            progress=part(report, 0.0, 0.8),
        )
        report(0.85, 1, "route faithfulness")
        rows, route_note = _route_test(ctx, loaded, text, text_target, root, result)
    summary = _summary(result, route_note)
    progress(1.0, 1, "done")
    return InterveneView(build_figure(result), rows, summary, result.to_json())


def _route_test(
    ctx: AppContext, loaded: LoadedModel, text: str, target: str | None, root: int, result: PatchingResult
) -> tuple[list[list[Any]], str]:
    """The route's faithfulness table, or no rows and the reason in a note for the summary."""
    from attribution.errors import UnsupportedError
    from attribution.interventions.routes import route_faithfulness

    try:
        route = route_faithfulness(
            loaded,
            text,
            target=target,
            root_token=root,
            target_token=result.target_token,
            contrast_token=result.contrast_token,
            seeds=ROUTE_SEEDS,
            max_tokens=ctx.config.max_input_tokens,
        )
    except (InvalidInputError, UnsupportedError) as error:  # said in the summary: the table stays empty
        return [], f" Route faithfulness: {error}"
    return _route_rows(route), ""


def _summary(result: PatchingResult, route_note: str) -> str:
    """The logit difference measured, and how far exact and attribution patching agree."""
    from exporters.tokens import display_token, result_style

    agreement = "; ".join(
        f"{m.name}: Spearman {rounded(m.spearman)}, top-10 overlap {rounded(m.top10_overlap)}" for m in result.maps
    )
    style = result_style(result)
    return (
        f"logit({display_token(result.target_token, style)}) − logit({display_token(result.contrast_token, style)}) "
        f"at position {result.root_position}: "
        f"{result.logit_diff_clean:.3f} on the input, {result.logit_diff_counterfactual:.3f} on the counterfactual. "
        f"Exact vs attribution patching — {agreement}.{route_note}"
    )


def _route_rows(route: RouteFaithfulness) -> list[list[Any]]:
    """The route faithfulness table of the exported page (:meth:`RouteFaithfulness.table`), numbers rounded."""
    return [[what, *(v if isinstance(v, str) else rounded(v) for v in values)] for what, *values in route.table()]


def _endpoint(ctx: AppContext):
    """``/intervene``: its parameters are the API's (names and defaults)."""

    @user_errors
    def intervene(model, text, counterfactual, target, counterfactual_target, contrast, root, progress=TRACK_PROGRESS):
        inputs = (model, text, counterfactual, target, counterfactual_target, contrast, root)
        view = run_intervene(ctx, *inputs, progress=reporter(progress))
        table = {"headers": ROUTE_HEADERS, "data": view.route_rows}
        return html.escape(view.summary), view.figure, table, view.patching_json

    return intervene


def build(page: Page) -> None:
    with gr.Tab("Intervene", id="intervene") as tab:
        gr.Markdown(
            "Patch every head and every position from a counterfactual input of the same length "
            "(exact activation patching and its gradient approximation, attribution patching, side by "
            "side), and test whether the contribution graph's route is necessary and sufficient."
        )
        with gr.Row():
            model = page.model_dropdown(elem_id="intervene-model")
            root = gr.Textbox(value="-1", label="Position measured (token index, -1 = last)")
            contrast = gr.Textbox(label="Contrast token (default: the counterfactual's prediction)")
        text = gr.Textbox(label="Prompt (or source sentence)", lines=2, elem_id="intervene-text")
        counterfactual = gr.Textbox(
            label="Counterfactual (same number of tokens)", lines=2, elem_id="intervene-counterfactual"
        )
        with gr.Row():
            target = gr.Textbox(label="Target text (seq2seq; optional)")
            counterfactual_target = gr.Textbox(label="Counterfactual target (seq2seq; optional)")
        run = gr.Button("Patch", variant="primary", elem_id="intervene-run")
        summary = gr.Markdown(elem_id="intervene-summary")
        gr.Markdown("**Logit difference recovered: exact vs attribution patching**")
        plot = gr.Plot(
            label="Logit difference recovered: exact vs attribution patching",
            show_label=False,
            elem_id="intervene-plot",
        )
        route = gr.Dataframe(
            headers=["route faithfulness", "route", "random edge sets (mean; weights: each)"],
            label="Route from the measured position",
            interactive=False,
        )
        with gr.Accordion("Patching JSON", open=False):
            result_json = gr.Code("", language="json", label="Patching result", interactive=False)

        intervene = _endpoint(page.ctx)
        inputs = [model, text, counterfactual, target, counterfactual_target, contrast, root]
        outputs = [summary, plot, route, result_json]
        group = page.groups["intervention"]
        redraw(run.click, plot).then(intervene, inputs, outputs, api_name="intervene", **group)
        examples = intervene_examples(page.bundled) if page.bundled else []
        if examples:
            gr.Examples(examples, inputs, outputs, intervene, elem_id="intervene-examples", **_examples_cache(page))
    page.results["Intervene"] = Shown(tab, result_json)


def _examples_cache(page: Page) -> dict[str, Any]:
    """Gradio's own example cache (this tab's examples show Gradio's cached outputs), as the config says."""
    mode = page.ctx.config.cache_examples
    return {"cache_examples": False} if mode == "off" else {"cache_examples": True, "cache_mode": mode}
