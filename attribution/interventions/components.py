"""Component ids: what an intervention acts on, named the way the contribution graph names things.

Graph node ids are ``side:layer:kind:token`` (:func:`attribution.results.node_id`); an
attention edge of the graph is the pair (source node, target node). Interventions accept those and
a few more kinds, all in one grammar (``side`` is ``encoder`` or ``decoder``, the only side of a
causal model; ``layer`` counts blocks from 1, 0 is the embedding; ``*`` means every position)::

    decoder:0:embedding:3        residual stream entering block 1 at token 3 (the graph's embedding node)
    decoder:2:after_ffn:3        residual stream after block 2 at token 3 (entering block 3)
    decoder:2:after_ffn:*        ... at every token
    decoder:2:attention:5        self-attention block output of block 2 at token 5 (bias included)
    decoder:2:cross_attention:*  cross-attention block output (seq2seq decoders), every token
    decoder:2:ffn:5              FFN block output of block 2 at token 5 (the graph's ffn node)
    decoder:2:head:1             self-attention head 1 of block 2, every query position
    decoder:2:head:1@4,5         ... at query positions 4 and 5 only
    decoder:2:cross_head:0       cross-attention head 0 of block 2
    decoder:2:neuron:113@5       FFN neuron 113 of block 2 at token 5 (every token without ``@``)
    decoder:2:sae:1234@5         feature 1234 of the sparse autoencoder read at the residual stream after block 2
                                 (layer 0: the embedding), at token 5 (every token without ``@``); its term
                                 ``a·d`` (activation times decoder direction) is what is removed or steered, with
                                 the SAE given to the intervention (:mod:`attribution.features`)
    decoder:1:after_ffn:2->decoder:2:after_attention:5     attention edge 2 -> 5 in block 2, all heads
    decoder:1:after_ffn:2->decoder:2:after_attention:5#1   ... head 1 only
    encoder:2:after_ffn:4->decoder:1:after_cross_attention:3   cross-attention edge (source 4 -> target 3)

An edge is written exactly as the graph stores it, ``source id->target id`` (``embedding`` for layer
0 sources), so any :class:`~attribution.results.GraphEdge` of kind ``attention`` or
``cross_attention`` is a component: :func:`edge_component`. Negative token, head and neuron
indices count from the end, as in Python; :func:`resolve` checks every index against the model and
input and returns the canonical id (indices made non-negative).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal

from attribution.anatomy.shape import ModelShape
from attribution.errors import InvalidInputError
from attribution.results import SIDES, node_id

ComponentKind = Literal["residual", "attention", "ffn", "head", "neuron", "feature", "edge"]
Side = Literal["encoder", "decoder"]
AttentionKind = Literal["self", "cross"]

#: kind word in an id -> (component kind, attention kind)
_KIND_WORDS: dict[str, tuple[ComponentKind, AttentionKind | None]] = {
    "embedding": ("residual", None),
    "after_ffn": ("residual", None),
    "attention": ("attention", "self"),
    "cross_attention": ("attention", "cross"),
    "ffn": ("ffn", None),
    "head": ("head", "self"),
    "cross_head": ("head", "cross"),
    "neuron": ("neuron", None),
    "sae": ("feature", None),
}
#: Kinds that name one unit (a head, a neuron, a feature) with the token positions after ``@``.
_UNIT_KINDS = ("head", "neuron", "feature")
_NODE = re.compile(r"(encoder|decoder):(\d+):([a-z_]+):(-?\d+|\*)(?:@(-?\d+(?:,-?\d+)*))?")
_EDGE = re.compile(r"(.+?)->(.+?)(?:#(-?\d+))?")
_EDGE_NODE = re.compile(r"(encoder|decoder):(\d+):([a-z_]+):(-?\d+)")


@dataclass(frozen=True)
class Component:
    """One thing to ablate or patch.

    ``positions`` are token positions (query positions for heads; the target token for edges), None
    for every position. ``index`` is the head (heads, edges; None = all heads of an edge), the
    neuron or the SAE feature. ``source`` is an edge's source token. ``layer`` is the graph layer for
    residual streams and SAE features (0 = embedding, l = after block l) and the 1-based block otherwise.
    """

    kind: ComponentKind
    side: Side
    layer: int
    attention: AttentionKind | None = None
    index: int | None = None
    positions: tuple[int, ...] | None = None
    source: int | None = None

    @property
    def id(self) -> str:
        """The canonical id (see the module docstring); ``parse_component(c.id) == c``."""
        if self.kind == "edge":
            assert self.positions is not None and self.source is not None
            target_kind = "after_attention" if self.attention == "self" else "after_cross_attention"
            source_side = "encoder" if self.attention == "cross" else self.side
            head = "" if self.index is None else f"#{self.index}"
            source = node_id(source_side, self._source_layer, "after_ffn", self.source)
            return f"{source}->{node_id(self.side, self.layer, target_kind, self.positions[0])}{head}"
        positions = "*" if self.positions is None else ",".join(str(p) for p in self.positions)
        if self.kind == "residual":
            return node_id(self.side, self.layer, "after_ffn", positions)
        if self.kind == "attention":
            word = "attention" if self.attention == "self" else "cross_attention"
            return node_id(self.side, self.layer, word, positions)
        if self.kind == "ffn":
            return node_id(self.side, self.layer, "ffn", positions)
        word = {"head": "head" if self.attention == "self" else "cross_head", "neuron": "neuron", "feature": "sae"}[
            self.kind
        ]
        suffix = "" if self.positions is None else "@" + ",".join(str(p) for p in self.positions)
        if self.kind == "feature":  # a feature of layer 0 reads the embedding: not a node id, the layer stays 0
            return f"{self.side}:{self.layer}:{word}:{self.index}{suffix}"
        return node_id(self.side, self.layer, word, f"{self.index}{suffix}")

    # The source layer of an edge is only known for self-attention (block l reads after_ffn(l-1));
    # a cross-attention edge reads the encoder's last layer, stored when parsed or resolved.
    cross_source_layer: int | None = None

    @property
    def _source_layer(self) -> int:
        if self.attention == "cross":
            return self.cross_source_layer if self.cross_source_layer is not None else -1
        return self.layer - 1


def _positions(text: str | None) -> tuple[int, ...] | None:
    return None if text is None else tuple(int(p) for p in text.split(","))


def parse_component(text: str) -> Component:
    """A :class:`Component` from its id; a malformed id is one clear :class:`InvalidInputError`."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError("A component id is empty; write e.g. 'decoder:2:head:1' or 'decoder:1:ffn:*'.")
    text = text.strip()
    if len(text) > 200:
        raise InvalidInputError("A component id is at most 200 characters long.")
    if "->" in text:
        return _parse_edge(text)
    match = _NODE.fullmatch(text)
    if match is None or match.group(3) not in _KIND_WORDS:
        raise InvalidInputError(
            f"Cannot read the component {text!r}: write side:layer:kind:index with kind one of "
            f"{', '.join(_KIND_WORDS)} (e.g. 'decoder:2:head:1', 'decoder:0:embedding:3', 'decoder:1:ffn:*'), "
            "or an edge 'source node id->target node id[#head]'."
        )
    side, layer, word, index, at = match.groups()
    assert side in SIDES  # the pattern's (encoder|decoder)
    kind, attention = _KIND_WORDS[word]
    layer = int(layer)
    if (word == "embedding" and layer != 0) or (word == "after_ffn" and layer == 0):
        raise InvalidInputError(f"{text!r}: the embedding is layer 0 and after_ffn nodes are layers 1 and up.")
    if kind in ("attention", "ffn", "head", "neuron") and layer == 0:
        raise InvalidInputError(f"{text!r}: blocks are numbered from 1 (layer 0 is the embedding).")
    if kind in _UNIT_KINDS:
        if index == "*":
            raise InvalidInputError(f"{text!r}: name one {kind} ('*' stands for every token position only).")
        return Component(kind, side, layer, attention, index=int(index), positions=_positions(at))
    if at is not None:
        raise InvalidInputError(
            f"{text!r}: '@positions' goes with heads, neurons and features; here the index is the token."
        )
    positions = None if index == "*" else (int(index),)
    return Component(kind, side, layer, attention, positions=positions)


