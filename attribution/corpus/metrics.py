"""Per-record scores of an explanation: a registry, so that a new score is one registered function.

A :class:`Metric` turns one record's explanation (an ``AttributionResult``, or a
``ContributionGraph`` for the ``graph`` method) into one number, or ``None`` where it does not
apply (no gold alignment, a causal model's graph). Each metric of a run becomes one column of its
Parquet shards and one distribution in the corpus report. Built in:

- ``aer``: alignment error rate (argmax links) against the record's gold alignment, for
  attribution results (:func:`attribution.compare.alignment_error_rate`) and for seq2seq graphs
  (:func:`attribution.contributions.alignment.graph_word_alignment`);
- ``aer_threshold``: the same with threshold links (every source word holding at least 20 % of a
  target word's scores).

Faithfulness metrics (comprehensiveness, sufficiency, AOPC) register here the same way when
``attribution.interventions`` provides them (see :func:`register_metric`); a metric that needs
the model gets it in :class:`MetricInput`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from attribution.compare import aer, alignment_error_rate
from attribution.errors import InvalidInputError
from attribution.results import AttributionResult, ContributionGraph

if TYPE_CHECKING:
    from attribution.models import LoadedModel

ATTRIBUTION = "attribution"
GRAPH = "graph"


@dataclass(frozen=True)
class MetricInput:
    """What a metric may read: the model (already loaded in this worker), the record, its explanation."""

    loaded: LoadedModel
    text: str
    target: str
    gold_alignment: str | None
    result: AttributionResult | ContributionGraph


@dataclass(frozen=True)
class Metric:
    """A named per-record score; ``applies_to`` holds ``"attribution"`` and/or ``"graph"``.

    ``compute`` returns a float, or ``None`` where the score does not apply to this record. An
    :class:`InvalidInputError` it raises (e.g. a gold alignment that does not fit the sentence)
    marks the record as failed with that message.
    """

    name: str
    description: str
    compute: Callable[[MetricInput], float | None]
    applies_to: frozenset[str] = frozenset({ATTRIBUTION})
    lower_is_better: bool = True


_METRICS: dict[str, Metric] = {}


def register_metric(metric: Metric, *, replace: bool = False) -> None:
    """Make ``metric`` available to corpus runs by name (``--metrics NAME``)."""
    if metric.name in _METRICS and not replace:
        raise ValueError(f"a metric named {metric.name!r} is already registered")
    if not metric.name.isidentifier():
        raise ValueError(f"metric names must be identifiers (they become Parquet columns), not {metric.name!r}")
    _METRICS[metric.name] = metric


def available_metrics() -> list[str]:
    return list(_METRICS)


def get_metrics(names: Iterable[str]) -> list[Metric]:
    """The registered metrics called ``names``; an unknown name is an InvalidInputError listing the known ones."""
    chosen = []
    for name in names:
        if name not in _METRICS:
            raise InvalidInputError(f"Unknown metric {name!r}; choose from: {', '.join(_METRICS)}.")
        chosen.append(_METRICS[name])
    return chosen


def _attribution_aer(mode: str) -> Callable[[MetricInput], float | None]:
    def compute(given: MetricInput) -> float | None:
        if given.gold_alignment is None or not isinstance(given.result, AttributionResult):
            return None
        return alignment_error_rate(given.result, given.gold_alignment, mode=mode)  # type: ignore[arg-type]

    return compute


def _aer(given: MetricInput) -> float | None:
    if isinstance(given.result, AttributionResult):
        return _attribution_aer("argmax")(given)
    return _graph_aer(given)


def _graph_aer(given: MetricInput) -> float | None:
    """AER of the route alignment of a seq2seq graph built with every decoder token as a root."""
    from attribution.compare import _check_links_fit, parse_alignment
    from attribution.contributions.alignment import graph_word_alignment

    graph = given.result
    if given.gold_alignment is None or graph.provenance.model_kind != "seq2seq":
        return None
    tokenizer = given.loaded.tokenizer
    source_words = tokenizer(given.text).word_ids()
    target_words = tokenizer(text_target=given.target).word_ids()
    gold = parse_alignment(given.gold_alignment)
    n_source = len({w for w in source_words if w is not None})
    n_target = len({w for w in target_words if w is not None})
    _check_links_fit(gold, (n_source, n_target))
    return aer(graph_word_alignment(graph, source_words, target_words), gold)


register_metric(
    Metric(
        "aer",
        "alignment error rate against the gold alignment (argmax links; graph: strongest route)",
        _aer,
        applies_to=frozenset({ATTRIBUTION, GRAPH}),
    )
)
register_metric(
    Metric(
        "aer_threshold",
        "alignment error rate against the gold alignment (links holding at least 20 % of a target word's scores)",
        _attribution_aer("threshold"),
    )
)
