"""Exact decomposition of every block of one forward pass, and ALTI-style proximities.

Attention block at query position i (pre-LN families)::

    after_i = x_i + sum_{j,h} A^h_ij * (v^h_j W_O^h) + b_O

where ``x_i`` is the residual stream entering the block, ``A^h`` head h's attention probabilities,
``v^h_j`` the value vector of source token j in head h (value bias included; rows of A sum to 1)
and ``W_O^h`` the head's slice of the output projection. The FFN block is the same with two parts:
``after_i = mid_i + ffn_i``; with a parallel residual (GPT-NeoX, Falcon) ``mid_i = x_i + attn_i``.

Norms that touch the residual stream are carried exactly, the same way for both places they sit.
A LayerNorm ``N(y) = g * (y - mean(y)) / sigma + beta`` or RMSNorm ``N(y) = g * y / rms(y)``, with
the statistics of position i fixed (they are numbers of this forward pass), is linear in ``y``:
``N(sum_k p_k) = sum_k g * centre(p_k) / sigma_i + beta``, so every part is carried through it that
way and beta joins the bias.

- Post-LN (BART, Marian, OPT-350m): ``after_i = N(x_i + attn_i)``: the residual and every part
  are carried, with the statistics of the sum.
- Branch norm (Gemma 2/3, OLMo 2: a norm on the block's output before the add):
  ``after_i = x_i + N(attn_i)``: the (source, head) parts and the bias are carried, with the
  statistics of the attention output ``attn_i``; the residual passes unchanged. For the FFN the
  normalised output is the FFN part.

Proximity of a part p of a whole w (Ferrando & Voita 2024, after ALTI):
``max(0, |w|_1 - |w - p|_1)``, normalised over the parts of one node (residual + every
(source token, head) pair, or residual + FFN). Biases are no node's part: they are in ``w`` but
get no share. :func:`attention_shares` scores all (row, source, head) parts with one batched matrix
product over head_dim (the head vectors are kept as values times the carried output projection)
plus an exact correction evaluated only where a part can overshoot the whole, in chunks of at most
``budget`` elements, so no [T, T, heads, d_model] tensor is ever formed.

Several records can share one forward pass: :func:`run_instrumented_batch` right-pads them into one
batch (:func:`pad_records`) and cuts each record's captures back to its own lengths, which are then
exactly what :func:`run_instrumented` captures for that record alone (to float32 rounding).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from attribution.anatomy.adapters import ArchitectureSpec, AttentionSpec, BlockSpec, FFNSpec, PostNorm
from attribution.anatomy.hooks import hooked
from attribution.anatomy.places import all_sites, blocks_of
from attribution.anatomy.sites import Side, Site

if TYPE_CHECKING:
    from transformers import PreTrainedModel

#: Elements of one overshoot-correction chunk (float32): 4M elements = 16 MiB, in each of its two buffers.
DEFAULT_BUDGET = 1 << 22


@dataclass
class CapturedBlock:
    """What one forward pass showed of one block (batch dimension removed, float32)."""

    residual_in: torch.Tensor  # [T, d]
    self_probs: torch.Tensor  # [H, T, T]
    self_values: torch.Tensor  # [T, H_kv, head_dim]
    ffn_activations: torch.Tensor  # [T, d_ff]
    ffn_output: torch.Tensor  # [T, d]
    cross_probs: torch.Tensor | None = None  # [H, T, S]
    cross_values: torch.Tensor | None = None  # [S, H_kv, head_dim]


@dataclass
class AttentionDecomposition:
    """``whole[i] = residual[i] + sum_{j,h} coefficients[h,i,j] * head_vectors[h,j] + bias[i]``, exactly."""

    residual: torch.Tensor  # [T, d]
    #: [H, T, S]: attention probabilities (divided by sigma_i of each norm carried); None once released
    coefficients: torch.Tensor | None
    #: [H, S, d]: v_j^h W_O^h (centred when LayerNorm and scaled by the gain of each norm carried); None once released
    head_vectors: torch.Tensor | None
    bias: torch.Tensor  # [T, d]
    whole: torch.Tensor  # [T, d]: the residual stream after the block
    #: [H, S, head_dim] and [H, head_dim, d]: ``head_vectors = values @ projection`` (the value vectors and the
    #: carried output projection), so a product with every head vector costs head_dim, not d, per (row, part);
    #: None for a decomposition given by its head vectors alone
    values: torch.Tensor | None = None
    projection: torch.Tensor | None = None

    def release(self) -> None:
        """Drop the per-part tensors (the biggest ones) once every needed row has been scored."""
        self.coefficients = self.head_vectors = self.values = self.projection = None


@dataclass
class FFNDecomposition:
    """``whole[i] = residual[i] + ffn[i] + bias[i]``, exactly."""

    residual: torch.Tensor  # [T, d]
    ffn: torch.Tensor  # [T, d]
    bias: torch.Tensor  # [T, d]: zero, or beta of a post-LN
    whole: torch.Tensor  # [T, d]
    activations: torch.Tensor  # [T, d_ff]: neuron activations
    #: [d_ff, d]: what neuron n writes per unit activation (times a branch norm's gain)
    out_weight: torch.Tensor
    #: [T, d]: the FFN's own output before any post-LN (times a branch norm's gain), = activations @ out_weight + bias
    raw_output: torch.Tensor


@dataclass
class BlockDecomposition:
    residual_in: torch.Tensor  # [T, d]
    self_attention: AttentionDecomposition
    cross_attention: AttentionDecomposition | None
    ffn: FFNDecomposition
    parallel_residual: bool


@dataclass(frozen=True)
class RecordSpan:
    """Where one record sits in a right-padded batch: its row and its real (unpadded) lengths."""

    row: int
    length: int  # decoder-side tokens (all tokens of a causal model)
    source_length: int = 0  # encoder tokens (seq2seq)


#: What the decomposition reads of each block: anatomy site point -> :class:`CapturedBlock` field.
_CAPTURED = {
    "resid_pre": "residual_in",
    "attn.probs": "self_probs",
    "attn.values": "self_values",
    "ffn.act": "ffn_activations",
    "ffn.out": "ffn_output",
    "cross_attn.probs": "cross_probs",
    "cross_attn.values": "cross_values",
}
#: Captured tensors of one forward pass, ``[batch, T, *]``, by site.
_Captures = dict[Site, torch.Tensor]


def _capture(model: PreTrainedModel, spec: ArchitectureSpec, inputs: dict[str, torch.Tensor]) -> _Captures:
    """One forward pass of the base model reading every captured site (:data:`_CAPTURED`), ``[batch, T, *]``."""
    records: _Captures = {}

    def keep(activation: torch.Tensor, site: Site) -> None:
        # probabilities as the model returns them; the rest as float32 copies: a model may change its tensors
        # in place after a hook saw them (Falcon adds into its FFN output), and values must not hold q and k
        activation = activation.detach()
        records[site] = activation if site.point.endswith("probs") else activation.to(torch.float32, copy=True)

    sites = [site for site in all_sites(spec) if site.point in _CAPTURED]
    with hooked(spec, dict.fromkeys(sites, keep)), torch.no_grad():
        # the base model: the LM head over every position is not needed (the logit lens reads a few nodes)
        model.base_model(**inputs, output_attentions=True, use_cache=False, return_dict=True)
    return records


def _record_blocks(
    spec: ArchitectureSpec, records: _Captures, span: RecordSpan
) -> tuple[list[CapturedBlock], list[CapturedBlock]]:
    """One record's captured blocks, cut to its own lengths: positions, queries and keys of the probabilities
    (cross-attention keys to its source length), so that padding leaves no trace."""
    b, lengths = span.row, {"encoder": span.source_length, "decoder": span.length}

    def cut(site: Site, field: str) -> torch.Tensor | None:
        tensor = records.get(site)
        n = lengths[site.side]
        if tensor is None:
            return None
        if field.endswith("probs"):  # [B, H, T, S]
            return tensor[b, :, :n, : span.source_length if field == "cross_probs" else n].float()
        return tensor[b, : span.source_length if field == "cross_values" else n]

    def blocks(side: Side) -> list[CapturedBlock]:
        return [
            # every block's sites are captured, only the cross-attention ones may be absent (optional fields): mypy
            # types a **dict of captures by no key
            CapturedBlock(**{field: cut(Site(side, block, point), field) for point, field in _CAPTURED.items()})  # type: ignore[arg-type]
            for block in range(1, len(blocks_of(spec, side)) + 1)
        ]

    return blocks("encoder"), blocks("decoder")


def run_instrumented(
    model: PreTrainedModel, spec: ArchitectureSpec, inputs: dict[str, torch.Tensor]
) -> tuple[list[CapturedBlock], list[CapturedBlock]]:
    """One forward pass with hooks; returns the captured encoder and decoder blocks (one record, batch of 1)."""
    records = _capture(model, spec, inputs)
    source = inputs["input_ids"].shape[1] if spec.encoder_blocks else 0
    length = inputs["decoder_input_ids" if spec.encoder_blocks else "input_ids"].shape[1]
    return _record_blocks(spec, records, RecordSpan(0, length, source))


def pad_records(
    inputs: Sequence[dict[str, torch.Tensor]], pad_token_id: int
) -> tuple[dict[str, torch.Tensor], list[RecordSpan]]:
    """One right-padded batch of single-record inputs (``[1, T]`` each) with its attention masks.

    Right padding leaves every real position where it was (position ids, rotary angles, learned and
    sinusoidal positions, ALiBi distances and T5's relative buckets are those of the record alone) and
    the masks give padded keys zero probability, so each record's real rows are those of its own pass.
    """
    names = [name for name in ("input_ids", "decoder_input_ids") if name in inputs[0]]
    batch: dict[str, torch.Tensor] = {}
    for name in names:
        rows = [record[name][0] for record in inputs]
        longest = max(row.shape[0] for row in rows)
        ids = rows[0].new_full((len(rows), longest), pad_token_id)
        mask = rows[0].new_zeros((len(rows), longest))
        for i, row in enumerate(rows):
            ids[i, : row.shape[0]] = row
            mask[i, : row.shape[0]] = 1
        batch[name] = ids
        batch["attention_mask" if name == "input_ids" else "decoder_attention_mask"] = mask
    seq2seq = "decoder_input_ids" in batch
    spans = [
        RecordSpan(
            i,
            record["decoder_input_ids" if seq2seq else "input_ids"].shape[1],
            record["input_ids"].shape[1] if seq2seq else 0,
        )
        for i, record in enumerate(inputs)
    ]
    return batch, spans


def run_instrumented_batch(
    model: PreTrainedModel, spec: ArchitectureSpec, inputs: Sequence[dict[str, torch.Tensor]], *, pad_token_id: int
) -> list[tuple[list[CapturedBlock], list[CapturedBlock]]]:
    """:func:`run_instrumented` for several records in ONE forward pass over a right-padded batch
    (:func:`pad_records`): per record, in order, its captured blocks cut to its own lengths.

    Each record gets its own copies (its graph must not keep the whole batch's tensors alive), so the
    peak memory is about twice the batch's captures, those of ``len(inputs)`` single records plus padding.
    """
    if len(inputs) == 1:
        return [run_instrumented(model, spec, inputs[0])]
    batch, spans = pad_records(inputs, pad_token_id)
    records = _capture(model, spec, batch)
    per_record = [_record_blocks(spec, records, span) for span in spans]
    # own copies: a record's blocks must not keep the whole batch's tensors alive
    return [
        ([_copied(block) for block in encoder], [_copied(block) for block in decoder])
        for encoder, decoder in per_record
    ]


def _copied(block: CapturedBlock) -> CapturedBlock:
    return dataclasses.replace(
        block, **{name: value.clone() for name, value in vars(block).items() if value is not None}
    )


@dataclass(frozen=True)
class _FixedNorm:
    """A norm with one forward pass's per-position statistics fixed: a linear map per position."""

    norm: PostNorm
    sigma: torch.Tensor  # [T, 1]: standard deviation (LayerNorm) or root mean square (RMSNorm)
    gain: torch.Tensor  # [d]: weight (+ offset)
    beta: torch.Tensor  # [d]

    @classmethod
    def of(cls, norm: PostNorm, pre: torch.Tensor) -> _FixedNorm:
        """The statistics ``norm`` computes on ``pre`` [T, d]."""
        d = pre.shape[-1]
        gain = norm.weight.detach().float() + norm.weight_offset if norm.weight is not None else pre.new_ones(d)
        beta = norm.bias.detach().float() if norm.bias is not None else pre.new_zeros(d)
        spread = pre.var(-1, unbiased=False, keepdim=True) if norm.centred else pre.pow(2).mean(-1, keepdim=True)
        return cls(norm, (spread + norm.eps).sqrt(), gain, beta)

    def carry(self, part: torch.Tensor) -> torch.Tensor:
        """``gain * centre(part)`` without the 1/sigma: callers divide per position where they need to."""
        return self.gain * (_centre(part) if self.norm.centred else part)

    def apply(self, pre: torch.Tensor) -> torch.Tensor:
        """The norm of ``pre`` itself (the same numbers the statistics came from)."""
        return self.carry(pre) / self.sigma + self.beta


def _centre(tensor: torch.Tensor) -> torch.Tensor:
    return tensor - tensor.mean(-1, keepdim=True)


def decompose_attention(
    residual: torch.Tensor, probs: torch.Tensor, values: torch.Tensor, spec: AttentionSpec
) -> AttentionDecomposition:
    """Split one attention block (``probs`` [H, T, S], ``values`` [S, H_kv, head_dim]) into its parts.

    The norms carried act on the last axis only, so they are applied to the output projection
    (``[H, head_dim, d]``, small) and the head vectors are the values times that carried projection.
    """
    n_heads = spec.n_heads
    per_head = values.transpose(0, 1)  # [H_kv, S, head_dim]
    if per_head.shape[0] != n_heads:  # grouped-query attention: head h reads kv head h // group
        per_head = per_head.repeat_interleave(n_heads // per_head.shape[0], dim=0)
    out_weight = spec.out_weight.detach().float()
    d = out_weight.shape[-1]
    t = residual.shape[0]
    bias = spec.out_bias.detach().float() if spec.out_bias is not None else residual.new_zeros(d)
    # sum_{j,h} A^h_ij v^h_j W_O^h, mixing values per head first (cheaper than mixing [H, S, d])
    branch = torch.einsum("htk,hkd->td", torch.bmm(probs, per_head), out_weight) + bias
    coefficients, bias, projection = probs, bias.expand(t, d), out_weight
    if spec.branch_norm is not None:  # x_i + N(attn_i): parts scaled by 1 / sigma of attn_i
        norm = _FixedNorm.of(spec.branch_norm, branch)
        coefficients = coefficients / norm.sigma.view(1, t, 1)
        projection = norm.carry(projection)
        bias = norm.carry(bias) / norm.sigma + norm.beta
        branch = norm.apply(branch)
    whole = pre = residual + branch
    if spec.post_norm is not None:  # N(x_i + attn_i): every part scaled by 1 / sigma of the sum
        norm = _FixedNorm.of(spec.post_norm, pre)
        residual = norm.carry(residual) / norm.sigma
        coefficients = coefficients / norm.sigma.view(1, t, 1)
        projection = norm.carry(projection)
        bias = norm.carry(bias) / norm.sigma + norm.beta
        whole = norm.apply(pre)
    # [H, S, d] stored as [H, d, S]: the overshoot correction reads one dimension's sources side by side
    head_vectors = torch.bmm(projection.transpose(1, 2), per_head.transpose(1, 2)).transpose(1, 2)
    return AttentionDecomposition(residual, coefficients, head_vectors, bias, whole, per_head, projection)


def decompose_ffn(
    residual: torch.Tensor, activations: torch.Tensor, output: torch.Tensor, spec: FFNSpec
) -> FFNDecomposition:
    out_weight = spec.out_weight.detach().float()
    ffn, neuron_output = output, output
    if spec.branch_norm is not None:
        # x_i + N(ffn_i): the normalised output is the FFN part; neuron n writes N's gain * a_n w_n
        # (over sigma_i, which the neuron scores' ratio cancels)
        norm = _FixedNorm.of(spec.branch_norm, output)
        ffn = norm.apply(output)
        out_weight, neuron_output = norm.carry(out_weight), norm.carry(output)
    pre = residual + ffn
    if spec.post_norm is None:
        return FFNDecomposition(residual, ffn, torch.zeros_like(ffn), pre, activations, out_weight, neuron_output)
    norm = _FixedNorm.of(spec.post_norm, pre)
    return FFNDecomposition(
        residual=norm.carry(residual) / norm.sigma,
        ffn=norm.carry(ffn) / norm.sigma,
        bias=norm.beta.expand_as(ffn),
        whole=norm.apply(pre),
        activations=activations,
        out_weight=out_weight,
        raw_output=neuron_output,
    )


def decompose_block(captured: CapturedBlock, spec: BlockSpec) -> BlockDecomposition:
    self_attention = decompose_attention(
        captured.residual_in, captured.self_probs, captured.self_values, spec.self_attention
    )
    mid = self_attention.whole
    cross_attention = None
    if spec.cross_attention is not None:
        assert captured.cross_probs is not None and captured.cross_values is not None  # captured with cross-attention
        cross_attention = decompose_attention(mid, captured.cross_probs, captured.cross_values, spec.cross_attention)
        mid = cross_attention.whole
    ffn = decompose_ffn(mid, captured.ffn_activations, captured.ffn_output, spec.ffn)
    return BlockDecomposition(captured.residual_in, self_attention, cross_attention, ffn, spec.parallel_residual)


class LazyBlocks(Sequence[BlockDecomposition]):
    """Blocks of one stack, decomposed on first access; :meth:`release` frees a visited block's parts.

    Route tracing visits each block once, top-down, so at most one block's ``[heads, T, d_model]``
    head vectors are alive at a time; the residual states stay for the logit lens.
    """

    def __init__(self, captured: list[CapturedBlock], specs: list[BlockSpec]) -> None:
        self._captured: list[CapturedBlock | None] = list(captured)
        self._specs = specs
        self._blocks: dict[int, BlockDecomposition] = {}

    def __len__(self) -> int:
        return len(self._specs)

    def __getitem__(self, index: int) -> BlockDecomposition:  # type: ignore[override]  # by index only, no slices
        index = range(len(self))[index]
        if index not in self._blocks:
            captured = self._captured[index]
            assert captured is not None  # dropped only once its block is decomposed
            self._blocks[index] = decompose_block(captured, self._specs[index])
            self._captured[index] = None
        return self._blocks[index]

    def release(self, index: int) -> None:
        block = self[index]
        block.self_attention.release()
        if block.cross_attention is not None:
            block.cross_attention.release()


def _proximity(whole: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
    """``max(0, |w|_1 - |w - p|_1)`` over the last axis, summed as ``sum_d (|w_d| - |w_d - p_d|)``.

    Summing the small per-dimension differences instead of subtracting two large norms keeps
    float32 accurate when a part is small next to the whole.
    """
    return (whole.abs() - (whole - part).abs()).sum(-1).clamp_min_(0)


def _row_totals(residual_prox: torch.Tensor, parts_total: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The residual's share and the divisor of the parts' proximities per row (``parts_total`` is their sum),
    so that shares sum to 1; a row whose parts all have proximity 0 goes wholly to the residual."""
    total = residual_prox + parts_total
    empty = total <= 0
    return torch.where(empty, 1.0, residual_prox / total), torch.where(empty, 1.0, total)


def _overshoot_bound(coefficients: torch.Tensor, head_vectors: torch.Tensor, budget: int) -> torch.Tensor:
    """An upper bound ``[n, d]`` of ``max_{j,h} a_hij |u_hjd|`` (``coefficients`` [H, n, S] >= 0).

    Per head, the largest coefficient of the row times the largest ``|u_hjd|`` of the dimension,
    maximised over heads: products and maxima of the very numbers the correction multiplies, so
    rounding keeps it above each product as evaluated there. Built ``budget`` elements at a time.
    """
    n_heads, n, _ = coefficients.shape
    d = head_vectors.shape[-1]
    row_max = coefficients.amax(2)  # [H, n]
    dim_max = torch.maximum(head_vectors.amax(1), head_vectors.amin(1).neg_())  # [H, d] (faster than aminmax)
    bound = coefficients.new_empty(n, d)
    rows_per_chunk = max(1, min(n, budget // (n_heads * d)))
    products = coefficients.new_empty(n_heads, rows_per_chunk, d)
    for start in range(0, n, rows_per_chunk):
        chunk = products[:, : min(rows_per_chunk, n - start)]
        torch.mul(row_max[:, start : start + rows_per_chunk, None], dim_max[:, None, :], out=chunk)
        torch.amax(chunk, 0, out=bound[start : start + rows_per_chunk])
    return bound


def _source_spans(coefficients: torch.Tensor) -> tuple[list[int], list[int]]:
    """Per row, the first and one-past-the-last source with a non-zero coefficient in some head.

    A part whose coefficient is 0 is exactly 0 and has proximity 0: causal masks, sliding windows
    and padding put whole runs of those in a row, which the correction then skips. A row without
    any non-zero coefficient gets the empty span ``(S, 0)``.
    """
    n_sources = coefficients.shape[-1]
    reached = coefficients.amax(0) > 0  # [n, S]
    index = torch.arange(n_sources, device=coefficients.device)
    first = torch.where(reached, index, n_sources).amin(1)
    end = torch.where(reached, index + 1, 0).amax(1)
    return first.tolist(), end.tolist()


def _chunks(
    counts: list[int], first: list[int], end: list[int], per_source: int, budget: int
) -> Iterator[tuple[int, int, int, int]]:
    """Runs of consecutive (row, dimension) pairs, sorted by row, as ``(start, stop, source start, source stop)``.

    Row ``r`` has ``counts[r]`` pairs whose parts are non-zero only for sources in ``[first[r], end[r])``
    (``(S, 0)`` for none, as :func:`_source_spans` gives).
    A run covers the union of its rows' sources and holds ``pairs x sources x per_source`` elements: at
    most ``budget`` (a row too big for one run is split; a run holds at least one pair), of which at most
    a quarter lie outside its rows' own sources (a short row does not join a run of long ones).
    """
    start = position = low = high = own = 0
    for count, row_low, row_high in zip(counts, first, end, strict=True):
        if not count:
            continue
        row_own = count * max(0, row_high - row_low) * per_source
        if position > start:  # join the open run if it stays within the budget and wastes little
            merged_low, merged_high = min(low, row_low), max(high, row_high)
            merged = (position - start + count) * max(0, merged_high - merged_low) * per_source
            if merged <= budget and 4 * (merged - own - row_own) <= merged:
                low, high, own, position = merged_low, merged_high, own + row_own, position + count
                continue
            yield start, position, low, high
        low, high = row_low, row_high  # a new run opens with this row, split while it alone is too big
        most = max(1, budget // max(1, (high - low) * per_source))
        while count > most:
            yield position, position + most, low, high
            position, count = position + most, count - most
        start, position, own = position, position + count, count * max(0, high - low) * per_source
    if position > start:
        yield start, position, low, high


def _subtract_overshoots(
    part_prox: torch.Tensor,
    coefficients: torch.Tensor,
    head_vectors: torch.Tensor,
    whole: torch.Tensor,
    sign: torch.Tensor,
    budget: int,
) -> None:
    """``part_prox[h, i, j] -= 2 sum_d relu(s_id a_hij u_hjd - |w_id|)`` in place, evaluated exactly but only
    for the (row, dimension) pairs where :func:`_overshoot_bound` allows an overshoot and the sources where
    the row has non-zero coefficients, ``budget`` elements at a time in two buffers reused by every chunk
    (a fresh tensor per chunk would spend more time on the memory's first touch than on the arithmetic)."""
    n_heads = coefficients.shape[0]
    pairs = torch.nonzero(whole.abs() <= _overshoot_bound(coefficients, head_vectors, budget))  # [K, 2], by row
    if not pairs.shape[0]:
        return
    counts = torch.bincount(pairs[:, 0], minlength=whole.shape[0]).tolist()
    chunks = [chunk for chunk in _chunks(counts, *_source_spans(coefficients), n_heads, budget) if chunk[3] > chunk[2]]
    size = max(n_heads * (stop - start) * (high - low) for start, stop, low, high in chunks)
    n = coefficients.shape[1]
    d = head_vectors.shape[-1]
    # [H * n, S] and [H * d, S]: a (head, row) or (head, dimension) is one contiguous run of sources
    by_row = coefficients.reshape(n_heads * n, -1)
    by_dimension = head_vectors.transpose(1, 2).reshape(n_heads * d, -1)  # a view when stored as [H, d, S]
    heads = torch.arange(n_heads, device=pairs.device)[:, None]
    parts_buffer, vectors_buffer = coefficients.new_empty(size), coefficients.new_empty(size)
    for start, stop, low, high in chunks:
        row, dim = pairs[start:stop].unbind(1)
        shape = (n_heads, stop - start, high - low)
        parts = parts_buffer[: math.prod(shape)].view(shape)
        vectors = vectors_buffer[: math.prod(shape)].view(shape)
        torch.index_select(by_row[:, low:high], 0, (heads * n + row).view(-1), out=parts.view(-1, shape[2]))
        torch.index_select(by_dimension[:, low:high], 0, (heads * d + dim).view(-1), out=vectors.view(-1, shape[2]))
        # relu(s (a u_d - w_d)) for every (head, pair, source)
        overshoot = torch.addcmul(-whole[row, dim].view(1, -1, 1), parts, vectors, out=vectors)
        overshoot.mul_(sign[row, dim].view(1, -1, 1)).relu_()
        part_prox[:, :, low:high].index_add_(1, row, overshoot, alpha=-2)


def _signed_sums(dec: AttentionDecomposition, sign: torch.Tensor) -> torch.Tensor:
    """``sum_d s_id u_jhd`` for every row i of ``sign`` [n, d] and part (j, h): ``[H, n, S]``.

    With the factors ``u_jh = v_jh P_h``: ``(s_i P_h^T) . v_jh``, a product over head_dim instead of d.
    """
    if dec.values is None:
        return torch.einsum("nd,hsd->hns", sign, dec.head_vectors)
    projected = torch.einsum("nd,hkd->hnk", sign, dec.projection)  # [H, n, head_dim]
    return torch.bmm(projected, dec.values.transpose(1, 2))


def _every_row(rows: torch.Tensor, n: int) -> bool:
    """Whether ``rows`` is 0, 1, ..., n - 1 (a graph of every token): indexing with it would only copy."""
    return rows.shape[0] == n and bool((rows == torch.arange(n, device=rows.device)).all())


def attention_shares(
    dec: AttentionDecomposition, rows: torch.Tensor, *, budget: int = DEFAULT_BUDGET
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shares of the residual ``[n]`` and of every (source, head) part ``[n, S, H]`` for ``rows``
    (a view of an ``[H, n, S]`` tensor).

    Per dimension, with ``s = sign(w_d)`` (+1 at 0) and ``p_d = a u_d`` (a >= 0):
    ``|w_d| - |w_d - p_d| = s p_d - 2 relu(s p_d - |w_d|)``. The first term summed over d is
    ``a (s . u)``: one batched matrix product for all parts, over head_dim through the factors
    ``u = v P`` (:func:`_signed_sums`). The second is non-zero only where a part overshoots the
    whole in a dimension, which needs ``|w_d| < a |u_d|``; it is evaluated exactly, but only for
    the (row, dimension) pairs where :func:`_overshoot_bound` allows an overshoot and the sources
    with non-zero coefficients, in chunks of at most ``budget`` elements. No [rows, sources,
    heads, d_model] tensor is ever formed.
    """
    assert dec.coefficients is not None and dec.head_vectors is not None  # shares are read before release()
    whole = dec.whole[rows]  # [n, d]
    coefficients = dec.coefficients if _every_row(rows, dec.whole.shape[0]) else dec.coefficients[:, rows]  # [H, n, S]
    sign = torch.where(whole >= 0, 1.0, -1.0).to(whole.dtype)
    part_prox = _signed_sums(dec, sign).mul_(coefficients)
    _subtract_overshoots(part_prox, coefficients, dec.head_vectors, whole, sign, budget)
    residual_prox = _proximity(whole, dec.residual[rows])
    residual_share, total = _row_totals(residual_prox, part_prox.clamp_min_(0).sum((0, 2)))
    return residual_share, part_prox.div_(total.view(1, -1, 1)).permute(1, 2, 0)


def ffn_shares(dec: FFNDecomposition, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Shares ``[n]`` of the residual and of the FFN output in the state after the FFN block."""
    whole = dec.whole[rows]
    ffn_prox = _proximity(whole, dec.ffn[rows])
    residual_share, total = _row_totals(_proximity(whole, dec.residual[rows]), ffn_prox)
    return residual_share, ffn_prox / total


def neuron_scores(dec: FFNDecomposition, rows: torch.Tensor | list[int]) -> torch.Tensor:
    """Per neuron n, its share of the FFN output along that output's direction, ``[n_rows, d_ff]``.

    Neuron n writes ``a_n w_n``; its score is ``a_n (w_n . f) / |f|^2`` for the FFN output f, so
    the scores of all neurons plus the output bias's sum to 1 (a signed projection share).
    """
    output = dec.raw_output[rows]
    along = output @ dec.out_weight.T  # [n, d_ff]: w_n . f
    return dec.activations[rows] * along / output.pow(2).sum(-1, keepdim=True).clamp_min(1e-12)
