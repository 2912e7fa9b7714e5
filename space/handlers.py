"""What the Space's buttons do, as plain functions of widget values (no Gradio in here).

``space/app.py`` wires these to widgets and turns :class:`AttributionExplorerError` into
``gr.Error``; the tests call them directly too. Each handler checks its input, loads the model
through the app's bounded cache, calls the library and returns plain data ready to show.
"""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attribution.budget import TimeBudget, time_budget
from attribution.errors import InvalidInputError, ResultFormatError
from attribution.models import BUNDLED_MODELS, LoadedModel, ModelCache, check_hub_id, load_model
from attribution.results import AttributionResult, Comparison, ContributionGraph, ResultType, load_result
from space.config import ModelOffer, SpaceConfig
from space.export_store import DEFAULT_ROOT, ExportStore, safe_file_name
from space.inputs import parse_root_tokens

logger = logging.getLogger("attribution_explorer.space")

#: ``report(fraction in [0, 1], message)``: how handlers tell the UI how far along they are.
Progress = Callable[[float, str], None]

EXPORT_FORMATS = {
    "HTML page (self-contained, works offline)": "standalone",
    "Blog snippet (script + div)": "snippet",
    "Result JSON": "json",
}
ROOT_TOKEN_CHOICES = [("last token", "-1"), ("all tokens", "all")]
#: Added to a time-budget message: what to try instead.
BUDGET_HINT = "Try a shorter text or target, fewer methods, or a cheaper method (saliency, attention)."
#: Longest gold alignment accepted (Pharaoh links of a long sentence pair fit in far less).
MAX_ALIGNMENT_CHARS = 20_000


def _silent(fraction: float, message: str) -> None:
    """The default progress reporter: nobody is watching."""


def budget_checking(budget: TimeBudget, progress: Progress) -> Progress:
    """``progress`` that first checks ``budget``: long stretches without a forward pass are stopped there too."""

    def report(fraction: float, message: str) -> None:
        budget.check()
        progress(fraction, message)

    return report


@dataclass
class AppContext:
    """Everything a running app shares between requests: config, offered models, model cache, export files."""

    config: SpaceConfig
    offer: ModelOffer
    cache: ModelCache
    exports: ExportStore | None = None

    def __post_init__(self) -> None:
        if self.exports is None:
            self.exports = _export_store(self.config, DEFAULT_ROOT)

    @classmethod
    def create(cls, config: SpaceConfig, offer: ModelOffer, *, export_root: Path | None = None) -> AppContext:
        cache = ModelCache(max_models=config.cache_max_models, max_bytes=int(config.cache_max_gb * 1024**3))
        return cls(config=config, offer=offer, cache=cache, exports=_export_store(config, export_root or DEFAULT_ROOT))

    @property
    def export_dir(self) -> Path:
        """This app's folder of download files."""
        return self.exports.folder

    def check_model(self, name: str | None) -> str:
        """The model name if this app may load it, else a user error naming what it offers.

        Offered models (the operator's config: Hub ids or local folders) load as they are; a typed name
        must be a Hub id and is never resolved against this server's files.
        """
        name = (name or "").strip()
        if not name:
            raise InvalidInputError("Choose a model first.")
        if name in self.offer.models:
            return name
        if not self.offer.custom_allowed:
            shown = repr(name) if len(name) <= 100 else f"{name[:100]!r}…"
            offered = ", ".join(self.offer.models)
            if self.offer.notice:  # offline: the Hub cannot be reached, so a typed id cannot be loaded
                raise InvalidInputError(
                    f"This app cannot load {shown}: the Hugging Face Hub is unreachable from it, so it offers only "
                    f"the models it has locally: {offered}."
                )
            raise InvalidInputError(f"Unknown model {shown}: this app offers only {offered}.")
        return check_hub_id(name)

    def load(self, name: str | None) -> LoadedModel:
        name = self.check_model(name)
        return load_model(
            name,
            device=self.config.device,
            dtype=self.config.dtype,
            cache=self.cache,
            allow_local=name in self.offer.models,
        )


def _export_store(config: SpaceConfig, root: Path) -> ExportStore:
    return ExportStore(root, max_age_s=config.export_max_age_s, max_bytes=int(config.export_max_mb * 1024**2))


# --------------------------------------------------------------------------------------------- attribute


@dataclass
class AttributeView:
    """One attribution run, ready to show: the result, its generated tokens and their step scores."""

    result: AttributionResult
    tokens_html: str  # the generated tokens as text, coloured by probability (escaped HTML)
    step_table: list[list[Any]]  # one row per generated token: index, token (as text), step scores...
    step_headers: list[str]
    result_json: str


