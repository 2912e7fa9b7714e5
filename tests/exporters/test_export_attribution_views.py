"""What the attribution and comparison figures show besides colours: every step score's bars, the values in the
cells (with their toolbar toggle), the contrast a contrastive run explains, and a gold alignment's links.

Ground truth: hand-made results whose scores, word ids and links are written out here; the expected cells are
worked out by hand from them.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from bokeh.models import CustomAction, GlyphRenderer, Plot, Rect, Text, VBar

from attribution.errors import InvalidInputError
from attribution.results import Comparison
from exporters.bokeh_html import build_figure
from exporters.heatmap import cell_text
from tests.support.handmade_results import causal_result, comparison, seq2seq_result


def _named(layout, name: str) -> list:
    return [model for model in layout.select({"name": name})]


def test_every_step_score_gets_its_own_bars_row() -> None:
    result = seq2seq_result()  # probability [0.9, 0.8] and entropy [0.1, 0.2]
    layout = build_figure(result)
    bars = [plot for plot in layout.children if isinstance(plot, Plot) and plot.name == "step scores"]
    assert [plot.title.text.splitlines()[1] for plot in bars] == [
        "probability of each generated token",
        "entropy of each generated token",
    ]
    tops = [next(r for r in plot.renderers if isinstance(r.glyph, VBar)).data_source.data["top"] for plot in bars]
    assert tops == [[0.9, 0.8], [0.1, 0.2]]
    only = build_figure(result, step_score="entropy")  # one requested: that one only
    assert [p.title.text.splitlines()[1] for p in only.children if p.name == "step scores"] == [
        "entropy of each generated token"
    ]


def test_cell_values_are_written_in_the_cells_and_one_button_toggles_them() -> None:
    layout = build_figure(causal_result())  # the 4 × 2 prefix matrix, largest magnitude 0.75
    [text] = [r for r in _named(layout, "cell values") if isinstance(r, GlyphRenderer)]
    assert isinstance(text.glyph, Text) and text.visible  # 2 columns of 24 px rows: shown by default
    data = text.data_source.data
    written = sorted(zip(data["y"].tolist(), data["x"].tolist(), data["text"], data["colour"], strict=True))
    assert written == [
        (0, 0, "0.5", "#ffffff"),  # 0.5 / 0.75 ≥ 0.55 of the scale: a dark cell, white text
        (0, 1, "-0.25", "#222222"),
        (1, 0, "-0.75", "#ffffff"),
        (1, 1, "0.12", "#222222"),
        (2, 1, "0.38", "#222222"),
    ]  # the NaN (future) cells get no text
    [panel] = [p for p in layout.select({"type": Plot}) if p.name.startswith("heatmap ")]
    [toggle] = [tool for tool in panel.toolbar.tools if isinstance(tool, CustomAction)]
    assert (toggle.description, toggle.active, toggle.active_callback) == (
        "values in cells (show / hide)",
        True,
        "auto",
    )
    [sync] = toggle.js_property_callbacks["change:active"]
    assert sync.args["texts"] == [text] and "t.visible = cb_obj.active" in sync.code
    assert cell_text(1234.5) == "1.2e+03" and cell_text(-0.01234) == "-0.012"


def test_large_matrices_start_with_values_hidden() -> None:
    result = causal_result()
    n = 20  # 20 generated tokens: values would not fit in the cells
    result.target_tokens = [f"t{i}" for i in range(n + 2)]
    result.target_scores = np.tril(np.ones((n + 2, n)), k=0) * 0.5
    result.step_scores = {"probability": [0.5] * n}
    layout = build_figure(result)
    [text] = [r for r in _named(layout, "cell values") if isinstance(r, GlyphRenderer)]
    [toggle] = [tool for tool in layout.select({"type": CustomAction})]
    assert not text.visible and not toggle.active


def test_a_contrastive_result_names_its_contrast_in_every_title() -> None:
    result = dataclasses.replace(causal_result(), source_text="The cat", contrast_target="The cat lay under")
    titles = [plot.title.text.splitlines()[0] for plot in build_figure(result).select({"type": Plot})]
    assert set(titles) == {"input_x_gradient — tiny-ioi-gpt2 vs “lay under”"}
    seq2seq = dataclasses.replace(seq2seq_result(), contrast_target="x z")
    titles = [plot.title.text.splitlines()[0] for plot in build_figure(seq2seq).select({"type": Plot})]
    assert set(titles) == {"saliency — tiny-synth-translate vs “x z”"}


def test_a_comparison_outlines_the_gold_alignments_cells_on_each_heatmap() -> None:
    # source "ab c": tokens a, b (word 0) and c (word 1); target "x y": <pad>, x (word 0), y (word 1)
    result = dataclasses.replace(
        seq2seq_result(), source_text="ab c", source_word_ids=[0, 0, 1], target_word_ids=[None, 0, 1]
    )
    other = dataclasses.replace(result, method="attention")
    compared = Comparison(
        results=[result, other],
        labels=["saliency", "attention"],
        rank_correlation=[[1.0, 1.0], [1.0, 1.0]],
        gold_alignment="0-1 1-0",
        aer=[None, None],
    )
    layout = build_figure(compared)
    outlines = [r for r in _named(layout, "gold links") if isinstance(r, GlyphRenderer)]
    assert len(outlines) == 2  # one per heatmap, on its source → target panel
    for outline in outlines:
        assert isinstance(outline.glyph, Rect) and outline.glyph.fill_color is None
        cells = sorted(zip(outline.data_source.data["x"], outline.data_source.data["y"], strict=True))
        # word 0 (rows a, b) → target word 1 (column y = step 1); word 1 (row c) → target word 0 (step 0)
        assert cells == [(0, 2), (1, 0), (1, 1)]
    assert not _named(build_figure(dataclasses.replace(compared, gold_alignment=None)), "gold links")
    assert not _named(build_figure(dataclasses.replace(compared, gold_alignment="<b>")), "gold links")  # not one


def test_the_word_view_sums_a_words_tokens_next_to_the_token_view() -> None:
    # source "ab c": tokens a, b are word 0 ("ab"), c is word 1; target "x y": one token per word
    result = dataclasses.replace(
        seq2seq_result(), source_text="ab c", source_word_ids=[0, 0, 1], target_word_ids=[None, 0, 1]
    )
    layout = build_figure(result)
    [words] = [p for p in layout.select({"type": Plot}) if p.name == "heatmap words: source → target"]
    assert words.title.text == "saliency — tiny-synth-translate\nwords: source → target"
    cells = next(r for r in words.renderers if isinstance(r.glyph, Rect)).data_source.data
    got = sorted(zip(cells["y"].tolist(), cells["x"].tolist(), cells["value"].tolist(), strict=True))
    # |0.6| + |0.2| and |0.1| + |0.7| for "ab"; 0.1 and 0.1 for "c" (source scores of the hand-made result)
    assert [(y, x) for y, x, _ in got] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert [value for *_, value in got] == pytest.approx([0.8, 0.8, 0.1, 0.1])
    assert words.yaxis.formatter.args["labels"] == ["ab", "c"] and words.xaxis.formatter.args["labels"] == ["x", "y"]
    unsplit = dataclasses.replace(result, source_text="a b c", source_word_ids=[0, 1, 2])
    assert not [p for p in build_figure(unsplit).select({"type": Plot}) if p.name.startswith("heatmap words")]
    assert not [p for p in build_figure(seq2seq_result()).select({"type": Plot}) if "words" in p.name]  # no ids


def test_the_difference_map_is_a_minus_b_cell_by_cell() -> None:
    from exporters.compare_view import difference_figure

    compared = comparison()  # saliency, and attention whose source scores are saliency's × -4
    layout = difference_figure(compared, 0, 1)
    panels = {p.name: p for p in layout.select({"type": Plot})}
    source = next(r for r in panels["heatmap source → target"].renderers if isinstance(r.glyph, Rect))
    data = source.data_source.data
    a, b = compared.results[0].source_scores, compared.results[1].source_scores
    for y, x, value in zip(data["y"], data["x"], data["value"], strict=True):
        assert value == pytest.approx(a[y, x] - b[y, x])  # = 5 × saliency's
    assert panels["heatmap source → target"].title.text.splitlines()[0] == (
        "A − B: saliency − attention — tiny-synth-translate"
    )
    mapper = source.glyph.fill_color.transform
    assert mapper.low == -mapper.high == -float(np.nanmax(np.abs(a - b)))  # diverging, around 0
    drawn = build_figure(compared, difference=(1, 0))  # the static export draws it below the comparison
    assert any(p.title.text.startswith("A − B: attention − saliency") for p in drawn.select({"type": Plot}))
    other = dataclasses.replace(compared.results[1], source_tokens=["a", "b", "d"])
    with pytest.raises(InvalidInputError, match="explain different tokens"):
        difference_figure(dataclasses.replace(compared, results=[compared.results[0], other]), 0, 1)
    with pytest.raises(InvalidInputError, match="Choose two different results of the 2 compared"):
        difference_figure(compared, 1, 1)
