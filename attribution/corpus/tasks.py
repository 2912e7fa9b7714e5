"""The per-record task: explain a batch of records with every method of the run, and score each result.

It calls the very functions the app and the CLI call for one sentence (no second implementation):
:func:`attribution.inseq_runner.attribute_batch` (the batched form of ``attribute``),
:func:`attribution.contributions.build_contribution_graphs` (the batched form of
``build_contribution_graph``: one padded forward pass per batch), :func:`attribution.compare.rank_correlation`
and the metrics of :mod:`attribution.corpus.metrics`. Both engines run this same function, the
local one in-process and the Ray one in each worker, so both give the same numbers.

A record that cannot be explained (empty text, too long, a bad gold alignment, a method failing on
it) gets an outcome with ``status="error"`` and the message; the other records are not affected.
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from attribution.compare import parse_alignment, rank_correlation
from attribution.corpus.metrics import AER_LINKS, ATTRIBUTION, GRAPH, MetricInput, get_metrics
from attribution.corpus.records import Record
from attribution.errors import AttributionExplorerError, InvalidInputError
from attribution.languages import NO_LANGUAGES, Languages, typed_languages
from attribution.results import AttributionResult, ContributionGraph
from attribution.validation import ObjectReader, expect_free_form, expect_object, expect_str_map, fail, quoted

if TYPE_CHECKING:
    from attribution.models import LoadedModel

#: The method name that asks for the contribution graph (information-flow routes) of each record.
GRAPH_METHOD = GRAPH
#: What a run explains: the record's reference target (the model's output where a record has none), or always
#: the model's own greedy output.
EXPLAIN_CHOICES = ("reference", "model")
#: A row's ``explained`` value: which target its result explains.
REFERENCE, MODEL_OUTPUT = "reference", "model"
#: Columns holding counts (integers in the shards); the AER link counts exist where the run computes ``aer``.
SIZE_COLUMNS = ("n_source_tokens", "n_target_tokens", "n_nodes", "n_edges")
AER_LINK_COLUMNS = ("aer_predicted_links", "aer_gold_links", "aer_matched_links")


@dataclass(frozen=True)
class TaskConfig:
    """What to compute for every record; stored in the run folder so that a resumed run matches it.

    ``graph_roots``: ``"auto"`` is every decoder token for seq2seq models (what the graph's word
    alignment needs) and the last token for causal models; or ``"all"``, or a token index.
    ``languages``: the language codes of a multilingual translation model (NLLB ``eng_Latn``), for every
    record (see :mod:`attribution.languages`); the run manifest keeps them as ``src_lang`` / ``tgt_lang``.
    ``explain``: ``"reference"`` explains each record's target (the model's output where it has none),
    ``"model"`` the model's own output always. A gold alignment belongs to the reference: AER is scored only
    where the reference was explained.
    """

    methods: tuple[str, ...]
    step_scores: tuple[str, ...] = ("probability",)
    method_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    metrics: tuple[str, ...] = ("aer", "aer_threshold")
    graph_threshold: float = 0.04
    graph_top_k: int = 0
    graph_roots: str = "auto"
    max_tokens: int | None = None
    max_new_tokens: int = 20
    languages: Languages = NO_LANGUAGES
    explain: str = REFERENCE

    def __post_init__(self) -> None:
        given = self.languages or NO_LANGUAGES
        object.__setattr__(self, "languages", typed_languages(given.source, given.target))
        if not self.methods:
            raise InvalidInputError("Give at least one method (an Inseq method, or 'graph').")
        if len(set(self.methods)) != len(self.methods):
            raise InvalidInputError(f"A method is listed twice: {', '.join(self.methods)}.")
        if self.explain not in EXPLAIN_CHOICES:
            raise InvalidInputError(f"explain must be 'reference' or 'model', not {quoted(str(self.explain))}.")
        self._check_without_model()

    def _check_without_model(self) -> None:
        """Everything about the task that needs no model: checked when it is made, so before any model loads."""
        from attribution.capabilities import check_request

        for method in self.attribution_methods:
            check_request(method, self.step_scores, target="", contrast_target="")  # names only
        get_metrics(self.metrics)
        unknown = set(self.method_params) - set(self.attribution_methods)
        if unknown:
            raise InvalidInputError(
                f"Parameters given for {sorted(unknown)[0]!r}, which is not one of the run's methods."
            )
        if not 0.0 <= self.graph_threshold < 1.0:
            raise InvalidInputError(f"The graph threshold must be in [0, 1), not {self.graph_threshold}.")
        _graph_roots(self.graph_roots, "causal")  # refuses anything but auto, all or a token index

    @property
    def attribution_methods(self) -> list[str]:
        return [m for m in self.methods if m != GRAPH_METHOD]

    def to_dict(self) -> dict[str, Any]:
        return {
            "methods": list(self.methods),
            "step_scores": list(self.step_scores),
            "method_params": {k: dict(v) for k, v in self.method_params.items()},
            "metrics": list(self.metrics),
            "graph_threshold": self.graph_threshold,
            "graph_top_k": self.graph_top_k,
            "graph_roots": self.graph_roots,
            "max_tokens": self.max_tokens,
            "max_new_tokens": self.max_new_tokens,
            # only when set: manifests of runs without languages stay as they were
            **{
                name: code
                for name, code in (("src_lang", self.languages.source), ("tgt_lang", self.languages.target))
                if code
            },
            **({"explain": self.explain} if self.explain != REFERENCE else {}),  # manifests before it stay valid
        }

    @classmethod
    def from_dict(cls, data: Any, path: str = "task") -> TaskConfig:
        """Read the ``task`` of a run manifest, checking every field (:class:`ResultFormatError` names it)."""
        f = ObjectReader(data, path)

        def params(value: Any, at: str) -> dict[str, Any]:
            return expect_object(expect_free_form(value, at), at)

        threshold = f.share("graph_threshold")
        if threshold == 1.0:
            raise fail(f.at("graph_threshold"), "must be below 1")
        return cls(
            methods=tuple(f.texts("methods")),
            step_scores=tuple(f.texts("step_scores")),
            method_params=expect_str_map(f.get("method_params", {}), f.at("method_params"), params),
            metrics=tuple(f.texts("metrics")),
            graph_threshold=threshold,
            graph_top_k=f.whole("graph_top_k", minimum=0),
            graph_roots=f.text("graph_roots"),
            max_tokens=f.whole("max_tokens", optional=True, minimum=1),
            max_new_tokens=f.whole("max_new_tokens", minimum=1),
            languages=Languages(f.text("src_lang", optional=True), f.text("tgt_lang", optional=True)),
            explain=f.choice("explain", EXPLAIN_CHOICES, optional=True) or REFERENCE,
        )

    def value_columns(self) -> list[str]:
        """The numeric columns every outcome row has (``None`` where they do not apply): scores, then counts."""
        columns = [*self.metrics, *(f"mean_{name}" for name in self.step_scores)]
        columns += [f"rho_{method}" for method in self.attribution_methods]
        return [*columns, *self.count_columns()]

    def count_columns(self) -> list[str]:
        """The value columns that count something (integers): sizes, and AER's links where ``aer`` is computed."""
        return [*SIZE_COLUMNS, *(AER_LINK_COLUMNS if "aer" in self.metrics else ())]


