"""The maps a patching sweep draws, as grids of anatomy sites (no torch imported here).

Each row of a map patches one site of the model: a head map's row l the heads' outputs of block l
(``decoder.l.attn.head_out``; ``cross_attn`` for ``cross_head``), a position map's row l the residual
stream of the graph's layer l, which enters block l + 1 (``decoder.(l+1).resid_pre``). Its columns are
the heads, or the token positions, of that site. :func:`attribution.interventions.sweeps.patching_sweep`
lays its cells out from these grids, and :func:`attribution.cost.estimate_patching_cost` counts their
passes: a cell's patched run resumes at its row's site (:func:`attribution.anatomy.shape.resumed_share`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from attribution.anatomy.shape import ModelShape, resumed_share
from attribution.anatomy.sites import Side, Site, attention_site
from attribution.errors import InvalidInputError
from attribution.interventions.components import AttentionKind
from attribution.interventions.results import MAP_NAMES


@dataclass(frozen=True)
class MapGrid:
    """The cells of one map: one site per row, ``columns`` heads or positions of it."""

    name: str
    side: Side
    attention: AttentionKind | None  # a head map's attention (self / cross); None for position maps
    rows: tuple[Site, ...]
    columns: int

    @property
    def cells(self) -> int:
        return len(self.rows) * self.columns

    def passes(self, shape: ModelShape) -> Fraction:
        """Whole-model passes the map's patched runs cost, each resumed at its row's site."""
        return sum((self.columns * resumed_share(shape, site) for site in self.rows), Fraction(0))


def map_names(seq2seq: bool, maps: Sequence[str] | None) -> list[str]:
    """The maps a sweep draws: ``maps`` checked against the model, or every map it has by default."""
    default_maps = MAP_NAMES if seq2seq else ("head", "position")
    names = list(maps) if maps is not None else list(default_maps)
    for name in names:
        if name not in default_maps:
            raise InvalidInputError(f"Unknown map {name!r} for this model; choose from {', '.join(default_maps)}.")
    return names


def map_grid(shape: ModelShape, name: str) -> MapGrid:
    """The grid of map ``name``: layers × heads, or layers × positions (the patched components)."""
    side: Side = "encoder" if name.startswith("encoder") else "decoder"
    layers = range(1, shape.layers[side] + 1)
    if name.endswith("head"):
        attention: AttentionKind = "cross" if name == "cross_head" else "self"
        rows = tuple(attention_site(side, layer, attention, "head_out") for layer in layers)
        return MapGrid(name, side, attention, rows, shape.heads.get((side, attention), 0))
    return MapGrid(name, side, None, tuple(Site(side, layer, "resid_pre") for layer in layers), shape.tokens[side])
