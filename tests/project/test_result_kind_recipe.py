"""The recipe "Adding a result kind" (docs/development.md), followed step by step by a toy kind.

1. A result class: a dataclass on ``ModelResult`` (provenance, texts, tokens) with a ``SCHEMA`` and a
   ``from_dict`` that reads its own fields with an ``ObjectReader``.
2. One registration in the library: ``register_result_kind(ResultKind(...))``.
3. Its figure, registered in the exporters by the kind's name: ``register_figure(name, draw, options=...)``.

Then JSON round-trips, ``load_result`` finds it, ``export_result`` draws it as a page and a snippet, it has
a file stem, a title and a label, and, with no change to the CLI, ``attribution-explorer export --help`` lists
it among the kinds and ``attribution-explorer export FILE`` draws it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import pytest
from bokeh.models import LayoutDOM, VBar
from bokeh.plotting import figure

from attribution import result_kinds
from attribution.errors import InvalidInputError, ResultFormatError
from attribution.result_kinds import (
    ResultKind,
    file_stem,
    kind_of,
    load_result,
    load_result_file,
    register_result_kind,
    result_label,
    result_title,
)
from attribution.results import ModelResult, Provenance
from attribution.validation import expect_share
from exporters import export_result, figures
from exporters.base import resolve_kind
from exporters.bokeh_html import build_figure
from exporters.figures import figure_options, file_export_kinds, register_figure
from space.cli import main


# Step 1: the result class.
@dataclass
class ToyResult(ModelResult):
    """One score in [0, 1] per source token."""

    SCHEMA: ClassVar[str] = "toy-result"

    source_text: str
    source_tokens: list[str]
    scores: list[float]

    @classmethod
    def from_dict(cls, data: Any, path: str = "") -> Self:
        f = cls._reader(data, path)
        given = cls._read_input(f)
        return cls(**given, scores=f.list_of("scores", expect_share, length=len(given["source_tokens"]), per="token"))


# Step 3's drawing function: any Bokeh layout, with its options as keywords.
def toy_figure(result: ToyResult, *, colour: str = "#3b6fb6") -> LayoutDOM:
    plot = figure(x_range=result.source_tokens, title=result.source_text, name="toy scores")
    plot.vbar(x=result.source_tokens, top=result.scores, width=0.8, color=colour)
    return plot


TOY = ResultKind(
    "toy", "toy scores", ToyResult, schema="toy-result", file_stem=lambda result: ["toy", result.source_text]
)


@pytest.fixture
def toy_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    """Steps 2 and 3 for the length of one test: both registries are restored after it."""
    monkeypatch.setattr(result_kinds, "_KINDS", dict(result_kinds._KINDS))
    monkeypatch.setattr(figures, "_FIGURES", dict(figures._FIGURES))
    register_result_kind(TOY)
    register_figure("toy", toy_figure, options=("colour",))


def toy_result(model_id: str = "toy-model") -> ToyResult:
    return ToyResult(
        provenance=Provenance(model_id, None, "causal", "gpt2", library_versions={}, created_at="2026-01-02T03:04:05"),
        source_text="a cat sat",
        source_tokens=["a", "cat", "sat"],
        scores=[0.25, 0.5, 0.125],
    )


def test_without_its_registration_the_toy_json_is_not_a_result() -> None:
    with pytest.raises(ResultFormatError, match=r"not an Attribution Explorer result \(schema 'toy-result'\)"):
        load_result(toy_result().to_json())
    with pytest.raises(InvalidInputError, match="cannot export a ToyResult; expected a result object"):
        export_result(toy_result())


@pytest.mark.usefixtures("toy_kind")
def test_the_toy_round_trips_through_json_text_and_file(tmp_path: Path) -> None:
    toy = toy_result()
    text = toy.to_json()
    assert json.loads(text) == {
        "schema": "toy-result",
        "schema_version": 1,
        "provenance": {
            "model_id": "toy-model",
            "model_revision": None,
            "model_kind": "causal",
            "model_type": "gpt2",
            "library_versions": {},
            "created_at": "2026-01-02T03:04:05",
            "tokenizer_style": None,
            "source_language": None,
            "target_language": None,
        },
        "source_text": "a cat sat",
        "source_tokens": ["a", "cat", "sat"],
        "scores": [0.25, 0.5, 0.125],
    }
    assert load_result(text) == toy and ToyResult.from_json(text) == toy
    toy.to_json(tmp_path / "toy.json")
    assert load_result_file(tmp_path / "toy.json") == toy


@pytest.mark.usefixtures("toy_kind")
def test_malformed_toy_json_is_one_error_naming_the_field() -> None:
    data = toy_result().to_dict()
    for change, message in (
        (lambda d: d["scores"].__setitem__(1, 1.5), r"`scores\[1\]` must be at most 1, not 1\.5"),
        (lambda d: d["scores"].pop(), r"`scores` must have 3 entries \(one per token\), not 2"),
        (lambda d: d["provenance"].pop("model_id"), r"`provenance\.model_id` is missing"),
        (lambda d: d.__setitem__("source_tokens", "a cat sat"), r"`source_tokens` must be a list, not a string"),
    ):
        broken = json.loads(json.dumps(data))
        change(broken)
        with pytest.raises(ResultFormatError, match=message):
            load_result(json.dumps(broken))


@pytest.mark.usefixtures("toy_kind")
def test_the_toy_exports_as_a_page_and_a_snippet(tmp_path: Path) -> None:
    page = export_result(toy_result(), mode="standalone")
    assert (page.kind, page.title) == ("toy", "toy scores — toy-model")
    assert '<h1 class="ae-title">toy scores — toy-model</h1>' in page.html and '"name":"toy scores"' in page.html
    snippet = export_result(toy_result(), mode="snippet")
    assert snippet.kind == "toy" and '<div class="ae-embed"' in snippet.html and "<iframe" in snippet.iframe_html
    toy_result().to_json(tmp_path / "toy.json")
    assert export_result(tmp_path / "toy.json").kind == "toy"  # from its saved file too


@pytest.mark.usefixtures("toy_kind")
def test_the_toy_figure_takes_its_registered_options_only() -> None:
    assert figure_options("toy") == ("colour",)
    (bars,) = build_figure(toy_result(), colour="#ff0000").renderers
    assert isinstance(bars.glyph, VBar) and bars.glyph.fill_color == "#ff0000"
    assert bars.data_source.data["top"] == [0.25, 0.5, 0.125]
    with pytest.raises(InvalidInputError, match=r"unknown option\(s\) for a toy figure: step_score"):
        build_figure(toy_result(), step_score="probability")


@pytest.mark.usefixtures("toy_kind")
def test_the_toy_has_a_kind_a_title_a_label_and_a_safe_file_stem() -> None:
    toy = toy_result(model_id="../<b>evil</b>")
    assert kind_of(toy) is TOY and resolve_kind(toy, None) == "toy"
    assert result_title(toy) == "toy scores — ../<b>evil</b>" and result_label(toy) == "toy scores"
    assert file_stem(toy) == "toy_a-cat-sat"
    with pytest.raises(InvalidInputError, match="a ToyResult is drawn as 'toy', not 'heatmap'"):
        resolve_kind(toy, "heatmap")


@pytest.mark.usefixtures("toy_kind")
def test_the_cli_offers_the_toy_as_a_kind(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["export", "--help"])
    assert exit_.value.code == 0
    kinds = capsys.readouterr().out.split("--kind {", 1)[1].split("}", 1)[0].split(",")
    assert kinds == file_export_kinds() and kinds[-1] == "toy"


@pytest.mark.usefixtures("toy_kind")
def test_the_cli_exports_the_toy_from_its_file_asking_only_the_registry(tmp_path: Path) -> None:
    assert "toy" in file_export_kinds()
    toy_result().to_json(tmp_path / "toy.json")
    assert main(["export", str(tmp_path / "toy.json"), "--kind", "toy", "--out", str(tmp_path / "toy.html")]) == 0
    assert '<h1 class="ae-title">toy scores — toy-model</h1>' in (tmp_path / "toy.html").read_text(encoding="utf-8")


@pytest.mark.usefixtures("toy_kind")
def test_a_kind_cannot_take_another_kinds_name_schema_or_class() -> None:
    register_result_kind(TOY)  # the same entry again: nothing happens
    for clash, what in (
        (ResultKind("heatmap", "x", "x:X"), "name"),
        (ResultKind("other", "x", "x:X", schema="attribution-result"), "schema"),
        (ResultKind("other", "x", ToyResult), "class"),
    ):
        with pytest.raises(ValueError, match=f"its {what} is taken"):
            register_result_kind(clash)
