"""Compare attribution results: word-level scores, rank correlation, agreement with a gold alignment.

Conventions (the same everywhere in this module, the Space and the benchmark):

- **Magnitudes.** Scores are compared by absolute value: a strongly negative attribution (the
  word pushes the prediction down) is as much a sign of dependence as a positive one, and signed
  and unsigned methods become comparable.
- **Words.** Subword tokens are merged into the whitespace words of the texts with
  ``source_word_ids`` / ``target_word_ids``: the score of a source word is the **sum** of its
  tokens' absolute scores (its total influence), and the score for a target word is the **mean**
  over the steps that generated its tokens (one value per word however it was split). Special
  tokens (``</s>``, the decoder start token, BOS), whose word id is ``None``, are left out.
- **Sides.** For a seq2seq result the rows are the source words and the columns the target words;
  for a causal result the rows are the prompt's words and the columns the continuation's words.
- **Alignment error rate** (Och & Ney 2003) with sure links only: ``AER = 1 - 2|A∩G| / (|A|+|G|)``
  for predicted links ``A`` and gold links ``G``, in Pharaoh format (``"0-0 1-2"``: source word
  index, dash, target word index). Predicted links come from the word-level matrix either by
  ``"argmax"`` (each target word is linked to the source word with the largest score) or by
  ``"threshold"`` (each target word's column is normalised to sum to 1 and every source word with a
  share of at least ``threshold`` is linked).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from attribution.errors import InvalidInputError
from attribution.languages import Languages
from attribution.progress import Progress, no_progress, part
from attribution.results import AttributionResult, Comparison

if TYPE_CHECKING:
    from attribution.models import LoadedModel

AlignmentMode = Literal["argmax", "threshold"]
ALIGNMENT_MODES: tuple[AlignmentMode, ...] = ("argmax", "threshold")
DEFAULT_THRESHOLD = 0.2
_LINK = re.compile(r"(\d+)-(\d+)")


def parse_alignment(pharaoh: str) -> set[tuple[int, int]]:
    """``"0-0 1-2"`` → ``{(0, 0), (1, 2)}`` (source word, target word); an empty string has no links."""
    if not isinstance(pharaoh, str):
        raise InvalidInputError(f"An alignment must be a string like '0-0 1-2', not {type(pharaoh).__name__}.")
    links = set()
    for item in pharaoh.split():
        match = _LINK.fullmatch(item)
        if match is None:
            raise InvalidInputError(
                f"Bad alignment link {item!r}: write links as source-target word indices, e.g. '0-0 1-2 2-1' "
                "(Pharaoh format, sure links only)."
            )
        links.add((int(match.group(1)), int(match.group(2))))
    return links


def format_alignment(links: set[tuple[int, int]]) -> str:
    """The Pharaoh string of ``links``, sorted by target then source word."""
    return " ".join(f"{s}-{t}" for s, t in sorted(links, key=lambda link: (link[1], link[0])))


def _side_word_ids(result: AttributionResult) -> tuple[list[int | None], list[int | None], np.ndarray]:
    """(row token word ids, column token word ids, token-level score matrix rows x steps)."""
    if result.target_word_ids is None:
        raise InvalidInputError("This result has no word ids, so its tokens cannot be merged into words.")
    step_word_ids = result.target_word_ids[result.attributed_start :]
    if result.provenance.model_kind == "seq2seq":
        if result.source_word_ids is None or result.source_scores is None:
            raise InvalidInputError("This seq2seq result has no source scores or source word ids.")
        return result.source_word_ids, step_word_ids, result.source_scores
    if result.target_scores is None:
        raise InvalidInputError("This causal result has no target scores.")
    prompt_word_ids = result.target_word_ids[: result.attributed_start]
    return prompt_word_ids, step_word_ids, result.target_scores[: result.attributed_start]


def word_level_scores(result: AttributionResult) -> np.ndarray:
    """``[n_source_words, n_target_words]`` absolute scores, subwords merged (see the module docstring).

    Rows are the distinct source (or prompt) words in order, columns the distinct target (or
    continuation) words; their indices are the words' positions in their own text, renumbered from 0.
    """
    row_ids, column_ids, scores = _side_word_ids(result)
    rows = sorted({w for w in row_ids if w is not None})
    columns = sorted({w for w in column_ids if w is not None})
    magnitudes = np.nan_to_num(np.abs(np.asarray(scores, dtype=float)), nan=0.0)
    row_index = {w: i for i, w in enumerate(rows)}
    column_index = {w: i for i, w in enumerate(columns)}
    summed = np.zeros((len(rows), magnitudes.shape[1]))
    for token, word in enumerate(row_ids):
        if word is not None:
            summed[row_index[word]] += magnitudes[token]
    merged = np.zeros((len(rows), len(columns)))
    counts = np.zeros(len(columns))
    for step, word in enumerate(column_ids):
        if word is not None:
            merged[:, column_index[word]] += summed[:, step]
            counts[column_index[word]] += 1
    return merged / np.maximum(counts, 1)


def alignment_from_scores(
    scores: np.ndarray, *, mode: AlignmentMode = "argmax", threshold: float = DEFAULT_THRESHOLD
) -> set[tuple[int, int]]:
    """Links (source word, target word) read off a ``[n_source_words, n_target_words]`` score matrix.

    Columns without any positive score produce no link. Works on any non-negative word-level matrix,
    e.g. contribution-graph proximities, so other explanations can be scored the same way.
    """
    if mode not in ALIGNMENT_MODES:
        raise InvalidInputError(f"Unknown alignment mode {mode!r}; choose one of: {', '.join(ALIGNMENT_MODES)}.")
    if not 0.0 < threshold <= 1.0:
        raise InvalidInputError(f"The alignment threshold must be in (0, 1], not {threshold}.")
    matrix = np.nan_to_num(np.abs(np.asarray(scores, dtype=float)), nan=0.0)
    links = set()
    for target in range(matrix.shape[1]):
        column = matrix[:, target]
        total = column.sum()
        if total <= 0:
            continue
        if mode == "argmax":
            links.add((int(np.argmax(column)), target))
        else:
            links.update((int(source), target) for source in np.flatnonzero(column / total >= threshold))
    return links


def aer(predicted: set[tuple[int, int]], gold: set[tuple[int, int]]) -> float:
    """Alignment error rate with sure links only: ``1 - 2|A∩G| / (|A|+|G|)`` (0 when both are empty)."""
    if not predicted and not gold:
        return 0.0
    return 1.0 - 2.0 * len(predicted & gold) / (len(predicted) + len(gold))


def corpus_aer(predicted: Sequence[set[tuple[int, int]]], gold: Sequence[set[tuple[int, int]]]) -> float:
    """AER over a corpus (Och & Ney): link counts summed over sentences before the ratio is taken."""
    if len(predicted) != len(gold):
        raise InvalidInputError(f"{len(predicted)} predicted alignments for {len(gold)} gold alignments.")
    hits = sum(len(p & g) for p, g in zip(predicted, gold, strict=True))
    return pooled_aer(hits, sum(len(p) for p in predicted), sum(len(g) for g in gold))


def pooled_aer(matched: int, n_predicted: int, n_gold: int) -> float:
    """Och & Ney's AER from link counts summed over a corpus, ``1 - (|A∩S| + |A∩P|) / (|A| + |S|)``, with sure
    links only (P = S, as Pharaoh gold here has): ``1 - 2 matched / (predicted + gold)``; 0 when both are empty."""
    sizes = n_predicted + n_gold
    return 0.0 if sizes == 0 else 1.0 - 2.0 * matched / sizes


def alignment_error_rate(
    result: AttributionResult, gold: str, *, mode: AlignmentMode = "argmax", threshold: float = DEFAULT_THRESHOLD
) -> float:
    """AER of the alignment read off ``result``'s word-level scores against the Pharaoh string ``gold``."""
    gold_links = parse_alignment(gold)
    scores = word_level_scores(result)
    _check_links_fit(gold_links, scores.shape)
    return aer(alignment_from_scores(scores, mode=mode, threshold=threshold), gold_links)


