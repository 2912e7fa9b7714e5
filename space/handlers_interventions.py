"""What the Space's intervention controls do: the graph tab's Ablate, the Intervene tab, Compare's faithfulness.

Plain functions of widget values (no Gradio here), like :mod:`space.handlers`, whose app context,
model loading and progress convention they share. Every request is bounded like the other model runs:
its cost in model passes is estimated before anything runs (:mod:`attribution.cost`) and refused over
the operator's ``max_intervention_passes``, and the run is stopped cleanly at ``time_budget_s``
(:mod:`attribution.budget`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from attribution.budget import time_budget
from attribution.cost import INTERVENTION_HINT, CostEstimate, check_cost
from attribution.errors import InvalidInputError
from attribution.models import LoadedModel
from attribution.results import Comparison, ContributionGraph
from space.handlers import AppContext, Progress, _optional, _silent, budget_checking, read_result_json
from space.inputs import parse_root_tokens

ABLATION_MODES = {"zero": "zero", "mean (over positions)": "mean"}
#: Random edge sets the Intervene tab compares a route with.
ROUTE_SEEDS = 3
#: Random rankings per faithfulness evaluation in Compare: none, its table shows no random baseline.
COMPARE_RANDOM_SEEDS = 0
#: Added to a time-budget message: what to try instead.
BUDGET_HINT = "Try a shorter text or target."


def _check_texts(ctx: AppContext, loaded: LoadedModel, **texts: str | None) -> None:
    """Length and Unicode checks before the cost estimate tokenizes anything (``role=text`` pairs)."""
    for role, value in texts.items():
        if value:
            loaded.validate_text(value, role=role.replace("_", " "), max_tokens=ctx.config.max_input_tokens)


def _check_cost(ctx: AppContext, estimates: list[CostEstimate], what: str) -> None:
    check_cost(estimates, ctx.config.max_intervention_passes, what=what, hint=INTERVENTION_HINT)


@contextmanager
def _budget(ctx: AppContext, loaded: LoadedModel, what: str, progress: Progress) -> Iterator[Progress]:
    """Run under the request's time budget; yields a progress reporter that also checks the budget."""
    with time_budget(loaded, ctx.config.time_budget_s, what=what, hint=BUDGET_HINT) as budget:
        yield budget_checking(budget, progress)


def graph_component(graph: ContributionGraph, choice: str | None) -> str:
    """The component id of a node picked in the graph tab; edges (``source->target``) and typed component
    ids (``decoder:2:head:1``…) are component ids already (checked against the model when run)."""
    choice = (choice or "").strip()
    if not choice:
        raise InvalidInputError("Pick a node or an attention edge of the graph (or type a component id) to ablate.")
    try:
        node = graph.node(choice)
    except KeyError:
        return choice
    kinds = {
        "embedding": "embedding",
        "after_ffn": "after_ffn",
        "ffn": "ffn",
        "after_attention": "attention",
        "after_cross_attention": "cross_attention",
    }
    return f"{node.side}:{node.layer}:{kinds[node.kind]}:{node.token_index}"


@dataclass
class AblateView:
    table: list[list[Any]]  # (what, before, after) rows
    headers: list[str]
    figure: Any | None  # the route re-drawn after the ablation (None when it cannot be)
    note: str
    result_json: str


