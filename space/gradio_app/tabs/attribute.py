"""The Attribute tab: feature attribution with Inseq (``/attribute``): a heatmap, its tokens and step scores."""

from __future__ import annotations

import functools
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from attribution.errors import AttributionExplorerError
from attribution.languages import Languages, typed_languages
from attribution.progress import Progress, no_progress
from attribution.results import AttributionResult
from space.gradio_app import views
from space.gradio_app.context import (
    ATTRIBUTION_BUDGET_HINT,
    AppContext,
    PlannedAttribution,
    cost_note,
    explained_target,
    figure_for,
    optional,
    plan_attribution,
)
from space.gradio_app.examples import attribute_examples
from space.gradio_app.wiring import TRACK_PROGRESS, Page, Shown, language_boxes, reporter, user_errors, watch_cost

#: What the step-score table shows before any result (Gradio would otherwise number the columns).
EMPTY_STEP_TABLE_HEADERS = ["step", "token"]
EMPTY_STEP_TABLE = {"headers": EMPTY_STEP_TABLE_HEADERS, "data": []}


@dataclass
class AttributeView:
    """One attribution run, ready to show: the result, its generated tokens and their step scores."""

    result: AttributionResult
    tokens_html: str  # the generated tokens as text, coloured by probability (escaped HTML)
    step_table: list[list[Any]]  # one row per generated token: index, token (as text), step scores...
    step_headers: list[str]
    result_json: str


def plan_request(
    ctx: AppContext,
    model: str,
    text: str,
    target: str | None,
    method: str,
    step_scores: Sequence[str] | None,
    contrast_target: str | None,
    src_lang: str | None = None,
    tgt_lang: str | None = None,
    progress: Progress = no_progress,
) -> tuple[PlannedAttribution, Languages]:
    """Check the request, generate the model's output when no target is typed, and estimate the run's cost.

    Shared by the run and the cost line under the button, so that both count the same passes.
    """
    from attribution.capabilities import check_request
    from attribution.inseq_runner import check_supported
    from attribution.languages import check_languages

    ctx.check_method(method)
    languages = typed_languages(src_lang, tgt_lang)
    contrast = optional(contrast_target)
    scores = check_request(method, step_scores or (), target=optional(target), contrast_target=contrast)
    progress(0.0, 1, f"loading {model}")
    loaded = ctx.load(model)
    check_supported(loaded, method)
    check_languages(loaded, languages)
    explained, generated = explained_target(ctx, loaded, text, target, languages, progress)
    plan = plan_attribution(
        ctx,
        loaded,
        text,
        method,
        target=explained,
        generated=generated,
        step_scores=scores,
        contrast_target=contrast,
    )
    return plan, languages


def run_attribution(
    ctx: AppContext,
    model: str,
    text: str,
    target: str | None,
    method: str,
    step_scores: Sequence[str] | None,
    contrast_target: str | None,
    src_lang: str | None = None,
    tgt_lang: str | None = None,
    progress: Progress = no_progress,
) -> AttributeView:
    """``src_lang`` / ``tgt_lang``: the language code boxes of a multilingual translation model (NLLB ``eng_Latn``).

    Without a target the model's output is generated first and then explained as the target: the cost cap
    holds the run to the passes of the real output, not of ``max_new_tokens``.
    """
    from attribution.cost import attribution_hint
    from attribution.inseq_runner import attribute

    inputs = (model, text, target, method, step_scores, contrast_target, src_lang, tgt_lang)
    plan, languages = plan_request(ctx, *inputs, progress=progress)
    hint = attribution_hint(target_typed=optional(target) is not None)
    ctx.check_cost([plan.estimate], "This attribution", hint=hint)
    with ctx.time_budget(plan.loaded, "The attribution", progress, hint=ATTRIBUTION_BUDGET_HINT) as report:
        result = attribute(
            plan.loaded,
            text,
            **plan.arguments,
            max_tokens=ctx.config.max_input_tokens,
            progress=report,
            languages=languages,
        )
    headers, rows = step_score_table(result)
    return AttributeView(result, generated_tokens_html(result), rows, headers, result.to_json())


def attribution_cost_note(ctx: AppContext, *inputs: Any) -> str:
    """The cost line under the Attribute button for the tab's current inputs (generates at most the output; an
    input that cannot run yet shows no line: the run says why)."""
    from attribution.cost import attribution_hint

    try:
        plan, _ = plan_request(ctx, *inputs)
    except AttributionExplorerError:
        return ""
    return cost_note(ctx, [plan.estimate], attribution_hint(target_typed=optional(inputs[2]) is not None))


def step_score_table(result: AttributionResult) -> tuple[list[str], list[list[Any]]]:
    """Headers and rows (step, token as text, one column per step score, 4 significant digits)."""
    from exporters.figure_common import shown_value
    from exporters.tokens import display_token, result_style

    style = result_style(result)
    names = list(result.step_scores)
    rows = [
        [step, display_token(token, style), *(float(shown_value(result.step_scores[name][step])) for name in names)]
        for step, token in enumerate(result.generated_tokens)
    ]
    return [*EMPTY_STEP_TABLE_HEADERS, *names], rows


