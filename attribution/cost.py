"""What a request will cost, in model passes, estimated before anything runs.

Attribution runs are estimated from the method's algorithm (below); contribution graphs, ablations,
patching sweeps, route tests and ERASER faithfulness from theirs (see the functions after
:func:`check_cost`: a patching sweep or a faithfulness evaluation is counted exactly).

A *model pass* is one evaluation of the model over the whole sequence: a forward pass, or a forward
and backward pass for gradient methods; a run of only some of the model's blocks is that share of a pass
(a patched row resumed at block l of L runs ``(L - l + 1) / L``). The estimate counts them from the method's documented
algorithm and its parameters (Captum's and Inseq's defaults where none is given), the number of
attributed target tokens (``steps``) and the number of tokens each step reads:

=====================================================  ===========================================
method                                                 passes per attributed token
=====================================================  ===========================================
saliency, input_x_gradient, layer_gradient_x_activation  1
deeplift, layer_deeplift (input and baseline)          2
integrated_gradients, layer_/discretized_ IG           ``n_steps`` (default 50)
sequential_integrated_gradients                        ``n_steps`` (default 50) × input tokens
gradient_shap                                          ``n_samples`` (default 5)
occlusion                                              input tokens (one occluded token each)
lime                                                   ``n_samples`` (default 50)
reagent                                                ``max_probe_steps`` (default 3000)
attention                                              1 in all (computed at the final step only)
value_zeroing                                          layers × input tokens, once (final step only)
=====================================================  ===========================================

plus one pass per attributed token for the model's prediction (step scores, the attributed
function's target), one pass per generated token when the output is generated (a seq2seq output
also ends with its end-of-sentence token), and twice the passes with a contrast target (the
attributed function runs the model on both targets). It is an upper bound on tokens (a causal
step reads only its prefix) and ignores batching, so it orders requests by cost rather than
predicting seconds; a deployment caps it (``max_model_passes`` in the Space's config) and keeps a
time budget (:mod:`attribution.budget`) behind it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from attribution.anatomy.adapters import architecture_spec
from attribution.anatomy.inputs import MAX_GENERATED_TOKENS
from attribution.anatomy.shape import config_layers, shape_of
from attribution.capabilities import METHODS
from attribution.errors import CostLimitError, InvalidInputError
from attribution.interventions.maps import map_grid, map_names
from attribution.models import LoadedModel, prompt_with_continuation
from attribution.results import AttributionResult

#: Parameter defaults of the methods whose cost depends on them (Captum's, or Inseq's where it overrides).
PARAM_DEFAULTS: dict[str, tuple[str, int]] = {
    "integrated_gradients": ("n_steps", 50),
    "layer_integrated_gradients": ("n_steps", 50),
    "discretized_integrated_gradients": ("n_steps", 50),
    "sequential_integrated_gradients": ("n_steps", 50),
    "gradient_shap": ("n_samples", 5),
    "lime": ("n_samples", 50),
    "reagent": ("max_probe_steps", 3000),
}
#: Methods that evaluate the input and a baseline together.
WITH_BASELINE = frozenset({"deeplift", "layer_deeplift"})
#: Methods whose passes per step grow with the number of input tokens.
PER_INPUT_TOKEN = frozenset({"sequential_integrated_gradients", "occlusion"})


@dataclass(frozen=True)
class CostEstimate:
    """The estimated cost of one run (an attribution, a patching sweep, a faithfulness evaluation...)."""

    label: str  # what runs, e.g. "integrated_gradients on gpt2"
    steps: int  # attributed target tokens (an upper bound when the output is generated)
    input_tokens: int  # tokens a step reads at most (source + target side)
    passes: int  # model passes in all (forward, or forward + backward)
    detail: str = ""  # what the passes are spent on, when not one per explained token

    def describe(self) -> str:
        what = self.detail or f"{self.steps} token(s) to explain"
        return f"{self.label}: about {self.passes:,} model passes ({what})"


def passes_per_step(method: str, *, input_tokens: int, n_layers: int, params: Mapping[str, Any] | None = None) -> int:
    """Model passes one attributed token costs with ``method`` (final-step methods: the whole run's passes)."""
    if method not in METHODS and method != "dummy":
        raise InvalidInputError(f"Unknown method {method!r}: no cost estimate for it.")
    params = params or {}
    if method == "dummy":
        return 0
    if method == "attention":
        return 1
    if method == "value_zeroing":
        return n_layers * input_tokens + 1
    passes = 1
    if method in PARAM_DEFAULTS:
        name, default = PARAM_DEFAULTS[method]
        value = params.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidInputError(f"{method}'s {name} must be a positive whole number, not {value!r}.")
        passes = value
    if method in WITH_BASELINE:
        passes = 2
    if method in PER_INPUT_TOKEN:
        passes *= input_tokens
    return passes


def estimate_attribution_cost(
    loaded: LoadedModel,
    text: str,
    *,
    method: str,
    target: str | None = None,
    contrast_target: str | None = None,
    method_params: Mapping[str, Any] | None = None,
    step_scores: Iterable[str] = (),
    max_new_tokens: int = 20,
    generated: bool = False,
) -> CostEstimate:
    """The model passes :func:`attribution.inseq_runner.attribute` would spend on these arguments.

    Tokenizes the texts (cheap) and never runs the model. Without a target, ``max_new_tokens``
    generated tokens are assumed (the most generation can give: a bound, often far above the real
    output). A caller that can afford one generation gets the real count instead: it generates the target
    first (:func:`attribution.inseq_runner.generate_target`) and passes it with ``generated=True``, which
    counts the passes that generation spent too.
    """
    source_tokens = loaded.count_tokens(text)
    assumed = target is None  # no output yet: max_new_tokens of it are assumed
    if loaded.kind == "seq2seq":
        steps = max_new_tokens + 1 if assumed else len(loaded.tokenizer(text_target=target)["input_ids"])
        input_tokens = source_tokens + steps + 1  # the decoder also reads its start token and the target prefix
    else:
        whole = (
            max_new_tokens + source_tokens
            if target is None
            else loaded.count_tokens(prompt_with_continuation(text, target))
        )
        steps = max(1, whole - source_tokens)
        input_tokens = whole
    n_layers = config_layers(loaded.config)
    spec = METHODS.get(method)
    per_step = passes_per_step(method, input_tokens=input_tokens, n_layers=n_layers, params=method_params)
    passes = per_step if spec is not None and spec.final_step else per_step * steps
    passes += steps  # the prediction at each step (step scores, the attributed function's target)
    if spec is not None and spec.final_step and list(step_scores):
        passes += steps  # step scores are computed in a second pass
    if contrast_target is not None:
        passes *= 2
    if generated or assumed:
        passes += steps
    return CostEstimate(f"{method} on {loaded.model_id}", steps, input_tokens, max(passes, 1))


#: What to try when an attribution request is over the cap.
ATTRIBUTION_HINT = "Use a shorter text or target, fewer methods, or a cheaper method (saliency, attention)."


def attribution_hint(*, target_typed: bool, several_methods: bool = False) -> str:
    """What to try when an attribution request is over the cap, in the words of what was asked.

    With no target typed the explained tokens are the model's own output, so "a shorter target" would
    point at an empty box: the hint says a typed target explains only the part of the output typed.
    """
    text = "a shorter text or target" if target_typed else "a shorter text, a target (part of the output)"
    fewer = "fewer methods, " if several_methods else ""
    return f"Use {text}, {fewer}or a cheaper method (saliency, attention)."


def check_cost(
    estimates: CostEstimate | Iterable[CostEstimate],
    max_passes: int | None,
    *,
    what: str = "This request",
    hint: str = ATTRIBUTION_HINT,
) -> int:
    """The total passes of ``estimates``; :class:`CostLimitError` naming the cap when it is over ``max_passes``."""
    estimates = [estimates] if isinstance(estimates, CostEstimate) else list(estimates)
    total = sum(estimate.passes for estimate in estimates)
    if max_passes is not None and total > max_passes:
        costly = max(estimates, key=lambda estimate: estimate.passes)
        raise CostLimitError(
            f"{what} would need about {total:,} model passes; this deployment allows at most {max_passes:,} per "
            f"request (the largest part: {costly.describe()}). {hint}"
        )
    return total


# ------------------------------------------------------------------------------- graphs and interventions
#
# Interventions run the model forward on edited activations; a batch of B edited runs counts B passes
# (one per row: batching saves time, not work), and a row that resumes at block l of L the share of
# blocks it runs (the anatomy says which: attribution.anatomy.shape.resumed_share). Counts follow each
# algorithm exactly where it is known before running (patched cells, perturbed inputs), and bound the
# token counts when the target is generated.

#: A contribution graph (the forward pass and the decomposition of every block) in model passes: the
#: routes of every token cost 1.1-6.7x one forward pass on GPT-2 small at T = 16...1024 (docs/benchmarks.md,
#: "Contribution graph: speed and memory"); 4 covers inputs up to a few hundred tokens.
GRAPH_PASSES = 4
INTERVENTION_HINT = "Use a shorter text or target, or fewer components."


def sequence_lengths(loaded: LoadedModel, text: str, target: str | None) -> tuple[int, int, int]:
    """(source tokens, decoder tokens, generated tokens) the contribution graph and interventions read.

    Decoder-only models read the prompt and its continuation (``target``). Seq2seq models read the
    source and the decoder start token plus the target, generated greedily (at most the graph's
    ``MAX_GENERATED_TOKENS``) when none is given: then its length is an upper bound and generating it
    costs one pass per token.
    """
    if loaded.kind == "causal":
        return 0, loaded.count_tokens(prompt_with_continuation(text, target) if target else text), 0
    source = loaded.count_tokens(text)
    if target:
        return source, 1 + len(loaded.tokenizer(text_target=target)["input_ids"]), 0
    generated = min(MAX_GENERATED_TOKENS, (loaded.max_input_tokens or MAX_GENERATED_TOKENS + 1) - 1)
    return source, 1 + generated, generated


def estimate_graph_cost(loaded: LoadedModel, text: str, *, target: str | None = None) -> CostEstimate:
    """A contribution graph of ``text``: :data:`GRAPH_PASSES`, plus generating a missing seq2seq target."""
    source, decoder, generated = sequence_lengths(loaded, text, target)
    return CostEstimate(
        f"contribution graph on {loaded.model_id}", 1, source + decoder, GRAPH_PASSES + generated, "graph"
    )


def estimate_intervention_cost(
    loaded: LoadedModel, text: str, *, target: str | None = None, references: int = 1, redraw_graph: bool = False
) -> CostEstimate:
    """:func:`attribution.interventions.intervene`: the ``references`` runs recorded (a counterfactual, or
    mean-ablation references), the clean and the edited run; ``redraw_graph`` adds the route after it."""
    source, decoder, generated = sequence_lengths(loaded, text, target)
    passes = references + 2 + generated + (GRAPH_PASSES if redraw_graph else 0)
    return CostEstimate(f"intervention on {loaded.model_id}", 1, source + decoder, passes, "ablation")


def estimate_patching_cost(
    loaded: LoadedModel,
    text: str,
    *,
    target: str | None = None,
    maps: Sequence[str] | None = None,
    exact: bool = True,
    approximate: bool = True,
) -> CostEstimate:
    """:func:`attribution.interventions.patching_sweep`: the clean, counterfactual and timing runs, three passes
    for attribution patching, and one patched row per cell of every map (exact), each resumed at its cell's
    block: a row patching decoder block l of L costs ``(L - l + 1) / L`` of a pass (encoder and decoder blocks
    together for seq2seq; an encoder cell costs 1), the cells' sum rounded up."""
    source, decoder, generated = sequence_lengths(loaded, text, target)
    spec = architecture_spec(loaded.model)
    shape = shape_of(spec, n_encoder=source if spec.encoder_blocks else 0, n_decoder=decoder)
    grids = [map_grid(shape, name) for name in map_names(bool(spec.encoder_blocks), maps)]
    cells = sum(grid.cells for grid in grids)
    patched = math.ceil(sum((grid.passes(shape) for grid in grids), Fraction(0)))
    passes = 3 + (patched if exact else 0) + (3 if approximate else 0) + generated
    return CostEstimate(
        f"patching sweep on {loaded.model_id}", 1, source + decoder, passes, f"{cells:,} patched components"
    )


def estimate_route_cost(
    loaded: LoadedModel, text: str, *, target: str | None = None, seeds: int = 5, build_graph: bool = True
) -> CostEstimate:
    """:func:`attribution.interventions.route_faithfulness`: the graph (unless given), the edge weights (a
    second decomposition), the clean run and two batches of the route plus ``seeds`` random edge sets (whole
    rows: an upper bound, as they resume at the lowest block they edit, which the route decides)."""
    source, decoder, generated = sequence_lengths(loaded, text, target)
    passes = (GRAPH_PASSES if build_graph else 0) + GRAPH_PASSES + 1 + 2 * (1 + seeds) + generated
    return CostEstimate(
        f"route faithfulness on {loaded.model_id}", 1, source + decoder, passes, f"the route and {seeds} random sets"
    )


def estimate_faithfulness_cost(result: AttributionResult, *, random_seeds: int) -> CostEstimate:
    """:func:`attribution.interventions.attribution_faithfulness` of ``result``: one forward row per perturbed
    input (:func:`attribution.interventions.faithfulness.count_rows`), exact."""
    from attribution.interventions.faithfulness import count_rows

    n_tokens = len(result.source_tokens) + len(result.target_tokens)
    passes = count_rows(result.n_steps, random_seeds)
    label = f"faithfulness of {result.method} on {result.provenance.model_id}"
    return CostEstimate(label, result.n_steps, n_tokens, passes, f"{result.n_steps} token(s) explained")