_KIND_WORDS = {
    "causal": "a causal language model (it continues a prompt)",
    "seq2seq": "a sequence-to-sequence model (it translates or rewrites a source sentence)",
}


def check_same_kind(kinds: Mapping[str, str]) -> None:
    """Refuse to compare models of different kinds (``{model: "causal" | "seq2seq"}``) before anything runs:
    causal and seq2seq models explain different token sequences of the same text."""
    if len(set(kinds.values())) > 1:
        described = "; ".join(f"{model} is {_KIND_WORDS.get(kind, kind)}" for model, kind in kinds.items())
        raise InvalidInputError(
            f"These models cannot be compared on one input: {described}. Their attributions cover different "
            "tokens (a prompt and its continuation vs. a source and its translation). Compare causal models "
            "with each other, or sequence-to-sequence models with each other."
        )


def check_alignment(pharaoh: str, text: str, target: str, *, kind: str = "seq2seq") -> set[tuple[int, int]]:
    """The links of a gold alignment of a run on ``text`` explaining ``target``, checked against the whitespace
    words of both sides before any model runs (a causal model's sides: the prompt and its continuation, with
    or without the prompt in front): malformed links and links past either side's last word are refused."""
    links = parse_alignment(pharaoh)
    if kind == "causal" and target.startswith(text):
        target = target[len(text) :]
    _check_links_fit(links, (len(text.split()), len(target.split())))
    return links


