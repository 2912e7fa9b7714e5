"""``to_dataframe()`` of every result kind: the rows hold exactly the result's own numbers and tokens.

Each frame is checked against the arrays and lists of the result it came from (the golden results of
``tests/golden``, made from real runs' shapes, and a corpus run folder written through ``RunFolder``): pivoting
a frame back gives the matrix, every token column is the token's text beside its raw spelling.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from attribution.corpus import TaskConfig, load_run
from attribution.corpus.records import Record
from attribution.corpus.runfolder import RunFolder
from attribution.corpus.tasks import MethodOutcome, failed_outcome
from attribution.results import AttributionResult, ContributionGraph
from attribution.tokenizer_style import token_text
from tests.support.golden_results import golden_results


@pytest.fixture(scope="module")
def golden() -> dict[str, object]:
    return golden_results()


def _matrix_from(frame: pd.DataFrame, side: str, shape: tuple[int, int]) -> np.ndarray:
    """The score matrix of one side, rebuilt from the frame's rows (NaN where no row)."""
    rows = frame[frame.side == side]
    rebuilt = np.full(shape, np.nan)
    rebuilt[rows.position.to_numpy(), rows.step.to_numpy()] = rows.score.to_numpy()
    return rebuilt


@pytest.mark.parametrize("name", ["attribution-causal", "attribution-seq2seq-signed"])
def test_an_attribution_frame_is_its_score_matrices_cell_by_cell(golden, name: str) -> None:
    result: AttributionResult = golden[name]
    frame = result.to_dataframe()
    n_cells = 0
    for side, scores, tokens, word_ids in (
        ("source", result.source_scores, result.source_tokens, result.source_word_ids),
        ("target", result.target_scores, result.target_tokens, result.target_word_ids),
    ):
        if scores is None:
            assert (frame.side == side).sum() == 0
            continue
        np.testing.assert_array_equal(_matrix_from(frame, side, scores.shape), scores)  # NaN cells: no row
        n_cells += int(np.isfinite(scores).sum())
        rows = frame[frame.side == side]
        assert rows.token_raw.tolist() == [tokens[i] for i in rows.position]
        expected_words = [None if word_ids is None else word_ids[i] for i in rows.position]
        assert [None if pd.isna(w) else int(w) for w in rows.word] == expected_words
    assert len(frame) == n_cells
    assert (frame.target_position == frame.step + result.attributed_start).all()
    assert frame.target_token_raw.tolist() == [result.target_tokens[i] for i in frame.target_position]
    for name_, values in result.step_scores.items():
        expected = [values[step] for step in frame.step]
        np.testing.assert_array_equal(frame[f"step_{name_}"].to_numpy(), np.array(expected, dtype=float))


def test_tokens_come_as_text_and_as_their_tokenizer_spelled_them(golden) -> None:
    result: AttributionResult = golden["attribution-causal"]
    spelled = ["When", "ĠMary", "Ġand", "ĠJohn", "Ċ", "Ġto", "Ġthe", "Ġstore"][: len(result.target_tokens)]
    assert len(spelled) == len(result.target_tokens)
    provenance = dataclasses.replace(result.provenance, tokenizer_style="byte_level")
    frame = dataclasses.replace(result, target_tokens=spelled, provenance=provenance).to_dataframe()
    first = frame.iloc[1]
    assert (first.token_raw, first.token) == (
        spelled[first.position],
        token_text(spelled[first.position], "byte_level"),
    )
    texts = dict(zip(frame.token_raw, frame.token, strict=True))
    assert texts["ĠMary"] == " Mary" and texts["When"] == "When"
    assert set(frame.target_token) <= {" Mary", " and", " John", "\n", " to", " the", " store"}


@pytest.mark.parametrize("name", ["graph-causal", "graph-seq2seq"])
def test_a_graph_frame_has_one_row_per_edge_with_both_ends_described(golden, name: str) -> None:
    graph: ContributionGraph = golden[name]
    frame = graph.to_dataframe()
    assert len(frame) == len(graph.edges)
    tokens = {"encoder": graph.source_tokens, "decoder": graph.target_tokens}
    for edge, row in zip(graph.edges, frame.itertuples(), strict=True):
        assert (row.source, row.target, row.kind, row.weight) == (edge.source, edge.target, edge.kind, edge.weight)
        assert row.head_weights == edge.head_weights
        for end in ("source", "target"):
            node = graph.node(getattr(edge, end))
            described = (getattr(row, f"{end}_{field}") for field in ("side", "layer", "kind", "position"))
            assert tuple(described) == (node.side, node.layer, node.kind, node.token_index)
            assert getattr(row, f"{end}_token_raw") == tokens[node.side][node.token_index]
    incoming = frame.groupby("target").weight.sum()
    for target, total in incoming.items():
        assert math.isclose(total, sum(e.weight for e in graph.edges if e.target == target))


