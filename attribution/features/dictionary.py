"""Sparse-autoencoder dictionaries read at the contribution graph's residual-stream nodes, through SAELens.

A :class:`FeatureDictionary` is one SAELens ``SAE`` and the residual stream it reads: a side and a graph layer
(0 = embedding, l = after block l), the layer a graph node ``decoder:l:after_ffn:t`` (``embedding`` for 0)
names. SAELens names where an SAE reads in TransformerLens hook names; ``blocks.i.hook_resid_pre`` is graph
layer ``i`` and ``blocks.i.hook_resid_post`` layer ``i + 1`` (:func:`graph_layer`). Sources:

- a local SAELens folder (``cfg.json`` + ``sae_weights.safetensors``, what ``SAE.save_model`` writes): offline;
- SAELens's pretrained registry by release and SAE id (GPT-2 small's ``gpt2-small-res-jb``, Gemma Scope),
  downloaded from the Hub, so only when online.

Only dictionaries whose decoder is affine in the activations are read (``normalize_activations`` "none"):
then a state is exactly ``b_dec + Σ_f a_f d_f + error``, which the node view and the interventions rely on.
SAELens (and through it TransformerLens) loads on first use, not when this module is imported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from attribution.errors import InvalidInputError, ModelLoadError
from attribution.results import SIDES, Side

if TYPE_CHECKING:
    from sae_lens import SAE

_HOOK = re.compile(r"blocks\.(\d+)\.hook_resid_(pre|post)")
#: Neuronpedia's page of one feature (links only: nothing is fetched).
NEURONPEDIA_URL = "https://www.neuronpedia.org/{id}/{feature}"


def sae_class() -> Any:
    """SAELens's ``SAE`` class, imported on first use; without SAELens one line saying how to install it."""
    try:
        from sae_lens import SAE
    except ImportError as error:
        raise ModelLoadError(
            "SAE features need SAELens, which this installation lacks: pip install --no-deps -r "
            "requirements-features.txt"
        ) from error
    return SAE


def graph_layer(hook_name: str) -> int:
    """The graph layer a TransformerLens residual hook name reads (``blocks.6.hook_resid_pre`` -> 6)."""
    match = _HOOK.fullmatch(hook_name or "")
    if match is None:
        raise InvalidInputError(
            f"This SAE reads {hook_name!r}; only residual-stream SAEs (blocks.i.hook_resid_pre / hook_resid_post) "
            "map to graph nodes. Give the layer yourself if it reads the residual stream under another name."
        )
    block, where = int(match.group(1)), match.group(2)
    return block if where == "pre" else block + 1


@dataclass
class FeatureDictionary:
    """An SAE (SAELens) bound to the residual stream of ``side`` at graph ``layer``; ``name`` says where it is from."""

    sae: SAE
    side: Side
    layer: int
    name: str
    neuronpedia_id: str | None = None

    def __post_init__(self) -> None:
        if self.side not in SIDES:
            raise InvalidInputError(f"An SAE reads the encoder or the decoder, not {self.side!r}.")
        if not isinstance(self.layer, int) or self.layer < 0:
            raise InvalidInputError(f"An SAE's graph layer is 0 (embedding) or more, not {self.layer!r}.")
        cfg = self.sae.cfg
        if cfg.normalize_activations != "none" or cfg.reshape_activations != "none":
            raise InvalidInputError(
                f"The SAE {self.name!r} normalises its input ({cfg.normalize_activations}) or reshapes it: its "
                "decoder is then not a sum of feature terms, which the node view and interventions need."
            )

    @property
    def width(self) -> int:
        """The number of features."""
        return int(self.sae.cfg.d_sae)

    def encode(self, states: torch.Tensor) -> torch.Tensor:
        """Feature activations ``[..., width]`` of residual states ``[..., d]`` (the SAE's own encoder)."""
        with torch.no_grad():
            return self.sae.encode(states.to(self.sae.W_dec.device, self.sae.W_dec.dtype)).float()

    def directions(self, features: torch.Tensor | list[int]) -> torch.Tensor:
        """Decoder rows ``[n, d]`` of the features (float32)."""
        return self.sae.W_dec.detach()[torch.as_tensor(features, dtype=torch.long)].float()

    @property
    def decoder_bias(self) -> torch.Tensor:
        return self.sae.b_dec.detach().float()

    def check_feature(self, feature: int, what: str) -> int:
        """``feature`` as a non-negative index; out of range is one clear error."""
        if not -self.width <= feature < self.width:
            raise InvalidInputError(
                f"{what}: feature {feature} is out of range (the SAE {self.name} has {self.width})."
            )
        return feature % self.width

    def neuronpedia_url(self, feature: int) -> str | None:
        """The feature's Neuronpedia page when the SAE has a Neuronpedia id (a link; nothing is fetched)."""
        return None if not self.neuronpedia_id else NEURONPEDIA_URL.format(id=self.neuronpedia_id, feature=feature)


def bind(sae: SAE, *, name: str, side: Side = "decoder", layer: int | None = None) -> FeatureDictionary:
    """``sae`` bound to a graph layer: ``layer`` when given, else the one its hook name reads."""
    metadata = sae.cfg.metadata
    if layer is None:
        layer = graph_layer(str(metadata.hook_name))
    return FeatureDictionary(sae, side, layer, name, neuronpedia_id=metadata.neuronpedia_id or None)


def load_sae_folder(folder: str | Path, *, side: Side = "decoder", layer: int | None = None) -> FeatureDictionary:
    """A local SAELens folder (``cfg.json`` + ``sae_weights.safetensors``), offline; an unreadable one is one error."""
    SAE = sae_class()

    path = Path(folder)
    if not (path / "cfg.json").is_file():
        raise ModelLoadError(f"{path} is not an SAELens folder (it has no cfg.json).")
    try:
        sae: Any = SAE.load_from_disk(path, device="cpu")
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        raise ModelLoadError(f"Could not load the SAE in {path}: {error}") from error
    return bind(sae, name=path.name, side=side, layer=layer)


def load_pretrained_sae(release: str, sae_id: str, *, layer: int | None = None) -> FeatureDictionary:
    """An SAE of SAELens's pretrained registry (downloaded from the Hub: needs the network)."""
    SAE = sae_class()

    from attribution.models import hub_reachable

    if not hub_reachable():
        raise ModelLoadError(
            f"The SAE {release}/{sae_id} comes from the Hugging Face Hub, which is not reachable: use a local "
            "SAELens folder (cfg.json + sae_weights.safetensors)."
        )
    try:
        sae: Any = SAE.from_pretrained(release, sae_id, device="cpu")
    except (OSError, ValueError, KeyError) as error:
        raise ModelLoadError(f"Could not load the SAE {release}/{sae_id}: {error}") from error
    return bind(sae, name=f"{release}/{sae_id}", layer=layer)
