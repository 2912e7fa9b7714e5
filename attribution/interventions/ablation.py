"""Ablate or patch named components and report how the prediction moved: :func:`intervene`.

Modes (what a component's activation becomes):

- ``zero``: zero. For an edge, its term ``A^h_ij v^h_j W_O^h`` is removed from the attention output.
- ``mean``: its mean over a reference set: ``mean_over="prompts"`` averages position by position over
  ``reference`` inputs of the same length (e.g. other IOI prompts of the same template; seq2seq
  references are sources with the clean target, or ``(source, target)`` pairs);
  ``"positions"`` averages over every position of the reference inputs (default: the clean input
  itself), for any length. Edges take the mean of their term over reference prompts.
- ``patch``: its value in a counterfactual input of the same length (``counterfactual`` text and/or,
  for seq2seq, ``counterfactual_target``), for edges the counterfactual's term.
- ``steer`` (SAE features only): ``strength·d`` is added to the residual stream where the feature is read,
  ``d`` its decoder direction. An SAE feature in ``zero`` mode is ablated: its term ``a·d`` is removed, ``a``
  the SAE's encoder applied to the state of the intervened pass. The SAEs are given as ``saes``
  (:class:`~attribution.features.dictionary.FeatureDictionary`, one per graph layer).

What a *set* of components means. Each component denotes a set of additive terms of the residual
stream's decomposition (the contribution graph's): an edge ``j -> i`` of head h the term
``A^h_ij v^h_j W_O^h`` of the attention output at i; a head at its query positions the terms of all
its edges there; an attention block output at a token all its heads' terms there plus the output
bias; a neuron at its tokens ``act_n(i) W_out[n]``; an FFN block output at a token all its neurons'
terms plus the bias; a residual stream node the whole state (every term written into that token up
to that layer). A set of components denotes the **union** of their terms, and the intervention
changes each term of the union exactly once: ``zero`` removes it, ``mean`` / ``patch`` give it its
reference value (the reference run's value of that very term). So a head together with one of its own
edges is the head alone; a head restricted to positions together with an all-heads edge into one of
those positions is the head there plus the *other* heads' terms of the edge; a block output together
with its own heads, edges or neurons is the block output at its tokens plus the smaller components
elsewhere; a residual stream node together with anything written into it is the node. Terms the
union does not contain are left alone, however the changed ones alter them downstream (a later
layer's edge term is computed from the changed values and probabilities of the pass, as the
decomposition of that pass computes it). The engine realises this by applying the coarser edit
last at each site (a block output or residual assignment overrides what its parts did) and by never
applying an edge's term change where a head edit of the same row already covers that head and query
position (:func:`attribution.interventions.engine.installed`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import torch

from attribution.anatomy.adapters import ArchitectureSpec, architecture_spec
from attribution.anatomy.shape import ModelShape
from attribution.contributions.graph import resolve_root_tokens
from attribution.errors import InvalidInputError
from attribution.interventions import engine
from attribution.interventions.components import Component, parse_component, resolve
from attribution.interventions.inputs import PreparedInput, batch, model_shape, prepare, prepare_like
from attribution.interventions.metrics import default_targets, prediction_changes, token_id
from attribution.interventions.results import MEAN_OVER, MODES, InterventionResult
from attribution.languages import Languages, check_languages, languages_set, provenance_with
from attribution.model_guard import exclusive_use
from attribution.models import LoadedModel

if TYPE_CHECKING:
    from attribution.features.dictionary import FeatureDictionary

Mode = Literal["zero", "mean", "patch", "steer"]
#: Most components one request may name (each is one hook edit; the Space and CLI pass user input here).
MAX_COMPONENTS = 4096
#: Most reference inputs of a mean ablation.
MAX_REFERENCES = 256
#: Largest steering strength (times the feature's decoder direction).
MAX_STRENGTH = 1e4


def site_activation(recording: engine.Recording, component: Component, n_layers: int) -> torch.Tensor:
    """The recorded activation of a (non-edge) component over every position, ``[R, T, ...]``."""
    c = component
    if c.kind == "residual":
        return recording.block_inputs[(c.side, c.layer + 1)] if c.layer < n_layers else recording.final_outputs[c.side]
    if c.kind == "attention":
        return recording.attention_outputs[(c.side, c.layer, c.attention)]
    if c.kind == "ffn":
        return recording.ffn_outputs[(c.side, c.layer)]
    if c.kind == "head":
        return recording.head_inputs[(c.side, c.layer, c.attention)][:, :, c.index]
    if c.kind == "neuron":
        return recording.ffn_inputs[(c.side, c.layer)][..., c.index]
    raise ValueError(c.kind)


def edge_mask(component: Component, shape: ModelShape) -> torch.Tensor:
    """``[H, T, S]`` with ones where ``component`` (an edge, one head or all) has its terms."""
    assert component.attention is not None and component.positions is not None  # an edge names both
    heads = shape.heads[(component.side, component.attention)]
    source_side = "encoder" if component.attention == "cross" else component.side
    mask = torch.zeros(heads, shape.tokens[component.side], shape.tokens[source_side])
    head = slice(None) if component.index is None else component.index
    mask[head, component.positions[0], component.source] = 1.0
    return mask


def reference_pair(
    recording: engine.Recording, side: str, layer: int, attention: str
) -> tuple[torch.Tensor, torch.Tensor]:
    key = (side, layer, attention)
    return recording.probabilities[key], recording.values[key]


def build_edits(
    components: Sequence[Component],
    rows: torch.Tensor,
    mode: str,
    spec: ArchitectureSpec,
    shape: ModelShape,
    reference: engine.Recording | None = None,
    mean_over: str = "prompts",
    saes: Sequence[FeatureDictionary] = (),
    strength: float | None = None,
) -> list[engine.Edit]:
    """Edits for ``components`` (resolved) in batch ``rows``; ``reference`` holds the mean / patch runs, ``saes``
    the SAEs of feature components, ``strength`` the steering strength (mode ``steer``)."""
    edits: list[engine.Edit] = []
    for component in components:
        if (component.kind == "feature") != (mode == "steer") and mode != "zero":
            raise InvalidInputError(
                f"{component.id}: SAE features are ablated (mode 'zero') or steered (mode 'steer'), and only "
                "features are steered."
            )
        if component.kind == "feature":
            edits.append(feature_edit(component, rows, saes, strength if mode == "steer" else None))
            continue
        if component.kind == "edge":
            if mode != "zero" and mean_over == "positions":
                raise InvalidInputError(
                    f"{component.id}: an edge's term belongs to its two positions; mean-ablate edges over "
                    "reference prompts, not over positions."
                )
            assert component.attention is not None  # an edge is in a self- or cross-attention
            pair = None
            if mode != "zero":
                assert reference is not None  # mean and patch edits read the reference runs the caller recorded
                pair = reference_pair(reference, component.side, component.layer, component.attention)
            edits.append(
                engine.EdgeEdit(
                    component.side, component.layer, component.attention, rows, edge_mask(component, shape), pair
                )
            )
            continue
        value = None
        if mode != "zero":
            assert reference is not None
            n_layers = shape.layers[component.side]
            activation = site_activation(reference, component, n_layers)  # [R, T, ...]
            if mode == "mean" and mean_over == "positions":
                value = activation.mean(dim=(0, 1)).expand(shape.tokens[component.side], *activation.shape[2:])
            else:
                value = activation.mean(0)
        edits.append(engine.ValueEdit(component, rows, value))
    return edits


def feature_edit(
    component: Component, rows: torch.Tensor, saes: Sequence[FeatureDictionary], strength: float | None
) -> engine.FeatureEdit:
    """The edit of an SAE feature component, with the SAE of ``saes`` that reads its side and layer."""
    dictionary = next((d for d in saes if (d.side, d.layer) == (component.side, component.layer)), None)
    if dictionary is None:
        read = ", ".join(f"{d.side}:{d.layer}" for d in saes) or "none"
        raise InvalidInputError(
            f"{component.id}: no SAE given reads the {component.side} at layer {component.layer} "
            f"(the SAEs given read: {read})."
        )
    assert component.index is not None  # a feature id names its feature
    feature = dictionary.check_feature(component.index, component.id)
    return engine.FeatureEdit(
        component,
        rows,
        lambda states: dictionary.encode(states)[:, feature],
        dictionary.directions([feature])[0],
        strength,
    )


def parse_components(components: Sequence[str | Component] | str | Component) -> list[Component]:
    """The components named (ids parsed, their number bounded): what can be checked before a model is loaded."""
    if isinstance(components, str | Component):
        components = [components]
    components = list(components)
    if not components:
        raise InvalidInputError("Name at least one component to intervene on (e.g. 'decoder:1:head:0').")
    if len(components) > MAX_COMPONENTS:
        raise InvalidInputError(f"At most {MAX_COMPONENTS} components per intervention, not {len(components)}.")
    return [c if isinstance(c, Component) else parse_component(c) for c in components]


def resolve_components(components: Sequence[str | Component], shape: ModelShape) -> list[Component]:
    return [resolve(component, shape) for component in parse_components(components)]


def check_intervention(
    components: Sequence[str | Component] | str,
    *,
    mode: str,
    mean_over: str,
    top_k: int,
    strength: float | None = None,
) -> list[Component]:
    """Everything :func:`intervene` checks that needs no model; returns the parsed components.

    A caller that loads the model itself (the command line) calls it first, so a typo costs no model load.
    """
    check_mode(mode, mean_over)
    if (mode == "steer") != (strength is not None):
        raise InvalidInputError("Steering (mode 'steer') needs a strength, and only steering takes one.")
    if strength is not None and (
        isinstance(strength, bool) or not isinstance(strength, int | float) or not abs(strength) <= MAX_STRENGTH
    ):
        raise InvalidInputError(f"The steering strength is a number from -{MAX_STRENGTH} to {MAX_STRENGTH}.")
    if not isinstance(top_k, int) or not 0 < top_k <= 100:
        raise InvalidInputError(f"top_k must be an integer from 1 to 100, not {top_k!r}.")
    return parse_components(components)


def check_mode(mode: str, mean_over: str) -> None:
    if mode not in MODES:
        raise InvalidInputError(f"Unknown intervention mode {mode!r}; choose one of {', '.join(MODES)}.")
    if mean_over not in MEAN_OVER:
        raise InvalidInputError(f"mean_over must be one of {', '.join(MEAN_OVER)}, not {mean_over!r}.")


def reference_inputs(
    loaded: LoadedModel,
    clean: PreparedInput,
    *,
    mode: str,
    counterfactual: str | None,
    counterfactual_target: str | None,
    reference: Sequence[str | tuple[str, str]] | None,
    mean_over: str,
    max_tokens: int | None,
) -> list[PreparedInput]:
    """The runs whose activations replace the clean ones: one counterfactual, or the mean's references."""
    if mode == "patch":
        if counterfactual is None and counterfactual_target is None:
            raise InvalidInputError("Patching needs a counterfactual input (text and/or target) of the same length.")
        return [
            prepare_like(
                loaded,
                clean,
                counterfactual if counterfactual is not None else clean.text,
                counterfactual_target,
                max_tokens=max_tokens,
            )
        ]
    if mode == "mean":
        texts = list(reference or [])
        if len(texts) > MAX_REFERENCES:
            raise InvalidInputError(f"At most {MAX_REFERENCES} reference inputs, not {len(texts)}.")
        if not texts:
            if mean_over == "prompts":
                raise InvalidInputError(
                    "Mean ablation over prompts needs reference prompts of the same length; or average over "
                    "positions (mean_over='positions'), which can use the input itself."
                )
            return [clean]
        pairs = [(item, None) if isinstance(item, str) else tuple(item) for item in texts]
        if mean_over == "positions":
            return [
                prepare(loaded, text, target or clean.target_text or None, max_tokens=max_tokens, role="reference")
                for text, target in pairs
            ]
        return [
            prepare_like(loaded, clean, text, target, role="reference", max_tokens=max_tokens) for text, target in pairs
        ]
    return []


