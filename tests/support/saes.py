"""SAEs fitted in-process on a bundled model's residual stream (SAELens's SAE classes, :func:`fit_sae`).

What the feature tests need as ground truth: an SAE whose encoder and decoder are SAELens's own, fitted on
the states it is then used on, optionally with a *planted* feature: a direction added to one token's
embedding in the model, so the states of that token carry it at every later layer of the residual stream.
"""

from __future__ import annotations

import copy
import itertools

import torch

from attribution.anatomy.adapters import architecture_spec
from attribution.features.dictionary import FeatureDictionary, bind
from attribution.features.fit import fit_sae
from attribution.features.streams import residual_states
from attribution.interventions.inputs import prepare
from attribution.models import LoadedModel

NAMES = ("Mary", "John", "Alice", "Bob", "Sarah", "Tom", "Emma", "James")
PLACES = ("store", "park", "school", "office", "beach", "market")
OBJECTS = ("drink", "book", "ring", "snack", "letter", "ball")


def ioi_sentences(n: int) -> list[str]:
    """``n`` indirect-object prompts in the bundled IOI model's vocabulary, in a fixed order."""
    combos = itertools.product(itertools.permutations(NAMES, 2), PLACES, OBJECTS)
    return [
        f"When {a} and {b} went to the {place}, {b} gave a {thing} to"
        for (a, b), place, thing in itertools.islice(combos, 0, n * 7, 7)
    ]


def states_at(loaded: LoadedModel, texts: list[str], layer: int, side: str = "decoder") -> torch.Tensor:
    """``[N, d]``: the residual stream at graph ``layer`` at every token of ``texts``."""
    spec = architecture_spec(loaded.model)
    rows = [residual_states(loaded, spec, prepare(loaded, text).inputs, side)[0, layer] for text in texts]
    return torch.cat(rows)


def planted_model(loaded: LoadedModel, token: str, direction: torch.Tensor) -> LoadedModel:
    """A copy of ``loaded`` whose input embedding of ``token`` has ``direction`` added (the model itself untouched)."""
    copied = copy.deepcopy(loaded.model)
    token_id = loaded.tokenizer.convert_tokens_to_ids(token)
    with torch.no_grad():
        copied.get_input_embeddings().weight[token_id] += direction
    return LoadedModel(loaded.model_id, copied, loaded.tokenizer, loaded.kind, loaded.revision)


def trained_dictionary(
    loaded: LoadedModel, texts: list[str], layer: int, *, width: int = 256, side: str = "decoder", seed: int = 0
) -> FeatureDictionary:
    """An SAE fitted on the residual stream of ``loaded`` at ``layer`` over ``texts``, bound to that layer."""
    sae = fit_sae(states_at(loaded, texts, layer, side), width=width, seed=seed)
    return bind(sae, name=f"fitted-{side}-{layer}", side=side, layer=layer)  # type: ignore[arg-type]
