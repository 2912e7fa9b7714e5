"""The corpus report: one interactive page for a whole corpus run (kind ``corpus``).

Reads a run folder (:class:`attribution.corpus.CorpusRun`: the manifest, the Parquet rows and the
result JSONs); never a model. Parts, top to bottom:

- a summary (records, methods, failures, what the page leaves out);
- per metric (AER, AER with threshold links, faithfulness metrics when the run has them), one
  histogram per method over all records;
- method-vs-method agreement: mean Spearman rho over the records where both methods ran;
- a table of the records, worst first by the first metric the run has (AER where there is a gold
  alignment, else the mean probability of the explained tokens, else the methods' agreement), failed
  records last with their error; above it a search box and filters (method, status, a range of the
  metric ranked by) and a choice of the metric to rank by, acting on *every* record of the run;
- click a row: that record's heatmap (attribution methods, token level: source or prompt tokens ×
  explained tokens) or route (``graph``: flow from each decoder position into the source tokens'
  final encoder states, or for causal models into the prompt's embeddings), method chosen in a
  selector.

How it scales (the page stays bounded, whatever the corpus): histograms and agreement numbers are
computed here over *every* record, so they cost the same for 10 records or 10 000; every record's
numbers and the first :data:`TEXT_CHARS` characters of its texts are embedded once (about 0.25 KB a
record), and the table shows the ``max_table_rows`` first matches of the search and filters (default
2 000, worst first) and says how many it leaves out;
per-record heatmaps are embedded for the ``max_details`` worst records only (default 100), each at
most :data:`MAX_DETAIL_CELLS` cells. Everything else stays in the run folder's Parquet shards and
result JSONs (``attribution-explorer export results/…/saliency.json`` draws any one record).

Strings from the data (ids, texts, tokens, errors) reach the page only through Bokeh models, which
serialise them as JSON data and draw them as text (table cells, axis labels, plain-text
paragraphs), and through :func:`html.escape` in the summary.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from bokeh.layouts import column, row
from bokeh.models import (
    ColumnDataSource,
    CustomJS,
    DataTable,
    Div,
    HoverTool,
    LayoutDOM,
    LinearColorMapper,
    NumberFormatter,
    Paragraph,
    Range1d,
    Select,
    StringFormatter,
    TableColumn,
    TextInput,
)
from bokeh.palettes import Category10_10
from bokeh.plotting import figure

from attribution.corpus.metrics import find_metric
from attribution.corpus.runfolder import CorpusRun
from attribution.corpus.tasks import SIZE_COLUMNS
from attribution.corpus.token_scores import route_flow_matrix
from attribution.results import AttributionResult, ContributionGraph, TokenizerStyle
from exporters.figure_common import DIVERGING_PALETTE, SEQUENTIAL_PALETTE, short_value, token_ticks
from exporters.tokens import display_tokens, page_text, result_style

DEFAULT_MAX_TABLE_ROWS = 2000
DEFAULT_MAX_DETAILS = 100
#: A record's heatmap larger than this (rows × columns) is not embedded.
MAX_DETAIL_CELLS = 4096
TEXT_CHARS = 120
BINS = 20


def corpus_report_figure(
    run: CorpusRun, *, max_table_rows: int = DEFAULT_MAX_TABLE_ROWS, max_details: int = DEFAULT_MAX_DETAILS
) -> LayoutDOM:
    """The report's Bokeh layout (see the module docstring)."""
    methods = run.methods
    by_record = _rows_by_record(run)
    rows = [r for record_rows in by_record.values() for r in record_rows.values()]
    present = [m for m in _numeric_columns(run) if any(r.get(m) is not None for r in rows)]
    ranked = _ranked(by_record, present)
    listed = ranked[:max_table_rows]
    details: dict[str, dict[str, Any]] = {}
    for key in listed:  # the worst records that have something to draw (failed ones have no result)
        if len(details) >= max_details:
            break
        if drawn := _details(run, by_record[key]):
            details[page_text(key)] = drawn  # keyed as the table shows the record
    parts: list[LayoutDOM] = [_summary(run, by_record, len(listed), len(details))]
    parts += [_histogram(run, rows, metric, methods) for metric in present if not metric.startswith(("rho_", "n_"))]
    agreement = _agreement(run, run.task.attribution_methods)
    if agreement is not None:
        parts.append(agreement)
    every, shown = _record_columns(by_record, ranked, methods, present)
    table, source = _table(every, shown, max_table_rows)
    parts.append(_filters(every, shown, source, methods, max_table_rows, present))
    parts.append(table)
    parts.append(_detail_view(source, details, methods))
    return column(*parts, name="corpus report")


