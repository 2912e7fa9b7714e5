"""What the Space's buttons do, as plain functions of widget values (no Gradio in here).

``space/app.py`` wires these to widgets and turns :class:`AttributionExplorerError` into
``gr.Error``; the tests call them directly too. Each handler checks its input, loads the model
through the app's bounded cache, calls the library and returns plain data ready to show.
"""

from __future__ import annotations

import html
import math
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attribution.errors import InvalidInputError
from attribution.models import BUNDLED_MODELS, LoadedModel, ModelCache, load_model
from attribution.results import AttributionResult, Comparison, ContributionGraph, ResultType, load_result
from space.config import ModelOffer, SpaceConfig
from space.inputs import parse_root_tokens

#: ``report(fraction in [0, 1], message)``: how handlers tell the UI how far along they are.
Progress = Callable[[float, str], None]

EXPORT_FORMATS = {
    "HTML page (self-contained, works offline)": "standalone",
    "Blog snippet (script + div)": "snippet",
    "Result JSON": "json",
}
ROOT_TOKEN_CHOICES = [("last token", "-1"), ("all tokens", "all")]


def _silent(fraction: float, message: str) -> None:
    """The default progress reporter: nobody is watching."""


@dataclass
class AppContext:
    """Everything a running app shares between requests: config, offered models, model cache."""

    config: SpaceConfig
    offer: ModelOffer
    cache: ModelCache
    export_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="attribution-explorer-")))

    @classmethod
    def create(cls, config: SpaceConfig, offer: ModelOffer) -> AppContext:
        cache = ModelCache(max_models=config.cache_max_models, max_bytes=int(config.cache_max_gb * 1024**3))
        return cls(config=config, offer=offer, cache=cache)

    def check_model(self, name: str | None) -> str:
        """The model name if this app may load it, else a user error naming what it offers."""
        name = (name or "").strip()
        if not name:
            raise InvalidInputError("Choose a model first.")
        if name in self.offer.models:
            return name
        offered = ", ".join(self.offer.models)
        if not self.offer.custom_allowed:
            if self.offer.notice:  # offline: the Hub cannot be reached, so a typed id cannot be loaded
                raise InvalidInputError(
                    f"This app cannot load {name!r}: the Hugging Face Hub is unreachable from it, so it offers only "
                    f"the models it has locally: {offered}."
                )
            raise InvalidInputError(f"Unknown model {name!r}: this app offers only {offered}.")
        if name.startswith((".", "/", "~", "\\")) or ".." in name or name.count("/") > 1:
            raise InvalidInputError(f"{name!r} is not a Hugging Face model id (use the form 'user/model').")
        return name

    def load(self, name: str | None) -> LoadedModel:
        name = self.check_model(name)
        return load_model(name, device=self.config.device, dtype=self.config.dtype, cache=self.cache)


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


def run_attribution(
    ctx: AppContext,
    model: str,
    text: str,
    target: str | None,
    method: str,
    step_scores: Sequence[str] | None,
    contrast_target: str | None,
    progress: Progress = _silent,
) -> AttributeView:
    from attribution.inseq_runner import attribute, check_supported

    _check_method(ctx, method)
    progress(0.0, f"loading {model}")
    loaded = ctx.load(model)
    check_supported(loaded, method)
    result = attribute(
        loaded,
        text,
        method=method,
        target=_optional(target),
        step_scores=tuple(step_scores or ()),
        contrast_target=_optional(contrast_target),
        method_params=ctx.config.method_params.get(method),
        max_new_tokens=ctx.config.max_new_tokens,
        max_tokens=ctx.config.max_input_tokens,
        progress=lambda done, total, message="": progress(done / max(total, 1), message or method),
    )
    headers, rows = step_score_table(result)
    return AttributeView(result, generated_tokens_html(result), rows, headers, result.to_json())


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
    progress: Progress = _silent,
) -> GraphView:
    from attribution.contributions import build_contribution_graph

    threshold = float(threshold)
    if not 0.0 <= threshold < 1.0:
        raise InvalidInputError(f"The threshold must be in [0, 1), not {threshold}.")
    root = parse_root_tokens(root_token)
    progress(0.0, f"loading {model}")
    graph = build_contribution_graph(
        ctx.load(model),
        text,
        target=_optional(target),
        threshold=threshold,
        root_tokens=root,
        renormalize=bool(renormalize),
        max_tokens=ctx.config.max_input_tokens,
        progress=progress,
    )
    return GraphView(graph=graph, graph_json=graph.to_json())


