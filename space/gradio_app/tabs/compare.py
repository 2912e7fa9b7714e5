"""The Compare tab: one input attributed by several methods and models (``/compare``), their agreement and,
with a gold word alignment, their alignment error rate; their faithfulness (``/compare_faithfulness``); and the
corpus upload section (:mod:`.corpus`)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gradio as gr

from attribution.errors import AttributionExplorerError, InvalidInputError
from attribution.languages import Languages, typed_languages
from attribution.models import LoadedModel
from attribution.progress import Progress, no_progress
from attribution.results import AttributionResult, Comparison
from space.gradio_app import views
from space.gradio_app.context import (
    ATTRIBUTION_BUDGET_HINT,
    INTERVENTION_BUDGET_HINT,
    AppContext,
    PlannedAttribution,
    cost_note,
    explained_target,
    figure_for,
    optional,
    plan_attribution,
    read_result_json,
    rounded,
)
from space.gradio_app.examples import compare_examples
from space.gradio_app.tabs import corpus
from space.gradio_app.wiring import (
    TRACK_PROGRESS,
    Page,
    Shown,
    language_boxes,
    redraw,
    reporter,
    user_errors,
    watch_cost,
)

if TYPE_CHECKING:
    from attribution.cost import CostEstimate

#: Most attribution runs one comparison may ask for (each is a full attribution).
MAX_COMPARED_RUNS = 6
#: Longest gold alignment accepted (Pharaoh links of a long sentence pair fit in far less).
MAX_ALIGNMENT_CHARS = 20_000
#: Random rankings per faithfulness evaluation in Compare: none, its table shows no random baseline.
COMPARE_RANDOM_SEEDS = 0
FAITHFULNESS_HEADERS = ["comprehensiveness ↑", "sufficiency ↓", "deletion AOPC ↓", "insertion AOPC ↑"]
#: What a faithfulness row shows for a result whose evaluation alone is over the deployment's intervention cap.
SKIPPED_OVER_BUDGET = "skipped: over this deployment's budget"
#: The faithfulness table before any result (Gradio would otherwise number the columns "1 2 3").
EMPTY_FAITHFULNESS = {"headers": ["result", *FAITHFULNESS_HEADERS], "data": []}


@dataclass
class CompareView:
    """A comparison ready to show: its figure carries the agreement table (the same one the export has)."""

    comparison: Comparison
    comparison_json: str


def plan_comparison(
    ctx: AppContext,
    text: str,
    models: Sequence[str] | str | None,
    methods: Sequence[str] | None,
    target: str | None,
    gold_alignment: str | None,
    src_lang: str | None = None,
    tgt_lang: str | None = None,
    progress: Progress = no_progress,
) -> tuple[list[PlannedAttribution], list[str], Languages]:
    """Check the request, generate the first model's output when no target is typed, and plan every run on it.

    Returns the planned runs, their labels and the languages. Shared by the run and the cost line under the
    button, so that both count the same passes (the generation counted once, with the first run).
    """
    models = [models] if isinstance(models, str) else list(models or [])
    methods = list(methods or [])
    runs = _check_runs(ctx, models, methods, gold_alignment)
    languages = typed_languages(src_lang, tgt_lang)
    loaded_models = _load_models(ctx, models, methods, languages)
    first = loaded_models[runs[0][0]]
    explained, generated = explained_target(ctx, first, text, target, languages, progress)
    if optional(gold_alignment):
        from attribution.compare import check_alignment

        check_alignment(gold_alignment, text, explained, kind=first.kind)  # before any attribution runs
    plans = []
    for i, (model, method) in enumerate(runs):
        ctx.check_texts(loaded_models[model], input_text=text, target=explained)
        planned = plan_attribution(
            ctx, loaded_models[model], text, method, target=explained, generated=generated and i == 0
        )
        plans.append(planned)
    labels = [f"{model} / {method}" if len(models) > 1 else method for model, method in runs]
    return plans, labels, languages


def run_comparison(
    ctx: AppContext,
    text: str,
    models: Sequence[str] | str | None,
    methods: Sequence[str] | None,
    target: str | None,
    gold_alignment: str | None,
    src_lang: str | None = None,
    tgt_lang: str | None = None,
    progress: Progress = no_progress,
) -> CompareView:
    """Attribute one input with every (model, method) pair, all on the same target, and compare them.

    Without a target, the first model's generated output becomes the forced target of every pair (generated
    before the cost estimate, which then counts its real tokens), so every result explains the same tokens
    and their cells line up. ``src_lang`` / ``tgt_lang`` (the language code boxes of multilingual translation
    models) apply to every model, so every model must know the codes.
    """
    from attribution.compare import compare_runs
    from attribution.cost import attribution_hint

    inputs = (text, models, methods, target, gold_alignment, src_lang, tgt_lang)
    plans, labels, languages = plan_comparison(ctx, *inputs, progress=progress)
    hint = attribution_hint(target_typed=optional(target) is not None, several_methods=len(plans) > 1)
    ctx.check_cost([plan.estimate for plan in plans], "This comparison", hint=hint)
    watched = list({id(plan.loaded): plan.loaded for plan in plans}.values())
    with ctx.time_budget(watched, "The comparison", progress, hint=ATTRIBUTION_BUDGET_HINT) as report:
        comparison = compare_runs(
            [(plan.loaded, plan.arguments) for plan in plans],
            text,
            labels,
            gold_alignment=optional(gold_alignment),
            max_tokens=ctx.config.max_input_tokens,
            languages=languages,
            progress=report,
        )
    return CompareView(comparison, comparison.to_json())


def comparison_cost_note(ctx: AppContext, *inputs: Any) -> str:
    """The cost line under the Compare button for the tab's current inputs (generates at most the first
    model's output; an input that cannot run yet shows no line: the run says why)."""
    from attribution.cost import attribution_hint

    try:
        plans, _, _ = plan_comparison(ctx, *inputs)
    except AttributionExplorerError:
        return ""
    hint = attribution_hint(target_typed=optional(inputs[3]) is not None, several_methods=len(plans) > 1)
    return cost_note(ctx, [plan.estimate for plan in plans], hint)


