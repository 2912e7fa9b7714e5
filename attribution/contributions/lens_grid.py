"""The logit lens over the whole sequence: a layers × positions grid of each residual state's top next token.

Cell (layer, position) reads the decoder's residual stream at that token after block ``layer`` (0: the
embedding, block 1's input) through the final norm (when the model has one and ``final_norm`` asks for it)
and the unembedding, as the contribution graph's logit lens reads its nodes (:mod:`.logit_lens`): its top
token and probability. Each cell names the graph node of that state (``decoder:layer:after_ffn:position``,
``decoder:0:embedding:position``), so a viewer can select it in the graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from attribution.anatomy.adapters import architecture_spec
from attribution.anatomy.hooks import hooked
from attribution.anatomy.places import blocks_of
from attribution.anatomy.sites import Site
from attribution.contributions.logit_lens import LensRequest, LogitLens
from attribution.interventions.inputs import prepare
from attribution.languages import Languages, check_languages, languages_set
from attribution.model_guard import exclusive_use
from attribution.models import LoadedModel
from attribution.results import node_id


@dataclass(frozen=True)
class LensCell:
    """The top next token read from the residual state at one layer and position."""

    layer: int
    position: int
    token: str  # as the tokenizer spells it
    probability: float
    node_id: str  # the graph node of this state


@dataclass
class LogitLensGrid:
    """Rows are layers 0 (embedding) … ``n_layers``, columns the decoder-side tokens (``tokens``)."""

    tokens: list[str]
    n_layers: int
    cells: list[list[LensCell]]  # [layer][position]

    def cell(self, layer: int, position: int) -> LensCell:
        return self.cells[layer][position]


def logit_lens_grid(
    loaded: LoadedModel,
    text: str,
    *,
    target: str | None = None,
    final_norm: bool = True,
    max_tokens: int | None = None,
    languages: Languages | None = None,
) -> LogitLensGrid:
    """The grid of ``text`` (a seq2seq model: the decoder side of the translation ``target``)."""
    languages = check_languages(loaded, languages)
    with exclusive_use(loaded), languages_set(loaded, languages):
        spec = architecture_spec(loaded.model)
        clean = prepare(loaded, text, target, max_tokens=max_tokens, languages=languages)
        n_layers = len(blocks_of(spec, "decoder"))
        states: dict[int, torch.Tensor] = {}

        def keep(layer: int):
            def store(activation: torch.Tensor, site: Site) -> None:
                states[layer] = activation[0].detach().float()

            return store

        sites = {Site("decoder", 1, "resid_pre"): keep(0)}
        sites |= {Site("decoder", layer, "resid_post"): keep(layer) for layer in range(1, n_layers + 1)}
        with hooked(spec, sites), torch.no_grad():
            loaded.model(**clean.inputs)
        lens = LogitLens(spec, loaded.tokenizer, final_norm=final_norm)
        n_tokens = len(clean.decoder_ids)
        requests = [
            LensRequest(states[layer][position]) for layer in range(n_layers + 1) for position in range(n_tokens)
        ]
        read = lens.read(requests, k=1)
    tokens = loaded.tokenizer.convert_ids_to_tokens(clean.decoder_ids)
    cells = [
        [
            LensCell(
                layer,
                position,
                *read[layer * n_tokens + position].top_tokens[0],
                node_id=node_id("decoder", layer, "after_ffn" if layer else "embedding", position),
            )
            for position in range(n_tokens)
        ]
        for layer in range(n_layers + 1)
    ]
    return LogitLensGrid(tokens=[str(token) for token in tokens], n_layers=n_layers, cells=cells)