def _numeric_columns(run: CorpusRun) -> list[str]:
    """The per-row numbers a report can rank by, the run's metrics first (they head the ranking)."""
    task = run.task
    return [*task.metrics, *(f"mean_{name}" for name in task.step_scores), "agreement", *SIZE_COLUMNS[:2]]


def _rows_by_record(run: CorpusRun) -> dict[str, dict[str, dict[str, Any]]]:
    """record id → method → row, in the run's record order; each row gains ``agreement``: its mean rho with the
    run's other attribution methods on the same record."""
    grouped: dict[str, dict[str, dict[str, Any]]] = {}
    for record_row in run.rows:
        rhos = _finite([v for k, v in record_row.items() if k.startswith("rho_")])
        record_row = {**record_row, "agreement": float(rhos.mean()) if rhos.size else None}
        grouped.setdefault(record_row["record_id"], {})[record_row["method"]] = record_row
    return grouped


#: Step scores for which a higher mean is better (Inseq's names); the others (entropy, perplexity...) are costs.
_HIGHER_IS_BETTER_STEP_SCORES = ("probability", "contrast_prob_diff", "logit", "contrast_logits_diff")


def _lower_is_better(metric: str) -> bool:
    """Which way ``metric`` gets worse: the registry's direction; agreement and probabilities are better high;
    a metric this process does not know, and a length, count as costs (the highest is listed first)."""
    if metric == "agreement":
        return False
    if metric.startswith("mean_"):
        return metric.removeprefix("mean_") not in _HIGHER_IS_BETTER_STEP_SCORES
    known = find_metric(metric)
    return known.lower_is_better if known is not None else True


def _ranked(by_record: Mapping[str, Mapping[str, dict]], metrics: Sequence[str]) -> list[str]:
    """Record ids, worst first by the mean over methods of the first metric (highest for an error rate such
    as AER, lowest for a score such as the mean probability); failed records last."""
    headline = metrics[0] if metrics else None
    worst_high = _lower_is_better(headline) if headline else True

    def key(record_id: str) -> tuple[int, float]:
        rows = by_record[record_id]
        if any(r["status"] != "ok" for r in rows.values()):
            return (2, 0.0)
        values = _finite([r.get(headline) for r in rows.values()]) if headline else np.zeros(0)
        if not values.size:
            return (1, 0.0)
        return (0, -float(values.mean()) if worst_high else float(values.mean()))

    return sorted(by_record, key=key)


def _summary(run: CorpusRun, by_record: Mapping[str, Mapping[str, dict]], listed: int, detailed: int) -> Div:
    n = len(by_record)
    failed = sum(any(r["status"] != "ok" for r in rows.values()) for rows in by_record.values())
    expected = run.manifest.get("data", {}).get("n_records")
    status = run.manifest.get("status", "unknown")
    lines = [
        f"<b>{n}</b> records{f' of {int(expected)}' if expected else ''} (run {html.escape(page_text(status))}), "
        f"methods: {html.escape(page_text(', '.join(run.methods)))}; <b>{failed}</b> record(s) failed.",
        f"The table lists {listed} of {n} records, worst first; heatmaps are embedded for the first {detailed} "
        "(click a row). The search and filters act on every record. Distributions and agreement cover every "
        "record. All rows are in the run folder's Parquet shards, every result in its JSON file.",
    ]
    return Div(text="<p>" + "<br>".join(lines) + "</p>", width=900, name="corpus summary")


def _finite(values: Sequence[Any]) -> np.ndarray:
    array = np.array([v for v in values if v is not None], dtype=float)
    return array[np.isfinite(array)]


