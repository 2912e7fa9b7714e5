"""Architecture adapters: where each supported family keeps the pieces the anatomy's sites live in.

A family is described *declaratively* by a :class:`Family`: the dotted paths of its layer lists,
and per layer where the attention module, its value and output projections, the FFN's output
projection and the norms that touch the residual stream are, plus how the readout (LM head) works.
:func:`architecture_spec` turns that description and a loaded model into an
:class:`ArchitectureSpec` of live modules and weight tensors. The named sites
(:mod:`attribution.anatomy.places`) are found through it, and the decomposition
(:mod:`attribution.contributions.decompose`) reads its weights and norms; nothing else has per-family
code: everything a family does differently is a field here. Per block the spec names

- the block module (its input is the residual stream entering the block),
- per attention (self, and cross for seq2seq decoders): the module whose output holds the value
  vectors, how to cut ``[S, heads_kv, head_dim]`` values out of it, the output projection as
  ``[heads, head_dim, d_model]`` per-head matrices plus its bias, a norm applied to the attention
  output before the residual add (``branch_norm``: Gemma 2/3, OLMo 2) and a norm applied after the
  add (``post_norm``: post-LN BART, Marian, OPT-350m),
- the FFN's output projection (its input are the neuron activations, its output the FFN output),
  with the same two kinds of norm,
- whether attention and FFN read the same residual in parallel (GPT-NeoX / Pythia, Falcon).

Attention probabilities come from the model itself (``output_attentions=True``, eager attention),
so rotary embeddings (full or partial), ALiBi, relative position biases, QK-norm, attention logit
soft-capping, sliding windows and masks need no description: they change where a token attends,
not what its value vector is. Scaled embeddings need none either: the first block's input is read
at ``resid_pre``, whatever the embedding layer did.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
from torch import nn
from transformers import PretrainedConfig
from transformers.pytorch_utils import Conv1D

from attribution.errors import UnsupportedError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

# --------------------------------------------------------------------------------------------------
# What the engine reads: live modules and tensors of one model.
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostNorm:
    """A per-position norm (LayerNorm or RMSNorm) the decomposition carries parts through.

    ``y = (weight + weight_offset) * (x - mean(x)) / sigma + bias`` for a LayerNorm (``centred``),
    ``y = (weight + weight_offset) * x / rms`` for an RMSNorm. With the position's statistics fixed
    (numbers of this forward pass) it is linear in ``x``. Used both after a residual add
    (``post_norm``) and on a branch output before the add (``branch_norm``).
    """

    weight: torch.Tensor | None
    bias: torch.Tensor | None
    eps: float
    #: LayerNorm subtracts the mean (and has a bias); RMSNorm does neither
    centred: bool = True
    #: Gemma's RMSNorm multiplies by ``1 + weight``
    weight_offset: float = 0.0

    @classmethod
    def of(cls, module: nn.Module, kind: NormKind = "layernorm") -> PostNorm:
        if kind == "layernorm":
            return cls(weight=_tensor(module, "weight"), bias=_tensor(module, "bias"), eps=_number(module, "eps"))
        eps = getattr(module, "variance_epsilon", None)
        eps = _number(module, "eps") if eps is None else eps
        return cls(
            _tensor(module, "weight"),
            None,
            float(eps),
            centred=False,
            weight_offset=1.0 if kind == "rmsnorm_plus_one" else 0.0,
        )


@dataclass(frozen=True)
class AttentionSpec:
    #: the attention module: its output's first element is the attention output (after the output
    #: projection, before the branch norm and the residual add), element ``probabilities_index`` (the
    #: second, T5's third) the probabilities ``[batch, H, T, S]``; with ``output_includes_residual``
    #: the first element is the residual stream after the add instead (BLOOM adds the residual inside
    #: its attention module)
    module: nn.Module
    #: the output projection: its input is the heads' mixed values side by side ``[*, H * head_dim]``
    out_module: nn.Module
    value_module: nn.Module
    #: module output (batch squeezed, ``[S, *]``) -> values ``[S, heads_kv, head_dim]``
    take_values: Callable[[torch.Tensor], torch.Tensor]
    out_weight: torch.Tensor  # [heads, head_dim, d_model]
    out_bias: torch.Tensor | None
    n_heads: int
    #: a norm on ``residual + attention output`` (post-LN families)
    post_norm: PostNorm | None = None
    #: a norm on the attention output before the residual add (Gemma 2/3, OLMo 2)
    branch_norm: PostNorm | None = None
    #: the module's first output is ``residual + attention output`` (BLOOM), not the attention output
    output_includes_residual: bool = False
    #: where ``module``'s output tuple holds the probabilities (T5 returns ``(output, position_bias, probs)``)
    probabilities_index: int = 1


@dataclass(frozen=True)
class FFNSpec:
    out_module: nn.Module  # input: neuron activations [T, d_ff]; output: FFN output [T, d_model]
    out_weight: torch.Tensor  # [d_ff, d_model]: row n is what neuron n writes per unit activation
    post_norm: PostNorm | None = None
    #: a norm on the FFN output before the residual add (Gemma 2/3, OLMo 2)
    branch_norm: PostNorm | None = None


@dataclass(frozen=True)
class BlockSpec:
    module: nn.Module
    self_attention: AttentionSpec
    cross_attention: AttentionSpec | None
    ffn: FFNSpec
    parallel_residual: bool = False


@dataclass(frozen=True)
class ArchitectureSpec:
    encoder_blocks: list[BlockSpec]  # empty for decoder-only models
    decoder_blocks: list[BlockSpec]
    final_norm: nn.Module | None  # decoder's final norm (pre-LN families)
    #: decoder state after the optional final norm ``[N, d]`` -> next-token logits ``[N, vocab]``
    readout: Callable[[torch.Tensor], torch.Tensor]


# --------------------------------------------------------------------------------------------------
# How a family is described: dotted module paths and a few flags. Adding a family = one Family.
# --------------------------------------------------------------------------------------------------

#: How a family's fused or separate projection lays out the value vectors in its output:
#: ``separate``: the value module is the value projection alone, ``[heads_kv * head_dim]``;
#: ``stacked``: ``[q heads | k heads | v heads]`` (GPT-2, Phi-3, GPT-BigCode multi-query, Falcon-7B);
#: ``grouped``: per key/value head its query heads, then its key, then its value (GPT-NeoX, BLOOM,
#: GPT-BigCode without multi-query, Falcon-40B / Falcon 2).
QKVLayout = Literal["separate", "stacked", "grouped"]
#: ``layernorm`` (nn.LayerNorm), ``rmsnorm`` (T5 / Llama style), ``rmsnorm_plus_one`` (Gemma: ``1 + weight``).
NormKind = Literal["layernorm", "rmsnorm", "rmsnorm_plus_one"]


@dataclass(frozen=True)
class Attention:
    """One attention of a layer; paths are relative to the layer module."""

    module: str  # the attention module (returns output, probabilities)
    values: str  # the module whose output holds the values, relative to ``module``
    out: str  # the output projection, relative to ``module``
    qkv: QKVLayout = "separate"
    norm_after_add: str | None = None  # post-LN: a norm on residual + attention output
    branch_norm: str | None = None  # a norm on the attention output before the residual add
    output_includes_residual: bool = False
    probabilities_index: int = 1  # see AttentionSpec.probabilities_index


@dataclass(frozen=True)
class FFN:
    """The FFN of a layer; paths are relative to the layer module."""

    out: str  # the output projection (input: neuron activations)
    norm_after_add: str | None = None
    branch_norm: str | None = None


@dataclass(frozen=True)
class Stack:
    """A list of layers (the decoder, or the encoder of a seq2seq model)."""

    layers: str  # path of the layer list, relative to the model
    heads: str  # config attribute holding the number of query heads
    self_attention: Attention
    ffn: FFN
    cross_attention: Attention | None = None
    parallel_residual: bool = False


@dataclass(frozen=True)
class Family:
    """Where one architecture keeps its blocks, heads, projections and norms."""

    decoder: Stack
    encoder: Stack | None = None
    final_norm: str | None = None  # the decoder's final norm, relative to the model
    norm_kind: NormKind = "layernorm"  # how the norms named above compute
    project_out: str | None = None  # a projection between the final norm and the LM head (OPT)
    output_scale: float = 1.0  # the final state is multiplied by this before the LM head (T5)
    logits_bias: str | None = None  # a buffer added to the logits (BART's final_logits_bias)
    logit_softcap: float | None = None  # logits = cap * tanh(logits / cap) (Gemma 2)


#: A family description, or a function of the model's config that returns one (config-dependent layouts).
FamilyEntry = Family | Callable[[PretrainedConfig], Family]


def _llama_like(*, attention_norm: str | None = None, ffn_norm: str | None = None, **family) -> Family:
    """Llama and its descendants: ``model.layers``, separate q/k/v projections, ``o_proj``, ``mlp.down_proj``."""
    return Family(
        decoder=Stack(
            "model.layers",
            "num_attention_heads",
            Attention("self_attn", values="v_proj", out="o_proj", branch_norm=attention_norm),
            FFN("mlp.down_proj", branch_norm=ffn_norm),
        ),
        final_norm="model.norm",
        **family,
    )


_GPT2 = Family(
    Stack(
        "transformer.h", "n_head", Attention("attn", values="c_attn", out="c_proj", qkv="stacked"), FFN("mlp.c_proj")
    ),
    final_norm="transformer.ln_f",
)

_LLAMA = _llama_like()


def _gpt_neox(config: PretrainedConfig) -> Family:
    attention = Attention("attention", values="query_key_value", out="dense", qkv="grouped")
    stack = Stack(
        "gpt_neox.layers",
        "num_attention_heads",
        attention,
        FFN("mlp.dense_4h_to_h"),
        parallel_residual=bool(config.use_parallel_residual),
    )
    return Family(stack, final_norm="gpt_neox.final_layer_norm")


def _opt(config: PretrainedConfig) -> Family:
    post_ln = not config.do_layer_norm_before
    attention = Attention(
        "self_attn", values="v_proj", out="out_proj", norm_after_add="self_attn_layer_norm" if post_ln else None
    )
    ffn = FFN("fc2", norm_after_add="final_layer_norm" if post_ln else None)
    return Family(
        Stack("model.decoder.layers", "num_attention_heads", attention, ffn),
        final_norm="model.decoder.final_layer_norm",
        project_out="model.decoder.project_out",
    )


def _gemma2(config: PretrainedConfig) -> Family:
    """Gemma 2 / Gemma 3: RMSNorms (``1 + weight``) before *and after* each branch; logit soft-capping."""
    return _llama_like(
        attention_norm="post_attention_layernorm",
        ffn_norm="post_feedforward_layernorm",
        norm_kind="rmsnorm_plus_one",
        logit_softcap=config.final_logit_softcapping,
    )


#: OLMo 2: no pre-norms, RMSNorms on the branch outputs before the residual add (and QK-norm).
_OLMO2 = _llama_like(
    attention_norm="post_attention_layernorm", ffn_norm="post_feedforward_layernorm", norm_kind="rmsnorm"
)

#: Phi-3: fused ``qkv_proj`` ([q heads | k heads | v heads]), fused gate/up, partial rotary (in the probabilities).
_PHI3 = Family(
    Stack(
        "model.layers",
        "num_attention_heads",
        Attention("self_attn", values="qkv_proj", out="o_proj", qkv="stacked"),
        FFN("mlp.down_proj"),
    ),
    final_norm="model.norm",
)


def _falcon(config: PretrainedConfig) -> Family:
    """Falcon: one fused ``query_key_value`` in three layouts (multi-query Falcon-7B, grouped Falcon-40B /
    Falcon 2, one key/value head per head falcon-rw), parallel or sequential blocks, rotary or ALiBi."""
    qkv: QKVLayout = "stacked" if config.multi_query and not config.new_decoder_architecture else "grouped"
    stack = Stack(
        "transformer.h",
        "num_attention_heads",
        Attention("self_attention", values="query_key_value", out="dense", qkv=qkv),
        FFN("mlp.dense_4h_to_h"),
        parallel_residual=bool(config.new_decoder_architecture or config.parallel_attn),
    )
    return Family(stack, final_norm="transformer.ln_f")


def _gpt_bigcode(config: PretrainedConfig) -> Family:
    """GPT-BigCode (StarCoder, SantaCoder): GPT-2's layout with one fused ``c_attn`` holding a single
    key/value head (multi-query, [q heads | k | v]) or, without multi-query, [q, k, v] per head."""
    attention = Attention("attn", values="c_attn", out="c_proj", qkv="stacked" if config.multi_query else "grouped")
    return Family(Stack("transformer.h", "n_head", attention, FFN("mlp.c_proj")), final_norm="transformer.ln_f")


def _bloom(config: PretrainedConfig) -> Family:
    """BLOOM: fused ``query_key_value`` with [q, k, v] per head, ALiBi (in the probabilities), a LayerNorm on
    the embeddings (before the first block, so in its input). Its attention module adds the residual itself."""
    if config.apply_residual_connection_post_layernorm:
        raise UnsupportedError("BLOOM models whose residual stream is the normalised input are not supported.")
    if config.pretraining_tp > 1 and config.slow_but_exact:
        raise UnsupportedError(
            "BLOOM's slow_but_exact tensor-parallel projections are not supported: load the model without it."
        )
    attention = Attention(
        "self_attention", values="query_key_value", out="dense", qkv="grouped", output_includes_residual=True
    )
    return Family(Stack("transformer.h", "n_head", attention, FFN("mlp.dense_4h_to_h")), final_norm="transformer.ln_f")


def _bart_like(*, post_ln: bool) -> Family:
    """BART, Marian (post-LN: a LayerNorm after every residual add) and mBART, M2M-100 / NLLB
    (pre-LN, with final encoder and decoder LayerNorms)."""

    def attention(module: str, norm: str) -> Attention:
        return Attention(module, values="v_proj", out="out_proj", norm_after_add=norm if post_ln else None)

    ffn = FFN("fc2", norm_after_add="final_layer_norm" if post_ln else None)
    return Family(
        encoder=Stack(
            "model.encoder.layers", "encoder_attention_heads", attention("self_attn", "self_attn_layer_norm"), ffn
        ),
        decoder=Stack(
            "model.decoder.layers",
            "decoder_attention_heads",
            attention("self_attn", "self_attn_layer_norm"),
            ffn,
            cross_attention=attention("encoder_attn", "encoder_attn_layer_norm"),
        ),
        final_norm=None if post_ln else "model.decoder.layer_norm",
        logits_bias="final_logits_bias",
    )


def _post_ln_bart(config: PretrainedConfig) -> Family:
    return _bart_like(post_ln=True)


def _pre_ln_bart(config: PretrainedConfig) -> Family:
    return _bart_like(post_ln=False)


def _t5_like(config: PretrainedConfig, *, scale_outputs: bool, probabilities_index: int = 2) -> Family:
    """T5, mT5, UMT5: pre-RMSNorm blocks without biases, relative position biases (in the probabilities),
    ``DenseReluDense.wo`` the FFN output (plain or gated); the final state is rescaled by d_model^-0.5 before
    the LM head where the model's own forward does so. T5 and mT5 attention returns (output, position bias,
    probabilities), UMT5's (output, probabilities)."""
    attention = Attention("layer.0.SelfAttention", values="v", out="o", probabilities_index=probabilities_index)
    cross = Attention("layer.1.EncDecAttention", values="v", out="o", probabilities_index=probabilities_index)
    ffn = FFN("layer.-1.DenseReluDense.wo")
    return Family(
        encoder=Stack("encoder.block", "num_heads", attention, ffn),
        decoder=Stack("decoder.block", "num_heads", attention, ffn, cross_attention=cross),
        final_norm="decoder.final_layer_norm",
        norm_kind="rmsnorm",
        output_scale=config.d_model**-0.5 if scale_outputs else 1.0,
    )


