"""What a command prints after it wrote its result JSON: the numbers a reader wants first, as plain text.

``intervene`` prints each measured prediction before and after; ``--route``, the route's necessity and
sufficiency beside the random edge sets; ``patch``, each map's strongest cells; ``compare``, the rank
correlations and alignment error rates. Tokens read as text (:func:`exporters.tokens.display_token`, which
needs neither Bokeh nor torch). The JSON holds every number; these lines are a summary of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from exporters.tokens import display_token, page_text, result_style

if TYPE_CHECKING:
    import numpy as np

    from attribution.interventions.results import (
        InterventionResult,
        PatchingMap,
        PatchingResult,
        PredictionChange,
        RouteFaithfulness,
    )
    from attribution.results import Comparison

#: Cells listed per patching map.
TOP_CELLS = 3


def _number(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _change(before: float | None, after: float | None) -> str:
    if before is None or after is None:
        return "—"
    return f"{_number(before)} → {_number(after)} ({after - before:+.3f})"


def _prediction_lines(change: PredictionChange, style: str) -> list[str]:
    target = display_token(change.target_token, style)
    lines = [
        f"position {change.position} ({display_token(change.input_token, style)}): "
        f"P({target}) {_change(change.probability_before, change.probability_after)}"
    ]
    if change.contrast_token is not None:
        contrast = display_token(change.contrast_token, style)
        lines.append(
            f"  logit({target}) − logit({contrast}): {_change(change.logit_diff_before, change.logit_diff_after)}"
        )
    lines.append(f"  KL(before ‖ after): {_number(change.kl_divergence, 4)} nats")
    before = ", ".join(f"{display_token(token, style)} {p:.3f}" for token, p in change.top_before)
    after = ", ".join(f"{display_token(token, style)} {p:.3f}" for token, p, _ in change.top_after)
    lines += [f"  top before: {before}", f"  top after:  {after}"]
    return lines


def intervention_summary(result: InterventionResult) -> str:
    """The prediction at each measured position, before and after the change of ``result.components``."""
    style = result_style(result)
    lines = [f"{result.mode} of {', '.join(page_text(c) for c in result.components)}:"]
    for change in result.predictions:
        lines += _prediction_lines(change, style)
    return "\n".join(lines)


def route_summary(result: RouteFaithfulness) -> str:
    """The route's necessity and sufficiency (prediction after removing its edges / all others), and the
    random edge sets' mean for comparison."""
    style = result_style(result)
    target = display_token(result.target_token, style)
    route = result.necessity.n_edges

    def mean(effects) -> float | None:
        return sum(e.probability for e in effects) / len(effects) if effects else None

    return "\n".join(
        [
            f"route of {route} attention edge(s) from position {result.root_position}, threshold {result.threshold}:",
            f"  P({target}) clean: {_number(result.probability_clean)}",
            f"  without the route (necessity): {_number(result.necessity.probability)}; "
            f"random sets of {route} edges: {_number(mean(result.random_necessity))} on average",
            f"  the route alone (sufficiency): {_number(result.sufficiency.probability)}; "
            f"random sets: {_number(mean(result.random_sufficiency))} on average",
        ]
    )


def _top_cells(patching_map: PatchingMap, values: np.ndarray) -> str:
    import numpy as np

    finite = np.nan_to_num(np.abs(values), nan=-1.0)
    order = np.argsort(-finite, axis=None)[:TOP_CELLS]
    cells = [np.unravel_index(index, values.shape) for index in order]
    return ", ".join(
        f"{page_text(patching_map.row_label)} {page_text(patching_map.row_names[r])} × "
        f"{page_text(patching_map.column_label)} {page_text(patching_map.column_names[c])} {values[r, c]:+.3f}"
        for r, c in cells
        if np.isfinite(values[r, c])
    )


def patching_summary(result: PatchingResult) -> str:
    """The logit difference of both runs, then per map its strongest cells (exact, else attribution patching)
    and how the two agree."""
    style = result_style(result)
    target, contrast = display_token(result.target_token, style), display_token(result.contrast_token, style)
    lines = [
        f"logit({target}) − logit({contrast}) at position {result.root_position}: clean "
        f"{_number(result.logit_diff_clean)}, counterfactual {_number(result.logit_diff_counterfactual)} "
        f"({result.direction}: share of the difference each patch recovers)"
    ]
    for patching_map in result.maps:
        values = patching_map.exact if patching_map.exact is not None else patching_map.approximate
        kind = "exact" if patching_map.exact is not None else "attribution patching"
        line = f"  {patching_map.name} map ({kind}), strongest: {_top_cells(patching_map, values)}"
        if patching_map.spearman is not None:
            line += f"; exact vs attribution patching: Spearman {_number(patching_map.spearman)}"
        lines.append(line)
    return "\n".join(lines)


def comparison_summary(comparison: Comparison) -> str:
    """Spearman's ρ between every pair of results, then each result's AER against the gold alignment."""
    labels = [page_text(label) for label in comparison.labels]
    width = max(len(label) for label in labels)
    lines = ["rank correlation (Spearman's ρ):"]
    for label, row in zip(labels, comparison.rank_correlation, strict=True):
        lines.append(f"  {label:<{width}}  " + "  ".join(f"{_number(rho):>6}" for rho in row))
    if comparison.gold_alignment is not None:
        lines.append("alignment error rate against the gold alignment (lower is better):")
        lines += [f"  {label:<{width}}  {_number(aer)}" for label, aer in zip(labels, comparison.aer, strict=False)]
    return "\n".join(lines)