def graph_choices(graph_json: str | None) -> GraphChoices:
    """The menu choices for a shown graph (the generic ones before the first graph).

    Labels come from :mod:`exporters.graph_details`, like the figure's: tokens as text, a root as
    ``"last token (14: ·to)"``, a node as ``"·Mary (3) · L2 after attention"``.
    """
    from exporters.graph_details import ALL_TOKENS, ATTENTION_KINDS, GraphWords, edge_key

    if not graph_json or not graph_json.strip():
        return GraphChoices(list(ROOT_TOKEN_CHOICES), [], [])
    graph = ContributionGraph.from_json(graph_json)
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


def _graph_from_json(graph_json: str | None) -> ContributionGraph:
    if not graph_json or not graph_json.strip():
        raise InvalidInputError("Compute a contribution graph first.")
    return ContributionGraph.from_json(graph_json)


#: Columns of the node table (the same rows as the figure's tap panel).
NODE_TABLE_HEADERS = ["list", "#", "token / neuron", "value", "raw"]
EDGE_TABLE_HEADERS = ["head", "weight"]


def node_details(graph_json: str | None, node_id: str | None) -> list[list[Any]]:
    """Rows (list, rank, token as text or neuron, value, raw token or neuron index) of a node.

    The logit-lens top tokens, promoted and suppressed tokens and top FFN neurons: the rows of
    :meth:`exporters.graph_details.GraphWords.node_rows`, which the figure's tap panel shows too.
    """
    from exporters.figure_common import shown_value
    from exporters.graph_details import GraphWords

    if not node_id:
        return []
    graph = _graph_from_json(graph_json)
    try:
        node = graph.node(node_id)
    except KeyError as error:
        raise InvalidInputError(f"No node {node_id!r} in this graph: recompute it.") from error
    rows = GraphWords(graph).node_rows(node)
    return [[row.list, row.rank, row.item, float(shown_value(row.value)), row.raw] for row in rows]


def edge_details(graph_json: str | None, key: str | None) -> list[list[Any]]:
    """Rows (head, weight) of an attention edge: how its contribution splits over heads."""
    from exporters.figure_common import shown_value
    from exporters.graph_details import ATTENTION_KINDS, GraphWords, edge_rows

    if not key:
        return []
    edge = GraphWords(_graph_from_json(graph_json)).find_edge(key)
    if edge is None:
        raise InvalidInputError(f"No edge {key!r} in this graph: recompute it.")
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