def _check_runs(
    ctx: AppContext, models: list[str], methods: list[str], gold_alignment: str | None
) -> list[tuple[str, str]]:
    """The (model, method) pairs to run, once their number, the methods and the gold alignment are checked."""
    if not models or not methods:
        raise InvalidInputError("Choose at least one model and one method to compare.")
    runs = [(model, method) for model in models for method in methods]
    if len(runs) > MAX_COMPARED_RUNS:
        raise InvalidInputError(f"{len(runs)} model × method pairs is too many: at most {MAX_COMPARED_RUNS}.")
    for method in methods:
        ctx.check_method(method)
    if gold_alignment and len(gold_alignment) > MAX_ALIGNMENT_CHARS:
        raise InvalidInputError(f"The gold alignment is longer than {MAX_ALIGNMENT_CHARS:,} characters.")
    if optional(gold_alignment):
        from attribution.compare import parse_alignment

        parse_alignment(gold_alignment)  # its format, before a model loads (its words: once the target is known)
    return runs


def _load_models(
    ctx: AppContext, models: list[str], methods: list[str], languages: Languages
) -> dict[str, LoadedModel]:
    """Every model, checked against every method and the languages before the first long run."""
    from attribution.compare import check_same_kind
    from attribution.inseq_runner import check_supported
    from attribution.languages import check_languages

    loaded_models = {}
    for model in models:
        loaded_models[model] = ctx.load(model)
        for method in methods:
            check_supported(loaded_models[model], method)
        check_languages(loaded_models[model], languages)
    check_same_kind({model: loaded.kind for model, loaded in loaded_models.items()})
    return loaded_models


def faithfulness_table(
    ctx: AppContext, comparison_json: str | None, progress: Progress = no_progress
) -> tuple[list[str], list[list[Any]]]:
    """Compare's faithfulness columns for the shown comparison: per result its label, AER (when the comparison
    has a gold alignment), comprehensiveness, sufficiency, deletion and insertion AOPC (headers, rows).

    The comparison comes back from the browser, so it is read like every result JSON a request sends (text
    only, size-capped, schema-checked), and its models are loaded only if this app offers them. A result
    whose evaluation is over what is left of ``max_intervention_passes`` is not evaluated: its row says
    :data:`SKIPPED_OVER_BUDGET` (the comparison itself stands; nothing is refused).
    """
    from attribution.cost import estimate_faithfulness_cost

    comparison = read_result_json(comparison_json or "", "comparison", max_bytes=ctx.config.max_result_bytes)
    if not isinstance(comparison, Comparison):
        raise InvalidInputError("Run a comparison first: faithfulness is computed for the compared results.")
    loaded_models = {}
    for result in comparison.results:
        model_id = result.provenance.model_id
        loaded_models[model_id] = loaded_models.get(model_id) or ctx.load(model_id)
    estimates = [estimate_faithfulness_cost(r, random_seeds=COMPARE_RANDOM_SEEDS) for r in comparison.results]
    fits = within_cap(estimates, ctx.config.max_intervention_passes)
    rows = []
    aers = comparison.aer or [None] * len(comparison.results)
    watched = [loaded_models[r.provenance.model_id] for r, fit in zip(comparison.results, fits, strict=True) if fit]
    with ctx.time_budget(watched, "The faithfulness evaluation", progress, hint=INTERVENTION_BUDGET_HINT) as report:
        for i, (label, aer, result) in enumerate(zip(comparison.labels, aers, comparison.results, strict=True)):
            if fits[i]:
                report(i / len(comparison.results), 1, f"faithfulness of {label}")
                scores = _faithfulness_scores(loaded_models[result.provenance.model_id], result)
            else:  # said in the label's cell: the number columns stay narrow
                label, scores = f"{label} ({SKIPPED_OVER_BUDGET})", [None] * len(FAITHFULNESS_HEADERS)
            rows.append([label, rounded(aer), *scores] if comparison.gold_alignment else [label, *scores])
    return faithfulness_headers(bool(comparison.gold_alignment)), rows