def _t5(config: PretrainedConfig) -> Family:
    return _t5_like(config, scale_outputs=getattr(config, "scale_decoder_outputs", config.tie_word_embeddings))


def _mt5(config: PretrainedConfig) -> Family:
    return _t5_like(config, scale_outputs=False)  # MT5ForConditionalGeneration never rescales


def _umt5(config: PretrainedConfig) -> Family:
    return _t5_like(config, scale_outputs=config.tie_word_embeddings, probabilities_index=1)


#: transformers ``model_type`` -> its description. Adding a family is adding an entry here
#: (see "Adding an architecture" in docs/development.md).
FAMILIES: dict[str, FamilyEntry] = {
    "gpt2": _GPT2,
    "gpt_neox": _gpt_neox,
    "opt": _opt,
    "llama": _LLAMA,
    "mistral": _LLAMA,
    "qwen2": _LLAMA,
    "gemma": _LLAMA,
    "qwen3": _LLAMA,  # + QK-norm: inside the attention, so the model's probabilities carry it
    "gemma2": _gemma2,
    "gemma3_text": _gemma2,
    "olmo2": _OLMO2,
    "phi3": _PHI3,
    "falcon": _falcon,
    "gpt_bigcode": _gpt_bigcode,
    "bloom": _bloom,
    # described per model, not at import (so mutation testing can switch ``_bart_like`` on, as every other family)
    "marian": _post_ln_bart,
    "bart": _post_ln_bart,
    "m2m_100": _pre_ln_bart,  # M2M-100, NLLB
    "mbart": _pre_ln_bart,  # mBART, mBART-50
    "t5": _t5,
    "mt5": _mt5,
    "umt5": _umt5,
}
#: transformers ``model_type`` values this package decomposes.
SUPPORTED_MODEL_TYPES: tuple[str, ...] = tuple(FAMILIES)


