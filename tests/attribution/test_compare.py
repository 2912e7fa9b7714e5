"""attribution.compare on hand-made results whose word scores, alignments and AER are known exactly."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from attribution.compare import (
    aer,
    alignment_error_rate,
    alignment_from_scores,
    compare,
    corpus_aer,
    format_alignment,
    parse_alignment,
    rank_correlation,
    word_level_scores,
)
from attribution.errors import InvalidInputError
from attribution.inseq_runner import attribute
from attribution.models import load_model
from attribution.results import AttributionResult, Comparison, Provenance
from tests.support.paths import REPO

NAN = math.nan


def seq2seq_result(source_scores: np.ndarray, **overrides) -> AttributionResult:
    """Source "the cat" (▁the ▁ca t </s>) → target "die katze" (<pad> ▁die ▁kat ze </s>)."""
    fields = {
        "provenance": Provenance("hand-made", None, "seq2seq", "marian"),
        "method": "saliency",
        "method_params": {},
        "source_text": "the cat",
        "target_text": "die katze",
        "source_tokens": ["▁the", "▁ca", "t", "</s>"],
        "target_tokens": ["<pad>", "▁die", "▁kat", "ze", "</s>"],
        "attributed_start": 1,
        "source_scores": np.asarray(source_scores, dtype=float),
        "target_scores": np.full((5, 4), NAN),
        "source_word_ids": [0, 1, 1, None],
        "target_word_ids": [None, 0, 1, 1, None],
    }
    fields.update(overrides)
    return AttributionResult(**fields)


# rows: ▁the ▁ca t </s>; columns (steps): ▁die ▁kat ze </s>
SCORES = np.array(
    [
        [0.6, 0.1, 0.3, 0.2],
        [0.1, 0.5, -0.4, 0.2],
        [0.2, 0.2, 0.2, 0.2],
        [0.1, 0.2, 0.1, 0.4],
    ]
)


def test_word_level_scores_sum_source_pieces_and_average_target_pieces():
    expected = np.array(
        [
            [0.6, (0.1 + 0.3) / 2],  # the → die, the → mean(kat, ze)
            [0.1 + 0.2, ((0.5 + 0.2) + (0.4 + 0.2)) / 2],  # |ca| + |t| per step, |-0.4| counts as 0.4
        ]
    )
    np.testing.assert_allclose(word_level_scores(seq2seq_result(SCORES)), expected)


def test_word_level_scores_of_a_causal_result_use_prompt_words_as_rows():
    result = AttributionResult(
        provenance=Provenance("hand-made", None, "causal", "gpt2"),
        method="attention",
        method_params={},
        source_text="a bc",
        target_text="a bc d",
        source_tokens=[],
        target_tokens=["a", "b", "c", "d"],
        attributed_start=3,
        source_scores=None,
        target_scores=np.array([[0.2], [0.3], [0.4], [NAN]]),
        target_word_ids=[0, 1, 1, 2],
    )
    np.testing.assert_allclose(word_level_scores(result), [[0.2], [0.7]])


@pytest.mark.parametrize(
    ("gold", "expected_aer"),
    [("0-0 1-1", 0.0), ("0-1 1-0", 1.0), ("0-0", 1 / 3), ("0-0 1-1 0-1", 1 - 4 / 5), ("", 1.0)],
)
def test_aer_with_argmax_links(gold, expected_aer):
    result = seq2seq_result(SCORES)
    assert alignment_from_scores(word_level_scores(result)) == {(0, 0), (1, 1)}
    assert alignment_error_rate(result, gold) == pytest.approx(expected_aer, abs=1e-12)


def test_threshold_links_every_source_word_with_enough_share_of_the_column():
    scores = np.array([[0.5, 0.1], [0.3, 0.1], [0.2, 0.8]])  # shares: [.5 .3 .2], [.1 .1 .8]
    assert alignment_from_scores(scores, mode="threshold", threshold=0.25) == {(0, 0), (1, 0), (2, 1)}
    assert alignment_from_scores(scores, mode="threshold", threshold=0.1) == {
        (0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1)
    }  # fmt: skip
    result = seq2seq_result(SCORES)  # word matrix [[.6, .2], [.3, .65]]: shares [.667 .333], [.235 .765]
    assert alignment_error_rate(result, "0-0 1-1", mode="threshold", threshold=0.3) == pytest.approx(1 - 4 / 5)
    assert alignment_error_rate(result, "0-0 1-1", mode="threshold", threshold=0.5) == 0.0


def test_signed_scores_are_compared_by_magnitude():
    assert alignment_from_scores(np.array([[0.2], [-0.9], [0.5]])) == {(1, 0)}


def test_columns_without_scores_get_no_link():
    assert alignment_from_scores(np.array([[0.0, 0.3], [0.0, 0.1]])) == {(0, 1)}


def test_aer_formula_edge_cases():
    assert aer(set(), set()) == 0.0
    assert aer({(0, 0)}, set()) == 1.0
    assert aer({(0, 0), (1, 1), (2, 2)}, {(0, 0), (1, 1)}) == pytest.approx(1 - 4 / 5)
    # corpus AER sums counts first: (1 + 2) hits, (1 + 1) + (2 + 3) links
    assert corpus_aer([{(0, 0)}, {(0, 0), (1, 1)}], [{(0, 0)}, {(0, 0), (1, 1), (2, 2)}]) == pytest.approx(1 - 6 / 7)
    assert corpus_aer([], []) == 0.0


def test_parse_and_format_alignment():
    assert parse_alignment("0-0  2-1\t1-2 ") == {(0, 0), (2, 1), (1, 2)}
    assert parse_alignment("") == set()
    assert format_alignment({(2, 1), (0, 0), (1, 2)}) == "0-0 2-1 1-2"


@pytest.mark.parametrize("bad", ["0-x", "1:2", "0-0-1", "-1-2", "0-0 1", "a-b", "1?2"])
def test_bad_alignment_strings_are_refused(bad):
    with pytest.raises(InvalidInputError, match="Pharaoh"):
        parse_alignment(bad)


def test_gold_links_outside_the_sentence_are_refused():
    with pytest.raises(InvalidInputError, match="2 source and 2 target words"):
        alignment_error_rate(seq2seq_result(SCORES), "0-0 5-1")


def test_bad_mode_and_threshold_are_refused():
    with pytest.raises(InvalidInputError, match="argmax, threshold"):
        alignment_error_rate(seq2seq_result(SCORES), "0-0", mode="max")
    with pytest.raises(InvalidInputError, match=r"\(0, 1\]"):
        alignment_error_rate(seq2seq_result(SCORES), "0-0", mode="threshold", threshold=0)


def test_rank_correlation_cell_by_cell():
    a = seq2seq_result(SCORES)
    assert rank_correlation(a, a) == pytest.approx(1.0)
    distinct = np.arange(1, 17, dtype=float).reshape(4, 4)
    assert rank_correlation(seq2seq_result(distinct), seq2seq_result(1 / distinct)) == pytest.approx(-1.0)
    assert math.isnan(rank_correlation(seq2seq_result(np.ones((4, 4))), a))


def test_rank_correlation_falls_back_to_words_for_different_tokenisations():
    a = seq2seq_result(SCORES)
    words = word_level_scores(a)  # [[.6, .2], [.3, .65]]
    b = seq2seq_result(
        np.array([[0.6, 0.2, 0.1], [0.3, 0.65, 0.1], [0.0, 0.0, 0.0]]),
        source_tokens=["the", "cat", "</s>"],
        target_tokens=["<pad>", "die", "katze", "</s>"],
        source_word_ids=[0, 1, None],
        target_word_ids=[None, 0, 1, None],
        target_scores=np.full((4, 3), NAN),
    )
    np.testing.assert_allclose(word_level_scores(b), words)
    assert rank_correlation(a, b) == pytest.approx(1.0)


def test_compare_builds_a_serialisable_comparison():
    a, b = seq2seq_result(SCORES), seq2seq_result(np.ones((4, 4)))
    comparison = compare([a, b], ["saliency", "flat"], gold_alignment="0-0 1-1")
    assert comparison.rank_correlation[0][0] == pytest.approx(1.0)
    assert comparison.rank_correlation[0][1] is None and comparison.rank_correlation[1][1] is None
    assert comparison.aer[0] == 0.0
    assert comparison.aer[1] == pytest.approx(
        1 - 2 * 1 / (2 + 2)
    )  # flat: "cat" has two pieces, so it wins both columns
    again = Comparison.from_json(comparison.to_json())
    assert again.aer == comparison.aer and again.rank_correlation == comparison.rank_correlation
    assert compare([a], ["one"]).aer == [None]


def test_compare_refuses_mismatched_inputs():
    a = seq2seq_result(SCORES)
    with pytest.raises(InvalidInputError, match="one label per result"):
        compare([a, a], ["only one"])
    with pytest.raises(InvalidInputError, match="different input"):
        compare([a, seq2seq_result(SCORES, source_text="the dog")], ["a", "b"])
    with pytest.raises(InvalidInputError, match="at least one"):
        compare([], [])
    with pytest.raises(InvalidInputError, match="Pharaoh"):
        compare([a], ["a"], gold_alignment="zero-zero")


@pytest.mark.slow
def test_attributions_of_the_tiny_translation_model_recover_the_gold_alignment():
    """On held-out synthetic pairs, saliency and attention AER are far below random scores' AER."""
    data = REPO / "examples" / "data" / "synth_translate_test.jsonl"
    pairs = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines()[:20]]
    loaded = load_model("tiny-synth-translate")
    gold = [parse_alignment(pair["alignment"]) for pair in pairs]
    rng = np.random.default_rng(0)
    shapes = [(len(p["source"].split()), len(p["target"].split())) for p in pairs]
    random_aer = corpus_aer([alignment_from_scores(rng.random(shape)) for shape in shapes], gold)
    aers = {}
    for method in ("saliency", "attention"):
        results = [attribute(loaded, p["source"], method=method, target=p["target"]) for p in pairs]
        assert [word_level_scores(r).shape for r in results] == shapes
        aers[method] = corpus_aer([alignment_from_scores(word_level_scores(r)) for r in results], gold)
    assert random_aer > 0.7
    assert aers["saliency"] < 0.15, aers
    assert aers["attention"] < random_aer - 0.25, (aers, random_aer)