def _check_links_fit(links: set[tuple[int, int]], shape: tuple[int, int]) -> None:
    for source, target in sorted(links):
        if source >= shape[0] or target >= shape[1]:
            raise InvalidInputError(
                f"The gold alignment links source word {source} to target word {target}, but the result has "
                f"{shape[0]} source and {shape[1]} target words."
            )


def _shared_cells(a: AttributionResult, b: AttributionResult) -> tuple[np.ndarray, np.ndarray]:
    """Flattened absolute scores of the cells both results have: tokens when tokenised alike, else words."""
    same_tokens = (
        a.source_tokens == b.source_tokens
        and a.target_tokens == b.target_tokens
        and a.attributed_start == b.attributed_start
    )
    if same_tokens:
        pairs = [(a.source_scores, b.source_scores), (a.target_scores, b.target_scores)]
        left = np.concatenate([np.ravel(x) for x, y in pairs if x is not None and y is not None])
        right = np.concatenate([np.ravel(y) for x, y in pairs if x is not None and y is not None])
        keep = np.isfinite(left) & np.isfinite(right)
        return np.abs(left[keep]), np.abs(right[keep])
    left, right = word_level_scores(a), word_level_scores(b)
    if left.shape != right.shape:
        raise InvalidInputError(
            "These results cannot be compared: their texts split into different numbers of words "
            f"({left.shape} vs {right.shape})."
        )
    return left.ravel(), right.ravel()


def rank_correlation(a: AttributionResult, b: AttributionResult) -> float:
    """Spearman's rho between the absolute scores of two results over their shared cells.

    Results with the same tokens are compared cell by cell (source and target sides, NaN cells left
    out); results from differently tokenising models are compared on word-level scores. NaN when
    undefined (fewer than two cells, or one side constant).
    """
    from scipy.stats import spearmanr  # 2 s to import: not for readers of saved runs (the corpus report)

    left, right = _shared_cells(a, b)
    if left.size < 2 or np.ptp(left) == 0 or np.ptp(right) == 0:
        return math.nan
    return float(spearmanr(left, right).statistic)


def compare(
    results: Sequence[AttributionResult], labels: Sequence[str], gold_alignment: str | None = None
) -> Comparison:
    """Pairwise rank correlations (None where undefined) and, with a gold alignment, each result's AER (argmax)."""
    results, labels = list(results), list(labels)
    if not results:
        raise InvalidInputError("Nothing to compare: give at least one result.")
    if len(labels) != len(results):
        raise InvalidInputError(f"Give one label per result ({len(results)} results, {len(labels)} labels).")
    first = results[0]
    for label, result in zip(labels, results, strict=True):
        if result.source_text != first.source_text or result.target_text != first.target_text:
            raise InvalidInputError(
                f"{label!r} explains a different input or output than {labels[0]!r}; compare results on the same "
                "text and target (force the same target for every model)."
            )
    if gold_alignment is not None:
        parse_alignment(gold_alignment)
    matrix: list[list[float | None]] = []
    for a in results:
        row = []
        for b in results:
            rho = rank_correlation(a, b)
            row.append(None if math.isnan(rho) else rho)
        matrix.append(row)
    aers = [alignment_error_rate(r, gold_alignment) if gold_alignment is not None else None for r in results]
    return Comparison(results=results, labels=labels, rank_correlation=matrix, gold_alignment=gold_alignment, aer=aers)


def compare_runs(
    runs: Sequence[tuple[LoadedModel, Mapping[str, Any]]],
    text: str,
    labels: Sequence[str],
    *,
    gold_alignment: str | None = None,
    max_tokens: int | None = None,
    languages: Languages | None = None,
    progress: Progress = no_progress,
) -> Comparison:
    """Attribute ``text`` with each (model, :func:`attribution.inseq_runner.attribute` keyword arguments) run, in
    order, and compare the results (the app's Compare tab and the ``compare`` command).

    The runs' arguments should name one target (typed, or the first model's output generated beforehand:
    :func:`attribution.inseq_runner.generate_target`), so that every result explains the same tokens and
    their cells line up. ``progress`` hears of each run as its share of the whole.
    """
    from attribution.inseq_runner import attribute

    results = []
    for i, ((loaded, arguments), label) in enumerate(zip(runs, labels, strict=True)):
        share = part(progress, i / len(runs), (i + 1) / len(runs), label)
        results.append(attribute(loaded, text, **arguments, max_tokens=max_tokens, progress=share, languages=languages))
    return compare(results, labels, gold_alignment=gold_alignment)
