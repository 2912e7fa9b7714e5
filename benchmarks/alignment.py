"""Alignment error rate of attribution methods on the tiny synthetic translation task.

The bundled ``tiny-synth-translate`` model was trained on a synthetic language with a fixed
lexicon and known reordering rules, so every test pair has a gold word alignment. Each method
explains the gold translation (forced target) of every test sentence; its word-level scores
(attribution.compare: absolute values, subword pieces merged) give links by ``argmax`` (each target
word to its highest-scoring source word) and by ``threshold`` (every source word with at least
``--threshold`` of the target word's normalised scores). AER (Och & Ney, sure links only) is
computed over the corpus. A random baseline draws uniform scores per cell.

    python benchmarks/alignment.py                   # all 300 test pairs, default methods
    python benchmarks/alignment.py --limit 50 --methods saliency attention

Other explanations (e.g. contribution graphs) can be scored the same way with
:func:`evaluate_explainer`, given a function returning a ``[source words, target words]`` matrix.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO / "examples" / "data" / "synth_translate_test.jsonl"
DEFAULT_METHODS = (
    "saliency",
    "input_x_gradient",
    "integrated_gradients",
    "deeplift",
    "gradient_shap",
    "attention",
    "occlusion",
    "lime",
)


@dataclass
class TranslationPair:
    source: str
    target: str
    alignment: str


@dataclass
class AlignmentScore:
    """One row of the table: corpus AER by both link rules, and the mean explanation time."""

    label: str
    aer_argmax: float
    aer_threshold: float
    seconds_per_sentence: float
    n_sentences: int


def load_pairs(path: Path = DEFAULT_DATA, limit: int | None = None) -> list[TranslationPair]:
    """The first ``limit`` pairs of a JSON-lines file with ``source``, ``target``, ``alignment`` fields."""
    pairs = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                record = json.loads(line)
                pairs.append(TranslationPair(record["source"], record["target"], record["alignment"]))
            if limit is not None and len(pairs) >= limit:
                break
    return pairs


def evaluate_explainer(
    label: str,
    pairs: Sequence[TranslationPair],
    word_scores: Callable[[TranslationPair], np.ndarray],
    *,
    threshold: float,
) -> AlignmentScore:
    """Corpus AER of the alignments read off ``word_scores(pair)`` (``[source words, target words]``)."""
    from attribution.compare import alignment_from_scores, corpus_aer, parse_alignment

    gold, by_argmax, by_threshold = [], [], []
    started = time.perf_counter()
    for pair in pairs:
        scores = word_scores(pair)
        expected_shape = (len(pair.source.split()), len(pair.target.split()))
        if scores.shape != expected_shape:
            raise ValueError(f"{label}: word scores of shape {scores.shape} for {expected_shape} words: {pair}")
        gold.append(parse_alignment(pair.alignment))
        by_argmax.append(alignment_from_scores(scores, mode="argmax"))
        by_threshold.append(alignment_from_scores(scores, mode="threshold", threshold=threshold))
    elapsed = time.perf_counter() - started
    return AlignmentScore(
        label, corpus_aer(by_argmax, gold), corpus_aer(by_threshold, gold), elapsed / max(len(pairs), 1), len(pairs)
    )


def attribution_word_scores(loaded, method: str, method_params: dict) -> Callable[[TranslationPair], np.ndarray]:
    """Word-level scores of ``method`` explaining the gold translation of a pair."""
    from attribution.compare import word_level_scores
    from attribution.inseq_runner import attribute

    def explain(pair: TranslationPair) -> np.ndarray:
        result = attribute(loaded, pair.source, method=method, target=pair.target, method_params=method_params)
        return word_level_scores(result)

    return explain


def random_word_scores(seed: int) -> Callable[[TranslationPair], np.ndarray]:
    generator = np.random.default_rng(seed)
    return lambda pair: generator.random((len(pair.source.split()), len(pair.target.split())))


def markdown(rows: Sequence[AlignmentScore], threshold: float) -> str:
    lines = [
        f"| method | AER argmax | AER threshold {threshold:g} | s / sentence |",
        "|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.label} | {row.aer_argmax:.3f} | {row.aer_threshold:.3f} | {row.seconds_per_sentence:.3f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny-synth-translate")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=None, help="use the first N test pairs (default: all)")
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS))
    parser.add_argument("--ig-steps", type=int, default=20, help="n_steps of integrated_gradients (default 20)")
    parser.add_argument("--threshold", type=float, default=0.2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch

    from attribution.errors import AttributionExplorerError
    from attribution.inseq_runner import check_supported
    from attribution.models import load_model

    torch.set_num_threads(args.threads)
    loaded = load_model(args.model)
    pairs = load_pairs(args.data, args.limit)
    params = {"integrated_gradients": {"n_steps": args.ig_steps}}
    for method in args.methods:  # refuse unsupported methods before the first long run
        try:
            check_supported(loaded, method)
        except AttributionExplorerError as error:
            parser.error(str(error))
    rows = [evaluate_explainer("random scores", pairs, random_word_scores(args.seed), threshold=args.threshold)]
    for method in args.methods:
        explain = attribution_word_scores(loaded, method, params.get(method, {}))
        explain(pairs[0])  # warm-up, not timed
        rows.append(evaluate_explainer(method, pairs, explain, threshold=args.threshold))
    print(
        f"{args.model} on {len(pairs)} pairs of {args.data.name}; CPU {platform.processor() or platform.machine()}, "
        f"{args.threads} torch thread(s); integrated_gradients n_steps={args.ig_steps}\n"
    )
    print(markdown(rows, args.threshold))


if __name__ == "__main__":
    main()