def _parse_edge(text: str) -> Component:
    match = _EDGE.fullmatch(text)
    source, target = (
        (_EDGE_NODE.fullmatch(match.group(1)), _EDGE_NODE.fullmatch(match.group(2))) if match else (None, None)
    )
    if match is None or source is None or target is None:
        raise InvalidInputError(
            f"Cannot read the edge {text!r}: write 'source node id->target node id' as the graph stores it, "
            "e.g. 'decoder:1:after_ffn:2->decoder:2:after_attention:5', with '#h' to pick head h."
        )
    head = None if match.group(3) is None else int(match.group(3))
    s_side, s_layer, s_kind, s_token = source.group(1), int(source.group(2)), source.group(3), int(source.group(4))
    t_side, t_layer, t_kind, t_token = target.group(1), int(target.group(2)), target.group(3), int(target.group(4))
    assert t_side in SIDES  # the pattern's (encoder|decoder)
    if t_kind not in ("after_attention", "after_cross_attention") or t_layer == 0:
        raise InvalidInputError(
            f"{text!r} is not an attention edge: its target must be an after_attention or after_cross_attention node."
        )
    if s_kind not in ("embedding", "after_ffn") or (s_kind == "embedding") != (s_layer == 0):
        raise InvalidInputError(f"{text!r}: an attention edge starts at an embedding or after_ffn node.")
    if t_kind == "after_attention":
        if s_side != t_side or s_layer != t_layer - 1:
            raise InvalidInputError(
                f"{text!r}: self-attention in block {t_layer} reads the residual stream after block "
                f"{t_layer - 1} of the same side ({t_side}:{t_layer - 1}:...)."
            )
        return Component("edge", t_side, t_layer, "self", index=head, positions=(t_token,), source=s_token)
    if t_side != "decoder" or s_side != "encoder":
        raise InvalidInputError(f"{text!r}: cross-attention edges go from the encoder's last layer to the decoder.")
    return Component(
        "edge",
        "decoder",
        t_layer,
        "cross",
        index=head,
        positions=(t_token,),
        source=s_token,
        cross_source_layer=s_layer,
    )