def _histogram(run: CorpusRun, rows: Sequence[Mapping[str, Any]], metric: str, methods: Sequence[str]) -> figure:
    """One histogram per method of ``metric`` over all ``rows`` (shared bins), with mean and count."""
    per_method = {m: _finite([r.get(metric) for r in rows if r["method"] == m]) for m in methods}
    per_method = {m: v for m, v in per_method.items() if v.size}
    pooled = run.pooled_aer() if metric == "aer" else {}
    everything = np.concatenate(list(per_method.values()))
    low, high = float(everything.min()), float(everything.max())
    if metric.startswith("aer"):
        low, high = 0.0, 1.0
    if high <= low:
        high = low + 1.0
    edges = np.linspace(low, high, BINS + 1)
    plot = figure(
        title=f"{metric} per record ({'lower' if _lower_is_better(metric) else 'higher'} is better)",
        width=900,
        height=260,
        tools="xpan,xwheel_zoom,reset,save",
        x_axis_label=metric,
        y_axis_label="records",
        name=f"histogram {metric}",
    )
    for index, (method, values) in enumerate(per_method.items()):
        counts, _ = np.histogram(np.clip(values, low, high), bins=edges)
        source = ColumnDataSource({"left": edges[:-1], "right": edges[1:], "top": counts, "method": [method] * BINS})
        colour = Category10_10[index % 10]
        label = f"{method}: mean {values.mean():.3f}, median {np.median(values):.3f}, n={values.size}"
        if method in pooled:  # what papers report, next to the per-sentence mean
            label += f", corpus AER {pooled[method]:.3f}"
        glyph = plot.quad(
            left="left",
            right="right",
            bottom=0,
            top="top",
            source=source,
            fill_color=colour,
            fill_alpha=0.35,
            line_color=colour,
            legend_label=label,
        )
        plot.add_tools(
            HoverTool(
                renderers=[glyph],
                tooltips=[("method", "@method"), ("from", "@left"), ("to", "@right"), ("records", "@top")],
            )
        )
    plot.legend.location = "top_right"
    plot.legend.click_policy = "hide"
    return plot


def _agreement(run: CorpusRun, methods: Sequence[str]) -> figure | None:
    """Mean Spearman rho between every two attribution methods, over the records where both have scores."""
    if len(methods) < 2:
        return None
    xs, ys, means, counts, labels, ink = [], [], [], [], [], []
    for i, a in enumerate(methods):
        for j, b in enumerate(methods):
            values = _finite([r.get(f"rho_{b}") for r in run.rows if r["method"] == a]) if a != b else np.ones(1)
            mean = float(values.mean()) if values.size else math.nan
            xs.append(j)
            ys.append(i)
            means.append(mean)
            counts.append(int(values.size) if a != b else 0)
            labels.append("—" if math.isnan(mean) else f"{mean:.2f}")
            ink.append("white" if abs(mean) > 0.6 else "black")
    size = max(90 * len(methods), 240)
    plot = figure(
        title="agreement: mean Spearman rho of |scores| per record",
        x_range=Range1d(-0.5, len(methods) - 0.5),
        y_range=Range1d(len(methods) - 0.5, -0.5),
        frame_width=size,
        frame_height=size,
        min_border_left=160,
        tools="save",
        name="agreement",
    )
    mapper = LinearColorMapper(palette=DIVERGING_PALETTE, low=-1.0, high=1.0, nan_color="#eeeeee")
    source = ColumnDataSource(
        {
            "x": xs,
            "y": ys,
            "mean": means,
            "n": counts,
            "label": labels,
            "ink": ink,
            "a": [methods[y] for y in ys],
            "b": [methods[x] for x in xs],
        }
    )
    cells = plot.rect(
        x="x",
        y="y",
        width=1,
        height=1,
        source=source,
        fill_color={"field": "mean", "transform": mapper},
        line_color="white",
    )
    plot.text(
        x="x",
        y="y",
        text="label",
        source=source,
        text_align="center",
        text_baseline="middle",
        text_font_size="12px",
        text_color="ink",
    )
    plot.add_tools(HoverTool(renderers=[cells], tooltips=[("", "@a vs @b"), ("mean rho", "@mean"), ("records", "@n")]))
    plot.xaxis.ticker, plot.xaxis.formatter = token_ticks(list(methods))
    plot.yaxis.ticker, plot.yaxis.formatter = token_ticks(list(methods))
    plot.xaxis.major_label_orientation = math.pi / 4
    plot.grid.visible = False
    return plot


def _shorten(text: str | None) -> str:
    """A record's text for its table cell: one line, at most TEXT_CHARS characters, shown as page text."""
    text = page_text((text or "").replace("\n", " "))
    return text if len(text) <= TEXT_CHARS else text[: TEXT_CHARS - 1] + "…"


