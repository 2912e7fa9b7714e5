"""What a corpus row explains (the reference or the model's own output), and AER only where it means something.

A gold alignment links the source to the *reference*: a result explaining the model's generated output is never
scored against it. The corpus-level AER (Och & Ney: link counts summed over the corpus, then the ratio) stands
next to the per-sentence mean, checked against a hand computation and against links recounted from the results.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from attribution.compare import alignment_from_scores, parse_alignment, pooled_aer, word_level_scores
from attribution.corpus import load_run
from attribution.inseq_runner import attribute
from attribution.models import load_model
from tests.support.corpus_data import translation_rows, write_jsonl

MODEL = "tiny-synth-translate"


def _rows_with_and_without_references() -> list[dict]:
    """Row 0 has its reference; row 1 an empty one; row 2 none at all (all three have a gold alignment)."""
    rows = [dict(row) for row in translation_rows(3)]
    rows[1]["target"] = ""
    del rows[2]["target"]
    return rows


def _run(tmp_path: Path, name: str, *options: str) -> dict[str, dict]:
    from space.cli import main

    data = write_jsonl(tmp_path / "pairs.jsonl", _rows_with_and_without_references())
    out = tmp_path / name
    assert main(["corpus", "--model", MODEL, "--methods", "saliency", "--data", str(data), "--out", str(out),
                 *options]) == 0  # fmt: skip
    return {row["record_id"]: row for row in load_run(out).rows}


def test_each_row_says_what_it_explains_and_a_generated_target_gets_no_aer(tmp_path: Path) -> None:
    references = translation_rows(3)
    generated = [attribute(load_model(MODEL), row["source"], method="saliency").target_text for row in references]
    rows = _run(tmp_path, "reference")
    assert rows["0"]["explained"] == "reference" and rows["0"]["target_text"] == references[0]["target"]
    assert 0.0 <= rows["0"]["aer"] <= 1.0 and rows["0"]["aer_gold_links"] == len(
        parse_alignment(references[0]["alignment"])
    )
    for record_id in ("1", "2"):  # no reference: the model's output is explained, and not scored against the gold
        assert rows[record_id]["explained"] == "model" and rows[record_id]["status"] == "ok"
        assert rows[record_id]["target_text"] == generated[int(record_id)]
        assert rows[record_id]["aer"] is None and rows[record_id]["aer_gold_links"] is None

    model_rows = _run(tmp_path, "model", "--explain", "model")
    assert [model_rows[i]["explained"] for i in "012"] == ["model"] * 3
    assert [model_rows[i]["target_text"] for i in "012"] == generated
    assert all(model_rows[i]["aer"] is None for i in "012")
    assert load_run(tmp_path / "model").manifest["task"]["explain"] == "model"

    named = _run(tmp_path, "named", "--target-field", "target")  # a named reference that is blank fails its row
    assert named["0"]["status"] == "ok"
    assert named["1"]["error"] == "the target field 'target' is empty" and named["1"]["explained"] == "model"
    assert named["2"]["error"] == "the row has no target field 'target'"


def test_pooled_aer_is_och_and_neys_figure_by_hand() -> None:
    # sentence 1: A = {0-0, 1-1}, S = {0-0, 1-0}: one match; sentence 2: A = S = {0-0}
    assert pooled_aer(matched=1 + 1, n_predicted=2 + 1, n_gold=2 + 1) == pytest.approx(1 - 4 / 6)
    assert pooled_aer(0, 0, 0) == 0.0


def test_the_report_shows_corpus_aer_recounted_from_the_results_next_to_the_mean(tmp_path: Path) -> None:
    from attribution.corpus import FieldMap, ModelSpec, TaskConfig, read_records, run_corpus
    from exporters import export_result

    rows = translation_rows(6)
    records = read_records(write_jsonl(tmp_path / "pairs.jsonl", rows), FieldMap())
    run_corpus(records, tmp_path / "run", model=ModelSpec(MODEL), task=TaskConfig(methods=("saliency",)))
    run = load_run(tmp_path / "run")
    matched = predicted = gold = 0
    per_sentence = []
    for row in run.rows:  # the links recounted from each result file, as alignment_error_rate reads them
        links = alignment_from_scores(word_level_scores(run.result(row)), mode="argmax")
        truth = parse_alignment(rows[int(row["record_id"])]["alignment"])
        matched, predicted, gold = matched + len(links & truth), predicted + len(links), gold + len(truth)
        per_sentence.append(1 - 2 * len(links & truth) / (len(links) + len(truth)))
        assert (row["aer_predicted_links"], row["aer_gold_links"]) == (len(links), len(truth))
    expected = 1 - 2 * matched / (predicted + gold)
    assert run.pooled_aer() == {"saliency": pytest.approx(expected)}
    mean = sum(per_sentence) / len(per_sentence)
    assert abs(mean - expected) > 1e-6  # the two figures differ on this data: both are worth showing
    page = export_result(run).html
    assert f"mean {mean:.3f}" in page and f"corpus AER {expected:.3f}" in page