def graph_selection(graph_json: str | None, selected: str | None) -> Selection:
    """Details of ``selected``: a node id, or an edge key as :func:`exporters.graph_details.edge_key` writes it.

    The figure writes the tapped item's id into the app's selection box; the menus write theirs.
    Nothing selected (or no graph yet) gives empty tables.
    """
    from exporters.graph_details import ATTENTION_KINDS, GraphWords

    selected = (selected or "").strip()
    if not graph_json or not graph_json.strip() or not selected:
        return Selection(None, "", [], None, "", [])
    graph = ContributionGraph.from_json(graph_json)
    words = GraphWords(graph)
    edge = words.find_edge(selected)
    if edge is not None:
        rows = edge_details(graph_json, selected) if edge.kind in ATTENTION_KINDS else []
        key = selected if edge.kind in ATTENTION_KINDS else None
        return Selection(None, "", [], key, words.edge_title(edge), rows)
    try:
        node = graph.node(selected)
    except KeyError as error:
        raise InvalidInputError(f"No node or edge {selected!r} in this graph: recompute it.") from error
    return Selection(selected, words.node_title(node), node_details(graph_json, selected), None, "", [])


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
    progress: Progress = _silent,
) -> CompareView:
    """Attribute one input with every (model, method) pair, all on the same target, and compare them.

    Without a target, the first pair's generated output becomes the forced target of the others,
    so every result explains the same tokens and their cells line up.
    """
    from attribution.compare import compare
    from attribution.inseq_runner import attribute, check_supported

    models = [models] if isinstance(models, str) else list(models or [])
    methods = list(methods or [])
    if not models or not methods:
        raise InvalidInputError("Choose at least one model and one method to compare.")
    runs = [(model, method) for model in models for method in methods]
    if len(runs) > MAX_COMPARED_RUNS:
        raise InvalidInputError(f"{len(runs)} model × method pairs is too many: at most {MAX_COMPARED_RUNS}.")
    for method in methods:
        _check_method(ctx, method)
    loaded_models = {}
    for model in models:  # check everything before the first long run
        loaded_models[model] = ctx.load(model)
        for method in methods:
            check_supported(loaded_models[model], method)
    _check_same_kind(loaded_models)
    forced_target = _optional(target)
    results = []
    for i, (model, method) in enumerate(runs):
        loaded = loaded_models[model]

        def report(done: int, total: int, message: str = "", i: int = i, label: str = f"{model} / {method}") -> None:
            progress((i + done / max(total, 1)) / len(runs), f"{label} {message}".strip())

        result = attribute(
            loaded,
            text,
            method=method,
            target=forced_target,
            step_scores=(),
            method_params=ctx.config.method_params.get(method),
            max_new_tokens=ctx.config.max_new_tokens,
            max_tokens=ctx.config.max_input_tokens,
            progress=report,
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


def _result_from_json(result_json: str | None, what: str) -> ResultType:
    if not result_json or not result_json.strip():
        raise InvalidInputError(f"Nothing to export yet: run the {what} tab first.")
    try:
        return load_result(result_json)
    except (ValueError, KeyError, TypeError) as error:
        raise InvalidInputError(f"The {what} result cannot be read back: {error}") from error


def _file_stem(result: ResultType) -> str:
    if isinstance(result, AttributionResult):
        parts = ["attribution", result.provenance.model_id, result.method]
    elif isinstance(result, ContributionGraph):
        parts = ["contribution-graph", result.provenance.model_id]
    else:
        parts = ["comparison", *result.labels[:3]]
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", "_".join(parts)).strip("-")[:100]


@dataclass
class ExportView:
    path: Path  # the file to download
    preview_html: str | None  # ``<iframe srcdoc=…>`` of the page (None for JSON)


#: Export files older than this are deleted (Gradio has served its own copy long before).
EXPORT_MAX_AGE_S = 3600


def prune_exports(export_dir: Path, max_age_s: float = EXPORT_MAX_AGE_S) -> None:
    """Delete export folders older than ``max_age_s`` so a long-running app does not fill its disk."""
    cutoff = time.time() - max_age_s
    for folder in export_dir.iterdir():
        if folder.is_dir() and folder.stat().st_mtime < cutoff:
            shutil.rmtree(folder, ignore_errors=True)


def make_export(ctx: AppContext, result_json: str | None, what: str, export_format: str) -> ExportView:
    """Write the chosen result as a page, snippet or JSON into a fresh file for download."""
    from exporters import export_result
    from exporters.page import iframe_snippet

    if export_format not in EXPORT_FORMATS:
        raise InvalidInputError(f"Unknown export format {export_format!r}; choose one of {', '.join(EXPORT_FORMATS)}.")
    result = _result_from_json(result_json, what)
    mode = EXPORT_FORMATS[export_format]
    prune_exports(ctx.export_dir)
    folder = Path(tempfile.mkdtemp(dir=ctx.export_dir))
    stem = _file_stem(result)
    if mode == "json":
        path = folder / f"{stem}.json"
        result.to_json(path)
        return ExportView(path, None)
    export = export_result(result, mode=mode)
    path = Path(export.write(folder / f"{stem}{'-snippet' if mode == 'snippet' else ''}.html"))
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
    from exporters.hub import HubPushError, push_export

    repo_id = (repo_id or "").strip()
    if not repo_id:
        raise InvalidInputError("Type the Hub repository to push to, e.g. 'your-name/attribution-demo'.")
    token = (token or "").strip()
    if not token:
        raise InvalidInputError("Log in with Hugging Face or paste a write token to push to the Hub.")
    result = _result_from_json(result_json, what)
    export = export_result(result, mode="standalone")
    endpoint = ctx.config.hub_endpoint or os.environ.get("HF_ENDPOINT") or None
    try:
        return push_export(export, result, repo_id, repo_type="dataset", token=token, endpoint=endpoint)
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