@dataclass
class MethodOutcome:
    """One record explained by one method: the result (or the error) and its row of numbers."""

    record_id: str
    row: int
    content_hash: str
    method: str
    status: str  # "ok" or "error"
    error: str | None
    result: AttributionResult | ContributionGraph | None
    source_text: str
    target_text: str | None
    values: dict[str, float | None]
    seconds: float
    worker: str
    #: which target the result explains: ``"reference"`` (the record's) or ``"model"`` (its own output)
    explained: str | None = None


def check_task(loaded: LoadedModel, config: TaskConfig) -> None:
    """Refuse, before any record runs, a method this model cannot run (the rest was checked with the task)."""
    from attribution.anatomy.adapters import architecture_spec
    from attribution.inseq_runner import check_supported

    for method in config.methods:
        if method == GRAPH_METHOD:
            architecture_spec(loaded.model)
        else:
            check_supported(loaded, method)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_records(
    loaded: LoadedModel, records: Sequence[Record], config: TaskConfig, *, batch_size: int = 8
) -> list[list[MethodOutcome]]:
    """Per record (in order), its outcomes for every method of ``config`` (in the config's order)."""
    from attribution.contributions import build_contribution_graphs
    from attribution.inseq_runner import attribute_batch

    worker = worker_name()
    outcomes: dict[tuple[int, str], MethodOutcome] = {}
    runnable: list[int] = []
    for position, record in enumerate(records):
        problem = record.problem or _alignment_problem(record.alignment)
        if problem is None:
            runnable.append(position)
            continue
        for method in config.methods:
            outcomes[(position, method)] = failed_outcome(record, method, problem, worker, 0.0, config)
    # Targets generated once per record: the first method explains the model's own output, the others reuse it.
    targets: dict[int, str | None] = {p: _reference(records[p], config) for p in runnable}
    for method in config.attribution_methods:
        started = time.perf_counter()
        batch_results = attribute_batch(
            loaded,
            [records[p].text for p in runnable],
            method=method,
            targets=[targets[p] for p in runnable],
            step_scores=config.step_scores,
            contrast_targets=[records[p].contrast for p in runnable],
            method_params=config.method_params.get(method, {}),
            max_new_tokens=config.max_new_tokens,
            max_tokens=config.max_tokens,
            batch_size=batch_size,
            languages=config.languages,
        )
        seconds = (time.perf_counter() - started) / max(len(runnable), 1)
        for position, result in zip(runnable, batch_results, strict=True):
            record = records[position]
            if isinstance(result, AttributionResult):
                targets[position] = targets[position] or result.target_text
                outcomes[(position, method)] = _scored(loaded, record, method, result, config, worker, seconds)
            else:
                outcomes[(position, method)] = failed_outcome(record, method, _message(result), worker, seconds, config)
    if GRAPH_METHOD in config.methods:
        started = time.perf_counter()
        graphs = build_contribution_graphs(  # one padded forward pass per batch; BudgetExceededError is raised
            loaded,
            [records[p].text for p in runnable],
            targets=[targets[p] for p in runnable],
            threshold=config.graph_threshold,
            root_tokens=_graph_roots(config.graph_roots, loaded.kind),
            top_k=config.graph_top_k,
            max_tokens=config.max_tokens,
            batch_size=batch_size,
            languages=config.languages,
        )
        seconds = (time.perf_counter() - started) / max(len(runnable), 1)
        for position, graph in zip(runnable, graphs, strict=True):
            record = records[position]
            if isinstance(graph, ContributionGraph):
                outcomes[(position, GRAPH_METHOD)] = _scored(
                    loaded, record, GRAPH_METHOD, graph, config, worker, seconds
                )
            else:
                outcomes[(position, GRAPH_METHOD)] = failed_outcome(
                    record, GRAPH_METHOD, _message(graph), worker, seconds, config
                )
    _add_rank_correlations(outcomes, len(records), config)
    return [[outcomes[(position, method)] for method in config.methods] for position in range(len(records))]


