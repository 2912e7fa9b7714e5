"""Every run a config offers (model × method × example), with its cost estimate and the cap that holds it.

A hardware profile (:mod:`space.gradio_app.config`) promises that what it offers finishes within its budgets
on its hardware. This module lists those runs: each offered Inseq method on each offered model and example
text (the output generated, the most a request without a target costs), the contribution graph and the
Intervene tab's patching sweep with its route test, each with :mod:`attribution.cost`'s estimate and the cap
the app holds it to (``max_model_passes``, ``max_intervention_passes``). Nothing runs a model: ``load`` may
give shape-only stand-ins. The test of the shipped profiles and ``benchmarks/space_profiles.py`` (which also
times them) use it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from attribution.cost import CostEstimate
from attribution.errors import AttributionExplorerError
from attribution.models import LoadedModel
from space.gradio_app.config import SpaceConfig
from space.gradio_app.context import offered_methods
from space.gradio_app.examples import PROFILE_EXAMPLES

#: The ``method`` of the contribution graph's and the Intervene tab's runs.
GRAPH, PATCHING = "contribution graph", "patching sweep + route"


@dataclass(frozen=True)
class OfferedRun:
    """One offered (model, method, example): its estimate and cap, or why the method refuses the model."""

    model: str
    method: str
    example: str
    estimate: CostEstimate | None  # None when refused
    cap: int | None  # None: the config sets no cap
    refused: str = ""  # why the app refuses this method on this model ("" when it runs)

    @property
    def within_cap(self) -> bool:
        """Refused runs never start, so they cannot break a cap."""
        return self.estimate is None or self.cap is None or self.estimate.passes <= self.cap

    def describe(self) -> str:
        if self.estimate is None:
            return f"{self.method} on {self.model}: refused ({self.refused})"
        return f"{self.estimate.describe()} for {self.example!r}; cap {self.cap}"


def offered_runs(
    config: SpaceConfig,
    load: Callable[[str], LoadedModel],
    examples: Mapping[str, tuple[str, ...]] = PROFILE_EXAMPLES,
) -> Iterator[OfferedRun]:
    """Every offered run of ``config``: each model of ``config.models`` as ``load`` gives it, each method, each
    example of its kind; the graph and the patching sweep of each example."""
    methods = offered_methods(config)
    for model in config.models:
        loaded = load(model)
        for example in examples[loaded.kind]:
            for method in methods:
                yield _attribution_run(config, loaded, method, example)
            yield _structure_run(config, loaded, GRAPH, example)
            yield _structure_run(config, loaded, PATCHING, example)


def _attribution_run(config: SpaceConfig, loaded: LoadedModel, method: str, example: str) -> OfferedRun:
    """What the Attribute tab estimates for ``method`` on ``example`` (the probability step score, no target)."""
    from attribution.cost import estimate_attribution_cost
    from attribution.inseq_runner import check_supported

    try:
        check_supported(loaded, method)
    except AttributionExplorerError as error:
        return OfferedRun(loaded.model_id, method, example, None, config.max_model_passes, str(error))
    estimate = estimate_attribution_cost(
        loaded,
        example,
        method=method,
        method_params=config.method_params.get(method),
        step_scores=("probability",),
        max_new_tokens=config.max_new_tokens,
    )
    return OfferedRun(loaded.model_id, method, example, estimate, config.max_model_passes)


def _structure_run(config: SpaceConfig, loaded: LoadedModel, what: str, example: str) -> OfferedRun:
    """The contribution graph (held to ``max_model_passes``), or the Intervene tab's patching sweep and route test
    (together, as the tab holds them, to ``max_intervention_passes``)."""
    from attribution.cost import estimate_graph_cost, estimate_patching_cost, estimate_route_cost
    from space.gradio_app.tabs.intervene import ROUTE_SEEDS

    if what == GRAPH:
        return OfferedRun(loaded.model_id, what, example, estimate_graph_cost(loaded, example), config.max_model_passes)
    sweep = estimate_patching_cost(loaded, example)
    route = estimate_route_cost(loaded, example, seeds=ROUTE_SEEDS)
    both = dataclasses.replace(sweep, label=f"{what} on {loaded.model_id}", passes=sweep.passes + route.passes)
    return OfferedRun(loaded.model_id, what, example, both, config.max_intervention_passes)