def _optional(text: str | None) -> str | None:
    return text if text and text.strip() else None


def _language_codes(src_lang: str | None, tgt_lang: str | None) -> tuple[str | None, str | None]:
    """The typed language codes, format-checked and bounded before any model is loaded (empty: not set)."""
    from attribution.languages import check_code_text

    return check_code_text(src_lang, role="source language"), check_code_text(tgt_lang, role="target language")


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
    progress: Progress = _silent,
) -> AttributeView:
    """``src_lang`` / ``tgt_lang``: language codes of a multilingual translation model (NLLB ``eng_Latn``)."""
    from attribution.inseq_runner import attribute, check_supported
    from attribution.languages import check_languages

    _check_method(ctx, method)
    src_lang, tgt_lang = _language_codes(src_lang, tgt_lang)
    progress(0.0, f"loading {model}")
    loaded = ctx.load(model)
    check_supported(loaded, method)
    check_languages(loaded, src_lang, tgt_lang)
    arguments = {
        "method": method,
        "target": _optional(target),
        "step_scores": tuple(step_scores or ()),
        "contrast_target": _optional(contrast_target),
        "method_params": ctx.config.method_params.get(method),
        "max_new_tokens": ctx.config.max_new_tokens,
    }
    _check_cost(ctx, [(loaded, text, arguments)], "This attribution")
    with time_budget(loaded, ctx.config.time_budget_s, what="The attribution", hint=BUDGET_HINT) as budget:

        def report(done: int, total: int, message: str = "") -> None:
            budget.check()
            progress(done / max(total, 1), message or method)

        result = attribute(
            loaded,
            text,
            **arguments,
            max_tokens=ctx.config.max_input_tokens,
            progress=report,
            src_lang=src_lang,
            tgt_lang=tgt_lang,
        )
    headers, rows = step_score_table(result)
    return AttributeView(result, generated_tokens_html(result), rows, headers, result.to_json())


def _check_cost(ctx: AppContext, runs: list[tuple[LoadedModel, str, dict[str, Any]]], what: str) -> None:
    """Refuse a request whose attribution runs would need more model passes than the config allows.

    Texts are checked first (length, Unicode), so the estimate never tokenizes a text refused anyway.
    """
    from attribution.cost import check_cost, estimate_attribution_cost

    if ctx.config.max_model_passes is None:
        return
    estimates = []
    for loaded, text, arguments in runs:
        for role, value in (("input text", text), ("target", arguments.get("target"))):
            if value:
                loaded.validate_text(value, role=role, max_tokens=ctx.config.max_input_tokens)
        estimates.append(estimate_attribution_cost(loaded, text, **arguments))
    check_cost(estimates, ctx.config.max_model_passes, what=what)


def _check_method(ctx: AppContext, method: str) -> None:
    methods = offered_methods(ctx.config)
    if method not in methods:
        raise InvalidInputError(f"Unknown method {method!r}: choose one of {', '.join(methods)}.")


def offered_methods(config: SpaceConfig) -> list[str]:
    """The config's methods (default: all) that run on at least one architecture here."""
    from attribution.capabilities import TESTED_FAMILIES, refusal_reason
    from attribution.inseq_runner import available_methods

    runnable = [
        method
        for method in available_methods()
        if any(refusal_reason(method, kind, family) is None for family, kind in TESTED_FAMILIES.items())
    ]
    return [m for m in config.methods if m in runnable] if config.methods else runnable


def figure_for(result: ResultType, **options: Any) -> Any:
    """A fresh Bokeh layout for ``gr.Plot`` (a layout belongs to one document, so one per request)."""
    from exporters.bokeh_html import build_figure

    return build_figure(result, **options)


#: What the step-score table shows before any result (Gradio would otherwise number the columns).
EMPTY_STEP_TABLE_HEADERS = ["step", "token"]


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


# ------------------------------------------------------------------------------------- contribution graph


@dataclass
class GraphView:
    graph: ContributionGraph
    graph_json: str