def ablate_from_graph(
    ctx: AppContext,
    model: str,
    text: str,
    target: str | None,
    graph_json: str | None,
    choice: str | None,
    mode: str,
    threshold: float,
    progress: Progress = _silent,
) -> AblateView:
    """Ablate the chosen node / edge: the prediction before and after, and the route re-drawn after it."""
    from attribution.cost import estimate_intervention_cost
    from attribution.errors import UnsupportedError
    from attribution.interventions.ablation import intervene
    from attribution.interventions.graph_after import graph_after_intervention
    from exporters.bokeh_html import build_figure

    if not graph_json or not graph_json.strip():
        raise InvalidInputError("Compute a contribution graph first, then pick a node or an edge to ablate.")
    graph = read_result_json(graph_json, "contribution graph", max_bytes=ctx.config.max_result_bytes)
    if not isinstance(graph, ContributionGraph):
        raise InvalidInputError("Compute a contribution graph first, then pick a node or an edge to ablate.")
    if mode not in ABLATION_MODES:
        raise InvalidInputError(f"Unknown ablation mode {mode!r}; choose one of {', '.join(ABLATION_MODES)}.")
    component = graph_component(graph, choice)
    progress(0.0, f"loading {model}")
    loaded = ctx.load(model)
    target = _optional(target) or (graph.target_text or None)
    if graph.source_text != text:
        raise InvalidInputError("The text changed since the graph was drawn: build the graph again first.")
    _check_texts(ctx, loaded, input_text=text, target=target)
    _check_cost(ctx, [estimate_intervention_cost(loaded, text, target=target, redraw_graph=True)], "This ablation")
    roots = list(graph.root_tokens)
    with _budget(ctx, loaded, "The ablation", progress) as report:
        report(0.2, "ablating")
        result = intervene(
            loaded,
            text,
            [component],
            target=target,
            mode=ABLATION_MODES[mode],
            mean_over="positions",
            root_tokens=roots[:8],
            max_tokens=ctx.config.max_input_tokens,
            src_lang=graph.provenance.source_language,  # the graph's languages: the same tokens
            tgt_lang=graph.provenance.target_language,
        )
        report(0.6, "re-drawing the route")
        after, note = None, f"Ablated {component} ({mode})."
        try:
            after = graph_after_intervention(
                loaded,
                text,
                [component],
                target=target,
                mode=ABLATION_MODES[mode],
                threshold=max(float(threshold), 0.0),
                root_tokens=roots,
                max_tokens=ctx.config.max_input_tokens,
                src_lang=graph.provenance.source_language,
                tgt_lang=graph.provenance.target_language,
            )
            note += " The graph below is the route after the ablation."
        except UnsupportedError as error:
            note += f" The route is not re-drawn: {error}"
    from exporters.tokens import display_token, result_style

    style = result_style(result, [p.input_token for p in result.predictions])
    rows = []
    for prediction in result.predictions:
        rows.append(
            [
                f"{prediction.position}: {display_token(prediction.input_token, style)} → "
                f"{display_token(prediction.target_token, style)}",
                round(prediction.probability_before, 5),
                round(prediction.probability_after, 5),
                ", ".join(f"{display_token(t, style)} {p:.3f}" for t, p in prediction.top_before[:3]),
                ", ".join(f"{display_token(t, style)} {p:.3f}" for t, p, _ in prediction.top_after[:3]),
                round(prediction.kl_divergence, 5),
            ]
        )
    headers = ["position → target", "p before", "p after", "top before", "top after", "KL"]
    return AblateView(rows, headers, None if after is None else build_figure(after), note, result.to_json())


@dataclass
class InterveneView:
    figure: Any
    route_rows: list[list[Any]]
    summary: str
    patching_json: str


def run_intervene(
    ctx: AppContext,
    model: str,
    text: str,
    counterfactual: str,
    target: str | None,
    counterfactual_target: str | None,
    contrast_token: str | None,
    root_token: str | None,
    progress: Progress = _silent,
) -> InterveneView:
    """Patching sweeps (exact and attribution patching side by side) and the route's faithfulness."""
    from attribution.cost import estimate_patching_cost, estimate_route_cost
    from attribution.errors import UnsupportedError
    from attribution.interventions.routes import route_faithfulness
    from attribution.interventions.sweeps import patching_sweep
    from exporters.bokeh_html import build_figure

    if not (counterfactual or "").strip() and not (counterfactual_target or "").strip():
        raise InvalidInputError("Type a counterfactual input of the same length (e.g. swap the names).")
    root = parse_root_tokens(root_token)
    if not isinstance(root, int):
        raise InvalidInputError("The Intervene tab measures one position: give one token index (-1 = the last).")
    progress(0.0, f"loading {model}")
    loaded = ctx.load(model)
    text_target, other_target = _optional(target), _optional(counterfactual_target)
    counterfactual = _optional(counterfactual) or text
    _check_texts(
        ctx,
        loaded,
        input_text=text,
        counterfactual=counterfactual,
        target=text_target,
        counterfactual_target=other_target,
    )
    estimates = [
        estimate_patching_cost(loaded, text, target=text_target),
        estimate_route_cost(loaded, text, target=text_target, seeds=ROUTE_SEEDS),
    ]
    _check_cost(ctx, estimates, "This patching sweep and route test")
    with _budget(ctx, loaded, "The patching sweep", progress) as report:
        result = patching_sweep(
            loaded,
            text,
            counterfactual,
            target=text_target,
            counterfactual_target=other_target,
            root_token=root,
            contrast_token=_optional(contrast_token),
            max_tokens=ctx.config.max_input_tokens,
            progress=lambda fraction, message: report(0.8 * fraction, message),
        )
        report(0.85, "route faithfulness")
        try:
            route = route_faithfulness(
                loaded,
                text,
                target=text_target,
                root_token=root,
                target_token=result.target_token,
                contrast_token=result.contrast_token,
                seeds=ROUTE_SEEDS,
                max_tokens=ctx.config.max_input_tokens,
            )
        except (InvalidInputError, UnsupportedError) as error:  # said in the summary: the table stays empty
            rows, route_note = [], f" Route faithfulness: {error}"
        else:
            rows, route_note = _route_rows(route), ""
    agreement = "; ".join(
        f"{m.name}: Spearman {_round(m.spearman)}, top-10 overlap {_round(m.top10_overlap)}" for m in result.maps
    )
    from exporters.tokens import display_token, result_style

    style = result_style(result)
    text_summary = (
        f"logit({display_token(result.target_token, style)}) − logit({display_token(result.contrast_token, style)}) "
        f"at position {result.root_position}: "
        f"{result.logit_diff_clean:.3f} on the input, {result.logit_diff_counterfactual:.3f} on the counterfactual. "
        f"Exact vs attribution patching — {agreement}.{route_note}"
    )
    progress(1.0, "done")
    return InterveneView(build_figure(result), rows, text_summary, result.to_json())


