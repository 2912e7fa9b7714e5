"""Results of the feature views: plain dataclasses that round-trip through JSON (no torch here).

- :class:`NodeFeatures`: the SAE features active at one graph node, their terms and the reconstruction error.
- :class:`LayerComparison`: two prompts' residual streams compared layer by layer and position by position.
- :class:`TopActivations`: where an FFN neuron or an SAE feature fires most over a corpus, and what it writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from attribution.results import ModelResult
from attribution.validation import JsonMatrix, ObjectReader, expect_number, expect_str, expect_tuple, fail

#: (token, logit change) pairs, best first.
TokenScores = list[tuple[str, float]]


def _token_scores(f: ObjectReader, name: str) -> TokenScores:
    return f.list_of(name, lambda item, at: expect_tuple(item, at, (expect_str, expect_number), per="token"))


@dataclass
class FeatureRow:
    """One active feature at a node: its activation ``a``, the norm of its term ``a·d``, the tokens the term
    promotes / suppresses through the node's logit lens, and its Neuronpedia page when the SAE has one."""

    feature: int
    activation: float
    term_norm: float
    promoted: TokenScores
    suppressed: TokenScores
    neuronpedia_url: str | None = None

    @classmethod
    def from_dict(cls, data: Any, path: str) -> Self:
        f = ObjectReader(data, path)
        return cls(
            feature=f.whole("feature", minimum=0),
            activation=f.number("activation"),
            term_norm=f.number("term_norm", minimum=0),
            promoted=_token_scores(f, "promoted"),
            suppressed=_token_scores(f, "suppressed"),
            neuronpedia_url=f.text("neuronpedia_url", optional=True),
        )


@dataclass
class NodeFeatures(ModelResult):
    """The SAE features of one residual-stream node (a graph node id): ``state = b_dec + Σ_f a_f d_f + error``.

    ``features`` are the ``k`` most active, by activation; ``active_features`` counts every active one (the
    unlisted ones' summed term has norm ``rest_norm``). ``reconstruction_share`` is
    ``1 - |error|² / |state|²``: the share of the state the SAE reconstructs; ``error_norm`` is stated, not hidden.
    """

    SCHEMA: ClassVar[str] = "node-features"

    source_text: str
    target_text: str
    source_tokens: list[str]
    target_tokens: list[str]
    node: str
    sae_name: str
    state_norm: float
    error_norm: float
    bias_norm: float
    rest_norm: float
    reconstruction_share: float
    active_features: int
    features: list[FeatureRow] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: Any, path: str = "") -> Self:
        f = cls._reader(data, path)
        return cls(
            **cls._read_input(f),
            node=f.text("node"),
            sae_name=f.text("sae_name"),
            state_norm=f.number("state_norm", minimum=0),
            error_norm=f.number("error_norm", minimum=0),
            bias_norm=f.number("bias_norm", minimum=0),
            rest_norm=f.number("rest_norm", minimum=0),
            reconstruction_share=f.number("reconstruction_share", maximum=1),
            active_features=f.whole("active_features", minimum=0),
            features=f.list_of("features", FeatureRow.from_dict),
        )


@dataclass
class LayerComparison(ModelResult):
    """Two prompts of the same length compared on one side's residual stream.

    Rows are graph layers (0 = embedding) for the states, blocks (1..L) for the block contributions (a block's
    output minus its input), columns token positions. ``relative_l2`` is ``|a - b| / max(|a|, |b|)`` (0 when
    both are zero). ``divergence_layer`` is the first layer whose states differ by more than ``threshold``
    (relative L2, at any position), None when none does.
    """

    SCHEMA: ClassVar[str] = "layer-comparison"

    side: str
    text_a: str
    text_b: str
    tokens_a: list[str]
    tokens_b: list[str]
    state_cosine: JsonMatrix
    state_relative_l2: JsonMatrix
    block_cosine: JsonMatrix
    block_relative_l2: JsonMatrix
    threshold: float
    divergence_layer: int | None = None

    @classmethod
    def from_dict(cls, data: Any, path: str = "") -> Self:
        f = cls._reader(data, path)
        tokens_a = f.texts("tokens_a")
        tokens_b = f.texts("tokens_b", length=len(tokens_a))
        n_layers, n_tokens = len(f.list_of("state_cosine", lambda item, at: item)), len(tokens_a)
        if n_layers < 2:
            raise fail(f.at("state_cosine"), "must have a row per layer, the embedding and at least one block")
        return cls(
            **cls._read_input(f),
            side=f.choice("side", ("encoder", "decoder")),
            text_a=f.text("text_a"),
            text_b=f.text("text_b"),
            tokens_a=tokens_a,
            tokens_b=tokens_b,
            state_cosine=f.matrix("state_cosine", (n_layers, n_tokens), per="token"),
            state_relative_l2=f.matrix("state_relative_l2", (n_layers, n_tokens), per="token"),
            block_cosine=f.matrix("block_cosine", (n_layers - 1, n_tokens), per="token"),
            block_relative_l2=f.matrix("block_relative_l2", (n_layers - 1, n_tokens), per="token"),
            threshold=f.number("threshold", minimum=0),
            divergence_layer=f.whole("divergence_layer", optional=True, minimum=0, maximum=n_layers - 1),
        )


@dataclass
class ActivationExample:
    """One place a unit fires: record ``record``, token ``position`` (its ``token``), the ``activation``, and the
    tokens around it (``context``, the token at ``context_position`` of it)."""

    record: str
    position: int
    token: str
    activation: float
    context: list[str]
    context_position: int

    @classmethod
    def from_dict(cls, data: Any, path: str) -> Self:
        f = ObjectReader(data, path)
        context = f.texts("context")
        return cls(
            record=f.text("record"),
            position=f.whole("position", minimum=0),
            token=f.text("token"),
            activation=f.number("activation"),
            context=context,
            context_position=f.whole("context_position", minimum=0, maximum=max(len(context) - 1, 0)),
        )


@dataclass
class TopActivations(ModelResult):
    """Transformer Debugger's neuron viewer for one unit (``decoder:2:neuron:113`` or ``decoder:2:sae:7``).

    ``promoted`` / ``suppressed``: what the unit writes, its output direction (the FFN's output row, the SAE's
    decoder row) read through the unembedding. ``examples``: the ``k`` largest activations over ``records``
    records (``tokens`` tokens), largest first, ties broken by record order then position.
    """

    SCHEMA: ClassVar[str] = "top-activations"

    unit: str
    sae_name: str | None
    records: int
    tokens: int
    promoted: TokenScores
    suppressed: TokenScores
    examples: list[ActivationExample] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: Any, path: str = "") -> Self:
        f = cls._reader(data, path)
        return cls(
            **cls._read_input(f),
            unit=f.text("unit"),
            sae_name=f.text("sae_name", optional=True),
            records=f.whole("records", minimum=0),
            tokens=f.whole("tokens", minimum=0),
            promoted=_token_scores(f, "promoted"),
            suppressed=_token_scores(f, "suppressed"),
            examples=f.list_of("examples", ActivationExample.from_dict),
        )