def record_references(
    loaded: LoadedModel, spec: ArchitectureSpec, references: list[PreparedInput]
) -> engine.Recording | None:
    """One recording of every reference run; runs of different lengths (mean over positions) are pooled."""
    if not references:
        return None
    lengths = {(len(r.source_ids), len(r.decoder_ids)) for r in references}
    if len(lengths) == 1:
        return engine.forward(loaded.model, spec, batch(references), record=True)
    recordings = [engine.forward(loaded.model, spec, batch([r]), record=True) for r in references]
    pooled = engine.Recording(logits=torch.empty(0))
    for name in ("block_inputs", "head_inputs", "attention_outputs", "ffn_inputs", "ffn_outputs"):
        keys = getattr(recordings[0], name)
        setattr(pooled, name, {k: torch.cat([getattr(r, name)[k] for r in recordings], 1) for k in keys})
    pooled.final_outputs = {
        k: torch.cat([r_.final_outputs[k] for r_ in recordings], 1) for k in recordings[0].final_outputs
    }
    return pooled


def intervene(
    loaded: LoadedModel,
    text: str,
    components: Sequence[str | Component] | str,
    *,
    target: str | None = None,
    mode: Mode = "zero",
    counterfactual: str | None = None,
    counterfactual_target: str | None = None,
    reference: Sequence[str | tuple[str, str]] | None = None,
    mean_over: str = "prompts",
    root_tokens: int | list[int] | str = -1,
    target_token: str | None = None,
    contrast_token: str | None = None,
    top_k: int = 5,
    max_tokens: int | None = None,
    languages: Languages | None = None,
    saes: Sequence[FeatureDictionary] = (),
    strength: float | None = None,
) -> InterventionResult:
    """Ablate or patch ``components`` (ids, see :mod:`attribution.interventions.components`) all at once.

    Returns the prediction at each root position (``-1``: the last, as in the contribution graph)
    before and after: target token probability and logit, the logit difference against
    ``contrast_token`` when given, the top-k tokens and their change, and KL(before || after).
    Runs under ``loaded.lock``; the model is left exactly as it was, whatever happens. ``languages``: the
    language codes of a multilingual translation model (see :mod:`attribution.languages`). ``saes``: the SAEs
    of SAE feature components (``decoder:2:sae:17@5``); ``strength``: how much of a feature's direction mode
    ``steer`` adds.
    """
    parsed = check_intervention(components, mode=mode, mean_over=mean_over, top_k=top_k, strength=strength)
    languages = check_languages(loaded, languages)
    with exclusive_use(loaded), languages_set(loaded, languages):
        spec = architecture_spec(loaded.model)  # in here: accelerate-offloaded weights are real tensors
        clean = prepare(loaded, text, target, max_tokens=max_tokens, languages=languages)
        shape = model_shape(spec, clean)
        resolved = resolve_components(parsed, shape)
        roots = resolve_root_tokens(root_tokens, len(clean.decoder_ids))
        target_id = None if target_token is None else token_id(loaded, target_token)
        contrast_id = None if contrast_token is None else token_id(loaded, contrast_token, role="contrast token")
        references = reference_inputs(
            loaded,
            clean,
            mode=mode,
            counterfactual=counterfactual,
            counterfactual_target=counterfactual_target,
            reference=reference,
            mean_over=mean_over,
            max_tokens=max_tokens,
        )
        recorded = record_references(loaded, spec, references)
        edits = build_edits(resolved, torch.tensor([0]), mode, spec, shape, recorded, mean_over, saes, strength)
        before = engine.forward(loaded.model, spec, clean.inputs).logits[0]
        after = engine.forward(loaded.model, spec, clean.inputs, edits).logits[0]
    targets = (
        [target_id] * len(roots) if target_id is not None else default_targets(loaded, clean.decoder_ids, roots, before)
    )
    source_tokens, target_tokens = clean.tokens(loaded)
    patched_from = references[0] if mode == "patch" else None
    return InterventionResult(
        provenance=provenance_with(loaded, languages),
        source_text=clean.text,
        target_text=clean.target_text,
        source_tokens=source_tokens,
        target_tokens=target_tokens,
        components=[c.id for c in resolved],
        mode=mode,
        predictions=prediction_changes(loaded, before, after, roots, targets, contrast_id, target_tokens, top_k),
        mean_over=mean_over if mode == "mean" else None,
        reference_texts=[
            r.text if not r.target_text or loaded.kind == "causal" else f"{r.text} => {r.target_text}"
            for r in references
        ]
        if mode == "mean"
        else [],
        counterfactual_text=patched_from.text if patched_from else None,
        counterfactual_target=patched_from.target_text if patched_from else None,
        strength=strength,
    )
