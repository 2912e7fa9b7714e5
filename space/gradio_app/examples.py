"""``gr.Examples`` rows for each tab, on the bundled tiny models and their held-out samples.

The IOI prompts and translation pairs (with gold word alignments) come from
``examples/data/samples.json`` (written by ``examples/train_tiny_models.py`` with the models; shipped
in the wheel with them, see :mod:`attribution.bundled`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from attribution.bundled import samples_path

IOI_MODEL, TRANSLATE_MODEL = "tiny-ioi-gpt2", "tiny-synth-translate"
N_EXAMPLES = 2


def _samples() -> dict[str, Any]:
    path = samples_path()
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def ioi_prompts(n: int = N_EXAMPLES) -> list[str]:
    return _samples().get("ioi_prompts", [])[:n]


def translation_pairs(n: int = N_EXAMPLES) -> list[dict[str, str]]:
    """``{"source", "target", "alignment"}`` dicts; ``alignment`` is gold Pharaoh ``src-tgt``."""
    return _samples().get("translations", [])[:n]


def attribute_examples(models: tuple[str, ...]) -> list[list[Any]]:
    """Rows of (model, text, target, method, step scores, contrastive target, source and target language)."""
    rows: list[list[Any]] = []
    if IOI_MODEL in models:
        rows += [[IOI_MODEL, prompt, "", "saliency", ["probability"], "", "", ""] for prompt in ioi_prompts()]
    if TRANSLATE_MODEL in models:
        rows += [
            [TRANSLATE_MODEL, pair["source"], pair["target"], "attention", ["probability"], "", "", ""]
            for pair in translation_pairs()
        ]
    return rows or [[models[0], "", "", "saliency", ["probability"], "", "", ""]]


def graph_examples(models: tuple[str, ...]) -> list[list[Any]]:
    """Rows of (model, text, target, threshold, renormalise, root token, source and target language)."""
    rows: list[list[Any]] = []
    if IOI_MODEL in models:
        rows += [[IOI_MODEL, prompt, "", 0.04, False, "-1", "", ""] for prompt in ioi_prompts()]
    if TRANSLATE_MODEL in models:
        rows += [
            [TRANSLATE_MODEL, pair["source"], pair["target"], 0.04, False, "-1", "", ""] for pair in translation_pairs()
        ]
    return rows or [[models[0], "", "", 0.04, False, "-1", "", ""]]


def compare_examples(models: tuple[str, ...]) -> list[list[Any]]:
    """Rows of (text, models, methods, target, gold alignment, source and target language): translations with
    their gold alignments."""
    if TRANSLATE_MODEL in models and translation_pairs():
        return [
            [pair["source"], [TRANSLATE_MODEL], ["saliency", "attention"], pair["target"], pair["alignment"], "", ""]
            for pair in translation_pairs()
        ]
    return [[ioi_prompts()[0] if ioi_prompts() else "", [models[0]], ["saliency", "attention"], "", "", "", ""]]


def intervene_examples(models: Sequence[str]) -> list[list[Any]]:
    """Rows of (model, text, counterfactual, target, counterfactual target, contrast token, root token)."""
    rows: list[list[Any]] = []
    if IOI_MODEL in models:
        for prompt in ioi_prompts(1):
            rows.append([IOI_MODEL, prompt, swap_names(prompt), "", "", "", "-1"])
    if TRANSLATE_MODEL in models:
        for pair in translation_pairs(1):
            words = pair["source"].split()
            changed = " ".join([*words[:-1], _other_word(words[-1])])
            # the adverb's translation comes just before the final verb: measure the position predicting it
            root = str(len(pair["target"].split()) - 2)
            rows.append([TRANSLATE_MODEL, pair["source"], changed, pair["target"], "", "", root])
    return rows


def swap_names(prompt: str) -> str:
    """An IOI counterfactual: the repeated name (the subject) becomes the other name, so the answer flips."""
    names = [w for w in re.findall(r"[A-Z][a-z]+", prompt) if w not in {"When", "Then", "After", "While"}]
    first, second = ([*names, "", ""])[:2]
    if not first or not second or first == second:
        return prompt
    repeated = second if prompt.count(second) > 1 else first
    other = first if repeated == second else second
    head, _, tail = prompt.rpartition(repeated)
    return f"{head}{other}{tail}"


def _other_word(word: str) -> str:
    """A different word of the synthetic lexicon in the same role (adverbs, the last word of the samples)."""
    adverbs = ["quickly", "slowly", "today", "often", "quietly"]
    return next((a for a in adverbs if a != word), word)


#: What a hardware profile's offered runs are checked on (``space.gradio_app.offered_runs``), per model kind: a
#: prompt and a source sentence of the length visitors type, the output generated (``max_new_tokens``: the
#: most a request without a target costs).
PROFILE_EXAMPLES: dict[str, tuple[str, ...]] = {
    "causal": ("When Mary and John went to the store, John gave a drink to",),
    "seq2seq": ("When Mary and John went to the store, John gave a drink to Mary.",),
}
