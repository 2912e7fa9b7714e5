"""A run's token-level scores as one long-format Parquet file: a row per record, method and token pair.

    record_id  method    side     source_index  source_token  target_index  target_token  score
    "17"       saliency  source   0             ▁the          0             ▁ka           0.41

so that pandas, polars or DuckDB read every score of a corpus at once (``pd.read_parquet``), instead
of opening one result JSON per record and method. ``source_*`` is the token a score is attributed
*to* (a source token of a seq2seq model, an earlier token of a causal model's prompt and output, or
for seq2seq target-side attributions an earlier target token: ``side`` says which) and ``target_*``
the explained token (its index among the explained tokens). For the ``graph`` method the score is
the route flow from the explained decoder position into the token (the final encoder state of a
source token; a causal model's input embedding), as the report's route view draws it. Cells a
method leaves empty (future positions) are not written.

Written record by record with :class:`pyarrow.parquet.ParquetWriter` (bounded memory, whatever the
corpus); failed records have no result and no rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from attribution.results import AttributionResult, ContributionGraph, node_id

if TYPE_CHECKING:
    from attribution.corpus.runfolder import CorpusRun

#: Rows gathered before a row group is written.
_ROWS_PER_GROUP = 500_000
#: The column names, types and meanings (docs/corpus.md shows this table).
TOKEN_SCORE_COLUMNS = (
    ("record_id", "string", "the record's id, as in the run's shards"),
    ("method", "string", "the attribution method, or graph"),
    ("side", "string", "source (a source token / a causal model's input) or target (an earlier target token)"),
    ("source_index", "int32", "index of the token the score is attributed to, on its side"),
    ("source_token", "string", "that token, as the tokenizer writes it"),
    ("target_index", "int32", "index of the explained token among the explained tokens"),
    ("target_token", "string", "the explained token"),
    ("score", "float64", "the score (attribution methods: aggregated per token pair; graph: route flow)"),
)


def _schema() -> Any:
    import pyarrow as pa

    types = {"string": pa.string(), "int32": pa.int32(), "float64": pa.float64()}
    return pa.schema([pa.field(name, types[kind]) for name, kind, _ in TOKEN_SCORE_COLUMNS])


def route_flow_matrix(graph: ContributionGraph) -> tuple[list[str], list[str], np.ndarray]:
    """(tokens flowed into, explained tokens, flow matrix [token, explained position]; NaN where no route
    reaches): the final encoder states of a seq2seq graph's source tokens, a causal graph's input embeddings."""
    from attribution.contributions.alignment import route_flow

    seq2seq = graph.provenance.model_kind == "seq2seq"
    rows = graph.source_tokens if seq2seq else graph.target_tokens
    matrix = np.full((len(rows), len(graph.root_tokens)), np.nan)
    for column_index, root in enumerate(graph.root_tokens):
        flow = route_flow(graph, root)
        for token in range(len(rows)):
            node = (
                node_id("encoder", graph.n_encoder_layers, "after_ffn", token)
                if seq2seq
                else node_id("decoder", 0, "embedding", token)
            )
            if node in flow:
                matrix[token, column_index] = flow[node]
    return list(rows), [graph.target_tokens[r] for r in graph.root_tokens], matrix


def _matrices(result: AttributionResult | ContributionGraph) -> Iterator[tuple[str, list[str], list[str], Any]]:
    """(side, tokens scored, explained tokens, matrix) of one result."""
    if isinstance(result, ContributionGraph):
        rows, columns, matrix = route_flow_matrix(result)
        yield "source", rows, columns, matrix
        return
    seq2seq = result.source_scores is not None and result.source_scores.size
    if seq2seq:
        yield "source", result.source_tokens, result.generated_tokens, result.source_scores
    if result.target_scores is not None and result.target_scores.size:
        yield "target" if seq2seq else "source", result.target_tokens, result.generated_tokens, result.target_scores


def token_score_columns(record_id: str, method: str, result: AttributionResult | ContributionGraph) -> dict:
    """The long-format rows of one result, column by column (finite cells only)."""
    columns: dict[str, list[Any]] = {name: [] for name, _, _ in TOKEN_SCORE_COLUMNS}
    for side, rows, explained, matrix in _matrices(result):
        values = np.asarray(matrix, dtype=float)
        sources, targets = np.nonzero(np.isfinite(values))
        columns["record_id"] += [record_id] * len(sources)
        columns["method"] += [method] * len(sources)
        columns["side"] += [side] * len(sources)
        columns["source_index"] += sources.tolist()
        columns["source_token"] += [rows[i] for i in sources]
        columns["target_index"] += targets.tolist()
        columns["target_token"] += [explained[j] for j in targets]
        columns["score"] += values[sources, targets].tolist()
    return columns


def write_token_scores(run: CorpusRun, path: str | Path) -> int:
    """Write every result's token-level scores to ``path`` (Parquet, zstd); returns the number of rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _schema()
    written = 0
    pending: dict[str, list[Any]] = {name: [] for name in schema.names}
    with pq.ParquetWriter(str(path), schema, compression="zstd") as writer:
        for row in run.rows:
            result = run.result(row) if row.get("status") == "ok" else None
            if result is None:
                continue
            for name, values in token_score_columns(row["record_id"], row["method"], result).items():
                pending[name] += values
            if len(pending["score"]) >= _ROWS_PER_GROUP:
                written += _flush(writer, pending, schema, pa)
        written += _flush(writer, pending, schema, pa)
    return written


def _flush(writer: Any, pending: dict[str, list[Any]], schema: Any, pa: Any) -> int:
    n = len(pending["score"])
    if n:
        writer.write_table(pa.Table.from_pydict(pending, schema=schema))
        for values in pending.values():
            values.clear()
    return n
