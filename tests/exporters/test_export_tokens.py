"""Tokens shown as text: byte-level BPE and SentencePiece/Unigram tokenizers trained in-process.

Ground truth is the tokenizer itself: the bytes a byte-level token stands for must reassemble the
text exactly, and the shown tokens, with their marks undone, must read back as the (normalised)
text. Then every figure and detail list made from real-spelling results must show no ``Ġ``/``▁``
anywhere a label is drawn, while hovers and the JSON keep the raw spelling.
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest
from bokeh.models import CustomJSHover, CustomJSTickFormatter, LabelSet, Select, Title

from attribution.models import ModelCache, load_model
from attribution.results import AttributionResult, ContributionGraph
from attribution.tokenizer_style import tokenizer_style
from exporters.bokeh_html import build_figure
from exporters.compare_view import comparison_figure
from exporters.graph_details import GraphWords
from exporters.tokens import (
    BYTE_OF_CHAR,
    LEADING_SPACE,
    VISIBLE_SPACE,
    display_token,
    guess_style,
    make_visible,
    result_style,
    token_text,
)
from tests.support import texts
from tests.support.real_tokenizers import CORPUS, byte_level_bpe, save_bpe_gpt2, save_unigram_marian, unigram

MARKERS = ("Ġ", "▁", "Ċ", "ĉ")
PROMPT = texts.IOI_PROMPT
SOURCE, TARGET = texts.TRANSLATION_TIRED_FRIEND
_UNDO = {LEADING_SPACE: " ", VISIBLE_SPACE: " ", "↵": "\n", "⇥": "\t"}


def _undo_marks(shown: str) -> str:
    return "".join(_UNDO.get(c, c) for c in shown)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    folder = tmp_path_factory.mktemp("real-tokenizer-models")
    cache = ModelCache(max_models=2)
    return {
        "bpe": load_model(str(save_bpe_gpt2(folder / "bpe-gpt2")), cache=cache),
        "unigram": load_model(str(save_unigram_marian(folder / "unigram-marian")), cache=cache),
    }


# ------------------------------------------------------------------------------ the spelling undone


def test_byte_level_tokens_reassemble_the_text_and_read_as_the_tokenizer_decodes_them() -> None:
    tokenizer = byte_level_bpe()
    for text in CORPUS:
        ids = tokenizer(text)["input_ids"]
        tokens = tokenizer.convert_ids_to_tokens(ids)
        assert any(c in token for token in tokens for c in "ĠĊ")  # the spelling under test is there
        assert b"".join(bytes(BYTE_OF_CHAR[c] for c in token) for token in tokens).decode() == text
        for token_id, token in zip(ids, tokens, strict=True):
            decoded = tokenizer.decode([token_id])
            shown = display_token(token, "byte_level")
            assert not any(marker in shown for marker in MARKERS), (token, shown)
            if "\ufffd" in decoded:  # part of a character: shown as its bytes
                assert "<0x" in shown and token_text(token, "byte_level") != decoded
            else:
                assert token_text(token, "byte_level") == decoded
                assert _undo_marks(shown) == decoded or shown == make_visible(decoded)


def test_sentencepiece_tokens_read_back_as_the_normalised_text() -> None:
    tokenizer = unigram()
    for text in CORPUS:
        tokens = tokenizer.convert_ids_to_tokens(tokenizer(text, add_special_tokens=False)["input_ids"])
        assert any("▁" in token for token in tokens)
        shown = [display_token(token, "sentencepiece") for token in tokens]
        assert not any(marker in label for label in shown for marker in MARKERS)
        expected = " " + unicodedata.normalize("NFKC", text).replace(" ", " ")
        assert "".join(_undo_marks(label) for label in shown) == expected


@pytest.mark.parametrize(
    ("raw", "style", "shown"),
    [
        ("ĠMary", "byte_level", "·Mary"),
        ("Ġ", "byte_level", "␣"),
        ("ĠĠ", "byte_level", "␣␣"),
        ("ĊĊ", "byte_level", "↵↵"),
        ("ĉ", "byte_level", "⇥"),
        ("caf", "byte_level", "caf"),
        ("Ã©", "byte_level", "é"),
        ("ĠâĢ", "byte_level", "·<0xE2><0x80>"),
        ("<|endoftext|>", "byte_level", "<|endoftext|>"),
        ("▁Mary", "sentencepiece", "·Mary"),
        ("▁", "sentencepiece", "␣"),
        ("<0x0A>", "sentencepiece", "↵"),
        ("<0xE2><0x80><0x94>", "sentencepiece", "—"),
        ("<0xE2>", "sentencepiece", "<0xE2>"),
        ("</s>", "sentencepiece", "</s>"),
        ("Mary", "plain", "Mary"),
        ("", "plain", "∅"),
        ("a\u200bb", "plain", "a<U+200B>b"),
        ("x ", "plain", "x␣"),
    ],
)
def test_display_token(raw: str, style: str, shown: str) -> None:
    assert display_token(raw, style) == shown  # type: ignore[arg-type]


def test_styles_are_read_off_the_tokenizer_or_guessed_from_the_tokens() -> None:
    assert tokenizer_style(byte_level_bpe()) == "byte_level"
    assert tokenizer_style(unigram()) == "sentencepiece"
    bundled = load_model("tiny-ioi-gpt2", cache=ModelCache(max_models=1))
    assert tokenizer_style(bundled.tokenizer) == "plain"  # word level: tokens are already text
    assert bundled.provenance().tokenizer_style == "plain"
    assert guess_style(["When", "ĠMary", "Ċ"]) == "byte_level"
    assert guess_style(["▁When", "▁Mary"]) == "sentencepiece"
    assert guess_style(["When", "Mary"]) == "plain"
    assert guess_style(["łódź", "Ġ"]) == "plain"  # "ł" is byte-level's NBSP stand-in, "ó" is outside the alphabet


# ------------------------------------------------------------------------ figures of real results


def _drawn_labels(layout) -> list[str]:
    """Every string a figure draws as a label: axis ticks, titles, menu entries, on-figure text."""
    labels: list[str] = []
    for formatter in layout.select({"type": CustomJSTickFormatter}):
        labels += formatter.args["labels"]
    labels += [title.text for title in layout.select({"type": Title})]
    for select in layout.select({"type": Select}):
        labels += [option[1] if isinstance(option, tuple) else option for option in select.options]
    for label_set in layout.select({"type": LabelSet}):
        labels += list(label_set.source.data["text"])
    nodes = layout.select_one({"name": "nodes"})
    if nodes is not None:  # the graph's node rows, and the token labels its hovers and panel compose words from
        labels += list(nodes.data["rows"])
        labels += [label for hover in layout.select({"type": CustomJSHover}) for label in hover.args["words"]["tokens"]]
    return labels


def _hover_labels(layout) -> list[str]:
    return [label for hover in layout.select({"type": CustomJSHover}) for label in hover.args.get("labels", [])]


def _without_raw(details: str) -> str:
    """A node's details name its raw token on purpose (" — raw token 'ĠMary'"); the rest must be text."""
    return "\n".join(line.split(" — raw token ")[0] for line in details.splitlines())