def edge_component(source: str, target: str, head: int | None = None) -> Component:
    """The component of a graph edge given as (source node id, target node id), optionally one head."""
    return parse_component(f"{source}->{target}" + ("" if head is None else f"#{head}"))


def _index(value: int | None, size: int, what: str, text: str) -> int:
    if value is None:
        raise InvalidInputError(f"{text!r}: no {what} is given.")
    if not -size <= value < size:
        raise InvalidInputError(f"{text!r}: {what} {value} is out of range (there are {size}).")
    return value % size


def resolve(component: Component | str, shape: ModelShape) -> Component:
    """``component`` checked against the model and input, indices made non-negative."""
    if isinstance(component, str):
        component = parse_component(component)
    text = component.id
    side = component.side
    if side not in shape.layers or shape.layers[side] == 0:
        raise InvalidInputError(f"{text!r}: this model has no {side} (it is {'/'.join(shape.layers)} only).")
    n_layers = shape.layers[side]
    if not 0 <= component.layer <= n_layers or (component.kind not in ("residual", "feature") and component.layer == 0):
        raise InvalidInputError(f"{text!r}: layer {component.layer} does not exist ({side} has {n_layers} blocks).")
    n_tokens = shape.tokens[side]
    query_tokens = n_tokens
    positions = component.positions
    if positions is not None:
        positions = tuple(sorted({_index(p, query_tokens, "token position", text) for p in positions}))
    changes: dict = {"positions": positions}
    if component.attention is not None:
        if (component.attention == "cross" and side != "decoder") or (side, component.attention) not in shape.heads:
            raise InvalidInputError(f"{text!r}: this model has no {component.attention}-attention on the {side} side.")
        n_heads = shape.heads[(side, component.attention)]
        if component.kind in ("head", "edge") and component.index is not None:
            changes["index"] = _index(component.index, n_heads, "head", text)
    if component.kind == "neuron":
        changes["index"] = _index(component.index, shape.ffn_width[side], "neuron", text)
    if component.kind == "edge":
        source_side = "encoder" if component.attention == "cross" else side
        changes["source"] = _index(component.source, shape.tokens[source_side], "source token", text)
        if component.attention == "cross":
            expected = shape.layers["encoder"]
            if component.cross_source_layer is not None and component.cross_source_layer != expected:
                raise InvalidInputError(
                    f"{text!r}: cross-attention reads the encoder's last layer ({expected}), "
                    f"not layer {component.cross_source_layer}."
                )
            changes["cross_source_layer"] = expected
    return replace(component, **changes)