def _record_columns(
    by_record: Mapping[str, Mapping[str, dict]], ranked: Sequence[str], methods: Sequence[str], metrics: Sequence[str]
) -> tuple[dict[str, list[Any]], list[tuple[str, str]]]:
    """Every record's table columns in ``ranked`` order (ids, texts as the page shows them, status, one number
    per method and metric, whether each method ran), and the (method, metric) pairs that have numbers."""
    data: dict[str, list[Any]] = {"record": [], "status": [], "text": [], "target": [], "explained": []}
    shown = [
        (method, metric)
        for metric in metrics
        for method in methods
        if any(rows.get(method, {}).get(metric) is not None for rows in by_record.values())
    ]
    for method, metric in shown:
        data[f"{method} {metric}"] = []
    for method in methods:
        data[f"ok {method}"] = []
    for record_id in ranked:
        rows = by_record[record_id]
        first = next(iter(rows.values()))
        errors = [f"{m}: {r['error']}" for m, r in rows.items() if r["status"] != "ok"]
        data["record"].append(page_text(record_id))  # as shown, and as the detail view finds it
        data["status"].append(page_text("; ".join(errors)) if errors else "ok")
        data["text"].append(_shorten(first["source_text"]))
        data["target"].append(_shorten(next((r["target_text"] for r in rows.values() if r["target_text"]), "")))
        data["explained"].append(page_text(first.get("explained") or ""))
        for method, metric in shown:
            value = rows.get(method, {}).get(metric)
            data[f"{method} {metric}"].append(math.nan if value is None else float(value))
        for method in methods:
            data[f"ok {method}"].append(int(rows.get(method, {}).get("status") == "ok"))
    return data, shown


def _table(
    every: Mapping[str, list[Any]], shown: Sequence[tuple[str, str]], max_rows: int
) -> tuple[DataTable, ColumnDataSource]:
    """The table of the first ``max_rows`` records (the filters' JavaScript refills it from ``every``)."""
    source = ColumnDataSource({name: values[:max_rows] for name, values in every.items()}, name="records")
    columns = [
        TableColumn(field="record", title="record", width=70, formatter=StringFormatter()),
        *(
            TableColumn(
                field=f"{m} {x}", title=f"{m} {x}", width=90, formatter=NumberFormatter(format="0.000", nan_format="—")
            )
            for m, x in shown
        ),
        TableColumn(field="text", title="text", width=330, formatter=StringFormatter()),
        TableColumn(field="target", title="target", width=250, formatter=StringFormatter()),
        TableColumn(field="explained", title="explained", width=80, formatter=StringFormatter()),
        TableColumn(field="status", title="status", width=200, formatter=StringFormatter()),
    ]
    table = DataTable(
        source=source,
        columns=columns,
        width=1100,
        height=min(420, 28 + 25 * max(len(source.data["record"]), 1)),
        sortable=True,
        selectable=True,
        index_position=None,
        name="records table",
    )
    return table, source


_FILTER_JS = """
const d = every.data;
const n = d.record.length;
const query = search.value_input.trim().toLowerCase();  // as typed, before Enter or a blur
const low = parseFloat(low_input.value_input), high = parseFloat(high_input.value_input);
const key = rank.value === default_rank ? null : rank.value;
const chosen = method.value === "any method" ? methods : [method.value];
const kept = [];
for (let i = 0; i < n; i++) {
  const ok = chosen.every((m) => d["ok " + m][i] === 1);
  if (status.value === "ok" && !ok) { continue; }
  if (status.value === "failed" && chosen.every((m) => d["ok " + m][i] === 1)) { continue; }
  if (query && !(d.record[i] + "\\n" + d.text[i] + "\\n" + d.target[i] + "\\n" + d.status[i])
      .toLowerCase().includes(query)) { continue; }
  if (key !== null && (!isNaN(low) || !isNaN(high))) {
    const v = d[key][i];
    if (!(v === v) || (!isNaN(low) && v < low) || (!isNaN(high) && v > high)) { continue; }
  }
  kept.push(i);
}
if (key !== null) {
  const sign = worst_high[key] ? -1 : 1;
  kept.sort((a, b) => {
    const x = d[key][a], y = d[key][b];
    if (!(x === x)) { return (y === y) ? 1 : a - b; }
    if (!(y === y)) { return -1; }
    return sign * (x - y) || a - b;
  });
}
const listed = kept.slice(0, max_rows);
const data = {};
for (const name of Object.keys(table_source.data)) { data[name] = listed.map((i) => d[name][i]); }
table_source.selected.indices = [];
table_source.data = data;
counter.text = `${kept.length} of ${n} records match; the table shows the first ${listed.length}.`;
"""