@pytest.mark.parametrize("which", ["bpe", "unigram"])
def test_heatmaps_show_text_hovers_and_json_keep_the_raw_tokens(models, which: str) -> None:
    from attribution.inseq_runner import attribute

    loaded = models[which]
    if which == "bpe":
        result = attribute(loaded, PROMPT, method="saliency", target=PROMPT + " Mary")
    else:
        result = attribute(loaded, SOURCE, method="attention", target=TARGET)
    assert result.provenance.tokenizer_style == ("byte_level" if which == "bpe" else "sentencepiece")
    raw = [*result.source_tokens, *result.target_tokens]
    assert any(marker in token for token in raw for marker in MARKERS)
    layout = build_figure(result)
    drawn = _drawn_labels(layout)
    assert drawn and not [label for label in drawn if any(marker in label for marker in MARKERS)]
    hovers = _hover_labels(layout)
    marked = next(token for token in raw if any(m in token for m in MARKERS))
    assert any(repr(marked) in hover and display_token(marked, result_style(result)) in hover for hover in hovers)
    again = AttributionResult.from_json(result.to_json())  # the JSON keeps the tokenizer's spelling
    assert again.target_tokens == result.target_tokens and again.provenance.tokenizer_style

    from space.gradio_app.tabs.attribute import generated_tokens_html, step_score_table

    _, rows = step_score_table(result)
    assert not [row for row in rows if any(marker in row[1] for marker in MARKERS)]
    strip = generated_tokens_html(result)
    shown_part = strip.split('title="')[0] + "".join(part.split('">', 1)[-1] for part in strip.split('title="')[1:])
    assert not any(marker in shown_part for marker in MARKERS)  # titles (hovers) keep the raw token


@pytest.mark.parametrize("which", ["bpe", "unigram"])
def test_graphs_and_their_details_show_text(models, which: str) -> None:
    from attribution.contributions import build_contribution_graph

    loaded = models[which]
    if which == "bpe":
        graph = build_contribution_graph(loaded, PROMPT, root_tokens="all", threshold=0.02)
    else:
        graph = build_contribution_graph(loaded, SOURCE, target=TARGET, root_tokens=[-1], threshold=0.02)
    style = result_style(graph)
    assert style == ("byte_level" if which == "bpe" else "sentencepiece")
    layout = build_figure(graph)
    drawn = _drawn_labels(layout)
    assert not [label for label in drawn if any(marker in label for marker in MARKERS)]
    lens = [node for node in graph.nodes if node.top_tokens]
    assert lens and any(any(m in t for t, _ in node.top_tokens for m in MARKERS) for node in lens)
    words = GraphWords(graph)
    for node in graph.nodes:
        title = words.node_title(node)
        assert not any(marker in title.split(" — raw token ")[0] for marker in MARKERS)
        assert all(not any(m in row.item for m in MARKERS) for row in words.node_rows(node))
        assert not any(m in _without_raw(words.node_details_text(node)) for m in MARKERS)
    for edge in graph.edges:
        assert not any(m in words.edge_details_text(edge) for m in MARKERS)
    again = ContributionGraph.from_json(graph.to_json())
    assert again.target_tokens == graph.target_tokens and any("Ġ" in t or "▁" in t for t in again.target_tokens)


def test_comparison_of_real_results_shows_text(models) -> None:
    from attribution.compare import compare
    from attribution.inseq_runner import attribute

    loaded = models["unigram"]
    results = [attribute(loaded, SOURCE, method=m, target=TARGET, step_scores=()) for m in ("saliency", "attention")]
    layout = comparison_figure(compare(results, ["saliency", "attention"]))
    drawn = _drawn_labels(layout)
    assert drawn and not [label for label in drawn if any(marker in label for marker in MARKERS)]


def test_results_saved_before_the_style_was_recorded_are_guessed(tmp_path: Path, models) -> None:
    from attribution.inseq_runner import attribute

    result = attribute(models["bpe"], PROMPT, method="saliency", max_new_tokens=1)
    data = json.loads(result.to_json())
    del data["provenance"]["tokenizer_style"]
    old = AttributionResult.from_json(json.dumps(data))
    assert old.provenance.tokenizer_style is None and result_style(old) == "byte_level"
    drawn = _drawn_labels(build_figure(old))
    assert not [label for label in drawn if any(marker in label for marker in MARKERS)]
