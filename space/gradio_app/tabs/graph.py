"""The Contribution graph tab: information-flow routes (``/graph``), re-walked (``/graph_threshold``,
``/graph_rewalk``), with the selection's details (:mod:`.graph_selection`) and ablations (:mod:`.ablate`).

One set of controls: the tab's threshold slider and its "routes from" menu (the figure drawn here has
neither of its own, nor a details panel: the tab's tables are the one details view). Both act alike: a
change takes a cheap step first: when the shown graph is the graph of these very inputs, the new threshold
is at least the one it was cut at and the new roots are among its roots, re-walking it is exact and needs no
model (queued with the cheap requests); otherwise it asks for a recomputation, queued with the model runs.
The menu's default root is the model's prediction: the last token of a prompt, the whole target of a
translation (whose last token only predicts the end of the sentence).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import gradio as gr

from attribution.contributions.roots import DEFAULT_ROOT, RootTokens, default_roots, parse_root_tokens
from attribution.errors import InvalidInputError, ResultFormatError
from attribution.languages import languages_of, typed_languages
from attribution.progress import Progress, no_progress
from attribution.results import ContributionGraph
from space.gradio_app import views
from space.gradio_app.context import ATTRIBUTION_BUDGET_HINT, AppContext, figure_for, optional
from space.gradio_app.examples import graph_examples
from space.gradio_app.tabs import ablate, graph_lens, graph_neurons, graph_selection
from space.gradio_app.tabs.graph_selection import GRAPH_SELECTION_INPUT, ROOT_TOKEN_CHOICES, graph_from_json
from space.gradio_app.wiring import ENTER_APPLIES, TRACK_PROGRESS, Page, Shown, language_boxes, reporter, user_errors


@dataclass
class GraphView:
    graph: ContributionGraph
    graph_json: str


def run_graph(
    ctx: AppContext,
    model: str,
    text: str,
    target: str | None,
    threshold: float,
    renormalize: bool,
    root_token: str | int | None,
    src_lang: str | None = None,
    tgt_lang: str | None = None,
    progress: Progress = no_progress,
) -> GraphView:
    """``src_lang`` / ``tgt_lang``: the language code boxes of a multilingual translation model (NLLB ``eng_Latn``)."""
    from attribution.contributions import build_contribution_graph

    threshold = _threshold(threshold)
    asked = _asked_roots(root_token)
    languages = typed_languages(src_lang, tgt_lang)
    progress(0.0, 1, f"loading {model}")
    loaded = ctx.load(model)
    root = default_roots(loaded.kind) if asked is None else asked
    with ctx.time_budget(loaded, "The contribution graph", progress, hint=ATTRIBUTION_BUDGET_HINT) as report:
        graph = build_contribution_graph(
            loaded,
            text,
            target=optional(target),
            threshold=threshold,
            root_tokens=root,
            renormalize=bool(renormalize),
            max_tokens=ctx.config.max_input_tokens,
            progress=report,
            languages=languages,
        )
    return GraphView(graph=graph, graph_json=graph.to_json())


def _asked_roots(root_token: str | int | None) -> RootTokens | None:
    """The roots asked for, or None for the default (:data:`DEFAULT_ROOT` or nothing: the prediction)."""
    text = str(root_token if root_token is not None else "").strip()
    return None if text in ("", DEFAULT_ROOT) else parse_root_tokens(text)


def root_indices(graph: ContributionGraph, root_token: str | int | None) -> list[int] | None:
    """The target-token indices ``root_token`` names in ``graph`` (the default: its kind's), or None when
    one is out of range (computing the graph says what is wrong with it)."""
    asked = _asked_roots(root_token)
    parsed = default_roots(graph.provenance.model_kind) if asked is None else asked
    n_tokens = len(graph.target_tokens)
    if parsed == "all":
        return list(range(n_tokens))
    indices = [parsed] if isinstance(parsed, int) else list(parsed)
    if not all(-n_tokens <= i < n_tokens for i in indices):
        return None
    return sorted({i % n_tokens for i in indices})


def _threshold(value: float | str | None) -> float:
    try:
        threshold = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidInputError("The threshold must be a number in [0, 1).") from None
    if not 0.0 <= threshold < 1.0:
        raise InvalidInputError(f"The threshold must be in [0, 1), not {threshold}.")
    return threshold


def rethreshold_graph(
    ctx: AppContext,
    model: str,
    text: str,
    target: str | None,
    threshold: float,
    renormalize: bool,
    root_token: str | int | None,
    graph_json: str | None = None,
    src_lang: str | None = None,
    tgt_lang: str | None = None,
    progress: Progress = no_progress,
) -> GraphView:
    """The graph at a new threshold: the shown graph re-walked when that is exact (see :func:`rewalked_shown_graph`),
    else :func:`run_graph` (the model). It may run the model, so the app queues it with the model runs."""
    inputs = (model, text, target, threshold, renormalize, root_token)
    shown = rewalked_shown_graph(*inputs, graph_json, src_lang, tgt_lang, max_bytes=ctx.config.max_result_bytes)
    return shown or run_graph(ctx, *inputs, src_lang, tgt_lang, progress=progress)


def rewalked_shown_graph(
    model: str,
    text: str,
    target: str | None,
    threshold: float,
    renormalize: bool,
    root_token: str | int | None,
    graph_json: str | None,
    src_lang: str | None = None,
    tgt_lang: str | None = None,
    *,
    max_bytes: int | None,
) -> GraphView | None:
    """The cheap step of the threshold slider and the roots menu: the shown graph re-walked, or None when only
    the model can answer.

    Exact when ``graph_json`` is the graph of these very inputs (model, text, target, languages, not
    renormalised), the new threshold is at least the one it was cut at and the new roots are among its
    roots (see :meth:`ContributionGraph.at_threshold`). It takes no app context, so it cannot reach a model:
    the app runs it with the cheap requests and queues the recomputation (None) with the model runs.
    """
    threshold = _threshold(threshold)
    languages = typed_languages(src_lang, tgt_lang)
    shown = _shown_graph(graph_json, max_bytes)
    if (
        shown is None
        or shown.threshold > threshold
        or languages_of(shown.provenance) != languages
        or not _same_inputs(shown, model, text, target, renormalize)
    ):
        return None
    roots = root_indices(shown, root_token)
    n_tokens = len(shown.target_tokens)
    if roots is None or not set(roots) <= {i % n_tokens for i in shown.root_tokens}:
        return None
    graph = shown.at_threshold(threshold, roots)
    return GraphView(graph=graph, graph_json=graph.to_json())


def rewalk_graph(graph_json: str | None, threshold: float, *, max_bytes: int | None) -> GraphView:
    """A given graph re-walked at a threshold at or above its own, without the model (``/graph_rewalk``)."""
    threshold = _threshold(threshold)
    graph = graph_from_json(graph_json, max_bytes)
    if threshold < graph.threshold:
        raise InvalidInputError(
            f"This graph was cut at threshold {graph.threshold:g}: it can be re-walked at that threshold or a "
            f"higher one, not at {threshold:g}. Recompute it for a lower threshold (the slider, or /graph_threshold)."
        )
    walked = graph.at_threshold(threshold)
    return GraphView(graph=walked, graph_json=walked.to_json())


def _shown_graph(graph_json: str | None, max_bytes: int | None) -> ContributionGraph | None:
    if not graph_json or not graph_json.strip():
        return None
    try:
        return ContributionGraph.from_json(graph_json, max_bytes=max_bytes)
    except ResultFormatError:
        return None  # not the app's own graph: compute it afresh


def _same_inputs(graph: ContributionGraph, model: str, text: str, target: str | None, renormalize: bool) -> bool:
    """Whether ``graph`` is what :func:`run_graph` computed for these inputs (at some threshold, from some roots)."""
    if graph.renormalized or bool(renormalize) or graph.provenance.model_id != (model or "").strip():
        return False
    given = optional(target)
    if graph.source_text != text or (given is not None and given != graph.target_text):
        return False
    return not (given is None and graph.provenance.model_kind == "causal" and graph.target_text)
    # (a causal graph of a given continuation, now asked without one, needs computing again)


def show_graph(view: GraphView) -> tuple[Any, ...]:
    """The figure (a tap writes into the selection box; the tab has the controls and details) and the graph JSON."""
    return figure_for(view.graph, selection_input=GRAPH_SELECTION_INPUT, controls=False), view.graph_json


@dataclass
class GraphWidgets:
    model: gr.Dropdown
    root: gr.Dropdown
    text: gr.Textbox
    target: gr.Textbox
    src_lang: gr.Textbox
    tgt_lang: gr.Textbox
    threshold: gr.Slider
    renormalize: gr.Checkbox
    run: gr.Button
    plot: gr.Plot
    selection: graph_selection.SelectionWidgets
    graph_json: gr.Code

    @property
    def inputs(self) -> list[Any]:
        """``/graph``'s inputs, in its parameters' order."""
        return [self.model, self.text, self.target, self.threshold, self.renormalize, self.root]


def _layout(page: Page) -> GraphWidgets:
    with gr.Row():
        model = page.model_dropdown(elem_id="graph-model")
        root = gr.Dropdown(
            ROOT_TOKEN_CHOICES,
            value=DEFAULT_ROOT,
            label="Routes from (root token)",
            allow_custom_value=True,
            elem_id="graph-root",
        )
    text = gr.Textbox(label="Prompt (or source sentence)", lines=2, elem_id="graph-text")
    target = gr.Textbox(label="Target text (seq2seq: the translation to explain; optional)")
    src_lang, tgt_lang = language_boxes("graph")
    with gr.Row():
        threshold = gr.Slider(
            0.0,
            0.5,
            value=0.04,
            step=0.01,
            label="Threshold (type a value and press Enter, or drag)",
            elem_id="graph-threshold",
            elem_classes=[ENTER_APPLIES],
        )
        renormalize = gr.Checkbox(label="Renormalise kept edges", value=False)
    run = gr.Button("Build graph", variant="primary", elem_id="graph-run")
    plot = gr.Plot(label="Contribution graph", show_label=False, elem_id="graph-plot")
    selection = graph_selection.layout()
    with gr.Accordion("Graph JSON", open=False):
        graph_json = gr.Code(language="json", label="Contribution graph", interactive=False)
    return GraphWidgets(
        model, root, text, target, src_lang, tgt_lang, threshold, renormalize, run, plot, selection, graph_json
    )


def _endpoints(ctx: AppContext) -> tuple[Any, Any]:
    """``/graph`` and ``/graph_threshold``: their parameters are the API's (names and defaults)."""

    @user_errors
    def graph(
        model,
        text,
        target,
        threshold,
        renormalize,
        root,
        src_lang=None,
        tgt_lang=None,
        progress=TRACK_PROGRESS,
    ):
        inputs = (model, text, target, threshold, renormalize, root, src_lang, tgt_lang)
        return run_graph(ctx, *inputs, progress=reporter(progress))

    @user_errors
    def rethreshold(
        model,
        text,
        target,
        threshold,
        renormalize,
        root,
        shown=None,
        src_lang=None,
        tgt_lang=None,
        progress=TRACK_PROGRESS,
    ):
        inputs = (model, text, target, threshold, renormalize, root, shown, src_lang, tgt_lang)
        return rethreshold_graph(ctx, *inputs, progress=reporter(progress))

    return graph, rethreshold


def _cheap_steps(max_bytes: int | None) -> tuple[Any, Any, Any]:
    """The controls' cheap step (and how it is shown) and ``/graph_rewalk``: none of them can reach a model."""
    recompute_requests = itertools.count(1)  # values of the recompute box: each one new

    @user_errors
    def rewalk_shown(model, text, target, threshold, renormalize, root, shown, src_lang, tgt_lang, progress=None):
        """The controls' cheap step: the shown graph re-walked, or None (then it is recomputed)."""
        inputs = (model, text, target, threshold, renormalize, root, shown, src_lang, tgt_lang)
        return rewalked_shown_graph(*inputs, max_bytes=max_bytes)  # no progress: no wait

    def show_rewalk(view: GraphView | None) -> tuple[Any, ...]:
        """The re-walked graph, or a new value in the recompute box, which starts the recomputation."""
        if view is None:
            return gr.skip(), gr.skip(), next(recompute_requests)
        return *show_graph(view), gr.skip()

    @user_errors
    def rewalk(graph_json, threshold):
        return show_graph(rewalk_graph(graph_json, threshold, max_bytes=max_bytes))

    return rewalk_shown, show_rewalk, rewalk


def _connect(page: Page, shown: GraphWidgets) -> None:
    graph, rethreshold = _endpoints(page.ctx)
    rewalk_shown, show_rewalk, rewalk = _cheap_steps(page.ctx.config.max_result_bytes)
    groups, outputs = page.groups, [shown.plot, shown.graph_json]
    inputs = [*shown.inputs, shown.src_lang, shown.tgt_lang]
    view = views.View("graph", page.latest, outputs, (None, ""), graph, show_graph, page.examples)
    view.on(shown.run.click, inputs, api_name="graph", **groups["graph"])
    view.on(shown.text.submit, inputs, **groups["graph"])
    # The threshold slider and the roots menu: a cheap step re-walks the shown graph when that is exact (no
    # model; the graph stays until then); otherwise it writes a new value into the recompute box, whose change
    # recomputes the graph in the graph group. /graph_threshold (may recompute) is that second step.
    threshold_inputs = [*shown.inputs, shown.graph_json, shown.src_lang, shown.tgt_lang]  # new inputs last
    recompute = gr.Number(0, precision=0, visible="hidden", label="graph to recompute")
    rethresholded = views.View("graph", page.latest, outputs, (None, gr.skip()), rethreshold, show_graph, page.examples)
    rethresholded.on(recompute.change, threshold_inputs, api_name="graph_threshold", **groups["graph"])
    cleared = (None, gr.skip(), gr.skip())
    rewalked = views.View(
        "graph", page.latest, [*outputs, recompute], cleared, rewalk_shown, show_rewalk, page.examples
    )
    rewalked.on(shown.threshold.release, threshold_inputs, **groups["light"])
    rewalked.on(shown.root.input, threshold_inputs, **groups["light"])
    gr.Button(visible=False, elem_id="api-graph_rewalk").click(
        rewalk, [shown.graph_json, shown.threshold], outputs, api_name="graph_rewalk", **groups["light"]
    )
    page.offer_examples(view, graph_examples, inputs, "graph")


def build(page: Page) -> None:
    with gr.Tab("Contribution graph", id="graph") as tab:
        shown = _layout(page)
        # Ablate beside the graph: right under its details, above the examples (which _connect places).
        ablate_ids = ablate.build(
            page, shown.model, shown.text, shown.target, shown.graph_json, shown.selection, shown.threshold
        )
        graph_neurons.build(page, shown.model, shown.graph_json, shown.selection.selection, ablate_ids)
        graph_lens.build(page, shown.model, shown.graph_json)
        _connect(page, shown)
        graph_selection.connect(page, shown.graph_json, shown.root, shown.selection)
    page.results["Contribution graph"] = Shown(tab, shown.graph_json)