def _reference(record: Record, config: TaskConfig) -> str | None:
    """The target the run explains for ``record``: its reference, or None (the model's output is generated)."""
    return record.target if config.explain == REFERENCE else None


def _explained(record: Record, config: TaskConfig) -> str:
    return REFERENCE if _reference(record, config) else MODEL_OUTPUT


def _graph_roots(roots: str, kind: str) -> int | str:
    """The graph's root tokens for a ``kind`` model; anything but ``auto``, ``all`` or a token index is refused."""
    if roots == "auto":
        return "all" if kind == "seq2seq" else -1
    if roots == "all":
        return roots
    try:
        return int(roots)
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"The graph roots must be 'auto', 'all' or a token index (-1 = the last token), not {quoted(str(roots))}."
        ) from None


def _alignment_problem(alignment: str | None) -> str | None:
    if alignment is None:
        return None
    try:
        parse_alignment(alignment)
    except InvalidInputError as error:
        return f"bad gold alignment: {error}"
    return None


def _message(error: BaseException) -> str:
    """One line: the user-facing message of our errors, the type and first line of anything else."""
    if isinstance(error, AttributionExplorerError):
        return str(error)
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {first[:300]}" if first else type(error).__name__


def failed_outcome(
    record: Record, method: str, message: str, worker: str, seconds: float, config: TaskConfig | None = None
) -> MethodOutcome:
    """The outcome of a record that could not be explained with ``method``: the message, no result, and which
    target it was to explain (unknown without the run's ``config``)."""
    return MethodOutcome(
        record_id=record.record_id,
        row=record.row,
        content_hash=record.content_hash,
        method=method,
        status="error",
        error=message,
        result=None,
        source_text=record.text,
        target_text=record.target,
        values={},
        seconds=seconds,
        worker=worker,
        explained=None if config is None else _explained(record, config),
    )


