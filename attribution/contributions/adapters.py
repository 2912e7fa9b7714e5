"""Architecture adapters: where each supported family keeps the pieces the decomposition needs.

One forward pass is instrumented with hooks. Per block, an adapter names

- the block module (its input is the residual stream entering the block),
- per attention (self, and cross for seq2seq decoders): the module whose output holds the value
  vectors, how to cut ``[S, heads_kv, head_dim]`` values out of it, the output projection as
  ``[heads, head_dim, d_model]`` per-head matrices plus its bias, and a post-residual LayerNorm
  when the family normalises *after* the residual add (BART, Marian, OPT-350m),
- the FFN's output projection (its input are the neuron activations, its output the FFN output),
- whether attention and FFN read the same residual in parallel (GPT-NeoX / Pythia).

Attention probabilities come from the model itself (``output_attentions=True``, eager attention),
so rotary embeddings, relative position biases and masks need no special handling: they change
where a token attends, not what its value vector is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from attribution.errors import UnsupportedError


@dataclass(frozen=True)
class PostNorm:
    """A LayerNorm applied to ``residual + block output`` (post-LN families)."""

    weight: torch.Tensor | None
    bias: torch.Tensor | None
    eps: float

    @classmethod
    def of(cls, module: nn.LayerNorm) -> PostNorm:
        return cls(weight=module.weight, bias=module.bias, eps=module.eps)


@dataclass(frozen=True)
class AttentionSpec:
    #: the attention module: its output's first element is the attention output (after the output
    #: projection, before the residual add), element ``probabilities_index`` the probabilities ``[batch, H, T, S]``
    module: nn.Module
    #: the output projection: its input is the heads' mixed values side by side ``[*, H * head_dim]``
    out_module: nn.Module
    value_module: nn.Module
    #: module output (batch squeezed, ``[S, *]``) -> values ``[S, heads_kv, head_dim]``
    take_values: Callable[[torch.Tensor], torch.Tensor]
    out_weight: torch.Tensor  # [heads, head_dim, d_model]
    out_bias: torch.Tensor | None
    n_heads: int
    post_norm: PostNorm | None = None
    #: where ``module``'s output tuple holds the probabilities (T5 returns ``(output, position_bias, probs)``)
    probabilities_index: int = 1


@dataclass(frozen=True)
class FFNSpec:
    out_module: nn.Module  # input: neuron activations [T, d_ff]; output: FFN output [T, d_model]
    out_weight: torch.Tensor  # [d_ff, d_model]: row n is what neuron n writes per unit activation
    post_norm: PostNorm | None = None


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


def _linear_out_heads(linear: nn.Linear, n_heads: int) -> torch.Tensor:
    """nn.Linear computing ``concat(heads) @ W.T``: W.T split per head -> [heads, head_dim, d]."""
    weight = linear.weight.T
    return weight.reshape(n_heads, weight.shape[0] // n_heads, weight.shape[1])


def _split_heads(n_kv_heads: int) -> Callable[[torch.Tensor], torch.Tensor]:
    def take(output: torch.Tensor) -> torch.Tensor:
        return output.reshape(output.shape[0], n_kv_heads, -1)

    return take


def _qkv_attention(
    module: nn.Module, *, value_name: str, out_name: str, n_heads: int, n_kv_heads: int
) -> AttentionSpec:
    out = getattr(module, out_name)
    return AttentionSpec(
        module=module,
        out_module=out,
        value_module=getattr(module, value_name),
        take_values=_split_heads(n_kv_heads),
        out_weight=_linear_out_heads(out, n_heads),
        out_bias=out.bias,
        n_heads=n_heads,
    )


def _gpt2(model: nn.Module) -> ArchitectureSpec:
    config = model.config
    n_heads, d_model = config.n_head, config.n_embd

    def take_values(output: torch.Tensor) -> torch.Tensor:
        return output[:, 2 * d_model :].reshape(output.shape[0], n_heads, -1)

    blocks = []
    for block in model.transformer.h:
        c_proj = block.attn.c_proj  # Conv1D: weight [in, out]
        attention = AttentionSpec(
            module=block.attn,
            out_module=c_proj,
            value_module=block.attn.c_attn,
            take_values=take_values,
            out_weight=c_proj.weight.reshape(n_heads, -1, d_model),
            out_bias=c_proj.bias,
            n_heads=n_heads,
        )
        ffn = FFNSpec(out_module=block.mlp.c_proj, out_weight=block.mlp.c_proj.weight)
        blocks.append(BlockSpec(module=block, self_attention=attention, cross_attention=None, ffn=ffn))
    lm_head = model.get_output_embeddings()
    return ArchitectureSpec([], blocks, model.transformer.ln_f, lambda states: lm_head(states))


def _gpt_neox(model: nn.Module) -> ArchitectureSpec:
    config = model.config
    n_heads = config.num_attention_heads

    def take_values(output: torch.Tensor) -> torch.Tensor:
        per_head = output.reshape(output.shape[0], n_heads, -1)  # [T, H, 3 * head_dim]: q, k, v per head
        return per_head[..., 2 * per_head.shape[-1] // 3 :]

    blocks = []
    for layer in model.gpt_neox.layers:
        dense = layer.attention.dense
        attention = AttentionSpec(
            module=layer.attention,
            out_module=dense,
            value_module=layer.attention.query_key_value,
            take_values=take_values,
            out_weight=_linear_out_heads(dense, n_heads),
            out_bias=dense.bias,
            n_heads=n_heads,
        )
        out = layer.mlp.dense_4h_to_h
        ffn = FFNSpec(out_module=out, out_weight=out.weight.T)
        blocks.append(BlockSpec(layer, attention, None, ffn, parallel_residual=bool(config.use_parallel_residual)))
    lm_head = model.get_output_embeddings()
    return ArchitectureSpec([], blocks, model.gpt_neox.final_layer_norm, lambda states: lm_head(states))


def _opt(model: nn.Module) -> ArchitectureSpec:
    config = model.config
    n_heads = config.num_attention_heads
    post_ln = not config.do_layer_norm_before
    decoder = model.model.decoder
    blocks = []
    for layer in decoder.layers:
        attention = _qkv_attention(
            layer.self_attn, value_name="v_proj", out_name="out_proj", n_heads=n_heads, n_kv_heads=n_heads
        )
        if post_ln:
            attention = _with_post_norm(attention, layer.self_attn_layer_norm)
        ffn = FFNSpec(layer.fc2, layer.fc2.weight.T, PostNorm.of(layer.final_layer_norm) if post_ln else None)
        blocks.append(BlockSpec(layer, attention, None, ffn))
    lm_head = model.get_output_embeddings()
    project_out = decoder.project_out

    def readout(states: torch.Tensor) -> torch.Tensor:
        return lm_head(project_out(states) if project_out is not None else states)

    return ArchitectureSpec([], blocks, decoder.final_layer_norm, readout)


def _llama_family(model: nn.Module) -> ArchitectureSpec:
    config = model.config
    n_heads = config.num_attention_heads
    n_kv_heads = getattr(config, "num_key_value_heads", None) or n_heads
    blocks = []
    for layer in model.model.layers:
        attention = _qkv_attention(
            layer.self_attn, value_name="v_proj", out_name="o_proj", n_heads=n_heads, n_kv_heads=n_kv_heads
        )
        down = layer.mlp.down_proj
        blocks.append(BlockSpec(layer, attention, None, FFNSpec(down, down.weight.T)))
    lm_head = model.get_output_embeddings()
    return ArchitectureSpec([], blocks, model.model.norm, lambda states: lm_head(states))


def _with_post_norm(spec: AttentionSpec, norm: nn.LayerNorm) -> AttentionSpec:
    return dataclasses.replace(spec, post_norm=PostNorm.of(norm))


def _bart_family(model: nn.Module) -> ArchitectureSpec:
    """BART and Marian: post-LN encoder and decoder layers (LayerNorm after every residual add)."""
    config = model.config

    def block(layer: nn.Module, n_heads: int, cross: bool) -> BlockSpec:
        def attention(module: nn.Module, norm: nn.LayerNorm) -> AttentionSpec:
            spec = _qkv_attention(module, value_name="v_proj", out_name="out_proj", n_heads=n_heads, n_kv_heads=n_heads)
            return _with_post_norm(spec, norm)

        self_attention = attention(layer.self_attn, layer.self_attn_layer_norm)
        cross_attention = attention(layer.encoder_attn, layer.encoder_attn_layer_norm) if cross else None
        ffn = FFNSpec(layer.fc2, layer.fc2.weight.T, PostNorm.of(layer.final_layer_norm))
        return BlockSpec(layer, self_attention, cross_attention, ffn)

    base = model.model
    for stack in (base.encoder, base.decoder):
        if getattr(stack, "layer_norm", None) is not None:
            raise UnsupportedError(
                f"{config.model_type} models with a final encoder/decoder LayerNorm (pre-LN variants such as mBART) "
                "are not supported by the contribution graph yet."
            )
    encoder = [block(layer, config.encoder_attention_heads, cross=False) for layer in base.encoder.layers]
    decoder = [block(layer, config.decoder_attention_heads, cross=True) for layer in base.decoder.layers]
    lm_head = model.get_output_embeddings()
    logits_bias = getattr(model, "final_logits_bias", None)

    def readout(states: torch.Tensor) -> torch.Tensor:
        logits = lm_head(states)
        return logits + logits_bias if logits_bias is not None else logits

    return ArchitectureSpec(encoder, decoder, None, readout)


def _t5(model: nn.Module) -> ArchitectureSpec:
    """T5: pre-RMSNorm blocks without biases; ``DenseReluDense.wo`` is the FFN output projection."""
    config = model.config
    n_heads = config.num_heads

    def attention(module: nn.Module) -> AttentionSpec:
        spec = _qkv_attention(module, value_name="v", out_name="o", n_heads=n_heads, n_kv_heads=n_heads)
        return dataclasses.replace(spec, probabilities_index=2)  # T5Attention: (output, position_bias, probs)

    def block(t5_block: nn.Module, cross: bool) -> BlockSpec:
        self_attention = attention(t5_block.layer[0].SelfAttention)
        cross_attention = attention(t5_block.layer[1].EncDecAttention) if cross else None
        wo = t5_block.layer[-1].DenseReluDense.wo
        return BlockSpec(t5_block, self_attention, cross_attention, FFNSpec(wo, wo.weight.T))

    encoder = [block(b, cross=False) for b in model.encoder.block]
    decoder = [block(b, cross=True) for b in model.decoder.block]
    lm_head = model.get_output_embeddings()
    scale = config.d_model**-0.5 if getattr(config, "scale_decoder_outputs", config.tie_word_embeddings) else 1.0
    if model.encoder.final_layer_norm is None:
        raise UnsupportedError("T5 variants without a final encoder LayerNorm are not supported.")
    return ArchitectureSpec(encoder, decoder, model.decoder.final_layer_norm, lambda states: lm_head(states * scale))


_ADAPTERS: dict[str, Callable[[nn.Module], ArchitectureSpec]] = {
    "gpt2": _gpt2,
    "gpt_neox": _gpt_neox,
    "opt": _opt,
    "llama": _llama_family,
    "mistral": _llama_family,
    "qwen2": _llama_family,
    "gemma": _llama_family,
    "marian": _bart_family,
    "bart": _bart_family,
    "t5": _t5,
}
#: transformers ``model_type`` values this package decomposes.
SUPPORTED_MODEL_TYPES: tuple[str, ...] = tuple(_ADAPTERS)


def architecture_spec(model: nn.Module) -> ArchitectureSpec:
    """The adapter's view of ``model``; an unsupported family is a clear :class:`UnsupportedError`."""
    model_type = model.config.model_type
    if model_type not in _ADAPTERS:
        raise UnsupportedError(
            f"The contribution graph does not support model type {model_type!r}; "
            f"supported: {', '.join(SUPPORTED_MODEL_TYPES)}."
        )
    return _ADAPTERS[model_type](model)
