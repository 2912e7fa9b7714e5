"""Comparison view: one heatmap per method / model on one shared colour scale, plus agreement numbers."""

from __future__ import annotations

import html

from bokeh.layouts import column, row
from bokeh.models import Div, LayoutDOM

from attribution.errors import InvalidInputError
from attribution.results import Comparison
from exporters.figure_common import colour_mapper
from exporters.heatmap import heatmap_figure, heatmap_parts

GRID_COLUMNS = 2


def _number(value: float | None) -> str:
    return "—" if value is None else f"{float(value):.3f}"


def agreement_table_html(comparison: Comparison) -> str:
    """Spearman's rho between every pair, and AER against the gold alignment when there is one."""
    labels = [html.escape(label) for label in comparison.labels]
    has_aer = any(value is not None for value in comparison.aer)
    header = "<tr><th></th>" + "".join(f"<th>{label}</th>" for label in labels)
    header += "<th>AER vs gold</th></tr>" if has_aer else "</tr>"
    body = []
    for i, label in enumerate(labels):
        cells = "".join(f"<td>{_number(rho)}</td>" for rho in comparison.rank_correlation[i])
        if has_aer:
            cells += f"<td>{_number(comparison.aer[i] if i < len(comparison.aer) else None)}</td>"
        body.append(f"<tr><th>{label}</th>{cells}</tr>")
    caption = "Rank correlation (Spearman's ρ) between attributions"
    if has_aer:
        caption += "; alignment error rate against the gold word alignment (lower is better)"
    return (
        '<table class="ae-agreement" style="border-collapse: collapse; font: 13px system-ui, sans-serif">'
        f"<caption style='text-align: left; padding: 4px 0'>{html.escape(caption)}</caption>"
        f"{header}{''.join(body)}</table>"
    )


def comparison_figure(comparison: Comparison) -> LayoutDOM:
    """A grid of heatmaps sharing one colour mapper, then the agreement table."""
    n = len(comparison.results)
    if n == 0:
        raise InvalidInputError("this comparison holds no results")
    if len(comparison.labels) != n or len(comparison.rank_correlation) != n:
        raise InvalidInputError(
            f"comparison has {n} results but {len(comparison.labels)} labels and "
            f"{len(comparison.rank_correlation)} correlation rows"
        )
    matrices = [matrix for result in comparison.results for _, _, matrix in heatmap_parts(result)]
    mapper = colour_mapper(matrices, signed=any(result.is_signed for result in comparison.results))
    cells = [
        column(
            Div(text=f"<b>{html.escape(label)}</b>", disable_math=True),
            heatmap_figure(result, mapper=mapper, show_step_scores=False, score_label="score"),
        )
        for label, result in zip(comparison.labels, comparison.results, strict=True)
    ]
    grid = [row(*cells[i : i + GRID_COLUMNS]) for i in range(0, n, GRID_COLUMNS)]
    return column(*grid, Div(text=agreement_table_html(comparison), name="agreement", disable_math=True))
