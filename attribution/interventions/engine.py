"""The hook-based intervention engine: one batched forward pass in which every batch row gets its own edits.

Everything is found through the contribution graph's architecture adapters
(:func:`attribution.contributions.adapters.architecture_spec`), so a family the graph supports needs
no code here. Where each component lives (``l`` is the 1-based block of side ``s``):

- residual stream after_ffn(l-1) / embedding: the input of block l (a forward pre-hook); after the
  last block: that block's output;
- attention block output (bias included): the first element of ``AttentionSpec.module``'s output
  (before a branch norm; for a module that returns ``residual + output``, BLOOM, the output
  projection's output);
- head h: slice ``h`` of the input of ``AttentionSpec.out_module`` (the heads' mixed values side by side);
- attention edge j -> i of head h: the term ``A^h_ij v^h_j W_O^h`` of the attention output at i, the
  very term :mod:`attribution.contributions.decompose` assigns to the edge. It is removed in a forward
  hook on ``module`` with the probabilities ``module`` returns and the values ``value_module`` produced
  in the same forward pass; replaced (mean / patch) by the reference runs' ``A^h_ij v^h_j W_O^h``.
  Where a head edit of the same batch row covers the head at that query position the edge edit is
  dropped: the head has already changed that term (a set of edits changes the union of its terms,
  each once; see :mod:`attribution.interventions.ablation`);
- FFN block output: the output of ``FFNSpec.out_module``; neuron n: column n of its input.

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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from attribution.contributions.adapters import ArchitectureSpec, AttentionSpec, BlockSpec
from attribution.errors import UnsupportedError
from attribution.interventions.components import Component

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

    side: str
    layer: int
    attention: str
    rows: torch.Tensor
    mask: torch.Tensor
    reference: tuple[torch.Tensor, torch.Tensor] | None = None


Edit = ValueEdit | EdgeEdit


def attention_spec(block: BlockSpec, attention: str) -> AttentionSpec:
    spec = block.self_attention if attention == "self" else block.cross_attention
    if spec is None:
        raise UnsupportedError("This block has no cross-attention.")
    return spec


def blocks_of(spec: ArchitectureSpec, side: str) -> list[BlockSpec]:
    return spec.encoder_blocks if side == "encoder" else spec.decoder_blocks


def _wide(tensor: torch.Tensor) -> torch.Tensor:
    """float32 for half-precision models, float64 stays float64 (recordings and logits)."""
    return tensor if tensor.dtype == torch.float64 else tensor.float()


def _first(args: tuple, kwargs: dict) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


def _with_first(args: tuple, kwargs: dict, tensor: torch.Tensor) -> tuple[tuple, dict]:
    if args:
        return (tensor, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": tensor}


def _output_tensor(output) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def _with_output_tensor(output, tensor: torch.Tensor):
    return (tensor, *output[1:]) if isinstance(output, tuple) else tensor


def _values(attention: AttentionSpec, output: torch.Tensor) -> torch.Tensor:
    """``value_module``'s batched output -> values ``[B, H, S, head_dim]`` (kv heads repeated for GQA)."""
    batch, length = output.shape[0], output.shape[1]
    values = attention.take_values(output.reshape(batch * length, -1))
    values = values.reshape(batch, length, values.shape[-2], values.shape[-1]).transpose(1, 2)
    if values.shape[1] != attention.n_heads:
        values = values.repeat_interleave(attention.n_heads // values.shape[1], dim=1)
    return values


def _probabilities(attention: AttentionSpec, output) -> torch.Tensor:
    probabilities = output[attention.probabilities_index] if isinstance(output, tuple) else None
    if probabilities is None:
        raise UnsupportedError(
            "This model's attention does not return its probabilities: load it with eager attention "
            "(attribution.models.load_model does by default)."
        )
    return probabilities


def _select(tensor: torch.Tensor, rows: torch.Tensor, positions: tuple[int, ...] | None):
    """Index tuple for ``tensor[rows, positions]`` (every position when None)."""
    if positions is None:
        return rows, slice(None)
    return rows[:, None], torch.tensor(positions, device=tensor.device)[None, :]


def _positions_of(value: torch.Tensor, positions: tuple[int, ...] | None) -> torch.Tensor:
    return value if positions is None else value[list(positions)]


def _assign(tensor: torch.Tensor, edit: ValueEdit, *, extra: tuple = ()) -> None:
    """In place: ``tensor[rows, positions, *extra] = value[positions]`` (zero when no value)."""
    component = edit.component
    index = (*_select(tensor, edit.rows.to(tensor.device), component.positions), *extra)
    if edit.value is None:
        tensor[index] = 0
    else:
        tensor[index] = _positions_of(edit.value, component.positions).to(tensor.dtype)


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
    for edit in head_edits:
        mask[_head_index(mask, edit)] = 0
    mixed = torch.matmul(mask * probabilities.to(wide), values.to(wide))  # [B, H, T, dh]: the masked terms
    change = -mixed
    if reference is not None:
        ref_probs, ref_values = (t.to(mask.device, wide) for t in reference)
        change = change + torch.einsum("bhts,rhts,rhsd->bhtd", mask, ref_probs, ref_values) / ref_probs.shape[0]
    out_weight = attention.out_weight.detach().to(wide)  # [H, dh, d]
    return torch.einsum("bhtk,hkd->btd", change, out_weight)


@contextmanager
def installed(
    model: nn.Module,
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
    """
    handles = []
    by_site: dict[tuple, list[Edit]] = {}
    for edit in edits:
        if isinstance(edit, EdgeEdit):
            by_site.setdefault(("attention", edit.side, edit.layer, edit.attention), []).append(edit)
            continue
        c = edit.component
        if c.kind == "residual":
            n_blocks = len(blocks_of(spec, c.side))
            key = ("block_in", c.side, c.layer + 1) if c.layer < n_blocks else ("block_out", c.side, c.layer)
        elif c.kind == "head":
            key = ("head_in", c.side, c.layer, c.attention)
        elif c.kind == "attention":
            key = ("attention", c.side, c.layer, c.attention)
        elif c.kind == "neuron":
            key = ("ffn_in", c.side, c.layer)
        elif c.kind == "ffn":
            key = ("ffn_out", c.side, c.layer)
        else:
            raise ValueError(f"edges are EdgeEdits, not ValueEdits: {c.id}")
        by_site.setdefault(key, []).append(edit)
    live: dict[Key, torch.Tensor] = {}  # values of this pass, for edge edits
    observing = recording is not None and recording.inside_blocks  # every site, not only the residual stream

    def keep(store: dict, key: Key, tensor: torch.Tensor) -> None:
        if recording is not None:  # a copy: the model may change the tensor in place after the hook (Falcon
            wide = torch.float64 if tensor.dtype == torch.float64 else torch.float32  # adds the attention
            store[key] = tensor.detach().to(wide, copy=True)  # output into the FFN's output)

    def leaf(key: tuple, tensor: torch.Tensor) -> torch.Tensor:
        if not grad_leaves or recording is None:
            return tensor
        zero = torch.zeros_like(tensor, requires_grad=True)
        recording.grad_leaves[key] = zero
        return tensor + zero

    def block_hooks(side: str, layer: int, block: BlockSpec, last: bool) -> None:
        def pre(_module, args, kwargs):
            hidden = _first(args, kwargs)
            edits_here = by_site.get(("block_in", side, layer), [])
            if edits_here:
                hidden = hidden.clone()
                for edit in edits_here:
                    _assign(hidden, edit)
            hidden = leaf(("block_in", side, layer), hidden)
            live[("shape", side, layer)] = hidden.shape[:2]
            if recording is not None:
                keep(recording.block_inputs, (side, layer), hidden)
                recording.block_calls[(side, layer)] = (
                    args[1:],
                    {k: v for k, v in kwargs.items() if k != "hidden_states"},
                )
            return _with_first(args, kwargs, hidden)

        handles.append(block.module.register_forward_pre_hook(pre, with_kwargs=True, prepend=True))
        if last:

            def post(_module, _args, output):
                hidden = _output_tensor(output)
                edits_here = by_site.get(("block_out", side, layer), [])
                if edits_here:
                    hidden = hidden.clone()
                    for edit in edits_here:
                        _assign(hidden, edit)
                if recording is not None:
                    recording.final_outputs[side] = _wide(hidden.detach())
                return _with_output_tensor(output, hidden) if edits_here else None

            handles.append(block.module.register_forward_hook(post, prepend=True))

        for name in ("self", "cross"):
            attention = block.self_attention if name == "self" else block.cross_attention
            if attention is not None:
                attention_hooks(side, layer, name, attention)

        def batched(tensor: torch.Tensor) -> torch.Tensor:
            """OPT runs its FFN on ``[B * T, d]``: view it as ``[B, T, d]``."""
            return tensor if tensor.dim() == 3 else tensor.view(*live[("shape", side, layer)], -1)

        def ffn_pre(_module, args):
            activations = batched(args[0])
            edits_here = by_site.get(("ffn_in", side, layer), [])
            if edits_here:
                activations = activations.clone()
                for edit in edits_here:
                    _assign(activations, edit, extra=(edit.component.index,))
            if observing:
                keep(recording.ffn_inputs, (side, layer), activations)
            return (activations.view(args[0].shape), *args[1:]) if edits_here else None

        def ffn_post(_module, _args, output):
            edits_here = by_site.get(("ffn_out", side, layer), [])
            changed = batched(output)
            if edits_here:
                changed = changed.clone()
                for edit in edits_here:
                    _assign(changed, edit)
            if observing:
                keep(recording.ffn_outputs, (side, layer), changed)
            return changed.view(output.shape) if edits_here else None

        handles.append(block.ffn.out_module.register_forward_pre_hook(ffn_pre, prepend=True))
        handles.append(block.ffn.out_module.register_forward_hook(ffn_post, prepend=True))

    def attention_hooks(side: str, layer: int, name: str, attention: AttentionSpec) -> None:
        key = (side, layer, name)
        head_edits = by_site.get(("head_in", side, layer, name), [])
        output_edits = [e for e in by_site.get(("attention", side, layer, name), []) if isinstance(e, ValueEdit)]
        edge_edits = [e for e in by_site.get(("attention", side, layer, name), []) if isinstance(e, EdgeEdit)]
        wants_values = bool(edge_edits) or observing

        def values_hook(_module, _args, output):
            live[key] = _values(attention, output)

        def heads_pre(_module, args):
            mixed = args[0]
            if head_edits:
                mixed = mixed.clone()
                per_head = mixed.view(*mixed.shape[:-1], attention.n_heads, -1)
                for edit in head_edits:
                    _assign(per_head, edit, extra=(edit.component.index,))
            mixed = leaf(("head_in", side, layer, name), mixed)
            if observing:
                keep(recording.head_inputs, key, mixed.view(*mixed.shape[:-1], attention.n_heads, -1))
            return (mixed, *args[1:])

        def projection_hook(_module, _args, output):
            live[("branch", *key)] = output

        if effective_probabilities and (
            output_edits
            or any(e.value is not None for e in head_edits)
            or any(e.reference is not None for e in edge_edits)
        ):
            raise UnsupportedError(
                "Only zero ablation of heads and attention edges keeps the graph's decomposition exact; "
                "the graph cannot be re-drawn after ablating a whole attention output or after mean / patch of heads "
                "and edges."
            )

        def effective(probabilities: torch.Tensor) -> torch.Tensor:
            kept = probabilities.clone()
            for edit in head_edits:  # kept is [B, H, T, S]: the head's rows at its query positions
                kept[_head_index(kept, edit)] = 0
            for edit in edge_edits:
                kept[edit.rows.to(kept.device)] *= 1 - edit.mask.to(kept.device, kept.dtype)
            return kept

        def output_hook(_module, _args, output):
            needs_probabilities = edge_edits or observing or effective_probabilities
            probabilities = _probabilities(attention, output) if needs_probabilities else None
            result = _output_tensor(output)
            # BLOOM returns residual + branch: edit the branch (the projection's output) and add the rest back
            base = result - live.pop(("branch", *key)) if attention.output_includes_residual else None
            if base is not None:
                result = result - base
            if edge_edits or output_edits:
                result = result.clone()
            if edge_edits:
                delta = _edge_delta(probabilities, live[key], attention, edge_edits, head_edits)
                result = result + delta.to(result.dtype)
            for edit in output_edits:
                _assign(result, edit)
            if observing:
                keep(recording.attention_outputs, key, result)
                keep(recording.probabilities, key, probabilities)
                keep(recording.values, key, live[key])
            if effective_probabilities and (head_edits or edge_edits):
                output = tuple(
                    effective(item) if i == attention.probabilities_index else item for i, item in enumerate(output)
                )
                return _with_output_tensor(output, result if base is None else base + result)
            if not (edge_edits or output_edits):
                return None
            return _with_output_tensor(output, result if base is None else base + result)

        if attention.output_includes_residual:
            handles.append(attention.out_module.register_forward_hook(projection_hook, prepend=True))
        if wants_values:
            handles.append(attention.value_module.register_forward_hook(values_hook, prepend=True))
        handles.append(attention.out_module.register_forward_pre_hook(heads_pre, prepend=True))
        handles.append(attention.module.register_forward_hook(output_hook, prepend=True))

    # Every hook is prepended: edits run before any other hook on the same module, so observers (the graph's
    # capture hooks, transformers' own output recorders installed on an earlier call) see the edited values.
    for side in ("encoder", "decoder"):
        blocks = blocks_of(spec, side)
        for index, block in enumerate(blocks):
            block_hooks(side, index + 1, block, last=index == len(blocks) - 1)
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        live.clear()


def forward(
    model: nn.Module,
    spec: ArchitectureSpec,
    inputs: dict[str, torch.Tensor],
    edits: list[Edit] = (),
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
    hooks = installed(model, spec, list(edits), recording=recording, grad_leaves=grad_leaves)
    with hooks, torch.set_grad_enabled(grad_leaves):
        output = model(**inputs, use_cache=False, return_dict=True)
    logits = output.logits if grad_leaves else output.logits.detach()
    if recording is None:
        return Recording(logits=_wide(logits))
    recording.logits = _wide(logits)
    return recording


def start_block(spec: ArchitectureSpec, edit: Edit) -> tuple[str, int]:
    """(side, first block whose computation ``edit`` changes): a pass with it may resume there."""
    if isinstance(edit, EdgeEdit):
        return edit.side, edit.layer
    component = edit.component
    if component.kind == "residual":  # the input of block l + 1; after the last block: that block's output hook
        return component.side, min(component.layer + 1, len(blocks_of(spec, component.side)))
    return component.side, component.layer


def _for_rows(value, rows: int):
    """A call argument of a batch-1 pass for ``rows`` identical rows.

    Every per-example tensor argument leads with the batch: masks, position ids and biases, rotary
    cos / sin and the encoder's states as ``[1, ...]`` (expanded), ALiBi folded batch-major as
    ``[1 * heads, ...]`` (repeated); one-dimensional tensors (cache positions) have no batch.
    """
    if isinstance(value, torch.Tensor) and value.dim() >= 2:
        if value.shape[0] == 1:
            return value.expand(rows, *value.shape[1:])
        return value.repeat(rows, *([1] * (value.dim() - 1)))
    if isinstance(value, tuple | list):
        return type(value)(_for_rows(item, rows) for item in value)
    if isinstance(value, dict):
        return {key: _for_rows(item, rows) for key, item in value.items()}
    return value


def _entering(recorded: Recording, side: str, layer: int, n_blocks: int) -> torch.Tensor:
    """The recorded residual stream entering block ``layer`` (``n_blocks + 1``: after the last block)."""
    return recorded.block_inputs[(side, layer)] if layer <= n_blocks else recorded.final_outputs[side]


def resume(
    model: nn.Module,
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
    blocks = blocks_of(spec, "decoder")
    dtype = model.dtype  # the recording keeps half-precision states as float32: exact to convert back
    hidden = None
    with installed(model, spec, edits), torch.no_grad():
        for layer in range(starts[0], len(blocks) + 2):
            rows = bisect.bisect_right(starts, layer)
            joining = rows - (0 if hidden is None else hidden.shape[0])
            if joining:
                entering = _entering(recorded, "decoder", layer, len(blocks)).to(dtype).repeat(joining, 1, 1)
                hidden = entering if hidden is None else torch.cat([hidden, entering])
            if layer > len(blocks):
                break
            args, kwargs = recorded.block_calls[("decoder", layer)]
            output = blocks[layer - 1].module(hidden, *_for_rows(args, rows), **_for_rows(kwargs, rows))
            hidden = _output_tensor(output)
        states = hidden[:, positions]
        if spec.final_norm is not None:
            states = spec.final_norm(states)
        return _wide(spec.readout(states))


def forward_from(
    model: nn.Module,
    spec: ArchitectureSpec,
    inputs: dict[str, torch.Tensor],
    recorded: Recording,
    edits: list[Edit],
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
