"""``gr.Examples`` rows for each tab, on the bundled tiny models and their held-out test data.

The IOI prompts and translation pairs (with gold word alignments) come from ``examples/data``,
written by ``examples/train_tiny_models.py`` next to the models it trains.
"""

from __future__ import annotations

import json
from typing import Any

from attribution.models import BUNDLED_MODELS_DIR

DATA_DIR = BUNDLED_MODELS_DIR.parent / "data"
IOI_MODEL, TRANSLATE_MODEL = "tiny-ioi-gpt2", "tiny-synth-translate"
N_EXAMPLES = 2


def _rows(name: str, n: int = N_EXAMPLES) -> list[dict[str, Any]]:
    path = DATA_DIR / name
    if not path.is_file():
        return []
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [json.loads(line) for line in lines[:n]]


def ioi_prompts() -> list[str]:
    return [row["prompt"] for row in _rows("ioi_test.jsonl")]


def translation_pairs() -> list[dict[str, str]]:
    """``{"source", "target", "alignment"}`` dicts; ``alignment`` is gold Pharaoh ``src-tgt``."""
    return _rows("synth_translate_test.jsonl")


def attribute_examples(models: tuple[str, ...]) -> list[list[Any]]:
    """Rows of (model, text, target, method, step scores, contrastive target)."""
    rows: list[list[Any]] = []
    if IOI_MODEL in models:
        rows += [[IOI_MODEL, prompt, "", "saliency", ["probability"], ""] for prompt in ioi_prompts()]
    if TRANSLATE_MODEL in models:
        rows += [
            [TRANSLATE_MODEL, pair["source"], pair["target"], "attention", ["probability"], ""]
            for pair in translation_pairs()
        ]
    return rows or [[models[0], "", "", "saliency", ["probability"], ""]]


def graph_examples(models: tuple[str, ...]) -> list[list[Any]]:
    """Rows of (model, text, target, threshold, renormalise, root token)."""
    rows: list[list[Any]] = []
    if IOI_MODEL in models:
        rows += [[IOI_MODEL, prompt, "", 0.04, False, "-1"] for prompt in ioi_prompts()]
    if TRANSLATE_MODEL in models:
        rows += [[TRANSLATE_MODEL, pair["source"], pair["target"], 0.04, False, "-1"] for pair in translation_pairs()]
    return rows or [[models[0], "", "", 0.04, False, "-1"]]


def compare_examples(models: tuple[str, ...]) -> list[list[Any]]:
    """Rows of (text, models, methods, target, gold alignment): translations with their gold alignments."""
    if TRANSLATE_MODEL in models and translation_pairs():
        return [
            [pair["source"], [TRANSLATE_MODEL], ["saliency", "attention"], pair["target"], pair["alignment"]]
            for pair in translation_pairs()
        ]
    return [[ioi_prompts()[0] if ioi_prompts() else "", [models[0]], ["saliency", "attention"], "", ""]]
