"""The JSON each result kind writes, and what it reads back, is byte-identical to the saved golden files."""

from __future__ import annotations

import pytest

from attribution.results import load_result, load_result_file
from tests.support.golden_results import GOLDEN_DIR, golden_results

GOLDEN = golden_results()


def test_every_golden_file_has_its_result() -> None:
    assert sorted(path.stem for path in GOLDEN_DIR.glob("*.json")) == sorted(GOLDEN)


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_results_write_the_golden_json_byte_for_byte(name: str) -> None:
    assert GOLDEN[name].to_json() == (GOLDEN_DIR / f"{name}.json").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_json_reads_back_into_the_same_result(name: str) -> None:
    path = GOLDEN_DIR / f"{name}.json"
    text = path.read_text(encoding="utf-8")
    loaded = load_result(text)
    assert type(loaded) is type(GOLDEN[name])
    assert loaded.to_json() == text
    assert load_result_file(path).to_json() == text