@dataclass
class GraphChoices:
    """What the graph tab's dropdowns offer once a graph is shown: (label, value) pairs."""

    roots: list[tuple[str, str]]  # "last token (…)", "all tokens", then each target token
    nodes: list[tuple[str, str]]  # node ids
    attention_edges: list[tuple[str, str]]  # edge keys ("source->target") of edges with a per-head split


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
    progress: Progress = _silent,
) -> GraphView:
    """``src_lang`` / ``tgt_lang``: language codes of a multilingual translation model (NLLB ``eng_Latn``)."""
    from attribution.contributions import build_contribution_graph

    threshold = _threshold(threshold)
    root = parse_root_tokens(root_token)
    src_lang, tgt_lang = _language_codes(src_lang, tgt_lang)
    progress(0.0, f"loading {model}")
    loaded = ctx.load(model)
    with time_budget(loaded, ctx.config.time_budget_s, what="The contribution graph", hint=BUDGET_HINT) as budget:
        report = budget_checking(budget, progress)
        graph = build_contribution_graph(
            loaded,
            text,
            target=_optional(target),
            threshold=threshold,
            root_tokens=root,
            renormalize=bool(renormalize),
            max_tokens=ctx.config.max_input_tokens,
            progress=report,
            src_lang=src_lang,
            tgt_lang=tgt_lang,
        )
    return GraphView(graph=graph, graph_json=graph.to_json())


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
    progress: Progress = _silent,
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
    """The threshold slider's cheap path: the shown graph re-walked, or None when only the model can answer.

    Exact when ``graph_json`` is the graph of these very inputs (model, text, target, roots, languages, not
    renormalised) and the new threshold is at least the one it was cut at (see
    :meth:`ContributionGraph.at_threshold`). It takes no app context, so it cannot reach a model: the app
    runs it with the cheap requests and queues the recomputation (None) with the model runs.
    """
    threshold = _threshold(threshold)
    languages = _language_codes(src_lang, tgt_lang)
    shown = _shown_graph(graph_json, max_bytes)
    if (
        shown is None
        or shown.threshold > threshold
        or (shown.provenance.source_language, shown.provenance.target_language) != languages
        or not _same_inputs(shown, model, text, target, renormalize, root_token)
    ):
        return None
    graph = shown.at_threshold(threshold)
    return GraphView(graph=graph, graph_json=graph.to_json())


def rewalk_graph(graph_json: str | None, threshold: float, *, max_bytes: int | None) -> GraphView:
    """A given graph re-walked at a threshold at or above its own, without the model (``/graph_rewalk``)."""
    threshold = _threshold(threshold)
    graph = _graph_from_json(graph_json, max_bytes)
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


def _same_inputs(
    graph: ContributionGraph, model: str, text: str, target: str | None, renormalize: bool, root: str | int | None
) -> bool:
    """Whether ``graph`` is what :func:`run_graph` computed for these inputs (at some threshold)."""
    if graph.renormalized or bool(renormalize) or graph.provenance.model_id != (model or "").strip():
        return False
    given = _optional(target)
    if graph.source_text != text or (given is not None and given != graph.target_text):
        return False
    if given is None and graph.provenance.model_kind == "causal" and graph.target_text:
        return False  # a causal graph of a given continuation, now asked without one
    n_tokens = len(graph.target_tokens)
    parsed = parse_root_tokens(root)
    if parsed == "all":
        return sorted(graph.root_tokens) == list(range(n_tokens))
    indices = [parsed] if isinstance(parsed, int) else parsed
    if not all(-n_tokens <= i < n_tokens for i in indices):
        return False  # computing the graph says what is wrong with these roots
    return sorted(graph.root_tokens) == sorted({i % n_tokens for i in indices})


def graph_choices(graph_json: str | None, *, max_bytes: int | None = None) -> GraphChoices:
    """The menu choices for a shown graph (the generic ones before the first graph).

    Labels come from :mod:`exporters.graph_details`, like the figure's: tokens as text, a root as
    ``"last token (14: ·to)"``, a node as ``"·Mary (3) · L2 after attention"``.
    """
    from exporters.graph_details import ALL_TOKENS, ATTENTION_KINDS, GraphWords, edge_key

    if not graph_json or not graph_json.strip():
        return GraphChoices(list(ROOT_TOKEN_CHOICES), [], [])
    graph = _graph_from_json(graph_json, max_bytes)
    words = GraphWords(graph)
    last = len(graph.target_tokens) - 1
    roots = [(words.root_label(last), "-1"), (ALL_TOKENS, "all")]
    roots += [(words.root_label(i), str(i)) for i in range(last)]
    return GraphChoices(
        roots=roots,
        nodes=[(words.node_place(node), node.id) for node in graph.nodes],
        attention_edges=[
            (words.edge_title(edge), edge_key(edge)) for edge in graph.edges if edge.kind in ATTENTION_KINDS
        ],
    )