def test_a_comparison_frame_stacks_each_result_under_its_label_and_aer(golden) -> None:
    comparison = golden["comparison"]
    frame = comparison.to_dataframe()
    assert list(frame.label.unique()) == comparison.labels
    for label, aer, result in zip(comparison.labels, comparison.aer, comparison.results, strict=True):
        part = frame[frame.label == label].drop(columns=["label", "aer"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(part, result.to_dataframe())
        assert frame[frame.label == label].aer.map(lambda v: None if pd.isna(v) else v).unique().tolist() == [aer]


@pytest.mark.parametrize("name", ["intervention-zero", "intervention-mean", "intervention-patch"])
def test_an_intervention_frame_has_one_row_per_prediction(golden, name: str) -> None:
    result = golden[name]
    frame = result.to_dataframe()
    assert len(frame) == len(result.predictions)
    for change, row in zip(result.predictions, frame.itertuples(), strict=True):
        assert (row.position, row.input_token_raw, row.target_token_raw) == (
            change.position,
            change.input_token,
            change.target_token,
        )
        assert (row.probability_before, row.probability_after) == (change.probability_before, change.probability_after)
        assert row.probability_change == change.probability_after - change.probability_before
        assert (row.logit_before, row.logit_after, row.kl_divergence) == (
            change.logit_before,
            change.logit_after,
            change.kl_divergence,
        )


def test_a_patching_frame_pivots_back_into_every_map(golden) -> None:
    result = golden["patching"]
    frame = result.to_dataframe()
    assert len(frame) == sum(len(m.row_names) * len(m.column_names) for m in result.maps)
    for item in result.maps:
        cells = frame[frame.map_name == item.name]
        for values, column in ((item.exact, "exact"), (item.approximate, "approximate")):
            pivot = cells.pivot(index="row", columns="column", values=column)
            np.testing.assert_array_equal(pivot.loc[item.row_names, item.column_names].to_numpy(), values)
        if item.name == "position":
            assert cells.token_raw.tolist() == result.target_tokens * len(item.row_names)
            assert cells.position.tolist() == list(range(len(result.target_tokens))) * len(item.row_names)
        else:
            assert cells.position.isna().all() and cells.token_raw.isna().all()


def test_a_route_faithfulness_frame_has_the_route_and_every_random_edge_set(golden) -> None:
    result = golden["route-faithfulness"]
    frame = result.to_dataframe()
    expected = [
        ("necessity", "route", result.necessity),
        *(("necessity", "random", e) for e in result.random_necessity),
        ("sufficiency", "route", result.sufficiency),
        *(("sufficiency", "random", e) for e in result.random_sufficiency),
    ]
    assert len(frame) == len(expected)
    for (test, edges, effect), row in zip(expected, frame.itertuples(), strict=True):
        assert (row.test, row.edges, row.n_edges, row.probability) == (test, edges, effect.n_edges, effect.probability)
        assert (None if pd.isna(row.seed) else row.seed) == effect.seed
        assert row.share == effect.probability / result.probability_clean
    summary = result.summary()
    route_necessity = frame[(frame.test == "necessity") & (frame.edges == "route")].probability.item()
    assert math.isclose(result.probability_clean - route_necessity, summary["necessity_drop"])


def test_a_faithfulness_frame_is_its_two_curves(golden) -> None:
    result = golden["faithfulness"]
    frame = result.to_dataframe()
    assert frame.deletion.tolist() == result.deletion_curve and frame.insertion.tolist() == result.insertion_curve
    assert frame.fraction.tolist() == [i / (len(result.deletion_curve) - 1) for i in range(len(frame))]
    assert math.isclose(frame.deletion.mean(), result.deletion_aopc) and frame.fraction.iloc[-1] == 1.0


def test_a_corpus_run_frame_is_its_shards_rows(golden, tmp_path: Path) -> None:
    """A run folder written the way a run writes it (two records, one failed), read back as one row each."""
    result = golden["attribution-causal"]
    task = TaskConfig(methods=("saliency",), metrics=())
    folder = RunFolder.open(tmp_path / "run", model={"model_id": "synthetic-causal"}, task=task, data={})
    values = dict.fromkeys(task.value_columns())
    ok = MethodOutcome(
        record_id="first",
        row=0,
        content_hash="0" * 16,
        method="saliency",
        status="ok",
        error=None,
        result=result,
        source_text=result.source_text,
        target_text=result.target_text,
        values={**values, "mean_probability": 0.25, "n_target_tokens": 6.0},
        seconds=1.5,
        worker="here",
    )
    broken = failed_outcome(Record(record_id="second", row=1, text=""), "saliency", "empty text", "here", 0.1)
    folder.write([[ok], [broken]])
    folder.close(status="complete")
    run = load_run(tmp_path / "run")
    frame = run.to_dataframe()
    assert frame.record_id.tolist() == ["first", "second"] and frame.status.tolist() == ["ok", "error"]
    assert frame.error.tolist()[1] == "empty text" and frame.mean_probability.tolist()[0] == 0.25
    assert math.isnan(frame.mean_probability.tolist()[1])
    assert [None if pd.isna(v) else v for v in frame.result_file] == [row["result_file"] for row in run.rows]
    assert run.result(frame.iloc[0].to_dict()).to_json() == result.to_json()
    assert list(frame.columns[:4]) == ["record_id", "content_hash", "method", "status"]
