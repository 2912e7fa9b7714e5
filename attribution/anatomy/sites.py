"""Names of a model's sites: where an activation the library reads or edits lives, TransformerLens-style.

A site is ``side.block.point``: ``side`` is ``encoder`` or ``decoder`` (the only side of a causal model),
``block`` counts blocks from 1 as component ids do (``decoder:3:head:1`` is a head of block 3), and the
point is one of :data:`POINTS`::

    decoder.3.resid_pre          the residual stream entering block 3             [B, T, d]
    decoder.3.attn.values        the self-attention's value vectors (read only)   [B, S, heads_kv, head_dim]
    decoder.3.attn.probs         its probabilities                                [B, H, T, S]
    decoder.3.attn.head_out      the heads' outputs before the output projection  [B, T, H, head_dim]
    decoder.3.attn.out           the attention output, bias included, before any  [B, T, d]
                                 branch norm and the residual add
    decoder.3.cross_attn.…       the same four for a seq2seq decoder's cross-attention (S: source tokens)
    decoder.3.ffn.act            the FFN's neuron activations                     [B, T, d_ff]
    decoder.3.ffn.out            the FFN output, before any norm and the residual [B, T, d]
    decoder.3.resid_post         the block's output                               [B, T, d]
    decoder.3.call_args          the block's other call arguments (read only): masks, rotary cos / sin,
                                 position biases, the encoder's states: ``(args, kwargs)``

So ``decoder.l.resid_post`` is the graph's layer ``l`` (``hidden_states[l]`` of transformers) and
``decoder.l.resid_pre`` its layer ``l - 1``. Where each site is in a family's modules is
:mod:`attribution.anatomy.places`' job; this module only names them (and imports no torch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Side = Literal["encoder", "decoder"]
SIDES: tuple[Side, ...] = ("encoder", "decoder")
#: An attention kind of the component ids -> its prefix in site names.
ATTENTION_PREFIX = {"self": "attn", "cross": "cross_attn"}
#: What each attention exposes, after its prefix.
ATTENTION_POINTS = ("values", "probs", "head_out", "out")
#: Every point of a block, in the order a forward pass reaches them (hooks on one module run in this order).
POINTS: tuple[str, ...] = (
    "resid_pre",
    "call_args",
    *(f"attn.{what}" for what in ATTENTION_POINTS),
    *(f"cross_attn.{what}" for what in ATTENTION_POINTS),
    "ffn.act",
    "ffn.out",
    "resid_post",
)


@dataclass(frozen=True)
class Site:
    """One named site, e.g. ``Site("decoder", 3, "attn.probs")`` = ``decoder.3.attn.probs``."""

    side: Side
    block: int  # 1-based
    point: str

    def __str__(self) -> str:
        return f"{self.side}.{self.block}.{self.point}"

    @classmethod
    def parse(cls, name: str) -> Site:
        """The site named ``name`` (``side.block.point``); a malformed name is a ValueError naming the grammar."""
        side, _, rest = name.partition(".")
        block, _, point = rest.partition(".")
        if side not in SIDES or not block.isdigit() or point not in POINTS:
            raise ValueError(
                f"{name!r} is not a site name: write side.block.point with side encoder or decoder, block from 1 "
                f"and point one of {', '.join(POINTS)}."
            )
        return cls(side, int(block), point)

    @property
    def order(self) -> int:
        """Where the point comes in a forward pass through the block (see :data:`POINTS`)."""
        return POINTS.index(self.point)


def attention_site(side: Side, block: int, attention: str, what: str) -> Site:
    """The site ``what`` (values, probs, head_out, out) of the ``attention`` (self / cross) of a block."""
    return Site(side, block, f"{ATTENTION_PREFIX[attention]}.{what}")