def faithfulness_headers(with_aer: bool) -> list[str]:
    """The faithfulness table's columns (AER only when the comparison has a gold alignment)."""
    return ["result", "AER", *FAITHFULNESS_HEADERS] if with_aer else ["result", *FAITHFULNESS_HEADERS]


def within_cap(estimates: Sequence[CostEstimate], cap: int | None) -> list[bool]:
    """Which runs, taken in order, fit together under ``cap`` passes: a run over what is left is skipped (and
    later, cheaper ones may still fit), so one costly result does not cost the others their columns."""
    fits, spent = [], 0
    for estimate in estimates:
        fit = cap is None or spent + estimate.passes <= cap
        spent += estimate.passes if fit else 0
        fits.append(fit)
    return fits


def _faithfulness_scores(loaded: LoadedModel, result: AttributionResult) -> list[float | None]:
    """Comprehensiveness, sufficiency, deletion and insertion AOPC of ``result`` (table cells)."""
    from attribution.interventions.faithfulness import attribution_faithfulness

    faith = attribution_faithfulness(loaded, result, random_seeds=COMPARE_RANDOM_SEEDS)
    return [
        rounded(faith.comprehensiveness),
        rounded(faith.sufficiency),
        rounded(faith.deletion_aopc),
        rounded(faith.insertion_aopc),
    ]


def difference_choices(ctx: AppContext, comparison_json: str | None) -> tuple[Any, Any, Any]:
    """The A and B menus of the difference map for the shown comparison (its results' labels, the first two
    chosen) and that first map, in one answer (one drawing); empty menus and no map while there is no
    comparison or it has one result."""
    labels = _compared(ctx, comparison_json).labels if comparison_json else []
    if len(labels) < 2:
        return gr.update(choices=[], value=None), gr.update(choices=[], value=None), None
    first = difference_map(ctx, comparison_json, labels[0], labels[1]) if _line_up(ctx, comparison_json) else None
    return gr.update(choices=labels, value=labels[0]), gr.update(choices=labels, value=labels[1]), first


def _line_up(ctx: AppContext, comparison_json: str) -> bool:
    """Whether the first two results explain the same tokens (else the first map waits for a pick)."""
    results = _compared(ctx, comparison_json).results
    return results[0].generated_tokens == results[1].generated_tokens and (
        results[0].source_tokens == results[1].source_tokens
    )


def difference_map(ctx: AppContext, comparison_json: str | None, first: str | None, second: str | None) -> Any:
    """The A − B map of two compared results (:func:`exporters.compare_view.difference_figure`); no model runs."""
    from exporters.compare_view import difference_figure

    if not comparison_json or not first or not second:
        return None
    comparison = _compared(ctx, comparison_json)
    index = {label: i for i, label in enumerate(comparison.labels)}
    if first not in index or second not in index:
        raise InvalidInputError("Choose A and B among the compared results.")
    return difference_figure(comparison, index[first], index[second])


def _compared(ctx: AppContext, comparison_json: str) -> Comparison:
    comparison = read_result_json(comparison_json, "comparison", max_bytes=ctx.config.max_result_bytes)
    if not isinstance(comparison, Comparison):
        raise InvalidInputError("Run a comparison first.")
    return comparison


def show_comparison(view: CompareView) -> tuple[Any, ...]:
    return figure_for(view.comparison), view.comparison_json