def _filters(
    every: Mapping[str, list[Any]],
    shown: Sequence[tuple[str, str]],
    table_source: ColumnDataSource,
    methods: Sequence[str],
    max_rows: int,
    metrics: Sequence[str],
) -> LayoutDOM:
    """Search box, method / status filters, a metric to rank by and its range: they refill the table from every
    record of the run (embedded once, in ``every``), worst first by the chosen metric."""
    everything = ColumnDataSource(dict(every), name="all records")
    default_rank = f"worst first (mean {metrics[0]} over methods)" if metrics else "run order"
    search = TextInput(
        title="search (id, text, target, error)", placeholder="search records", width=260, name="record search"
    )
    method = Select(
        title="method", value="any method", options=["any method", *methods], width=160, name="method filter"
    )
    status = Select(title="status", value="all", options=["all", "ok", "failed"], width=100, name="status filter")
    rank = Select(
        title="rank by",
        value=default_rank,
        options=[default_rank, *(f"{m} {x}" for m, x in shown)],
        width=240,
        name="rank by",
    )
    low_input = TextInput(title="from (rank-by metric)", placeholder="from", width=120, name="metric from")
    high_input = TextInput(title="to", placeholder="to", width=120, name="metric to")
    counter = Div(
        name="match count",
        text=f"{len(every['record'])} records; the table shows the first {min(max_rows, len(every['record']))}.",
    )
    callback = CustomJS(
        args={
            "every": everything,
            "table_source": table_source,
            "search": search,
            "method": method,
            "status": status,
            "rank": rank,
            "low_input": low_input,
            "high_input": high_input,
            "counter": counter,
            "methods": list(methods),
            "default_rank": default_rank,
            "max_rows": max_rows,
            "worst_high": {f"{m} {x}": _lower_is_better(x) for m, x in shown},
        },
        code=_FILTER_JS,
    )
    for widget in (search, low_input, high_input):
        widget.js_on_change("value", callback)
        widget.js_on_change("value_input", callback)
    for widget in (method, status, rank):
        widget.js_on_change("value", callback)
    return column(row(search, method, status, rank, low_input, high_input), counter, name="record filters")


def _details(run: CorpusRun, rows: Mapping[str, dict]) -> dict[str, dict[str, Any]]:
    """Per method, what the detail view draws for one record (empty for failed or oversized ones)."""
    drawn = {}
    for method, record_row in rows.items():
        result = run.result(record_row)
        if isinstance(result, AttributionResult):
            part = _attribution_detail(result)
        elif isinstance(result, ContributionGraph):
            part = _route_detail(result)
        else:
            part = None
        if part is not None and len(part["rows"]) * len(part["cols"]) <= MAX_DETAIL_CELLS:
            drawn[method] = part
    return drawn


def _detail(
    row_tokens: list[str],
    col_tokens: list[str],
    matrix: np.ndarray,
    title: str,
    signed: bool,
    style: TokenizerStyle,
) -> dict[str, Any]:
    """Cells of a matrix as plain lists, with a colour value scaled into [-1, 1] (or [0, 1])."""
    ys, xs = np.nonzero(np.isfinite(matrix))
    values = matrix[ys, xs]
    largest = float(np.abs(values).max()) if values.size else 1.0
    return {
        "rows": display_tokens(row_tokens, style),
        "cols": display_tokens(col_tokens, style),
        "x": xs.tolist(),
        "y": ys.tolist(),
        "value": values.tolist(),
        "colour": (values / (largest or 1.0)).tolist(),
        "title": title,
        "signed": signed,
    }


def _attribution_detail(result: AttributionResult) -> dict[str, Any]:
    if result.source_scores is not None and result.source_scores.size:
        rows, matrix, side = result.source_tokens, result.source_scores, "source"
    else:
        rows, matrix, side = result.target_tokens, result.target_scores, "prompt"
    title = f"{page_text(result.method)}: {side} tokens × explained tokens"
    matrix = np.asarray(matrix, dtype=float)
    return _detail(list(rows), result.generated_tokens, matrix, title, result.is_signed, result_style(result))