def _graph_from_json(graph_json: str | None, max_bytes: int | None) -> ContributionGraph:
    if not graph_json or not graph_json.strip():
        raise InvalidInputError("Compute a contribution graph first.")
    result = read_result_json(graph_json, "contribution graph", max_bytes=max_bytes)
    if not isinstance(result, ContributionGraph):
        raise _refusal("contribution graph", max_bytes)
    return result


#: Columns of the node table (the same rows as the figure's tap panel).
NODE_TABLE_HEADERS = ["list", "#", "token / neuron", "value", "raw"]
EDGE_TABLE_HEADERS = ["head", "weight"]


def node_details(graph_json: str | None, node_id: str | None, *, max_bytes: int | None = None) -> list[list[Any]]:
    """Rows (list, rank, token as text or neuron, value, raw token or neuron index) of a node.

    The logit-lens top tokens, promoted and suppressed tokens and top FFN neurons: the rows of
    :meth:`exporters.graph_details.GraphWords.node_rows`, which the figure's tap panel shows too.
    """
    from exporters.figure_common import shown_value
    from exporters.graph_details import GraphWords

    if not node_id:
        return []
    graph = _graph_from_json(graph_json, max_bytes)
    try:
        node = graph.node(node_id)
    except KeyError as error:
        raise InvalidInputError(f"No node {node_id[:100]!r} in this graph: recompute it.") from error
    rows = GraphWords(graph).node_rows(node)
    return [[row.list, row.rank, row.item, float(shown_value(row.value)), row.raw] for row in rows]


def edge_details(graph_json: str | None, key: str | None, *, max_bytes: int | None = None) -> list[list[Any]]:
    """Rows (head, weight) of an attention edge: how its contribution splits over heads."""
    from exporters.figure_common import shown_value
    from exporters.graph_details import ATTENTION_KINDS, GraphWords, edge_rows

    if not key:
        return []
    edge = GraphWords(_graph_from_json(graph_json, max_bytes)).find_edge(key)
    if edge is None:
        raise InvalidInputError(f"No edge {key[:200]!r} in this graph: recompute it.")
    if edge.kind not in ATTENTION_KINDS:
        raise InvalidInputError("This edge is not an attention edge: it has no per-head split.")
    return [[head, float(shown_value(weight))] for head, weight in edge_rows(edge)]


@dataclass
class Selection:
    """What the graph tab shows for the selected node or edge (tapped in the figure or picked in a menu)."""

    node_id: str | None  # the node menu's value
    node_title: str  # e.g. "node ·Mary (3) · L2 after attention"
    node_rows: list[list[Any]]
    edge_key: str | None  # the edge menu's value (attention edges only)
    edge_title: str
    edge_rows: list[list[Any]]


def graph_selection(graph_json: str | None, selected: str | None, *, max_bytes: int | None = None) -> Selection:
    """Details of ``selected``: a node id, or an edge key as :func:`exporters.graph_details.edge_key` writes it.

    The figure writes the tapped item's id into the app's selection box; the menus write theirs.
    Nothing selected (or no graph yet) gives empty tables.
    """
    from exporters.graph_details import ATTENTION_KINDS, GraphWords

    selected = (selected or "").strip()
    if not graph_json or not graph_json.strip() or not selected:
        return Selection(None, "", [], None, "", [])
    graph = _graph_from_json(graph_json, max_bytes)
    words = GraphWords(graph)
    edge = words.find_edge(selected)
    if edge is not None:
        rows = edge_details(graph_json, selected, max_bytes=max_bytes) if edge.kind in ATTENTION_KINDS else []
        key = selected if edge.kind in ATTENTION_KINDS else None
        return Selection(None, "", [], key, words.edge_title(edge), rows)
    try:
        node = graph.node(selected)
    except KeyError as error:
        raise InvalidInputError(f"No node or edge {selected[:200]!r} in this graph: recompute it.") from error
    rows = node_details(graph_json, selected, max_bytes=max_bytes)
    return Selection(selected, words.node_title(node), rows, None, "", [])


# ---------------------------------------------------------------------------------------------- compare


@dataclass
class CompareView:
    """A comparison ready to show: its figure carries the agreement table (the same one the export has)."""

    comparison: Comparison
    comparison_json: str


#: Most attribution runs one comparison may ask for (each is a full attribution).
MAX_COMPARED_RUNS = 6


