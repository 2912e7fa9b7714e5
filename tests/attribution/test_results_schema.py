"""attribution.results: JSON text vs files, the size cap before parsing, schema checks naming the field."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from attribution import validation
from attribution.contributions import build_contribution_graph
from attribution.errors import InvalidInputError, ResultFormatError
from attribution.inseq_runner import attribute
from attribution.models import load_model
from attribution.results import AttributionResult, Comparison, ContributionGraph, load_result, load_result_file
from tests.support.hostile_inputs import result_json_cases, valid_attribution, valid_comparison, valid_graph
from tests.support.random_models import FAMILIES, build_random_model
from tests.support.tiers import across_families

CAP = 200_000


@pytest.fixture
def server_file(tmp_path: Path) -> Path:
    path = tmp_path / "someone-elses-result.json"
    valid_attribution().to_json(path)
    return path


@pytest.mark.parametrize(
    "case", result_json_cases(max_bytes=CAP, server_file=Path("/tmp/x.json")), ids=lambda c: c.name
)
def test_every_hostile_result_json_is_one_line_naming_the_problem(case) -> None:
    with pytest.raises(ResultFormatError) as caught:
        load_result(case.value, max_bytes=CAP)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 400, message
    assert re.search(case.expect, message), message


def test_text_is_never_read_as_a_path(server_file: Path) -> None:
    """The path of a real result file, given as text, is refused exactly like a path that does not exist."""
    with pytest.raises(ResultFormatError) as existing:
        load_result(str(server_file))
    with pytest.raises(ResultFormatError) as missing:
        load_result(str(server_file.with_name("missing.json")))
    assert str(existing.value) == str(missing.value).replace("missing.json", server_file.name)
    assert str(existing.value) == "result JSON is not valid JSON (Expecting value at line 1)"
    assert load_result_file(server_file).to_dict() == valid_attribution().to_dict()  # explicit file loading works


def test_size_cap_is_checked_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_parsing(*args, **kwargs):
        raise AssertionError("json.loads was called on an oversize text")

    monkeypatch.setattr(validation.json, "loads", no_parsing)
    text = valid_attribution().to_json()
    with pytest.raises(ResultFormatError, match=r"larger than the 0\.000954 MB accepted"):
        AttributionResult.from_json(text, max_bytes=1000)
    with pytest.raises(ResultFormatError, match="larger than"):
        load_result(text.encode(), max_bytes=1000)
    # A text of few characters but more bytes than the cap (4-byte characters) is measured in bytes.
    with pytest.raises(ResultFormatError, match="larger than"):
        load_result("😀" * 300, max_bytes=1000)


def test_files_are_read_with_a_cap_and_dev_zero_is_refused_unread(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"/dev/zero is a character device, not a regular file"):
        load_result_file("/dev/zero", max_bytes=1024**2)
    (tmp_path / "big.json").write_bytes(b" " * (1024**2 + 1))
    with pytest.raises(ResultFormatError, match=r"big\.json is larger than the 1 MB accepted"):
        load_result_file(tmp_path / "big.json", max_bytes=1024**2)
    with pytest.raises(InvalidInputError, match="result file not found"):
        load_result_file(tmp_path / "missing.json")
    with pytest.raises(InvalidInputError, match="is a folder, not a regular file"):
        load_result_file(tmp_path)
    (tmp_path / "latin1.json").write_bytes(b'{"schema": "caf\xe9"}')
    with pytest.raises(ResultFormatError, match="not UTF-8 text"):
        load_result_file(tmp_path / "latin1.json")


@pytest.mark.parametrize(
    "result", [valid_attribution(), valid_graph(), valid_comparison()], ids=["attribution", "graph", "comparison"]
)
def test_valid_results_round_trip_through_text_and_file(result, tmp_path: Path) -> None:
    assert load_result(result.to_json()).to_dict() == result.to_dict()
    result.to_json(tmp_path / "r.json")
    assert type(result).from_file(tmp_path / "r.json").to_dict() == result.to_dict()
    assert type(result).from_json(result.to_json().encode()).to_dict() == result.to_dict()


def test_a_newer_schema_and_the_wrong_class_are_named() -> None:
    data = valid_graph().to_dict()
    with pytest.raises(
        ResultFormatError, match=r"expected a 'attribution-result' JSON, got schema 'contribution-graph'"
    ):
        AttributionResult.from_json(json.dumps(data))
    data["schema_version"] = 99
    with pytest.raises(ResultFormatError, match="written by a newer Attribution Explorer"):
        ContributionGraph.from_json(json.dumps(data))
    comparison = valid_comparison().to_dict()
    comparison["results"][1]["source_tokens"] = [1]
    with pytest.raises(ResultFormatError, match=r"`results\[1\]\.source_tokens\[0\]` must be a string"):
        Comparison.from_json(json.dumps(comparison))


@pytest.mark.parametrize("family", across_families(sorted(FAMILIES)))
def test_real_graphs_of_every_family_pass_the_schema(family: str) -> None:
    """The checks (edges join stored nodes, a weight per head, layers and tokens in range) hold for real output."""
    loaded = build_random_model(family, seed=0)
    graph = build_contribution_graph(loaded, "the cat sat on the mat", root_tokens="all", threshold=0.02)
    assert ContributionGraph.from_json(graph.to_json()) == graph


def test_real_attribution_results_pass_the_schema() -> None:
    for name, text in (
        ("tiny-ioi-gpt2", "When Mary and John went to the store, John gave a drink to"),
        ("tiny-synth-translate", "the old cat sees a bird quickly"),
    ):
        result = attribute(load_model(name), text, step_scores=("probability", "entropy"))
        assert AttributionResult.from_json(result.to_json()).to_dict() == result.to_dict()


@pytest.mark.parametrize("name", ["tiny-ioi-gpt2", "tiny-synth-translate"])
def test_rewalking_a_graph_at_a_higher_threshold_equals_tracing_the_model_again(name: str) -> None:
    loaded = load_model(name)
    text = "When Mary and John went to the store, John gave a drink to" if "ioi" in name else "the old cat sees a bird"
    low = build_contribution_graph(loaded, text, threshold=0.01, root_tokens="all")
    for threshold in (0.01, 0.05, 0.2):
        traced = build_contribution_graph(loaded, text, threshold=threshold, root_tokens="all")
        rewalked = low.at_threshold(threshold)
        assert [(e.source, e.target, e.kind) for e in rewalked.edges] == [
            (e.source, e.target, e.kind) for e in traced.edges
        ]
        assert [n.id for n in rewalked.nodes] == [n.id for n in traced.nodes]
        assert rewalked.threshold == threshold and len(rewalked.edges) <= len(low.edges)
    with pytest.raises(InvalidInputError, match="cannot be re-walked"):
        low.at_threshold(0.005)
    renormalized = build_contribution_graph(loaded, text, threshold=0.05, renormalize=True)
    with pytest.raises(InvalidInputError, match="renormalised"):
        renormalized.at_threshold(0.1)