def _route_detail(graph: ContributionGraph) -> dict[str, Any] | None:
    rows, roots, matrix = route_flow_matrix(graph)
    if not np.isfinite(matrix).any():
        return None
    seq2seq = graph.provenance.model_kind == "seq2seq"
    side = "source tokens (final encoder state)" if seq2seq else "input tokens (embeddings)"
    title = f"graph: route flow into {side} × decoder position"
    return _detail(rows, roots, matrix, title, False, result_style(graph))


_SHOW_JS = """
const selected = table_source.selected.indices;
if (selected.length === 0) { return; }
const record = table_source.data.record[selected[0]];
const method = select.value;
const drawn = (details[record] || {})[method];
if (!drawn) {
  message.text = `record ${record}: no ${method} heatmap embedded (failed, oversized, or not among the `
    + `first ${n_details}); its row and result JSON are in the run folder.`;
  cells.data = {x: [], y: [], value: [], colour: []};
  return;
}
message.text = `record ${record} — ${drawn.title}`;
const positions = (n) => Array.from({length: n}, (_, i) => i);
xticker.ticks = positions(drawn.cols.length);
yticker.ticks = positions(drawn.rows.length);
xformatter.args = {positions: positions(drawn.cols.length), labels: drawn.cols};
yformatter.args = {positions: positions(drawn.rows.length), labels: drawn.rows};
mapper.low = drawn.signed ? -1 : 0;
mapper.palette = drawn.signed ? diverging : sequential;
plot.x_range.start = -0.5; plot.x_range.end = drawn.cols.length - 0.5;
plot.y_range.start = drawn.rows.length - 0.5; plot.y_range.end = -0.5;
cells.data = {
  x: drawn.x, y: drawn.y, value: drawn.value, colour: drawn.colour,
  row_token: drawn.y.map((i) => drawn.rows[i]), col_token: drawn.x.map((i) => drawn.cols[i]),
};
"""


def _detail_view(
    table_source: ColumnDataSource, details: dict[str, dict[str, Any]], methods: Sequence[str]
) -> LayoutDOM:
    """The heatmap of the record selected in the table, for the method selected above it."""
    cells = ColumnDataSource(
        {"x": [], "y": [], "value": [], "colour": [], "row_token": [], "col_token": []}, name="detail cells"
    )
    mapper = LinearColorMapper(palette=DIVERGING_PALETTE, low=-1.0, high=1.0, nan_color="#eeeeee")
    plot = figure(
        x_range=Range1d(-0.5, 0.5),
        y_range=Range1d(0.5, -0.5),
        frame_width=640,
        frame_height=420,
        min_border_left=120,
        tools="pan,wheel_zoom,box_zoom,reset,save",
        title="record detail",
        name="record detail",
    )
    glyph = plot.rect(
        x="x",
        y="y",
        width=1,
        height=1,
        source=cells,
        fill_color={"field": "colour", "transform": mapper},
        line_color=None,
    )
    plot.add_tools(
        HoverTool(
            renderers=[glyph],
            tooltips=[("row", "@row_token"), ("column", "@col_token"), ("score", "@value{custom}")],
            formatters={"@value": short_value()},
        )
    )
    plot.yaxis.ticker, plot.yaxis.formatter = token_ticks([])
    plot.xaxis.ticker, plot.xaxis.formatter = token_ticks([])
    plot.xaxis.major_label_orientation = math.pi / 2
    plot.grid.visible = False
    select = Select(title="method", value=methods[0], options=list(methods), width=220, name="detail method")
    message = Paragraph(
        text="Click a record in the table to see its heatmap or route.", width=900, name="detail message"
    )
    callback = CustomJS(
        args={
            "table_source": table_source,
            "select": select,
            "details": details,
            "n_details": len(details),
            "message": message,
            "cells": cells,
            "plot": plot,
            "mapper": mapper,
            "xticker": plot.xaxis[0].ticker,
            "yticker": plot.yaxis[0].ticker,
            "xformatter": plot.xaxis[0].formatter,
            "yformatter": plot.yaxis[0].formatter,
            "diverging": list(DIVERGING_PALETTE),
            "sequential": list(SEQUENTIAL_PALETTE),
        },
        code=_SHOW_JS,
    )
    table_source.selected.js_on_change("indices", callback)
    select.js_on_change("value", callback)
    return column(row(select, message), plot)