def run_comparison(
    ctx: AppContext,
    text: str,
    models: Sequence[str] | str | None,
    methods: Sequence[str] | None,
    target: str | None,
    gold_alignment: str | None,
    src_lang: str | None = None,
    tgt_lang: str | None = None,
    progress: Progress = _silent,
) -> CompareView:
    """Attribute one input with every (model, method) pair, all on the same target, and compare them.

    Without a target, the first pair's generated output becomes the forced target of the others,
    so every result explains the same tokens and their cells line up. ``src_lang`` / ``tgt_lang``
    (multilingual translation models) apply to every model, so every model must know the codes.
    """
    from attribution.compare import compare
    from attribution.inseq_runner import attribute, check_supported
    from attribution.languages import check_languages

    models = [models] if isinstance(models, str) else list(models or [])
    methods = list(methods or [])
    if not models or not methods:
        raise InvalidInputError("Choose at least one model and one method to compare.")
    runs = [(model, method) for model in models for method in methods]
    if len(runs) > MAX_COMPARED_RUNS:
        raise InvalidInputError(f"{len(runs)} model × method pairs is too many: at most {MAX_COMPARED_RUNS}.")
    for method in methods:
        _check_method(ctx, method)
    if gold_alignment and len(gold_alignment) > MAX_ALIGNMENT_CHARS:
        raise InvalidInputError(f"The gold alignment is longer than {MAX_ALIGNMENT_CHARS:,} characters.")
    src_lang, tgt_lang = _language_codes(src_lang, tgt_lang)
    loaded_models = {}
    for model in models:  # check everything before the first long run
        loaded_models[model] = ctx.load(model)
        for method in methods:
            check_supported(loaded_models[model], method)
        check_languages(loaded_models[model], src_lang, tgt_lang)
    _check_same_kind(loaded_models)
    forced_target = _optional(target)

    def arguments(method: str) -> dict[str, Any]:
        return {
            "method": method,
            "target": forced_target,
            "step_scores": (),
            "method_params": ctx.config.method_params.get(method),
            "max_new_tokens": ctx.config.max_new_tokens,
        }

    _check_cost(ctx, [(loaded_models[model], text, arguments(method)) for model, method in runs], "This comparison")
    results = []
    watched = list(loaded_models.values())
    with time_budget(watched, ctx.config.time_budget_s, what="The comparison", hint=BUDGET_HINT) as budget:
        for i, (model, method) in enumerate(runs):

            def report(done: int, total: int, message: str = "", i: int = i, label: str = f"{model} / {method}"):
                budget.check()
                progress((i + done / max(total, 1)) / len(runs), f"{label} {message}".strip())

            result = attribute(
                loaded_models[model],
                text,
                **arguments(method),
                max_tokens=ctx.config.max_input_tokens,
                progress=report,
                src_lang=src_lang,
                tgt_lang=tgt_lang,
            )
            forced_target = forced_target or result.target_text
            results.append(result)
    labels = [f"{model} / {method}" if len(models) > 1 else method for model, method in runs]
    comparison = compare(results, labels, gold_alignment=_optional(gold_alignment))
    return CompareView(comparison, comparison.to_json())


_KIND_WORDS = {
    "causal": "a causal language model (it continues a prompt)",
    "seq2seq": "a sequence-to-sequence model (it translates or rewrites a source sentence)",
}


def _check_same_kind(loaded_models: dict[str, LoadedModel]) -> None:
    """Causal and seq2seq models explain different token sequences of the same text: refuse the mix up front."""
    kinds = {model: loaded.kind for model, loaded in loaded_models.items()}
    if len(set(kinds.values())) > 1:
        described = "; ".join(f"{model} is {_KIND_WORDS.get(kind, kind)}" for model, kind in kinds.items())
        raise InvalidInputError(
            f"These models cannot be compared on one input: {described}. Their attributions cover different "
            "tokens (a prompt and its continuation vs. a source and its translation). Compare causal models "
            "with each other, or sequence-to-sequence models with each other."
        )


# ----------------------------------------------------------------------------------------------- export


def _refusal(what: str, max_bytes: int | None) -> InvalidInputError:
    """The one answer to any result JSON the app refuses, whatever the cause (the cause is only logged)."""
    limit = f"at most {max_bytes / 1024**2:.3g} MB of " if max_bytes else ""
    return InvalidInputError(
        f"The {what} result cannot be read back: it is not a result of this app ({limit}JSON written by its "
        f"{what} tab). Run the {what} tab again."
    )