# --------------------------------------------------------------------------------------------------
# From a description and a model to live modules and tensors.
# --------------------------------------------------------------------------------------------------


def _module(root: nn.Module, path: str) -> nn.Module | None:
    """``root`` followed along a dotted path (list indices allowed, ``-1`` included); None if a step is None."""
    current: nn.Module | None = root
    for step in path.split("."):
        if current is None:
            return None
        if isinstance(current, nn.ModuleList | nn.Sequential) and step.lstrip("-").isdigit():
            current = current[int(step)]
        else:
            current = getattr(current, step)
    return current


def _required(root: nn.Module, path: str) -> nn.Module:
    """``_module(root, path)`` where the family description says a module must be."""
    module = _module(root, path)
    if module is None:
        raise UnsupportedError(f"This model has no module at {path!r}, where its family keeps one.")
    return module


def _tensor(module: nn.Module, name: str) -> torch.Tensor | None:
    """``module.<name>``, a parameter or buffer (None where the module registers none, e.g. no bias).

    ``nn.Module`` types its attributes as ``Tensor | Module``; this reads one that must be a tensor."""
    value = getattr(module, name)
    if value is not None and not isinstance(value, torch.Tensor):
        raise UnsupportedError(f"{type(module).__name__}.{name} is a {type(value).__name__}, not a tensor.")
    return value


