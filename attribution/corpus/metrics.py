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

Opt-in (run only when named, ``--metrics comprehensiveness ...``: each needs about 33 forward passes
per explained token), the faithfulness of the explanation, by intervening on the model
(:mod:`attribution.interventions.faithfulness`: a removed token becomes the tokenizer's unknown
token):

- ``comprehensiveness`` / ``sufficiency``: ERASER's (DeYoung et al. 2020), AOPC over its bins;
- ``deletion_aopc`` / ``insertion_aopc``: the areas of the deletion and insertion curves.

The four come from one evaluation per record and method, computed by the first of them and reused
by the others (:attr:`MetricInput.cache`). For a graph they apply where its routes explain target
tokens (seq2seq graphs, whose roots are every decoder token by default). A metric that needs the
model gets it in :class:`MetricInput`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from attribution.compare import AlignmentMode, aer, alignment_error_rate
from attribution.errors import InvalidInputError
from attribution.results import AttributionResult, ContributionGraph

if TYPE_CHECKING:
    from attribution.models import LoadedModel

ATTRIBUTION = "attribution"
GRAPH = "graph"


@dataclass(frozen=True)
class MetricInput:
    """What a metric may read: the model (already loaded in this worker), the record, its explanation.

    ``cache`` is shared by the metrics of one record and method: work several of them need (one
    faithfulness evaluation for four numbers) is done once and kept there.
    """

    loaded: LoadedModel
    text: str
    target: str
    gold_alignment: str | None
    result: AttributionResult | ContributionGraph
    cache: dict[str, Any] = field(default_factory=dict, compare=False)


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
    opt_in: bool = False  # expensive: computed only when a run names it, never by default


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


def default_metrics() -> list[str]:
    """The metrics a run computes when none are named: every registered one that is not opt-in."""
    return [name for name, metric in _METRICS.items() if not metric.opt_in]


def find_metric(name: str) -> Metric | None:
    """The registered metric ``name`` (None for one this process does not know, e.g. a plugin's)."""
    return _METRICS.get(name)


def get_metrics(names: Iterable[str]) -> list[Metric]:
    """The registered metrics called ``names``; an unknown name is an InvalidInputError listing the known ones."""
    chosen = []
    for name in names:
        if name not in _METRICS:
            raise InvalidInputError(f"Unknown metric {name!r}; choose from: {', '.join(_METRICS)}.")
        chosen.append(_METRICS[name])
    return chosen


#: Where the ``aer`` metric leaves its links in :attr:`MetricInput.cache`: (predicted, gold) word-index pairs,
#: whose counts become the row's ``aer_*_links`` columns (summed over a corpus they give Och & Ney's pooled AER).
AER_LINKS = "aer_links"


def _attribution_aer(mode: AlignmentMode) -> Callable[[MetricInput], float | None]:
    def compute(given: MetricInput) -> float | None:
        if given.gold_alignment is None or not isinstance(given.result, AttributionResult):
            return None
        return alignment_error_rate(given.result, given.gold_alignment, mode=mode)

    return compute


def _aer(given: MetricInput) -> float | None:
    links = _attribution_links(given) if isinstance(given.result, AttributionResult) else _graph_links(given)
    if links is None:
        return None
    given.cache[AER_LINKS] = links
    return aer(*links)


def _attribution_links(given: MetricInput) -> tuple[set[tuple[int, int]], set[tuple[int, int]]] | None:
    """(argmax links of the result's word-level scores, gold links), as :func:`alignment_error_rate` reads them."""
    from attribution.compare import _check_links_fit, alignment_from_scores, parse_alignment, word_level_scores

    if given.gold_alignment is None or not isinstance(given.result, AttributionResult):
        return None
    gold = parse_alignment(given.gold_alignment)
    scores = word_level_scores(given.result)
    _check_links_fit(gold, scores.shape)
    return alignment_from_scores(scores, mode="argmax"), gold


def _graph_links(given: MetricInput) -> tuple[set[tuple[int, int]], set[tuple[int, int]]] | None:
    """(strongest-route links of a seq2seq graph built with every decoder token as a root, gold links)."""
    from attribution.compare import _check_links_fit, parse_alignment
    from attribution.contributions.alignment import graph_word_alignment

    graph = given.result
    if given.gold_alignment is None or not isinstance(graph, ContributionGraph):
        return None
    if graph.provenance.model_kind != "seq2seq":
        return None
    tokenizer = given.loaded.tokenizer
    source_words = tokenizer(given.text).word_ids()
    target_words = tokenizer(text_target=given.target).word_ids()
    gold = parse_alignment(given.gold_alignment)
    n_source = len({w for w in source_words if w is not None})
    n_target = len({w for w in target_words if w is not None})
    _check_links_fit(gold, (n_source, n_target))
    return graph_word_alignment(graph, source_words, target_words), gold


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


def _faithfulness(field_name: str) -> Callable[[MetricInput], float | None]:
    """One number of the record's faithfulness evaluation (done once per record and method, then reused)."""

    def compute(given: MetricInput) -> float | None:
        if "faithfulness" not in given.cache:
            from attribution.interventions.faithfulness import (
                NothingToExplain,
                attribution_faithfulness,
                graph_faithfulness,
            )

            result = given.result
            try:
                given.cache["faithfulness"] = (
                    attribution_faithfulness(given.loaded, result, random_seeds=0)
                    if isinstance(result, AttributionResult)
                    else graph_faithfulness(given.loaded, result, random_seeds=0)
                )
            except NothingToExplain:
                given.cache["faithfulness"] = None  # e.g. a causal graph whose only root is the last token
        evaluation = given.cache["faithfulness"]
        return None if evaluation is None else getattr(evaluation, field_name)

    return compute


for _name, _description, _lower in (
    ("comprehensiveness", "ERASER comprehensiveness: p(y) minus p(y) without the top-ranked input tokens", False),
    ("sufficiency", "ERASER sufficiency: p(y) minus p(y) with only the top-ranked input tokens", True),
    ("deletion_aopc", "area under the deletion curve (top-ranked input tokens removed first)", True),
    ("insertion_aopc", "area under the insertion curve (top-ranked input tokens restored first)", False),
):
    register_metric(
        Metric(
            _name,
            _description,
            _faithfulness(_name),
            applies_to=frozenset({ATTRIBUTION, GRAPH}),
            lower_is_better=_lower,
            opt_in=True,
        )
    )
