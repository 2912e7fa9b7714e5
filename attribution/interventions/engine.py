"""The hook-based intervention engine: one batched forward pass in which every batch row gets its own edits.

Every component is an edit at one named site of the model's anatomy (:mod:`attribution.anatomy.sites`),
installed with :func:`attribution.anatomy.hooks.hooked`, so a family the graph supports needs no code
here. Where each component lives (``l`` is the 1-based block of side ``s``):

- residual stream after_ffn(l-1) / embedding: ``s.l.resid_pre``; after the last block: ``s.l.resid_post``;
- attention block output (bias included, before a branch norm): ``s.l.attn.out`` (``cross_attn.out``);
- head h: slice ``h`` of ``s.l.attn.head_out`` (the heads' mixed values, the output projection's input);
- attention edge j -> i of head h: the term ``A^h_ij v^h_j W_O^h`` of the attention output at i, the
  very term :mod:`attribution.contributions.decompose` assigns to the edge. It is removed at
  ``s.l.attn.out`` with the probabilities (``attn.probs``) and values (``attn.values``) of the same
  forward pass; replaced (mean / patch) by the reference runs' ``A^h_ij v^h_j W_O^h``.
  Where a head edit of the same batch row covers the head at that query position the edge edit is
  dropped: the head has already changed that term (a set of edits changes the union of its terms,
  each once; see :mod:`attribution.interventions.ablation`);
- FFN block output: ``s.l.ffn.out``; neuron n: column n of ``s.l.ffn.act``.
- SAE feature f read at the residual stream of graph layer l: the residual stream's site (as a residual
  node), changed by ``-a_f(x)·d_f`` (ablation: the feature's term removed, ``a_f`` the SAE's encoder
  applied to the state ``x`` of this very pass) or ``+α·d_f`` (steering), ``d_f`` the decoder row.

What "removing a term" means: the edit acts on the branch output *before* any norm and before the
residual add. In pre-LN families the residual stream at i then changes by exactly minus the term.
Families with a norm after the add (BART, Marian, OPT-350m: ``LN(residual + branch)``) or on the
branch (Gemma 2/3, OLMo 2: ``residual + N(branch)``) then normalise with statistics recomputed from the
changed sum, as the model does: the sum the norm reads changes by exactly the raw term, and the
normalised state by the graph's term (e.g. ``gamma * centre(term) / sigma_i``) exactly when sigma_i
is held at its clean value, to first order otherwise. The tests check both statements.

Edits in one attention layer are applied in this order: head values (before the output projection),
then edge terms (from this pass's probabilities and values), then whole-output replacements.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import torch
from torch import nn

from attribution.anatomy.adapters import ArchitectureSpec, AttentionSpec
from attribution.anatomy.hooks import SiteFunction, hooked
from attribution.anatomy.places import blocks_of
from attribution.anatomy.replay import read_out, run_block
from attribution.anatomy.sites import ATTENTION_PREFIX, SIDES, Side, Site, attention_site
from attribution.errors import UnsupportedError
from attribution.interventions.components import AttentionKind, Component

if TYPE_CHECKING:
    from transformers import PreTrainedModel

Key = tuple  # (side, block, "self" | "cross") for attention sites, (side, block) for block / FFN sites


@dataclass
class Recording:
    """Activations of one forward pass at every site, batch first (float32, detached unless leaves are kept)."""

    logits: torch.Tensor  # [B, T, V]
    block_inputs: dict[Key, torch.Tensor] = field(default_factory=dict)  # (side, l) -> [B, T, d]
    final_outputs: dict[str, torch.Tensor] = field(default_factory=dict)  # side -> last block output [B, T, d]
    head_inputs: dict[Key, torch.Tensor] = field(default_factory=dict)  # (side, l, attn) -> [B, T, H, dh]
    attention_outputs: dict[Key, torch.Tensor] = field(default_factory=dict)  # (side, l, attn) -> [B, T, d]
    probabilities: dict[Key, torch.Tensor] = field(default_factory=dict)  # (side, l, attn) -> [B, H, T, S]
    values: dict[Key, torch.Tensor] = field(default_factory=dict)  # (side, l, attn) -> [B, H, S, dh]
    ffn_inputs: dict[Key, torch.Tensor] = field(default_factory=dict)  # (side, l) -> [B, T, d_ff]
    ffn_outputs: dict[Key, torch.Tensor] = field(default_factory=dict)  # (side, l) -> [B, T, d]
    #: zero tensors added at head inputs and block inputs when gradients are asked for (attribution patching)
    grad_leaves: dict[tuple, torch.Tensor] = field(default_factory=dict)
    #: (side, l) -> the other arguments the model called block l with (positional after the hidden state,
    #: keyword): masks, rotary cos / sin, position biases, the encoder's states. :func:`resume` replays them.
    block_calls: dict[Key, tuple[tuple, dict]] = field(default_factory=dict)
    #: False: only the residual stream (block inputs, final outputs) and block calls are recorded
    inside_blocks: bool = True


@dataclass
class ValueEdit:
    """Set a (non-edge) component to ``value`` (None: zero) in batch ``rows``.

    ``value`` covers every position of the site: ``[T, d]`` for residual / attention / FFN outputs,
    ``[T, head_dim]`` for a head, ``[T]`` for a neuron; the component's positions are taken from it.
    """

    component: Component
    rows: torch.Tensor
    value: torch.Tensor | None = None


@dataclass
class EdgeEdit:
    """Replace the attention terms selected by ``mask`` ``[H, T, S]`` in batch ``rows``.

    The replacement is the mean over the reference runs ``reference = (A [R, H, T, S], V [R, H, S, dh])``
    of the same masked terms; None removes them (zero ablation).
    """

    side: Side
    layer: int
    attention: AttentionKind
    rows: torch.Tensor
    mask: torch.Tensor
    reference: tuple[torch.Tensor, torch.Tensor] | None = None


@dataclass
class FeatureEdit:
    """Remove an SAE feature's term ``a·d`` from the residual stream in batch ``rows`` (``strength`` None), or add
    ``strength·d`` (steering), at the component's positions.

    ``encode`` maps states ``[N, d]`` to the feature's activations ``[N]`` (the SAE's encoder, read from the
    state the pass has there); ``direction`` is its decoder row ``[d]``.
    """

    component: Component
    rows: torch.Tensor
    encode: Callable[[torch.Tensor], torch.Tensor]
    direction: torch.Tensor
    strength: float | None = None

    def apply(self, tensor: torch.Tensor) -> None:
        """In place on a ``[B, T, d]`` residual stream."""
        index = _select(tensor, self.rows.to(tensor.device), self.component.positions)
        states = tensor[index]
        direction = self.direction.to(tensor.device, tensor.dtype)
        if self.strength is None:
            activation = self.encode(states.reshape(-1, states.shape[-1])).reshape(states.shape[:-1])
            tensor[index] = states - activation.to(tensor.dtype)[..., None] * direction
        else:
            tensor[index] = states + self.strength * direction


Edit = ValueEdit | EdgeEdit | FeatureEdit


def site_of(spec: ArchitectureSpec, edit: Edit) -> Site:
    """The anatomy site ``edit`` changes."""
    if isinstance(edit, EdgeEdit):
        return attention_site(edit.side, edit.layer, edit.attention, "out")
    c = edit.component
    if c.kind in ("residual", "feature"):  # the input of block l + 1; after the last block: that block's output
        if c.layer < len(blocks_of(spec, c.side)):
            return Site(c.side, c.layer + 1, "resid_pre")
        return Site(c.side, c.layer, "resid_post")
    if c.kind in ("head", "attention"):
        assert c.attention is not None  # a head or attention output names its attention
        return attention_site(c.side, c.layer, c.attention, "head_out" if c.kind == "head" else "out")
    if c.kind in ("neuron", "ffn"):
        return Site(c.side, c.layer, "ffn.act" if c.kind == "neuron" else "ffn.out")
    raise ValueError(f"edges are EdgeEdits, not ValueEdits: {c.id}")


def _wide(tensor: torch.Tensor) -> torch.Tensor:
    """float32 for half-precision models, float64 stays float64 (recordings and logits)."""
    return tensor if tensor.dtype == torch.float64 else tensor.float()


def _per_head(values: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Values ``[B, S, heads_kv, head_dim]`` (the ``attn.values`` site) -> ``[B, H, S, head_dim]``, kv heads
    repeated for grouped-query attention."""
    values = values.transpose(1, 2)
    if values.shape[1] != n_heads:
        values = values.repeat_interleave(n_heads // values.shape[1], dim=1)
    return values


def _select(tensor: torch.Tensor, rows: torch.Tensor, positions: tuple[int, ...] | None):
    """Index tuple for ``tensor[rows, positions]`` (every position when None)."""
    if positions is None:
        return rows, slice(None)
    return rows[:, None], torch.tensor(positions, device=tensor.device)[None, :]


def _positions_of(value: torch.Tensor, positions: tuple[int, ...] | None) -> torch.Tensor:
    return value if positions is None else value[list(positions)]


def _assign(tensor: torch.Tensor, edit: ValueEdit) -> None:
    """In place: ``tensor[rows, positions, (index)] = value[positions]`` (zero when no value); heads and
    neurons pick their index on the site's last-but-one (heads) or last (neurons) axis."""
    component = edit.component
    extra = (component.index,) if component.kind in ("head", "neuron") else ()
    index = (*_select(tensor, edit.rows.to(tensor.device), component.positions), *extra)
    if edit.value is None:
        tensor[index] = 0
    else:
        tensor[index] = _positions_of(edit.value, component.positions).to(tensor.dtype)


def _edited(tensor: torch.Tensor, edits: Sequence[ValueEdit | FeatureEdit]) -> torch.Tensor:
    """A copy of ``tensor`` with ``edits`` applied, or ``tensor`` itself when there are none.

    Feature edits come first: a residual assignment at the same site is the coarser edit and overrides them
    (the union of terms, see :mod:`attribution.interventions.ablation`).
    """
    if not edits:
        return tensor
    tensor = tensor.clone()
    for edit in sorted(edits, key=lambda e: not isinstance(e, FeatureEdit)):
        if isinstance(edit, FeatureEdit):
            edit.apply(tensor)
        else:
            _assign(tensor, edit)
    return tensor


def _head_index(tensor: torch.Tensor, edit: ValueEdit) -> tuple:
    """Index tuple of ``edit``'s head at its query positions in a ``[B, H, T, ...]`` tensor."""
    rows, head = edit.rows.to(tensor.device), edit.component.index
    if edit.component.positions is None:
        return rows, head
    return rows[:, None], head, torch.tensor(edit.component.positions, device=tensor.device)[None, :]


def _edge_delta(
    probabilities: torch.Tensor,
    values: torch.Tensor,
    attention: AttentionSpec,
    edits: list[EdgeEdit],
    head_edits: list[ValueEdit],
) -> torch.Tensor:
    """Change of the attention output ``[B, T, d]`` that replaces the masked terms by their references.

    Terms of a head that ``head_edits`` already remove or replace at that query position are left out
    of the mask: the head edit has taken them with it, and each term is changed once (the union).
    """
    batch, heads, length, sources = probabilities.shape
    wide = torch.float64 if probabilities.dtype == torch.float64 else torch.float32
    mask = probabilities.new_zeros((batch, heads, length, sources), dtype=wide)
    reference = None
    for edit in edits:
        mask[edit.rows.to(mask.device)] += edit.mask.to(mask.device, wide)
        reference = edit.reference if edit.reference is not None else reference
    mask.clamp_(max=1.0)
    for head_edit in head_edits:
        mask[_head_index(mask, head_edit)] = 0
    mixed = torch.matmul(mask * probabilities.to(wide), values.to(wide))  # [B, H, T, dh]: the masked terms
    change = -mixed
    if reference is not None:
        ref_probs, ref_values = (t.to(mask.device, wide) for t in reference)
        change = change + torch.einsum("bhts,rhts,rhsd->bhtd", mask, ref_probs, ref_values) / ref_probs.shape[0]
    out_weight = attention.out_weight.detach().to(wide)  # [H, dh, d]
    return torch.einsum("bhtk,hkd->btd", change, out_weight)


def _effective(probabilities: torch.Tensor, head_edits: list[ValueEdit], edge_edits: list[EdgeEdit]) -> torch.Tensor:
    """The probabilities of a pass with these heads and edges zero-ablated (zero where they were removed)."""
    kept = probabilities.clone()
    for head_edit in head_edits:  # kept is [B, H, T, S]: the head's rows at its query positions
        kept[_head_index(kept, head_edit)] = 0
    for edge_edit in edge_edits:
        kept[edge_edit.rows.to(kept.device)] *= 1 - edge_edit.mask.to(kept.device, kept.dtype)
    return kept


def _keeps_the_decomposition(site: Site, edit: Edit) -> bool:
    """Whether the pass with ``edit`` has effective probabilities: edits away from attention do not touch them,
    zero-ablated heads and edges zero theirs; a whole attention output or a mean / patched head or edge has none."""
    attention, _, what = site.point.partition(".")
    if attention not in ATTENTION_PREFIX.values():
        return True
    if isinstance(edit, EdgeEdit):
        return edit.reference is None
    return isinstance(edit, ValueEdit) and what == "head_out" and edit.value is None


def _check_effective(edits: dict[Site, list[Edit]]) -> None:
    if not all(_keeps_the_decomposition(site, edit) for site, here in edits.items() for edit in here):
        raise UnsupportedError(
            "Only zero ablation of heads and attention edges keeps the graph's decomposition exact; "
            "the graph cannot be re-drawn after ablating a whole attention output or after mean / patch of heads "
            "and edges."
        )


class _Pass:
    """The site functions of one installation: the edits at each site, what to record, this pass's values
    and probabilities (which an edge edit at the attention output reads)."""

    def __init__(
        self,
        spec: ArchitectureSpec,
        edits: dict[Site, list[Edit]],
        recording: Recording | None,
        grad_leaves: bool,
        effective_probabilities: bool,
    ) -> None:
        self.spec, self.edits, self.recording = spec, edits, recording
        self.observing = recording is not None and recording.inside_blocks  # every site, not only the residual
        self.grad_leaves = grad_leaves and recording is not None
        self.effective_probabilities = effective_probabilities
        self.live: dict[Site, torch.Tensor] = {}

    def functions(self) -> dict[Site, SiteFunction]:
        """Every site function this installation needs, on every block of both sides."""
        functions: dict[Site, SiteFunction] = {}
        for side in SIDES:
            blocks = blocks_of(self.spec, side)
            for block, spec in enumerate(blocks, start=1):
                functions |= self._block(side, block, last=block == len(blocks))
                functions |= self._attention(side, block, "self", spec.self_attention)
                if spec.cross_attention is not None:
                    functions |= self._attention(side, block, "cross", spec.cross_attention)
                functions |= self._ffn(side, block)
        return functions

    def _keep(self, store: dict, key: Key, tensor: torch.Tensor) -> None:
        """A recorded copy: the model may change the tensor in place after the hook (Falcon adds the attention
        output into the FFN's output)."""
        wide = torch.float64 if tensor.dtype == torch.float64 else torch.float32
        store[key] = tensor.detach().to(wide, copy=True)

    def _value_edits(self, site: Site) -> list[ValueEdit]:
        """The edits at ``site``: value edits everywhere but at attention outputs, which edge edits share."""
        return [edit for edit in self.edits.get(site, []) if isinstance(edit, ValueEdit)]

    def _residual_edits(self, site: Site) -> list[ValueEdit | FeatureEdit]:
        """The edits of a residual-stream site: value edits and SAE feature edits."""
        return [edit for edit in self.edits.get(site, []) if not isinstance(edit, EdgeEdit)]

    def _leaf(self, key: tuple, tensor: torch.Tensor) -> torch.Tensor:
        if not self.grad_leaves or self.recording is None:  # grad_leaves: only with a recording
            return tensor
        zero = torch.zeros_like(tensor, requires_grad=True)
        self.recording.grad_leaves[key] = zero
        return tensor + zero

    def _block(self, side: Side, block: int, *, last: bool) -> dict[Site, SiteFunction]:
        recording, key = self.recording, (side, block)
        entering, leaving = Site(side, block, "resid_pre"), Site(side, block, "resid_post")
        edits_in, edits_out = self._residual_edits(entering), self._residual_edits(leaving)

        def residual_in(hidden: torch.Tensor, _site: Site) -> torch.Tensor | None:
            changed = self._leaf(("block_in", *key), _edited(hidden, edits_in))
            if recording is not None:
                self._keep(recording.block_inputs, key, changed)
            return changed if changed is not hidden else None

        def call_args(arguments: tuple[tuple, dict], _site: Site) -> None:
            if recording is not None:  # installed only with one
                recording.block_calls[key] = arguments

        def residual_out(hidden: torch.Tensor, _site: Site) -> torch.Tensor | None:
            changed = _edited(hidden, edits_out)
            if recording is not None:
                recording.final_outputs[side] = _wide(changed.detach())
            return changed if edits_out else None

        functions: dict[Site, SiteFunction] = {}
        if edits_in or recording is not None:
            functions[entering] = residual_in
        if recording is not None:
            functions[Site(side, block, "call_args")] = call_args
        if last and (edits_out or recording is not None):
            functions[leaving] = residual_out
        return functions

    def _attention(
        self, side: Side, block: int, name: AttentionKind, attention: AttentionSpec
    ) -> dict[Site, SiteFunction]:
        key = (side, block, name)
        sites = {what: attention_site(side, block, name, what) for what in ("values", "probs", "head_out", "out")}
        head_edits = self._value_edits(sites["head_out"])
        at_output = self.edits.get(sites["out"], [])
        edge_edits = [e for e in at_output if isinstance(e, EdgeEdit)]
        output_edits = [e for e in at_output if isinstance(e, ValueEdit)]
        effective = self.effective_probabilities and bool(head_edits or edge_edits)

        def values(taken: torch.Tensor, _site: Site) -> None:
            self.live[sites["values"]] = _per_head(taken, attention.n_heads)

        def probabilities(probs: torch.Tensor, _site: Site) -> torch.Tensor | None:
            self.live[sites["probs"]] = probs
            return _effective(probs, head_edits, edge_edits) if effective else None

        def heads(mixed: torch.Tensor, _site: Site) -> torch.Tensor | None:  # [B, T, H, head_dim]
            changed = self._leaf(("head_in", *key), _edited(mixed, head_edits))
            if self.observing and self.recording is not None:
                self._keep(self.recording.head_inputs, key, changed)
            return changed if changed is not mixed else None

        def output(result: torch.Tensor, _site: Site) -> torch.Tensor | None:
            probs, taken = self.live.get(sites["probs"]), self.live.get(sites["values"])
            if edge_edits:
                assert probs is not None and taken is not None  # read above in every pass with edge edits
                result = result + _edge_delta(probs, taken, attention, edge_edits, head_edits).to(result.dtype)
            result = _edited(result, output_edits)
            if self.observing and self.recording is not None:
                assert probs is not None and taken is not None  # an observed pass reads every site
                self._keep(self.recording.attention_outputs, key, result)
                self._keep(self.recording.probabilities, key, probs)
                self._keep(self.recording.values, key, taken)
            return result if edge_edits or output_edits else None

        functions: dict[Site, SiteFunction] = {}
        if edge_edits or self.observing:
            functions[sites["values"]] = values
        if edge_edits or self.observing or effective:
            functions[sites["probs"]] = probabilities
        if head_edits or self.observing or self.grad_leaves:
            functions[sites["head_out"]] = heads
        if at_output or self.observing:
            functions[sites["out"]] = output
        return functions

    def _ffn(self, side: Side, block: int) -> dict[Site, SiteFunction]:
        key = (side, block)
        functions: dict[Site, SiteFunction] = {}
        for point, store in (("ffn.act", "ffn_inputs"), ("ffn.out", "ffn_outputs")):
            site = Site(side, block, point)
            edits = self._value_edits(site)
            if edits or self.observing:
                functions[site] = self._ffn_function(edits, store, key)
        return functions

    def _ffn_function(self, edits: list[ValueEdit], store: str, key: Key) -> SiteFunction:
        def function(activation: torch.Tensor, _site: Site) -> torch.Tensor | None:
            changed = _edited(activation, edits)
            if self.observing and self.recording is not None:
                self._keep(getattr(self.recording, store), key, changed)
            return changed if edits else None

        return function


@contextmanager
def installed(
    spec: ArchitectureSpec,
    edits: list[Edit],
    *,
    recording: Recording | None = None,
    grad_leaves: bool = False,
    effective_probabilities: bool = False,
) -> Iterator[None]:
    """Hooks that apply ``edits`` (and fill ``recording``, when given) during the forward passes inside.

    With ``effective_probabilities`` the attention modules also *return* the probabilities of the
    intervened pass (zero where a head or edge was zero-ablated), so whatever reads them afterwards,
    such as the contribution graph's decomposition, describes the intervened forward pass exactly.
    Only zero ablation of heads and edges has such probabilities; other attention edits are refused.
    Every hook is prepended: edits run before any other hook on the same module, so observers (the graph's
    capture hooks, transformers' own output recorders installed on an earlier call) see the edited values.
    """
    by_site: dict[Site, list[Edit]] = {}
    for edit in edits:
        by_site.setdefault(site_of(spec, edit), []).append(edit)
    if effective_probabilities:
        _check_effective(by_site)
    state = _Pass(spec, by_site, recording, grad_leaves, effective_probabilities)
    try:
        with hooked(spec, state.functions(), prepend=True):
            yield
    finally:
        state.live.clear()


def forward(
    model: nn.Module,
    spec: ArchitectureSpec,
    inputs: dict[str, torch.Tensor],
    edits: Sequence[Edit] = (),
    *,
    record: bool = False,
    grad_leaves: bool = False,
    checkpoint: bool = False,
) -> Recording:
    """One (batched) forward pass with ``edits``; logits always, every site's activations when ``record``.

    With ``grad_leaves`` the pass keeps its autograd graph and adds a zero leaf at every head input and
    block input (``recording.grad_leaves``), so one backward pass gives the gradient at all of them.
    With ``checkpoint`` it records only what :func:`resume` needs: the residual stream entering each
    block, the last block's output and the blocks' call arguments (no probabilities: far less memory).
    """
    recording = None
    if record or grad_leaves or checkpoint:
        recording = Recording(logits=torch.empty(0), inside_blocks=record or grad_leaves)
    hooks = installed(spec, list(edits), recording=recording, grad_leaves=grad_leaves)
    with hooks, torch.set_grad_enabled(grad_leaves):
        output = model(**inputs, use_cache=False, return_dict=True)
    logits = output.logits if grad_leaves else output.logits.detach()
    if recording is None:
        return Recording(logits=_wide(logits))
    recording.logits = _wide(logits)
    return recording


def start_block(spec: ArchitectureSpec, edit: Edit) -> tuple[str, int]:
    """(side, first block whose computation ``edit`` changes): a pass with it may resume there."""
    site = site_of(spec, edit)
    return site.side, site.block


def _entering(recorded: Recording, side: str, layer: int, n_blocks: int) -> torch.Tensor:
    """The recorded residual stream entering block ``layer`` (``n_blocks + 1``: after the last block)."""
    return recorded.block_inputs[(side, layer)] if layer <= n_blocks else recorded.final_outputs[side]


def resume(
    model: PreTrainedModel,
    spec: ArchitectureSpec,
    recorded: Recording,
    edits: list[Edit],
    starts: list[int],
    positions: list[int],
) -> torch.Tensor:
    """Logits ``[B, P, V]`` at decoder ``positions`` of rows that start at decoder block ``starts[r]``
    (ascending) from the residual stream of ``recorded`` (a batch-1 pass recorded with ``record`` or
    ``checkpoint``), with ``edits``.

    Blocks below a row's start compute exactly what the recorded pass computed, so they are not run
    again: row r enters block ``starts[r]`` with the recorded stream and joins the batch there, every
    block is called with the arguments the model gave it in the recorded pass (:attr:`Recording.block_calls`;
    a seq2seq decoder reuses the recorded encoder states), and the final norm and the readout run at
    ``positions`` only. Same numbers as :func:`forward` to float rounding.
    """
    n_blocks = len(blocks_of(spec, "decoder"))
    dtype = model.dtype  # the recording keeps half-precision states as float32: exact to convert back
    hidden = None
    with installed(spec, edits), torch.no_grad():
        for layer in range(starts[0], n_blocks + 2):
            rows = bisect.bisect_right(starts, layer)
            joining = rows - (0 if hidden is None else hidden.shape[0])
            if joining:
                entering = _entering(recorded, "decoder", layer, n_blocks).to(dtype).repeat(joining, 1, 1)
                hidden = entering if hidden is None else torch.cat([hidden, entering])
            if layer > n_blocks:
                break
            assert hidden is not None  # the first rows join at starts[0]
            hidden = run_block(spec, "decoder", layer, hidden, recorded.block_calls[("decoder", layer)])
        assert hidden is not None
        return _wide(read_out(spec, hidden[:, positions]))


def forward_from(
    model: PreTrainedModel,
    spec: ArchitectureSpec,
    inputs: dict[str, torch.Tensor],
    recorded: Recording,
    edits: Sequence[Edit],
    n_rows: int,
    positions: list[int],
) -> torch.Tensor:
    """Logits ``[n_rows, P, V]`` at ``positions`` of ``n_rows`` copies of the batch-1 ``inputs`` with ``edits``,
    each row resumed (:func:`resume`) at the first block its edits change; ``recorded`` is the recorded
    pass of ``inputs``. A row with an encoder-side edit needs the whole model: then the batch runs whole.
    """
    decoder_blocks = len(blocks_of(spec, "decoder"))
    starts = [decoder_blocks + 1] * n_rows
    for edit in edits:
        side, block = start_block(spec, edit)
        if side == "encoder":
            logits = forward(model, spec, {k: v.repeat(n_rows, 1) for k, v in inputs.items()}, edits).logits
            return logits[:, positions]
        for row in edit.rows.tolist():
            starts[row] = min(starts[row], block)
    order = sorted(range(n_rows), key=starts.__getitem__)
    new_row = torch.empty(n_rows, dtype=torch.long)
    new_row[torch.tensor(order)] = torch.arange(n_rows)
    moved = [replace(edit, rows=new_row[edit.rows.cpu()]) for edit in edits]
    logits = resume(model, spec, recorded, moved, [starts[r] for r in order], positions)
    return logits[new_row.to(logits.device)]