def _weight(module: nn.Module) -> torch.Tensor:
    """``module.weight``, which every projection, norm and LM head read here has."""
    weight = _tensor(module, "weight")
    if weight is None:
        raise UnsupportedError(f"{type(module).__name__} has no weight.")
    return weight


def _number(module: nn.Module, name: str) -> float:
    """A plain number a module keeps as an attribute (a norm's ``eps``)."""
    return float(getattr(module, name))


def _matrix(linear: nn.Module) -> torch.Tensor:
    """A projection's weight as ``[in, out]`` (nn.Linear stores ``[out, in]``, GPT-2's Conv1D ``[in, out]``)."""
    return _weight(linear) if isinstance(linear, Conv1D) else _weight(linear).T


def _take_values(layout: QKVLayout, n_heads: int, head_dim: int, width: int) -> tuple[Callable, int]:
    """(a function cutting ``[S, heads_kv, head_dim]`` values out of ``[S, width]``, heads_kv)."""
    if layout == "separate":
        n_kv = width // head_dim
        return (lambda output: output.reshape(output.shape[0], n_kv, head_dim)), n_kv
    n_kv = (width // head_dim - n_heads) // 2  # q: n_heads, k and v: n_kv each
    if layout == "stacked":
        return (lambda output: output[:, width - n_kv * head_dim :].reshape(output.shape[0], n_kv, head_dim)), n_kv
    return (lambda output: output.reshape(output.shape[0], n_kv, -1, head_dim)[:, :, -1]), n_kv


def _norm(layer: nn.Module, path: str | None, kind: NormKind) -> PostNorm | None:
    module = _module(layer, path) if path else None
    return PostNorm.of(module, kind) if module is not None else None


def _attention(layer: nn.Module, layout: Attention, n_heads: int, norm_kind: NormKind) -> AttentionSpec:
    module = _required(layer, layout.module)
    out = _required(module, layout.out)
    values = _required(module, layout.values)
    out_matrix = _matrix(out)  # [H * head_dim, d]
    head_dim = out_matrix.shape[0] // n_heads
    take_values, n_kv = _take_values(layout.qkv, n_heads, head_dim, _matrix(values).shape[1])
    if n_kv < 1 or n_heads % n_kv:
        raise UnsupportedError(f"Cannot read {n_kv} key/value heads for {n_heads} query heads from {layout.values}.")
    return AttentionSpec(
        module=module,
        out_module=out,
        value_module=values,
        take_values=take_values,
        out_weight=out_matrix.reshape(n_heads, head_dim, out_matrix.shape[1]),
        out_bias=_tensor(out, "bias"),
        n_heads=n_heads,
        post_norm=_norm(layer, layout.norm_after_add, norm_kind),
        branch_norm=_norm(layer, layout.branch_norm, norm_kind),
        output_includes_residual=layout.output_includes_residual,
        probabilities_index=layout.probabilities_index,
    )


def _blocks(model: PreTrainedModel, stack: Stack, norm_kind: NormKind) -> list[BlockSpec]:
    n_heads = getattr(model.config, stack.heads)
    blocks = []
    for layer in _layers(model, stack.layers):
        out = _required(layer, stack.ffn.out)
        ffn_norms = (_norm(layer, stack.ffn.norm_after_add, norm_kind), _norm(layer, stack.ffn.branch_norm, norm_kind))
        cross = stack.cross_attention
        blocks.append(
            BlockSpec(
                module=layer,
                self_attention=_attention(layer, stack.self_attention, n_heads, norm_kind),
                cross_attention=_attention(layer, cross, n_heads, norm_kind) if cross else None,
                ffn=FFNSpec(out, _matrix(out), *ffn_norms),
                parallel_residual=stack.parallel_residual,
            )
        )
    return blocks


def _layers(model: nn.Module, path: str) -> nn.ModuleList | nn.Sequential:
    """The blocks at ``path`` (every family keeps its layers in an ``nn.ModuleList``)."""
    layers = _required(model, path)
    if not isinstance(layers, nn.ModuleList | nn.Sequential):
        raise UnsupportedError(f"{path!r} is a {type(layers).__name__}, not a list of layers.")
    return layers


def _readout(model: PreTrainedModel, family: Family) -> Callable[[torch.Tensor], torch.Tensor]:
    lm_head = model.get_output_embeddings()
    if lm_head is None:
        raise UnsupportedError(f"{type(model).__name__} has no language-model head to read logits with.")
    project_out = _module(model, family.project_out) if family.project_out else None
    logits_bias = getattr(model, family.logits_bias, None) if family.logits_bias else None
    scale, cap = family.output_scale, family.logit_softcap
    dtype = _weight(lm_head).dtype  # a float16 / bfloat16 model's head takes its own dtype, not float32 states

    def readout(states: torch.Tensor) -> torch.Tensor:
        states = states.to(dtype)
        if project_out is not None:
            states = project_out(states)
        logits = lm_head(states * scale if scale != 1.0 else states)
        if logits_bias is not None:
            logits = logits + logits_bias
        return cap * torch.tanh(logits / cap) if cap else logits

    return readout


def family_of(model: PreTrainedModel) -> Family:
    """The description of ``model``'s family; an unsupported family is a clear :class:`UnsupportedError`."""
    model_type = model.config.model_type
    if model_type not in FAMILIES:
        raise UnsupportedError(
            f"The contribution graph does not support model type {model_type!r}; "
            f"supported: {', '.join(SUPPORTED_MODEL_TYPES)}."
        )
    entry = FAMILIES[model_type]
    return entry if isinstance(entry, Family) else entry(model.config)


def architecture_spec(model: PreTrainedModel) -> ArchitectureSpec:
    """The adapter's view of ``model``; an unsupported family is a clear :class:`UnsupportedError`."""
    family = family_of(model)
    encoder = _blocks(model, family.encoder, family.norm_kind) if family.encoder else []
    decoder = _blocks(model, family.decoder, family.norm_kind)
    final_norm = _module(model, family.final_norm) if family.final_norm else None
    return ArchitectureSpec(encoder, decoder, final_norm, _readout(model, family))
