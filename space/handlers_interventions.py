"""What the Space's intervention controls do: the graph tab's Ablate, the Intervene tab, Compare's faithfulness.

Plain functions of widget values (no Gradio here), like :mod:`space.handlers`, whose app context,
model loading and progress convention they share. Costs are capped: a patching sweep in the app runs at
most :data:`MAX_PATCH_CELLS` patched forward passes, and faithfulness in Compare uses one random seed.
(A wall-clock budget per request belongs to ``attribution/budget.py``, which is not on main yet; until
it lands, these caps bound the work of one request.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from attribution.errors import InvalidInputError
from attribution.results import Comparison, ContributionGraph
from space.handlers import AppContext, Progress, _optional, _silent
from space.inputs import parse_root_tokens

#: Most patched runs one Intervene request may ask for (exact sweeps; attribution patching is 3 passes).
MAX_PATCH_CELLS = 1500
ABLATION_MODES = {"zero": "zero", "mean (over positions)": "mean"}


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
    from attribution.errors import UnsupportedError
    from attribution.interventions.ablation import intervene
    from attribution.interventions.graph_after import graph_after_intervention
    from exporters.bokeh_html import build_figure

    if not graph_json or not graph_json.strip():
        raise InvalidInputError("Compute a contribution graph first, then pick a node or an edge to ablate.")
    graph = ContributionGraph.from_json(graph_json)
    if mode not in ABLATION_MODES:
        raise InvalidInputError(f"Unknown ablation mode {mode!r}; choose one of {', '.join(ABLATION_MODES)}.")
    component = graph_component(graph, choice)
    progress(0.0, f"loading {model}")
    loaded = ctx.load(model)
    target = _optional(target) or (graph.target_text or None)
    if graph.source_text != text:
        raise InvalidInputError("The text changed since the graph was drawn: build the graph again first.")
    roots = list(graph.root_tokens)
    progress(0.2, "ablating")
    result = intervene(
        loaded,
        text,
        [component],
        target=target,
        mode=ABLATION_MODES[mode],
        mean_over="positions",
        root_tokens=roots[:8],
        max_tokens=ctx.config.max_input_tokens,
    )
    rows = []
    for prediction in result.predictions:
        rows.append(
            [
                f"{prediction.position}: {prediction.input_token} → {prediction.target_token}",
                round(prediction.probability_before, 5),
                round(prediction.probability_after, 5),
                ", ".join(f"{t} {p:.3f}" for t, p in prediction.top_before[:3]),
                ", ".join(f"{t} {p:.3f}" for t, p, _ in prediction.top_after[:3]),
                round(prediction.kl_divergence, 5),
            ]
        )
    progress(0.6, "re-drawing the route")
    figure, note = None, f"Ablated {component} ({mode})."
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
        )
        figure = build_figure(after)
        note += " The graph below is the route after the ablation."
    except UnsupportedError as error:
        note += f" The route is not re-drawn: {error}"
    headers = ["position → target", "p before", "p after", "top before", "top after", "KL"]
    return AblateView(rows, headers, figure, note, result.to_json())


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
    result = patching_sweep(
        loaded,
        text,
        _optional(counterfactual) or text,
        target=_optional(target),
        counterfactual_target=_optional(counterfactual_target),
        root_token=root,
        contrast_token=_optional(contrast_token),
        max_cells=MAX_PATCH_CELLS,
        max_tokens=ctx.config.max_input_tokens,
        progress=lambda fraction, message: progress(0.8 * fraction, message),
    )
    progress(0.85, "route faithfulness")
    rows: list[list[Any]] = []
    try:
        route = route_faithfulness(
            loaded,
            text,
            target=_optional(target),
            root_token=root,
            target_token=result.target_token,
            contrast_token=result.contrast_token,
            seeds=3,
            max_tokens=ctx.config.max_input_tokens,
        )
        summary = route.summary()
        rows = [
            ["necessity: drop of p", _round(summary["necessity_drop"]), _round(summary["random_necessity_drop"])],
            [
                "sufficiency: share of p kept",
                _round(summary["sufficiency_kept"]),
                _round(summary["random_sufficiency_kept"]),
            ],
            [
                "edges (total weight)",
                f"{route.necessity.n_edges} ({route.necessity.total_weight:.3f})",
                ", ".join(f"{e.total_weight:.3f}" for e in route.random_necessity),
            ],
        ]
    except (InvalidInputError, UnsupportedError) as error:
        rows = [["route", str(error), ""]]
    agreement = "; ".join(
        f"{m.name}: Spearman {_round(m.spearman)}, top-10 overlap {_round(m.top10_overlap)}" for m in result.maps
    )
    text_summary = (
        f"logit({result.target_token}) − logit({result.contrast_token}) at position {result.root_position}: "
        f"{result.logit_diff_clean:.3f} on the input, {result.logit_diff_counterfactual:.3f} on the counterfactual. "
        f"Exact vs attribution patching — {agreement}."
    )
    progress(1.0, "done")
    return InterveneView(build_figure(result), rows, text_summary, result.to_json())


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


def faithfulness_columns(ctx: AppContext, comparison: Comparison, progress: Progress = _silent) -> list[list[Any]]:
    """Per compared result: comprehensiveness, sufficiency, deletion and insertion AOPC (one random seed)."""
    from attribution.interventions.faithfulness import attribution_faithfulness

    rows = []
    for i, (label, result) in enumerate(zip(comparison.labels, comparison.results, strict=True)):
        progress(i / max(len(comparison.results), 1), f"faithfulness of {label}")
        loaded = ctx.load(result.provenance.model_id)
        faith = attribution_faithfulness(loaded, result, random_seeds=1)
        rows.append(
            [
                _round(faith.comprehensiveness),
                _round(faith.sufficiency),
                _round(faith.deletion_aopc),
                _round(faith.insertion_aopc),
            ]
        )
    return rows


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
