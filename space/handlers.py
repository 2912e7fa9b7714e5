"""What the Space's buttons do, as plain functions of widget values (no Gradio in here).

``space/app.py`` wires these to widgets and turns :class:`AttributionExplorerError` into
``gr.Error``; the tests call them directly too. Each handler checks its input, loads the model
through the app's bounded cache, calls the library and returns plain data ready to show.
"""

from __future__ import annotations

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
    """One attribution run, ready to show: the result, its figure, the generated tokens' scores."""

    result: AttributionResult
    figure: Any  # a Bokeh LayoutDOM for gr.Plot
    highlighted: list[tuple[str, float | None]]  # generated tokens with their probability
    step_table: list[list[Any]]  # one row per generated token: index, token, step scores...
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
    from exporters.bokeh_html import build_figure

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
    probabilities = result.step_scores.get("probability")
    highlighted = [
        (token, None if probabilities is None else round(float(probabilities[i]), 4))
        for i, token in enumerate(result.generated_tokens)
    ]
    return AttributeView(result, build_figure(result), highlighted, rows, headers, result.to_json())


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


def step_score_table(result: AttributionResult) -> tuple[list[str], list[list[Any]]]:
    """Headers and rows (step, token, one column per step score) for the generated tokens."""
    names = list(result.step_scores)
    rows = [
        [step, token, *(round(float(result.step_scores[name][step]), 6) for name in names)]
        for step, token in enumerate(result.generated_tokens)
    ]
    return ["step", "token", *names], rows


# ------------------------------------------------------------------------------------- contribution graph


@dataclass
class GraphView:
    graph: ContributionGraph
    figure: Any
    graph_json: str


@dataclass
class GraphChoices:
    """What the graph tab's dropdowns offer once a graph is shown: (label, value) pairs."""

    roots: list[tuple[str, str]]  # target tokens as routes' roots, plus "last" and "all"
    nodes: list[tuple[str, str]]  # node ids
    attention_edges: list[tuple[str, str]]  # "source->target" keys of edges with a per-head split


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
    from exporters.bokeh_html import build_figure

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
    return GraphView(graph=graph, figure=build_figure(graph), graph_json=graph.to_json())


def graph_choices(graph_json: str | None) -> GraphChoices:
    """The dropdown choices for a shown graph (none before the first graph)."""
    if not graph_json or not graph_json.strip():
        return GraphChoices(list(ROOT_TOKEN_CHOICES), [], [])
    graph = ContributionGraph.from_json(graph_json)
    return GraphChoices(
        roots=[*ROOT_TOKEN_CHOICES, *((f"{i}: {token}", str(i)) for i, token in enumerate(graph.target_tokens))],
        nodes=[(node_label(graph, node.id), node.id) for node in graph.nodes],
        attention_edges=[
            (edge_label(graph, e.source, e.target, e.weight), edge_key(e.source, e.target))
            for e in graph.edges
            if e.head_weights is not None
        ],
    )


def edge_key(source: str, target: str) -> str:
    return f"{source}->{target}"


def edge_label(graph: ContributionGraph, source: str, target: str, weight: float) -> str:
    return f"{node_label(graph, source)} → {node_label(graph, target)} ({weight:.3f})"


def node_label(graph: ContributionGraph, node_id: str) -> str:
    node = graph.node(node_id)
    tokens = graph.source_tokens if node.side == "encoder" else graph.target_tokens
    side = f"{node.side} " if graph.source_tokens and graph.n_encoder_layers else ""
    return f"{side}L{node.layer} {node.kind} · {node.token_index}:{tokens[node.token_index]}"


def _graph_from_json(graph_json: str | None) -> ContributionGraph:
    if not graph_json or not graph_json.strip():
        raise InvalidInputError("Compute a contribution graph first.")
    return ContributionGraph.from_json(graph_json)


def node_details(graph_json: str | None, node_id: str | None) -> list[list[Any]]:
    """Rows (list, rank, token or neuron, value): logit-lens top tokens, promoted, suppressed, FFN neurons."""
    graph = _graph_from_json(graph_json)
    if not node_id:
        return []
    try:
        node = graph.node(node_id)
    except KeyError as error:
        raise InvalidInputError(f"No node {node_id!r} in this graph: recompute it.") from error
    rows: list[list[Any]] = []
    for name, pairs in (
        ("logit lens", node.top_tokens),
        ("promoted", node.promoted),
        ("suppressed", node.suppressed),
        ("top neuron", node.top_neurons),
    ):
        rows += [[name, rank, str(item), round(float(value), 6)] for rank, (item, value) in enumerate(pairs, 1)]
    return rows


def edge_details(graph_json: str | None, key: str | None) -> list[list[Any]]:
    """Rows (head, weight) of an attention edge: how its contribution splits over heads."""
    graph = _graph_from_json(graph_json)
    if not key:
        return []
    for edge in graph.edges:
        if edge_key(edge.source, edge.target) == key:
            if edge.head_weights is None:
                raise InvalidInputError("This edge is not an attention edge: it has no per-head split.")
            return [[head, round(float(w), 6)] for head, w in enumerate(edge.head_weights)]
    raise InvalidInputError(f"No edge {key!r} in this graph: recompute it.")


# ---------------------------------------------------------------------------------------------- compare


@dataclass
class CompareView:
    comparison: Comparison
    figure: Any
    correlation_headers: list[str]
    correlation_rows: list[list[Any]]
    aer_rows: list[list[Any]]  # label, AER (empty without a gold alignment)
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
    from exporters.bokeh_html import build_figure

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
    headers = ["", *labels]
    rows = [
        [label, *(None if v is None else round(float(v), 4) for v in row)]
        for label, row in zip(labels, comparison.rank_correlation, strict=True)
    ]
    aer_rows = (
        [
            [label, None if aer is None else round(float(aer), 4)]
            for label, aer in zip(labels, comparison.aer, strict=True)
        ]
        if comparison.gold_alignment
        else []
    )
    return CompareView(comparison, build_figure(comparison), headers, rows, aer_rows, comparison.to_json())


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
    from exporters.hub import push_export

    repo_id = (repo_id or "").strip()
    if not repo_id:
        raise InvalidInputError("Type the Hub repository to push to, e.g. 'your-name/attribution-demo'.")
    token = (token or "").strip()
    if not token:
        raise InvalidInputError("Log in with Hugging Face or paste a write token to push to the Hub.")
    result = _result_from_json(result_json, what)
    export = export_result(result, mode="standalone")
    endpoint = ctx.config.hub_endpoint or os.environ.get("HF_ENDPOINT") or None
    return push_export(export, result, repo_id, repo_type="dataset", token=token, endpoint=endpoint)


def bundled_examples_available(offer: ModelOffer) -> tuple[str, ...]:
    """The bundled models this app offers (examples are shown only for those)."""
    return tuple(m for m in BUNDLED_MODELS if m in offer.models)
