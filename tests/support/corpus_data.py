"""Shared inputs of the corpus tests: rows of the bundled translation test set, plus hostile ones."""

from __future__ import annotations

import json
from pathlib import Path

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