def _endpoints(ctx: AppContext) -> tuple[Any, Any]:
    """``/compare`` and ``/compare_faithfulness``: their parameters are the API's (names and defaults)."""

    @user_errors
    def comparison(text, models, methods_, target, gold, src_lang=None, tgt_lang=None, progress=TRACK_PROGRESS):
        inputs = (text, models, methods_, target, gold, src_lang, tgt_lang)
        return run_comparison(ctx, *inputs, progress=reporter(progress))

    @user_errors
    def faithfulness(comparison_json, enabled, progress=TRACK_PROGRESS):
        if not enabled or not comparison_json:
            return EMPTY_FAITHFULNESS
        headers, data = faithfulness_table(ctx, comparison_json, reporter(progress))
        return {"headers": headers, "data": data}

    return comparison, faithfulness


def build(page: Page) -> None:
    with gr.Tab("Compare", id="compare") as tab:
        gr.Markdown(
            "Attribute one input with several methods (and models of one kind), then compare them on one "
            "colour scale, by rank agreement, and, for a translation with a gold word alignment, by "
            "alignment error rate."
        )
        text = gr.Textbox(label="Input text (prompt, or source sentence)", lines=2, elem_id="compare-text")
        with gr.Row():
            models = page.model_dropdown(
                "Models (all causal, or all seq2seq)", multiselect=True, elem_id="compare-models"
            )
            methods = gr.CheckboxGroup(
                page.methods, value=[m for m in ("saliency", "attention") if m in page.methods], label="Methods"
            )
        with gr.Row():
            target = gr.Textbox(label="Target text (optional; else the first model's output)")
            gold = gr.Textbox(
                label="Gold word alignment (optional; translations, Pharaoh format: 0-0 1-2 …)", elem_id="compare-gold"
            )
        src_lang, tgt_lang = language_boxes("compare")
        run = gr.Button("Compare", variant="primary", elem_id="compare-run")
        cost = gr.HTML(elem_id="compare-cost")
        # The figure ends with the agreement table: rank correlations, and AER when a gold alignment is given.
        plot = gr.Plot(label="Side by side, one colour scale", show_label=False, elem_id="compare-plot")
        with gr.Row():
            pick_a = gr.Dropdown([], label="A − B difference map: A", elem_id="compare-diff-a")
            pick_b = gr.Dropdown([], label="B", elem_id="compare-diff-b")
        difference = gr.Plot(label="A − B", show_label=False, elem_id="compare-difference")
        with gr.Row():
            faith_on = gr.Checkbox(
                label="Faithfulness (ERASER comprehensiveness / sufficiency, deletion / insertion AOPC)", value=True
            )
        faith = gr.Dataframe(
            value=EMPTY_FAITHFULNESS,
            label="Faithfulness per result",
            interactive=False,
            wrap=True,
            elem_id="compare-faithfulness",
        )
        with gr.Accordion("Comparison JSON", open=False):
            result_json = gr.Code(language="json", label="Comparison", interactive=False)

        comparison, faithfulness = _endpoints(page.ctx)
        result_json.change(
            faithfulness, [result_json, faith_on], faith, api_name="compare_faithfulness", **page.groups["intervention"]
        )
        # A new comparison empties the map, then fills both menus (the first two results chosen) and draws their
        # map in one answer; a user's pick (``input``: not the menus set here) draws again, after emptying the
        # plot (two drawings at once, or one over another, break Gradio's Bokeh view).
        light = {"api_visibility": "private", "show_progress": "hidden", **page.groups["light"]}
        draw = user_errors(functools.partial(difference_map, page.ctx))
        choose = user_errors(functools.partial(difference_choices, page.ctx))
        result_json.change(lambda: None, None, difference, queue=False, api_visibility="private").then(
            choose, result_json, [pick_a, pick_b, difference], **light
        )
        for pick in (pick_a, pick_b):
            redraw(pick.input, difference).then(draw, [result_json, pick_a, pick_b], difference, **light)
        inputs = [text, models, methods, target, gold, src_lang, tgt_lang]
        view = views.View(
            "compare", page.latest, [plot, result_json], (None, ""), comparison, show_comparison, page.examples
        )
        view.on(run.click, inputs, api_name="compare", **page.groups["attribution"])
        page.offer_examples(view, compare_examples, inputs, "attribution")
        watch_cost(page, inputs, cost, functools.partial(comparison_cost_note, page.ctx))
        if page.ctx.config.max_corpus_rows:
            corpus.build(page, models, methods)
    page.results["Compare"] = Shown(tab, result_json)
