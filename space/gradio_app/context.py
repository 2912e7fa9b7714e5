"""What every tab's handlers share, without Gradio: the app context, progress, request limits, result JSON.

Handlers are plain functions of widget values (the tests call them directly): each checks its input,
loads the model through :class:`AppContext` (the app's bounded cache, the offered models only), holds
the request to the operator's caps here (model passes: :meth:`AppContext.check_cost`; time:
:meth:`AppContext.time_budget`), calls the library and returns plain data ready to show. A result JSON
that comes back from the browser is read by :func:`read_result_json` only (text, size-capped,
schema-checked). :class:`~attribution.errors.AttributionExplorerError` is the one way to refuse.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attribution.budget import TimeBudget, time_budget
from attribution.errors import InvalidInputError, ResultFormatError
from attribution.languages import Languages
from attribution.models import BUNDLED_MODELS, LoadedModel, ModelCache, ModelSpec, check_hub_id, load_model
from attribution.progress import Progress
from attribution.results import ResultType, load_result
from space.gradio_app.config import ModelOffer, SpaceConfig
from space.gradio_app.export_store import DEFAULT_ROOT, ExportStore

if TYPE_CHECKING:
    from attribution.cost import CostEstimate

logger = logging.getLogger("attribution_explorer.space")

#: Added to a time-budget message of an attribution, a comparison or a graph: what to try instead.
ATTRIBUTION_BUDGET_HINT = "Try a shorter text or target, fewer methods, or a cheaper method (saliency, attention)."
#: Added to a time-budget message of an intervention (ablation, patching sweep, faithfulness).
INTERVENTION_BUDGET_HINT = "Try a shorter text or target."


def budget_checking(budget: TimeBudget, progress: Progress) -> Progress:
    """``progress`` that first checks ``budget``: long stretches without a forward pass are stopped there too."""

    def report(done: float, total: float, message: str = "") -> None:
        budget.check()
        progress(done, total, message)

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

    def model_spec(self, name: str | None) -> ModelSpec:
        """How this app loads the model ``name`` (checked first: see :meth:`check_model`)."""
        name = self.check_model(name)
        return ModelSpec(
            name, device=self.config.device, dtype=self.config.dtype, allow_local=name in self.offer.models
        )

    def load(self, name: str | None) -> LoadedModel:
        return load_model(self.model_spec(name), cache=self.cache)

    def check_method(self, method: str) -> None:
        methods = offered_methods(self.config)
        if method not in methods:
            raise InvalidInputError(f"Unknown method {method!r}: choose one of {', '.join(methods)}.")

    def check_texts(self, loaded: LoadedModel, **texts: str | None) -> None:
        """Length and Unicode checks (``role=text`` pairs) before a cost estimate tokenizes anything."""
        for role, value in texts.items():
            if value:
                loaded.validate_text(value, role=role.replace("_", " "), max_tokens=self.config.max_input_tokens)

    def check_cost(
        self, estimates: Iterable[CostEstimate], what: str, *, intervention: bool = False, hint: str | None = None
    ) -> None:
        """Refuse a request whose model passes are over the operator's cap, before anything runs.

        Attribution runs and graphs are held to ``max_model_passes``, interventions to
        ``max_intervention_passes`` (each with its hint, unless ``hint`` words it for the request). Without a
        cap nothing is estimated: a generator of estimates is not even started.
        """
        from attribution.cost import ATTRIBUTION_HINT, INTERVENTION_HINT, check_cost

        cap = self.config.max_intervention_passes if intervention else self.config.max_model_passes
        if cap is None:
            return
        check_cost(estimates, cap, what=what, hint=hint or (INTERVENTION_HINT if intervention else ATTRIBUTION_HINT))

    def generate(self, loaded: LoadedModel, text: str, languages: Languages, progress: Progress) -> str:
        """The model's own output for ``text`` (what an attribution without a target explains), generated
        under the time budget so that the cost estimate counts the real tokens, not ``max_new_tokens``."""
        from attribution.inseq_runner import generate_target

        hint = "Type a target to explain instead of the model's output."
        with self.time_budget(loaded, "Generating the output", progress, hint=hint) as report:
            report(0, 1, "generating")
            return generate_target(
                loaded,
                text,
                max_new_tokens=self.config.max_new_tokens,
                max_tokens=self.config.max_input_tokens,
                languages=languages,
            )

    @contextmanager
    def time_budget(
        self, models: LoadedModel | list[LoadedModel], what: str, progress: Progress, *, hint: str
    ) -> Iterator[Progress]:
        """Run under the request's time budget (``time_budget_s``); yields a reporter that checks it first."""
        with time_budget(models, self.config.time_budget_s, what=what, hint=hint) as budget:
            yield budget_checking(budget, progress)


