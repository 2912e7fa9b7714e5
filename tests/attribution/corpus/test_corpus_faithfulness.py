"""Corpus runs × interventions: the faithfulness metrics of the corpus registry (opt-in).

Ground truth: each record's numbers are what the single-result functions give for that record's own
result (``attribution_faithfulness`` / ``graph_faithfulness``), the four numbers of a record and
method come from one evaluation, and a run that does not name them never computes them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from attribution.corpus import FieldMap, ModelSpec, TaskConfig, default_metrics, load_run, read_records, run_corpus
from attribution.corpus.metrics import find_metric
from attribution.interventions import faithfulness
from attribution.models import load_model
from attribution.results import AttributionResult
from exporters import export_result
from tests.support.corpus_data import translation_rows, write_jsonl

MODEL = "tiny-synth-translate"
FAITHFULNESS = ("comprehensiveness", "sufficiency", "deletion_aopc", "insertion_aopc")


@pytest.fixture(scope="module")
def run_with_faithfulness(tmp_path_factory) -> tuple[Path, int]:
    """Three records × (saliency, attention, graph) with AER and the four faithfulness metrics; the number of
    faithfulness evaluations the run made."""
    folder = tmp_path_factory.mktemp("faithfulness")
    data = write_jsonl(folder / "pairs.jsonl", translation_rows(3))
    task = TaskConfig(methods=("saliency", "attention", "graph"), metrics=("aer", *FAITHFULNESS))
    evaluations = {"n": 0}
    counted = {}
    for name in ("attribution_faithfulness", "graph_faithfulness"):
        original = getattr(faithfulness, name)

        def count(*args, original=original, **kwargs):
            evaluations["n"] += 1
            return original(*args, **kwargs)

        counted[name] = count
    with pytest.MonkeyPatch.context() as patch:
        for name, function in counted.items():
            patch.setattr(faithfulness, name, function)
        summary = run_corpus(read_records(data, FieldMap()), folder / "run", model=ModelSpec(MODEL), task=task)
    assert summary.complete and summary.failed == 0
    return folder / "run", evaluations["n"]


def test_the_corpus_numbers_are_the_single_result_functions_numbers(run_with_faithfulness) -> None:
    run_dir, _ = run_with_faithfulness
    run = load_run(run_dir)
    loaded = load_model(MODEL)
    assert {row["method"] for row in run.rows} == {"saliency", "attention", "graph"}
    for row in run.rows:
        result = run.result(row)
        evaluate = (
            faithfulness.attribution_faithfulness
            if isinstance(result, AttributionResult)
            else faithfulness.graph_faithfulness
        )
        direct = evaluate(loaded, result)  # the library's defaults: 3 random rankings, which these do not use
        for name in FAITHFULNESS:
            assert row[name] == pytest.approx(getattr(direct, name), abs=1e-12), (row["record_id"], row["method"], name)
    saliency = [r["comprehensiveness"] for r in run.rows if r["method"] == "saliency"]
    attention = [r["comprehensiveness"] for r in run.rows if r["method"] == "attention"]
    assert sum(saliency) > sum(attention)  # on this model gradients rank the source better than raw attention


def test_one_evaluation_per_record_and_method_serves_all_four_numbers(run_with_faithfulness) -> None:
    _, evaluations = run_with_faithfulness
    assert evaluations == 3 * 3  # records × methods, not × the four metrics


def test_faithfulness_is_opt_in_and_the_report_shows_it_when_present(run_with_faithfulness, tmp_path) -> None:
    assert not set(FAITHFULNESS) & set(default_metrics()) and {"aer", "aer_threshold"} <= set(default_metrics())
    assert [find_metric(name).lower_is_better for name in FAITHFULNESS] == [False, True, True, False]
    run_dir, _ = run_with_faithfulness
    page = export_result(load_run(run_dir)).html
    for name, direction in zip(FAITHFULNESS, ("higher", "lower", "lower", "higher"), strict=True):
        assert f"{name} per record ({direction} is better)" in page
    data = write_jsonl(tmp_path / "pairs.jsonl", translation_rows(1))
    plain = TaskConfig(methods=("saliency",), metrics=tuple(default_metrics()))
    run_corpus(read_records(data, FieldMap()), tmp_path / "plain", model=ModelSpec(MODEL), task=plain)
    (row,) = load_run(tmp_path / "plain").rows
    assert all(name not in row for name in FAITHFULNESS)  # not even a column: never computed
    assert "comprehensiveness per record" not in export_result(load_run(tmp_path / "plain")).html