def _route_rows(route) -> list[list[Any]]:
    """The route faithfulness table of the exported page (:meth:`RouteFaithfulness.table`), numbers rounded."""
    return [[what, *(v if isinstance(v, str) else _round(v) for v in values)] for what, *values in route.table()]


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


def faithfulness_table(
    ctx: AppContext, comparison_json: str | None, progress: Progress = _silent
) -> tuple[list[str], list[list[Any]]]:
    """Compare's faithfulness columns for the shown comparison: per result its label, AER (when the comparison
    has a gold alignment), comprehensiveness, sufficiency, deletion and insertion AOPC (headers, rows).

    The comparison comes back from the browser, so it is read like every result JSON a request sends (text
    only, size-capped, schema-checked), and its models are loaded only if this app offers them.
    """
    from attribution.cost import estimate_faithfulness_cost
    from attribution.interventions.faithfulness import attribution_faithfulness

    comparison = read_result_json(comparison_json or "", "comparison", max_bytes=ctx.config.max_result_bytes)
    if not isinstance(comparison, Comparison):
        raise InvalidInputError("Run a comparison first: faithfulness is computed for the compared results.")
    loaded_models = {}
    for result in comparison.results:
        model_id = result.provenance.model_id
        loaded_models[model_id] = loaded_models.get(model_id) or ctx.load(model_id)
    estimates = [estimate_faithfulness_cost(r, random_seeds=COMPARE_RANDOM_SEEDS) for r in comparison.results]
    _check_cost(ctx, estimates, "The faithfulness columns")
    rows = []
    aers = comparison.aer or [None] * len(comparison.results)
    with time_budget(
        list(loaded_models.values()), ctx.config.time_budget_s, what="The faithfulness evaluation", hint=BUDGET_HINT
    ) as budget:
        report = budget_checking(budget, progress)
        for i, (label, aer, result) in enumerate(zip(comparison.labels, aers, comparison.results, strict=True)):
            report(i / len(comparison.results), f"faithfulness of {label}")
            faith = attribution_faithfulness(
                loaded_models[result.provenance.model_id], result, random_seeds=COMPARE_RANDOM_SEEDS
            )
            scores = [
                _round(faith.comprehensiveness),
                _round(faith.sufficiency),
                _round(faith.deletion_aopc),
                _round(faith.insertion_aopc),
            ]
            rows.append([label, aer, *scores] if comparison.gold_alignment else [label, *scores])
    if not comparison.gold_alignment:  # no gold alignment, no AER column
        return ["result", *FAITHFULNESS_HEADERS], rows
    return ["result", "AER", *FAITHFULNESS_HEADERS], rows


FAITHFULNESS_HEADERS = ["comprehensiveness ↑", "sufficiency ↓", "deletion AOPC ↓", "insertion AOPC ↑"]


def intervene_examples(models: Sequence[str]) -> list[list[Any]]:
    """Rows of (model, text, counterfactual, target, counterfactual target, contrast token, root token)."""
    from space.examples import IOI_MODEL, TRANSLATE_MODEL, ioi_prompts, translation_pairs

    rows: list[list[Any]] = []
    if IOI_MODEL in models:
        for prompt in ioi_prompts(1):
            rows.append([IOI_MODEL, prompt, swap_names(prompt), "", "", "", "-1"])
    if TRANSLATE_MODEL in models:
        for pair in translation_pairs(1):
            words = pair["source"].split()
            changed = " ".join([*words[:-1], _other_word(words[-1])])
            # the adverb's translation comes just before the final verb: measure the position predicting it
            root = str(len(pair["target"].split()) - 2)
            rows.append([TRANSLATE_MODEL, pair["source"], changed, pair["target"], "", "", root])
    return rows


def swap_names(prompt: str) -> str:
    """An IOI counterfactual: the repeated name (the subject) becomes the other name, so the answer flips."""
    import re

    names = [w for w in re.findall(r"[A-Z][a-z]+", prompt) if w not in {"When", "Then", "After", "While"}]
    first, second = ([*names, "", ""])[:2]
    if not first or not second or first == second:
        return prompt
    repeated = second if prompt.count(second) > 1 else first
    other = first if repeated == second else second
    head, _, tail = prompt.rpartition(repeated)
    return f"{head}{other}{tail}"


def _other_word(word: str) -> str:
    """A different word of the synthetic lexicon in the same role (adverbs, the last word of the samples)."""
    adverbs = ["quickly", "slowly", "today", "often", "quietly"]
    return next((a for a in adverbs if a != word), word)