def _export_store(config: SpaceConfig, root: Path) -> ExportStore:
    return ExportStore(root, max_age_s=config.export_max_age_s, max_bytes=int(config.export_max_mb * 1024**2))


@dataclass(frozen=True)
class PlannedAttribution:
    """One attribution run, checked and costed before it runs: ``arguments`` are
    :func:`attribution.inseq_runner.attribute`'s, the target included (typed, or generated for the request)."""

    loaded: LoadedModel
    text: str
    arguments: dict[str, Any]
    estimate: CostEstimate


def explained_target(
    ctx: AppContext, loaded: LoadedModel, text: str, target: str | None, languages: Languages, progress: Progress
) -> tuple[str, bool]:
    """The target a request explains and whether it was generated here: the typed one (checked), else the
    model's own output, generated now (cheap: one pass per token) so that the estimate counts its real length."""
    ctx.check_texts(loaded, input_text=text, target=target)
    typed = optional(target)
    if typed is not None:
        return typed, False
    return ctx.generate(loaded, text, languages, progress), True


def plan_attribution(
    ctx: AppContext,
    loaded: LoadedModel,
    text: str,
    method: str,
    *,
    target: str,
    generated: bool,
    step_scores: Sequence[str] = (),
    contrast_target: str | None = None,
) -> PlannedAttribution:
    """``method`` on ``text`` and its target, with the config's parameters for the method, and its cost
    (``generated``: the target was generated for this request, whose passes count too)."""
    from attribution.cost import estimate_attribution_cost

    arguments = {
        "method": method,
        "target": target,
        "step_scores": tuple(step_scores),
        "contrast_target": contrast_target,
        "method_params": ctx.config.method_params.get(method),
        "max_new_tokens": ctx.config.max_new_tokens,
    }
    estimate = estimate_attribution_cost(loaded, text, **arguments, generated=generated)
    return PlannedAttribution(loaded, text, arguments, estimate)


def cost_note(ctx: AppContext, estimates: Sequence[CostEstimate], hint: str) -> str:
    """The line under a run button (HTML): the request's estimated model passes against the deployment's cap,
    marked when close to it (half or more) and saying what to change when over it; "" without a cap."""
    cap = ctx.config.max_model_passes
    if cap is None or not estimates:
        return ""
    total = sum(estimate.passes for estimate in estimates)
    if total > cap:
        words = (
            f"About {total:,} model passes: over this deployment's {cap:,} per request, so it would be refused. {hint}"
        )
        colour = "#b42318"
    elif 2 * total >= cap:
        words = f"About {total:,} model passes: close to this deployment's {cap:,} per request."
        colour = "#9a6700"
    else:
        words = f"About {total:,} model passes (this deployment allows {cap:,} per request)."
        colour = "#57606a"
    return f'<div class="ae-cost-note" style="font-size: 12px; color: {colour}">{html.escape(words)}</div>'


def offered_methods(config: SpaceConfig) -> list[str]:
    """The config's methods (default: all) that run on at least one architecture here."""
    from attribution.capabilities import runnable_methods

    runnable = runnable_methods()
    return [m for m in config.methods if m in runnable] if config.methods else runnable


def bundled_examples_available(offer: ModelOffer) -> tuple[str, ...]:
    """The bundled models this app offers (examples are shown only for those)."""
    return tuple(m for m in BUNDLED_MODELS if m in offer.models)


def optional(text: str | None) -> str | None:
    """A typed text, or None when the box is empty or blank."""
    return text if text and text.strip() else None


def rounded(value: float | None, digits: int = 4) -> float | None:
    """A number for a table cell (None stays None)."""
    return None if value is None else round(float(value), digits)


def figure_for(result: ResultType, **options: Any) -> Any:
    """A fresh Bokeh layout for ``gr.Plot`` (a layout belongs to one document, so one per request)."""
    from exporters.bokeh_html import build_figure

    return build_figure(result, **options)


def refusal(what: str, max_bytes: int | None) -> InvalidInputError:
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
        raise refusal(what, max_bytes) from None
