"""Shared inputs of the corpus tests: rows of the bundled translation test set, plus hostile ones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.support.paths import REPO

TRANSLATION_TEST_SET = REPO / "examples" / "data" / "synth_translate_test.jsonl"


def translation_rows(n: int) -> list[dict]:
    """The first ``n`` pairs of the bundled test set (source, target, gold alignment)."""
    lines = TRANSLATION_TEST_SET.read_text(encoding="utf-8").splitlines()[:n]
    return [json.loads(line) for line in lines]


#: Rows that must fail one by one, each with its own message, without stopping the run.
BAD_ROWS = [
    {"id": "empty", "source": "   ", "target": "ka kano", "alignment": "0-0"},
    {"id": "bad-alignment", "source": "the big dog sees a cat", "target": "ka kano grano", "alignment": "0-0 one-two"},
    {"id": "alignment-out-of-range", "source": "the dog sees a cat", "target": "ka grano", "alignment": "0-0 9-1"},
    {"id": "not-text", "source": 42, "target": "ka", "alignment": "0-0"},
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def assert_same_runs(left: Path, right: Path) -> None:
    """Every record and method in both, once; same status, errors, metrics and score matrices."""
    from attribution.corpus import load_run

    left_run, right_run = load_run(left), load_run(right)
    left_rows = {(r["record_id"], r["method"]): r for r in left_run.rows}
    right_rows = {(r["record_id"], r["method"]): r for r in right_run.rows}
    assert len(left_rows) == len(left_run.rows) and len(right_rows) == len(right_run.rows), "duplicated rows"
    assert left_rows.keys() == right_rows.keys()
    for key, row in left_rows.items():
        other = right_rows[key]
        assert (row["status"], row["error"]) == (other["status"], other["error"]), key
        for column in ("aer", "aer_threshold", "rho_attention", "rho_saliency", "mean_probability", "n_edges"):
            assert other[column] == pytest.approx(row[column], abs=1e-6), (key, column)
        if row["result_file"] is None:
            continue
        mine, theirs = left_run.result(row), right_run.result(other)
        if hasattr(mine, "source_scores"):
            np.testing.assert_allclose(mine.source_scores, theirs.source_scores, rtol=1e-5, atol=1e-7)
        else:
            assert [(e.source, e.target) for e in mine.edges] == [(e.source, e.target) for e in theirs.edges]
            np.testing.assert_allclose([e.weight for e in mine.edges], [e.weight for e in theirs.edges], atol=1e-6)
