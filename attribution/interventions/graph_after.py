"""The contribution graph of an intervened forward pass: the route re-drawn after an ablation.

The graph's decomposition reads the model's own probabilities and the residual stream its hooks see.
The intervention hooks are installed first, so the decomposition sees ablated residual streams, FFN
outputs and neurons as they are; zero-ablated heads and edges are reported through the probabilities
the attention modules return (:func:`attribution.interventions.engine.installed` with
``effective_probabilities``), so the decomposition still sums exactly to the intervened pass. Whole
attention outputs (bias included), mean / patched heads and edges, and the last layer's residual stream
have no such exact description and are refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from attribution.anatomy.adapters import architecture_spec
from attribution.contributions import build_contribution_graph
from attribution.errors import UnsupportedError
from attribution.interventions import engine
from attribution.interventions.ablation import build_edits, check_mode, record_references, resolve_components
from attribution.interventions.components import Component
from attribution.interventions.inputs import model_shape, prepare
from attribution.languages import Languages, check_languages, languages_set
from attribution.model_guard import exclusive_use
from attribution.models import LoadedModel
from attribution.results import ContributionGraph

if TYPE_CHECKING:
    from attribution.features.dictionary import FeatureDictionary


def graph_after_intervention(
    loaded: LoadedModel,
    text: str,
    components: Sequence[str | Component],
    *,
    target: str | None = None,
    mode: str = "zero",
    threshold: float = 0.04,
    root_tokens: int | list[int] | str = -1,
    top_k: int = 5,
    max_tokens: int | None = None,
    languages: Languages | None = None,
    saes: Sequence[FeatureDictionary] = (),
    strength: float | None = None,
) -> ContributionGraph:
    """The contribution graph of ``text`` with ``components`` zero- or mean-ablated (mean over positions
    of the input itself), or SAE features steered (mode ``steer``, ``strength``, with their ``saes``), e.g. to
    re-draw a route after removing one of its edges. ``languages``: the language codes of a multilingual
    translation model (see :mod:`attribution.languages`)."""
    check_mode(mode, "positions")
    languages = check_languages(loaded, languages)
    if mode == "patch":
        raise UnsupportedError("Re-drawing the graph supports zero and mean ablation, not patching.")
    with exclusive_use(loaded), languages_set(loaded, languages):
        spec = architecture_spec(loaded.model)  # in here: accelerate-offloaded weights are real tensors
        clean = prepare(loaded, text, target, max_tokens=max_tokens, languages=languages)
        shape = model_shape(spec, clean)
        resolved = resolve_components(components, shape)
        for component in resolved:
            if component.kind in ("residual", "feature") and component.layer == shape.layers[component.side]:
                raise UnsupportedError(
                    f"{component.id} is the last layer's output: nothing is left to re-draw after ablating it."
                )
        reference = record_references(loaded, spec, [clean]) if mode == "mean" else None
        edits = build_edits(resolved, torch.tensor([0]), mode, spec, shape, reference, "positions", saes, strength)
        with engine.installed(spec, edits, effective_probabilities=True):
            return build_contribution_graph(
                loaded,
                text,
                target=clean.target_text or None,
                threshold=threshold,
                root_tokens=root_tokens,
                top_k=top_k,
                max_tokens=max_tokens,
                languages=languages,
            )