# --------------------------------------------------------------- exact edges (found by mutation testing)


def _error(call, *args, **kwargs) -> str:
    with pytest.raises(InvalidInputError) as caught:
        call(*args, **kwargs)
    return str(caught.value)


def test_error_messages_are_the_ones_users_see():
    pharaoh = "(Pharaoh format, sure links only)."
    assert _error(parse_alignment, 5) == "An alignment must be a string like '0-0 1-2', not int."
    assert _error(parse_alignment, "0-0 1:2") == (
        f"Bad alignment link '1:2': write links as source-target word indices, e.g. '0-0 1-2 2-1' {pharaoh}"
    )
    assert _error(corpus_aer, [set()], []) == "1 predicted alignments for 0 gold alignments."
    assert _error(word_level_scores, seq2seq_result(SCORES, target_word_ids=None)) == (
        "This result has no word ids, so its tokens cannot be merged into words."
    )
    a = seq2seq_result(SCORES)
    assert _error(compare, [], []) == "Nothing to compare: give at least one result."
    assert _error(compare, [a, a, seq2seq_result(SCORES, target_text="die hunde")], ["x", "y", "z"]) == (
        "'z' explains a different input or output than 'x'; compare results on the same text and target "
        "(force the same target for every model)."
    )
    three_words = seq2seq_result(
        np.ones((4, 4)),
        source_text="the cat",
        source_tokens=["▁the", "▁cat", "▁sat", "</s>"],
        source_word_ids=[0, 1, 2, None],
    )
    assert _error(rank_correlation, a, three_words) == (
        "These results cannot be compared: their texts split into different numbers of words ((2, 2) vs (3, 2))."
    )