def generated_tokens_html(result: AttributionResult) -> str:
    """The generated tokens as text, each shaded by its probability on a 0…1 scale, with that legend.

    Hovering a token shows its probability and its raw spelling. Without the probability step score
    the tokens are shown unshaded, with a note saying how to get the shading. Everything is escaped.
    """
    from exporters.figure_common import shown_value
    from exporters.tokens import display_token, result_style

    style = result_style(result)
    probabilities = result.step_scores.get("probability")
    chips = []
    for step, token in enumerate(result.generated_tokens):
        shown = html.escape(display_token(token, style))
        if probabilities is None or not math.isfinite(probabilities[step]):
            shade, tip = "transparent", f"raw token {token!r}"
        else:
            p = min(max(float(probabilities[step]), 0.0), 1.0)
            shade, tip = f"rgba(33, 102, 172, {0.08 + 0.6 * p:.3f})", f"p = {shown_value(p)}; raw token {token!r}"
        chips.append(
            f'<span class="ae-token" data-step="{step}" title="{html.escape(tip, quote=True)}" '
            f'style="background: {shade}; border: 1px solid #c9d3de; border-radius: 4px; padding: 1px 5px; '
            f'margin: 2px; display: inline-block; font-family: ui-monospace, monospace">{shown}</span>'
        )
    if probabilities is None:
        legend = "Tick the <i>probability</i> step score to shade each token by its probability."
    else:
        legend = (
            "probability <span style='font-variant-numeric: tabular-nums'>0</span> "
            '<span style="display: inline-block; width: 120px; height: 10px; vertical-align: middle; '
            "background: linear-gradient(to right, rgba(33,102,172,0.08), rgba(33,102,172,0.68)); "
            'border: 1px solid #c9d3de"></span> 1'
        )
    return (
        '<div class="ae-generated" style="font-size: 14px; line-height: 1.9">'
        f'<div style="font-size: 12px; color: #555; margin-bottom: 2px">Generated tokens · {legend}</div>'
        f"{''.join(chips) or '<i>no generated tokens</i>'}</div>"
    )


def show_attribution(view: AttributeView) -> tuple[Any, ...]:
    """The tab's outputs: heatmap, tokens, step-score table, result JSON."""
    table = {"headers": view.step_headers, "data": view.step_table}
    return figure_for(view.result), view.tokens_html, table, view.result_json


def _endpoint(ctx: AppContext):
    """``/attribute``: its parameters are the API's (names and defaults), in the order of the tab's inputs."""

    @user_errors
    def attribute(
        model,
        text,
        target,
        method,
        step_scores,
        contrast,
        src_lang=None,
        tgt_lang=None,
        progress=TRACK_PROGRESS,
    ):
        inputs = (model, text, target, method, step_scores, contrast, src_lang, tgt_lang)
        return run_attribution(ctx, *inputs, progress=reporter(progress))

    return attribute


def build(page: Page) -> None:
    from attribution.inseq_runner import available_step_scores

    with gr.Tab("Attribute", id="attribute") as tab:
        with gr.Row():
            model = page.model_dropdown(elem_id="attribute-model")
            method = gr.Dropdown(page.methods, value=page.default_method, label="Method")
        text = gr.Textbox(label="Input text (prompt or source sentence)", lines=2, elem_id="attribute-text")
        with gr.Row():
            target = gr.Textbox(label="Target text (optional; else the model generates)")
            contrast = gr.Textbox(label="Contrastive target (optional)")
        steps = gr.CheckboxGroup(available_step_scores(), value=["probability"], label="Step scores")
        src_lang, tgt_lang = language_boxes("attribute")
        run = gr.Button("Attribute", variant="primary", elem_id="attribute-run")
        cost = gr.HTML(elem_id="attribute-cost")
        # The figure names its method and model on every panel: no Gradio label badge over it.
        plot = gr.Plot(label="Attribution heatmap", show_label=False, elem_id="attribute-plot")
        tokens = gr.HTML(elem_id="attribute-tokens")
        table = gr.Dataframe(
            value=EMPTY_STEP_TABLE,
            label="Step scores per generated token",
            interactive=False,
            elem_id="attribute-steps",
        )
        with gr.Accordion("Result JSON", open=False):
            result_json = gr.Code(language="json", label="Attribution result", interactive=False)

        inputs = [model, text, target, method, steps, contrast, src_lang, tgt_lang]
        view = views.View(
            "attribute",
            page.latest,
            [plot, tokens, table, result_json],
            (None, "", EMPTY_STEP_TABLE, ""),
            _endpoint(page.ctx),
            show_attribution,
            page.examples,
        )
        view.on(run.click, inputs, api_name="attribute", **page.groups["attribution"])
        view.on(text.submit, inputs, **page.groups["attribution"])
        page.offer_examples(view, attribute_examples, inputs, "attribution")
        watch_cost(page, inputs, cost, functools.partial(attribution_cost_note, page.ctx))
    page.results["Attribute"] = Shown(tab, result_json)
