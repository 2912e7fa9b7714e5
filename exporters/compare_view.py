"""Comparison view: one heatmap per method / model on one shared colour scale, plus agreement numbers.

The heatmaps sit side by side and wrap onto the next line when the page (or the app's panel) is too
narrow for them, so nothing is ever hidden off to the right; every panel's title names its method
and model, wherever it wraps to.
"""

from __future__ import annotations

import dataclasses
import html

from bokeh.layouts import column, row
from bokeh.models import Div, LayoutDOM

from attribution.compare import parse_alignment
from attribution.errors import InvalidInputError
from attribution.results import Comparison
from exporters.figure_common import colour_mapper, responsive_grid_styles
from exporters.heatmap import add_values_toggles, heatmap_figure, heatmap_parts, result_heading
from exporters.tokens import page_text

#: The table's style (inside the Div, which Bokeh renders in its own shadow root).
_TABLE_STYLE = """<style>
  .ae-agreement { border-collapse: collapse; font: 13px/1.4 system-ui, sans-serif; white-space: nowrap;
                  font-variant-numeric: tabular-nums; }
  .ae-agreement th, .ae-agreement td { padding: 3px 10px; border-bottom: 1px solid rgba(128, 128, 128, 0.4); }
  .ae-agreement td { text-align: right; }
  .ae-agreement th { text-align: left; }
  .ae-agreement-box { overflow-x: auto; max-width: 100%; }
  .ae-agreement-box p { font: 13px/1.4 system-ui, sans-serif; margin: 4px 0; }
</style>"""


def _number(value: float | None) -> str:
    return "—" if value is None else f"{float(value):.3f}"


def agreement_table_html(comparison: Comparison) -> str:
    """Spearman's rho between every pair, and AER against the gold alignment when there is one.

    Labels are never cut: the table keeps them on one line and scrolls sideways inside its own box
    when it is wider than the page.
    """
    labels = [html.escape(page_text(label)) for label in comparison.labels]
    has_aer = comparison.gold_alignment is not None and any(value is not None for value in comparison.aer)
    header = "<tr><th></th>" + "".join(f"<th>{label}</th>" for label in labels)
    header += "<th>AER vs gold</th></tr>" if has_aer else "</tr>"
    body = []
    for i, label in enumerate(labels):
        cells = "".join(f"<td>{_number(rho)}</td>" for rho in comparison.rank_correlation[i])
        if has_aer:
            cells += f"<td>{_number(comparison.aer[i] if i < len(comparison.aer) else None)}</td>"
        body.append(f"<tr><th>{label}</th>{cells}</tr>")
    caption = "Rank correlation (Spearman's ρ) between the attributions"
    if has_aer:
        caption += "; alignment error rate against the gold word alignment (lower is better)"
    if _gold_links(comparison):
        caption += ". Outlined cells: the gold alignment's links (source word → target word)"
    return (
        f'{_TABLE_STYLE}<div class="ae-agreement-box"><p>{html.escape(caption)}</p>'
        f'<table class="ae-agreement">{header}{"".join(body)}</table></div>'
    )


def _gold_links(comparison: Comparison) -> set[tuple[int, int]] | None:
    """The gold alignment's links to outline; none when there is no alignment or it is not one (a saved
    comparison's text is drawn as it is, never refused for it: its table says what it holds)."""
    try:
        return parse_alignment(comparison.gold_alignment) if comparison.gold_alignment else None
    except InvalidInputError:
        return None


def comparison_figure(comparison: Comparison, difference: tuple[int, int] | None = None) -> LayoutDOM:
    """Heatmaps sharing one colour mapper, side by side and wrapping, then the agreement table; ``difference``
    ``(a, b)`` adds the A − B map of those two results (:func:`difference_figure`) below."""
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
    gold = _gold_links(comparison)
    blocks = [
        column(
            heatmap_figure(
                result,
                mapper=mapper,
                show_step_scores=False,
                score_label="score",
                label=label,
                gold_links=gold,
                with_toggle=False,
            ),
            sizing_mode="stretch_width",
            styles={"min-width": "0"},
            name=f"compared {result_heading(result, label)}",
        )
        for label, result in zip(comparison.labels, comparison.results, strict=True)
    ]
    grid = row(*blocks, sizing_mode="stretch_width", styles=responsive_grid_styles(), name="comparison grid")
    table = Div(text=agreement_table_html(comparison), name="agreement", disable_math=True, sizing_mode="stretch_width")
    layout = column(grid, table, sizing_mode="stretch_width", name="comparison")
    if difference is not None:
        layout.children.append(difference_figure(comparison, *difference, with_toggle=False))
    add_values_toggles(layout)
    return layout


def difference_figure(comparison: Comparison, first: int, second: int, *, with_toggle: bool = True) -> LayoutDOM:
    """The cell-by-cell difference of two compared results, A − B, one panel per part, on a diverging scale
    around 0 (red: A gives the cell more weight, blue: B does).

    Both must explain the same tokens (one model, or models tokenising alike): otherwise their cells do not
    line up and the difference is refused with one line.
    """
    n = len(comparison.results)
    if not (0 <= first < n and 0 <= second < n) or first == second:
        raise InvalidInputError(f"Choose two different results of the {n} compared (A and B).")
    a, b = comparison.results[first], comparison.results[second]
    parts_a, parts_b = heatmap_parts(a), heatmap_parts(b)
    same = [(pa[0], pa[1]) for pa in parts_a] == [(pb[0], pb[1]) for pb in parts_b]
    if not same or a.generated_tokens != b.generated_tokens:
        raise InvalidInputError(
            f"{page_text(comparison.labels[first])} and {page_text(comparison.labels[second])} explain different "
            "tokens (their models tokenise differently): their cells do not line up, so there is no difference map."
        )
    difference = dataclasses.replace(
        a,
        method="A − B",
        source_scores=None if a.source_scores is None else a.source_scores - b.source_scores,
        target_scores=None if a.target_scores is None else a.target_scores - b.target_scores,
        step_scores={},
        contrast_target=None,
    )
    label = f"A − B: {comparison.labels[first]} − {comparison.labels[second]}"
    matrices = [matrix for _, _, matrix in heatmap_parts(difference)]
    return heatmap_figure(
        difference,
        mapper=colour_mapper(matrices, signed=True),
        show_step_scores=False,
        score_label="A − B",
        label=label,
        words=False,
        with_toggle=with_toggle,
    )