def test_a_seq2seq_result_without_source_scores_cannot_be_merged_into_words():
    missing_scores = seq2seq_result(SCORES)
    missing_scores.source_scores = None  # e.g. a hand-edited JSON file
    missing_word_ids = seq2seq_result(SCORES, source_word_ids=None)
    for result in (missing_scores, missing_word_ids):
        assert _error(word_level_scores, result) == "This seq2seq result has no source scores or source word ids."


def test_gold_links_just_outside_a_non_square_sentence_are_refused():
    three_by_two = seq2seq_result(
        np.ones((4, 4)), source_tokens=["▁the", "▁cat", "▁sat", "</s>"], source_word_ids=[0, 1, 2, None]
    )  # 3 source words, 2 target words
    # in range: scored (ties link both target words to source word 0, so one of the two gold links is hit)
    assert alignment_error_rate(three_by_two, "2-1 0-0") == pytest.approx(1 - 2 * 1 / 4)
    for gold in ("3-0", "0-2"):
        assert _error(alignment_error_rate, three_by_two, gold).endswith(
            "but the result has 3 source and 2 target words."
        )


def test_format_alignment_orders_links_of_one_target_word_by_source_word():
    assert format_alignment({(2, 0), (0, 0), (1, 1)}) == "0-0 2-0 1-1"


