"""``build_contribution_graph``: one forward pass -> decomposition -> routes -> a ContributionGraph."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from attribution.contributions.adapters import ArchitectureSpec, architecture_spec
from attribution.contributions.decompose import (
    DEFAULT_BUDGET,
    BlockDecomposition,
    LazyBlocks,
    decompose_block,
    neuron_scores,
    run_instrumented,
)
from attribution.contributions.logit_lens import LensRequest, LogitLens
from attribution.contributions.routes import node_id, trace_routes
from attribution.errors import InvalidInputError
from attribution.models import LoadedModel, prompt_with_continuation
from attribution.offload import offloaded_weights_loaded
from attribution.results import ContributionGraph, GraphEdge, GraphNode

Progress = Callable[[float, str], None]
#: Longest target generated when a seq2seq model is given no target.
MAX_GENERATED_TOKENS = 64


def _check_options(threshold: float, top_k: int) -> None:
    if not isinstance(threshold, int | float) or not 0.0 <= threshold < 1.0:
        raise InvalidInputError(f"The threshold must be a number in [0, 1), not {threshold!r}.")
    if not isinstance(top_k, int) or top_k < 0:
        raise InvalidInputError(f"top_k must be a non-negative integer, not {top_k!r}.")


def resolve_root_tokens(root_tokens: int | list[int] | str, n_tokens: int) -> list[int]:
    """Root token indices (negative counts from the end, ``"all"`` = every token), sorted, unique."""
    if root_tokens == "all":
        return list(range(n_tokens))
    indices = [root_tokens] if isinstance(root_tokens, int) else root_tokens
    if (
        not isinstance(indices, list | tuple)
        or not indices
        or not all(isinstance(i, int) and not isinstance(i, bool) for i in indices)
    ):
        raise InvalidInputError(f"Root tokens must be an index, a list of indices or 'all', not {root_tokens!r}.")
    resolved = set()
    for index in indices:
        if not -n_tokens <= index < n_tokens:
            raise InvalidInputError(
                f"Token index {index} is out of range: the text has {n_tokens} tokens "
                f"(valid: {-n_tokens} to {n_tokens - 1})."
            )
        resolved.add(index % n_tokens)
    return sorted(resolved)


def _prepare_inputs(
    loaded: LoadedModel, text: str, target: str | None, max_tokens: int | None
) -> tuple[dict[str, torch.Tensor], list[int], list[int], str]:
    """Model inputs, source ids (seq2seq), decoder-side ids, and the target text explained."""
    tokenizer, device = loaded.tokenizer, loaded.device
    if loaded.kind == "causal":
        # With a target: the same whole text Inseq attribution reads (so both give the same tokens).
        whole = prompt_with_continuation(text, target) if target else text
        ids = tokenizer(whole, add_special_tokens=True)["input_ids"]
        limit = min(x for x in (max_tokens, loaded.max_input_tokens, 10**9) if x)
        if len(ids) > limit:
            raise InvalidInputError(f"Prompt and target are {len(ids)} tokens long; at most {limit} are accepted here.")
        return {"input_ids": torch.tensor([ids], device=device)}, [], ids, target or ""
    source_ids = tokenizer(text, add_special_tokens=True)["input_ids"]
    start = loaded.config.decoder_start_token_id
    eos = tokenizer.eos_token_id
    if target is None:
        longest = min(MAX_GENERATED_TOKENS, (loaded.max_input_tokens or MAX_GENERATED_TOKENS + 1) - 1)
        with torch.no_grad():
            generated = loaded.model.generate(
                torch.tensor([source_ids], device=device),
                max_new_tokens=longest,
                do_sample=False,
                num_beams=1,
            )[0].tolist()
        decoder_ids = generated[:-1] if generated[-1] == eos and len(generated) > 1 else generated
        target = tokenizer.decode(generated, skip_special_tokens=True)
    else:
        if not target.strip():
            raise InvalidInputError("The target text is empty: give a translation or leave it out to generate one.")
        labels = tokenizer(text_target=target, add_special_tokens=True)["input_ids"]
        decoder_ids = [start, *(labels[:-1] if labels and labels[-1] == eos else labels)]
        limit = min(x for x in (max_tokens, loaded.max_input_tokens, 10**9) if x)
        if len(decoder_ids) > limit:
            raise InvalidInputError(f"The target is {len(decoder_ids)} tokens long; at most {limit} are accepted here.")
    inputs = {
        "input_ids": torch.tensor([source_ids], device=device),
        "decoder_input_ids": torch.tensor([decoder_ids], device=device),
    }
    return inputs, source_ids, decoder_ids, target


def decompose_model(
    loaded: LoadedModel, inputs: dict[str, torch.Tensor], spec: ArchitectureSpec | None = None
) -> tuple[list[BlockDecomposition], list[BlockDecomposition]]:
    """Encoder and decoder block decompositions of one forward pass (encoder empty for causal models)."""
    spec = spec or architecture_spec(loaded.model)
    encoder_captured, decoder_captured = run_instrumented(loaded.model, spec, inputs)
    encoder = [decompose_block(c, s) for c, s in zip(encoder_captured, spec.encoder_blocks, strict=True)]
    decoder = [decompose_block(c, s) for c, s in zip(decoder_captured, spec.decoder_blocks, strict=True)]
    return encoder, decoder


def _parse_id(node: str) -> tuple[str, int, str, int]:
    side, layer, kind, token = node.split(":")
    return side, int(layer), kind, int(token)


def _node_state(blocks: Sequence[BlockDecomposition], layer: int, kind: str, token: int) -> torch.Tensor:
    if layer == 0:
        return blocks[0].residual_in[token]
    block = blocks[layer - 1]
    states = {
        "after_attention": block.self_attention.whole,
        "after_cross_attention": block.cross_attention.whole if block.cross_attention is not None else None,
        "after_ffn": block.ffn.whole,
    }
    return states[kind][token]


def _lens_request(blocks: Sequence[BlockDecomposition], layer: int, kind: str, token: int) -> LensRequest:
    """Residual nodes get top tokens; block nodes (attention output, FFN) promoted/suppressed tokens."""
    if kind == "ffn":
        block = blocks[layer - 1]
        mid = block.cross_attention if block.cross_attention is not None else block.self_attention
        return LensRequest(block.ffn.whole[token], before=mid.whole[token], top=False)
    state = _node_state(blocks, layer, kind, token)
    if kind == "after_attention":
        return LensRequest(state, before=blocks[layer - 1].residual_in[token])
    if kind == "after_cross_attention":
        return LensRequest(state, before=blocks[layer - 1].self_attention.whole[token])
    return LensRequest(state)


def _build_nodes(
    edges: list[GraphEdge],
    roots: list[int],
    n_layers: int,
    encoder: Sequence[BlockDecomposition],
    decoder: Sequence[BlockDecomposition],
    lens: LogitLens,
    top_k: int,
) -> list[GraphNode]:
    root_ids = [node_id("decoder", n_layers, "after_ffn", i) for i in roots]
    ids = list(dict.fromkeys([*root_ids, *(e.target for e in edges), *(e.source for e in edges)]))
    nodes = []
    for identifier in ids:
        side, layer, kind, token = _parse_id(identifier)
        nodes.append(GraphNode(id=identifier, side=side, layer=layer, kind=kind, token_index=token))
    if top_k == 0:
        return nodes
    decoder_nodes = [n for n in nodes if n.side == "decoder"]
    requests = [_lens_request(decoder, n.layer, n.kind, n.token_index) for n in decoder_nodes]
    for node, result in zip(decoder_nodes, lens.read(requests, top_k), strict=True):
        node.top_tokens, node.promoted, node.suppressed = result.top_tokens, result.promoted, result.suppressed
    for side, blocks in (("encoder", encoder), ("decoder", decoder)):
        ffn_nodes = [n for n in nodes if n.side == side and n.kind == "ffn"]
        for node in ffn_nodes:
            scores = neuron_scores(blocks[node.layer - 1].ffn, [node.token_index])[0]
            best = scores.topk(min(top_k, scores.numel()))
            node.top_neurons = [
                (int(i), float(v)) for i, v in zip(best.indices.tolist(), best.values.tolist(), strict=True)
            ]
    return nodes


def build_contribution_graph(
    loaded: LoadedModel,
    text: str,
    *,
    target: str | None = None,
    threshold: float = 0.04,
    root_tokens: int | list[int] | str = -1,
    renormalize: bool = False,
    top_k: int = 5,
    max_tokens: int | None = None,
    progress: Progress | None = None,
    final_norm_in_logit_lens: bool = True,
    budget: int = DEFAULT_BUDGET,
) -> ContributionGraph:
    """Information-flow routes (Ferrando & Voita, 2024) of ``text`` through ``loaded``'s model.

    Causal models: ``target`` (optional) is appended to the prompt; roots index the whole token
    sequence and the default root (-1) explains the prediction after the last token. Seq2seq
    models: ``text`` is the source, ``target`` the target sentence (generated greedily when None);
    the decoder-side tokens are the decoder inputs (start token, then the target tokens), and the
    node at position i predicts token i + 1 (the last one predicts the end of the sentence).
    ``top_k`` = 0 skips the logit lens and neuron lists. ``budget`` bounds the elements of one
    overshoot-correction chunk (memory).
    """
    _check_options(threshold, top_k)
    architecture_spec(loaded.model)  # an unsupported family is refused before anything else
    report = progress or (lambda fraction, message: None)
    text = loaded.validate_text(text, max_tokens=max_tokens)
    if target:  # refused before tokenizing when far too long or not valid Unicode
        loaded.precheck_text(target, role="target", max_tokens=max_tokens)
    with loaded.lock, offloaded_weights_loaded(loaded.model):
        spec = architecture_spec(loaded.model)  # in here: accelerate-offloaded weights are real tensors
        report(0.0, "preparing inputs")
        inputs, source_ids, decoder_ids, target_text = _prepare_inputs(loaded, text, target, max_tokens)
        roots = resolve_root_tokens(root_tokens, len(decoder_ids))
        report(0.1, "forward pass")
        encoder_captured, decoder_captured = run_instrumented(loaded.model, spec, inputs)
        encoder = LazyBlocks(encoder_captured, spec.encoder_blocks)
        decoder = LazyBlocks(decoder_captured, spec.decoder_blocks)
        report(0.3, "tracing routes")
        edges = trace_routes(
            decoder, roots, threshold=threshold, renormalize=renormalize, encoder=encoder, budget=budget
        )
        report(0.7, "logit lens")
        lens = LogitLens(spec, loaded.tokenizer, final_norm=final_norm_in_logit_lens)
        nodes = _build_nodes(edges, roots, len(decoder), encoder, decoder, lens, top_k)
    report(1.0, "done")
    to_tokens = loaded.tokenizer.convert_ids_to_tokens
    return ContributionGraph(
        provenance=loaded.provenance(),
        source_text=text,
        target_text=target_text,
        source_tokens=[str(t) for t in to_tokens(source_ids)] if loaded.kind == "seq2seq" else [],
        target_tokens=[str(t) for t in to_tokens(decoder_ids)],
        n_layers=len(decoder),
        n_heads=spec.decoder_blocks[0].self_attention.n_heads,
        threshold=float(threshold),
        renormalized=renormalize,
        root_tokens=roots,
        nodes=nodes,
        edges=edges,
        n_encoder_layers=len(encoder),
        final_norm_in_logit_lens=lens.final_norm,
    )