def read_result_json(text: str, what: str, *, max_bytes: int | None) -> ResultType:
    """Parse a result the browser sends back: JSON text only (never a path), size-capped, schema-checked."""
    try:
        return load_result(text, max_bytes=max_bytes)
    except ResultFormatError as error:
        logger.info("refused a %s result JSON: %s", what, error)
        raise _refusal(what, max_bytes) from None


def _result_from_json(ctx: AppContext, result_json: str | None, what: str) -> ResultType:
    if not result_json or not result_json.strip():
        raise InvalidInputError(f"Nothing to export yet: run the {what} tab first.")
    return read_result_json(result_json, what, max_bytes=ctx.config.max_result_bytes)


def _file_stem(result: ResultType) -> str:
    if isinstance(result, AttributionResult):
        parts = ["attribution", result.provenance.model_id, result.method]
    elif isinstance(result, ContributionGraph):
        parts = ["contribution-graph", result.provenance.model_id]
    elif isinstance(result, Comparison):
        parts = ["comparison", *result.labels[:3]]
    else:  # intervention results (schema "patching", "intervention", ...)
        parts = [result.SCHEMA, result.provenance.model_id]
    return safe_file_name("_".join(parts), default="result")[:100]


@dataclass
class ExportView:
    path: Path  # the file to download
    preview_html: str | None  # ``<iframe srcdoc=…>`` of the page (None for JSON)


def make_export(ctx: AppContext, result_json: str | None, what: str, export_format: str) -> ExportView:
    """Write the chosen result as a page, snippet or JSON into a fresh file for download.

    The content is made first and written only when complete, so a failed export leaves no file.
    """
    from exporters import export_result
    from exporters.page import iframe_snippet

    if export_format not in EXPORT_FORMATS:
        raise InvalidInputError(f"Unknown export format {export_format!r}; choose one of {', '.join(EXPORT_FORMATS)}.")
    result = _result_from_json(ctx, result_json, what)
    mode = EXPORT_FORMATS[export_format]
    stem = _file_stem(result)
    if mode == "json":
        return ExportView(ctx.exports.write(f"{stem}.json", result.to_json()), None)
    export = export_result(result, mode=mode)
    path = ctx.exports.write(f"{stem}{'-snippet' if mode == 'snippet' else ''}.html", export.html)
    preview = export.iframe_html or iframe_snippet(export.html, title=export.title, height=700)
    return ExportView(path, preview)


def push_to_hub(
    ctx: AppContext,
    result_json: str | None,
    what: str,
    repo_id: str | None,
    token: str | None,
) -> str:
    """Commit the standalone page, the result JSON and a README to ``repo_id``; returns the file's URL."""
    import os

    from exporters import export_result
    from exporters.hub import HubPushError, check_repo_id, push_export

    repo_id = (repo_id or "").strip()
    if not repo_id:
        raise InvalidInputError("Type the Hub repository to push to, e.g. 'your-name/attribution-demo'.")
    repo_id = check_repo_id(repo_id)
    token = (token or "").strip()
    if not token:
        raise InvalidInputError("Log in with Hugging Face or paste a write token to push to the Hub.")
    result = _result_from_json(ctx, result_json, what)
    export = export_result(result, mode="standalone")
    endpoint = ctx.config.hub_endpoint or os.environ.get("HF_ENDPOINT") or None
    try:
        return push_export(
            export,
            result,
            repo_id,
            repo_type="dataset",
            token=token,
            endpoint=endpoint,
            timeout=ctx.config.hub_push_timeout_s,
        )
    except HubPushError as error:
        raise HubPushError(for_browser_users(str(error))) from None


def for_browser_users(message: str) -> str:
    """A Hub push error reworded for someone in the app (no local files, no HF_TOKEN, no terminal)."""
    from exporters.hub import KEPT

    message = message.replace(f"; {KEPT}", "").rstrip(". ")
    for cli_words, app_words in (
        ("log in again or set HF_TOKEN", "sign in again or paste another write token"),
        ("run `hf auth login` or set HF_TOKEN", "sign in with Hugging Face or paste a write token"),
    ):
        message = message.replace(cli_words, app_words)
    message = message[:1].upper() + message[1:]
    return f"{message}. Nothing was published; your result is still here (download it with 'Create file')."


def bundled_examples_available(offer: ModelOffer) -> tuple[str, ...]:
    """The bundled models this app offers (examples are shown only for those)."""
    return tuple(m for m in BUNDLED_MODELS if m in offer.models)