def _scored(
    loaded: LoadedModel,
    record: Record,
    method: str,
    result: AttributionResult | ContributionGraph,
    config: TaskConfig,
    worker: str,
    seconds: float,
) -> MethodOutcome:
    """The outcome of a result: its metrics, step-score means and sizes; a metric's InvalidInputError fails it.

    The gold alignment is the reference's: a result explaining the model's own output is never scored against it.
    """
    kind = GRAPH if isinstance(result, ContributionGraph) else ATTRIBUTION
    values: dict[str, float | None] = {}
    error = None
    explained = _explained(record, config)
    gold = record.alignment if explained == REFERENCE else None
    given = MetricInput(loaded, record.text, result.target_text, gold, result)
    for metric in get_metrics(config.metrics):
        if kind not in metric.applies_to:
            continue
        try:
            values[metric.name] = _finite(metric.compute(given))
        except InvalidInputError as problem:
            error = error or str(problem)
    if AER_LINKS in given.cache:
        predicted, gold_links = given.cache[AER_LINKS]
        values.update(
            zip(AER_LINK_COLUMNS, (len(predicted), len(gold_links), len(predicted & gold_links)), strict=True)
        )
    if isinstance(result, AttributionResult):
        for name, series in result.step_scores.items():
            finite = [v for v in series if math.isfinite(v)]
            values[f"mean_{name}"] = float(np.mean(finite)) if finite else None
        values["n_source_tokens"] = len(result.source_tokens) or result.attributed_start
        values["n_target_tokens"] = result.n_steps
    else:
        values["n_source_tokens"] = len(result.source_tokens)
        values["n_target_tokens"] = len(result.target_tokens)
        values["n_nodes"] = len(result.nodes)
        values["n_edges"] = len(result.edges)
    return MethodOutcome(
        record_id=record.record_id,
        row=record.row,
        content_hash=record.content_hash,
        method=method,
        status="error" if error else "ok",
        error=error,
        result=result,
        source_text=record.text,
        target_text=result.target_text,
        values=values,
        seconds=seconds,
        worker=worker,
        explained=explained,
    )


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _add_rank_correlations(outcomes: dict[tuple[int, str], MethodOutcome], n: int, config: TaskConfig) -> None:
    """Spearman's rho between every two attribution methods' results on the same record."""
    methods = config.attribution_methods
    for position in range(n):
        for a in methods:
            first = outcomes[(position, a)]
            for b in methods:
                second = outcomes[(position, b)]
                if a == b or not isinstance(first.result, AttributionResult):
                    continue
                if not isinstance(second.result, AttributionResult):
                    continue
                try:
                    rho = rank_correlation(first.result, second.result)
                except InvalidInputError:
                    rho = math.nan
                first.values[f"rho_{b}"] = _finite(rho)