def test_threshold_bounds_are_inclusive_of_one_only():
    column = np.array([[1.0], [0.0]])
    assert alignment_from_scores(column, mode="threshold", threshold=1.0) == {(0, 0)}  # the whole column
    for bad in (0.0, 1.5, -0.1):
        assert _error(alignment_from_scores, column, mode="threshold", threshold=bad) == (
            f"The alignment threshold must be in (0, 1], not {bad}."
        )


def test_nan_scores_count_as_no_score():
    assert alignment_from_scores(np.array([[NAN], [0.3]])) == {(1, 0)}
    with_nan = SCORES.copy()
    with_nan[0, 0] = NAN  # ▁the at the first step
    np.testing.assert_allclose(word_level_scores(seq2seq_result(with_nan))[0, 0], 0.0)


def _one_source_token(source_scores, target_scores=None) -> AttributionResult:
    """Source "a" (one token, no </s>) → target "x y": 1 x 2 source scores, target side NaN unless given."""
    return seq2seq_result(
        np.asarray(source_scores, dtype=float).reshape(1, 2),
        source_text="a",
        target_text="x y",
        source_tokens=["a"],
        target_tokens=["<pad>", "x", "y"],
        target_scores=np.full((3, 2), NAN) if target_scores is None else np.asarray(target_scores, dtype=float),
        source_word_ids=[0],
        target_word_ids=[None, 0, 1],
    )


def test_rank_correlation_over_two_cells_and_ranges_of_exactly_one():
    assert rank_correlation(_one_source_token([0.0, 1.0]), _one_source_token([0.5, 1.5])) == pytest.approx(1.0)
    assert rank_correlation(_one_source_token([0.0, 1.0]), _one_source_token([1.0, 0.0])) == pytest.approx(-1.0)
    assert math.isnan(rank_correlation(_one_source_token([NAN, NAN]), _one_source_token([0.0, 1.0])))  # no cells


def test_rank_correlation_uses_only_cells_both_results_score():
    """A source-only result (target side NaN) against one with target scores: only the source cells count."""
    target_side = np.array([[0.9, 0.1], [NAN, 0.8], [NAN, NAN]])
    with_target = _one_source_token([0.2, 0.4], target_scores=target_side)
    source_only = _one_source_token([0.3, 0.1])
    assert rank_correlation(with_target, source_only) == pytest.approx(-1.0)


def test_results_sharing_source_tokens_but_not_target_tokens_are_compared_by_words():
    a = seq2seq_result(SCORES)  # target ▁die ▁kat ze
    b = seq2seq_result(
        np.array([[0.6, 0.2, 0.0], [0.1, 0.5, 0.0], [0.2, 0.15, 0.0], [0.0, 0.0, 0.0]]),
        target_tokens=["<pad>", "▁die", "▁katze", "</s>"],
        target_word_ids=[None, 0, 1, None],
        target_scores=np.full((4, 3), NAN),
    )  # word level [[.6, .2], [.3, .65]]: the same as a's
    assert rank_correlation(a, b) == pytest.approx(1.0)


def test_compare_keeps_labels_and_gold_alignment():
    a = seq2seq_result(SCORES)
    comparison = compare([a, a], ["first", "second"], gold_alignment="0-0 1-1")
    assert comparison.labels == ["first", "second"] and comparison.gold_alignment == "0-0 1-1"
    assert comparison.results == [a, a] and comparison.aer == [0.0, 0.0]
