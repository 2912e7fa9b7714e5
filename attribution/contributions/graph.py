"""``build_contribution_graph``: one forward pass -> decomposition -> routes -> a ContributionGraph.

``build_contribution_graphs``: the same for many records, their forward passes shared in padded batches.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter

import torch

from attribution.anatomy.adapters import ArchitectureSpec, architecture_spec
from attribution.anatomy.inputs import pad_token_id, prepare_inputs
from attribution.contributions.decompose import (
    DEFAULT_BUDGET,
    BlockDecomposition,
    CapturedBlock,
    LazyBlocks,
    decompose_block,
    neuron_scores,
    run_instrumented,
    run_instrumented_batch,
)
from attribution.contributions.logit_lens import LensRequest, LogitLens
from attribution.contributions.routes import node_id, trace_routes
from attribution.errors import BudgetExceededError, InvalidInputError
from attribution.languages import (
    NO_LANGUAGES,
    Languages,
    check_languages,
    languages_set,
    provenance_with,
)
from attribution.models import LoadedModel
from attribution.offload import offloaded_weights_loaded
from attribution.progress import Progress, no_progress
from attribution.results import NODE_KINDS, SIDES, ContributionGraph, GraphEdge, GraphNode, NodeKind, Side


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


def decompose_model(
    loaded: LoadedModel, inputs: dict[str, torch.Tensor], spec: ArchitectureSpec | None = None
) -> tuple[list[BlockDecomposition], list[BlockDecomposition]]:
    """Encoder and decoder block decompositions of one forward pass (encoder empty for causal models)."""
    spec = spec or architecture_spec(loaded.model)
    encoder_captured, decoder_captured = run_instrumented(loaded.model, spec, inputs)
    encoder = [decompose_block(c, s) for c, s in zip(encoder_captured, spec.encoder_blocks, strict=True)]
    decoder = [decompose_block(c, s) for c, s in zip(decoder_captured, spec.decoder_blocks, strict=True)]
    return encoder, decoder


def _parse_id(node: str) -> tuple[Side, int, NodeKind, int]:
    side, layer, kind, token = node.split(":")
    assert side in SIDES and kind in NODE_KINDS  # every id is spelled by node_id
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
    state = states[kind]
    assert state is not None  # after_cross_attention nodes exist only in blocks with cross-attention
    return state[token]


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
    targets, sources = map(attrgetter("target"), edges), map(attrgetter("source"), edges)
    ids = list(dict.fromkeys(chain(root_ids, targets, sources)))  # in order of first appearance
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


@dataclass(frozen=True)
class _GraphOptions:
    """What shapes a graph once the forward pass is captured (checked by :func:`_check_options`)."""

    threshold: float
    renormalize: bool
    top_k: int
    final_norm_in_logit_lens: bool
    budget: int


@dataclass
class _Prepared:
    """One record's checked text, model inputs, tokens and roots (before its forward pass)."""

    text: str
    inputs: dict[str, torch.Tensor]
    source_ids: list[int]
    decoder_ids: list[int]
    target_text: str
    roots: list[int]
    languages: Languages = NO_LANGUAGES


def _check_texts(loaded: LoadedModel, text: str, target: str | None, max_tokens: int | None) -> str:
    """The text as the model reads it; refused before tokenizing when far too long or not valid Unicode."""
    text = loaded.validate_text(text, max_tokens=max_tokens)
    if target:
        loaded.precheck_text(target, role="target", max_tokens=max_tokens)
    return text


def _prepare(
    loaded: LoadedModel,
    text: str,
    target: str | None,
    max_tokens: int | None,
    root_tokens: int | list[int] | str,
    languages: Languages = NO_LANGUAGES,
) -> _Prepared:
    """Inputs and roots of one checked text (under the model's lock, with ``languages`` set on the tokenizer:
    a seq2seq target may be generated)."""
    inputs, source_ids, decoder_ids, target_text = prepare_inputs(loaded, text, target, max_tokens, languages)
    roots = resolve_root_tokens(root_tokens, len(decoder_ids))
    return _Prepared(text, inputs, source_ids, decoder_ids, target_text, roots, languages)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a graph's edges and nodes are made.

    A graph holds up to millions of small objects (edges, head-weight lists, nodes), none in a
    cycle; while they pile up the collector walks every object of the process again and again
    (torch and transformers hold hundreds of thousands): at T = 128 and tau = 0 that cost more than
    all the arithmetic. Paused, they are walked once, by the next collection after the graph.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _graph(
    loaded: LoadedModel,
    spec: ArchitectureSpec,
    prepared: _Prepared,
    captured: tuple[list[CapturedBlock], list[CapturedBlock]],
    options: _GraphOptions,
    report: Progress,
) -> ContributionGraph:
    """The graph of one record from its captured forward pass (under the model's lock: the logit lens reads it)."""
    encoder = LazyBlocks(captured[0], spec.encoder_blocks)
    decoder = LazyBlocks(captured[1], spec.decoder_blocks)
    roots = prepared.roots
    report(0.3, 1, "tracing routes")
    with _collector_paused():
        edges = trace_routes(
            decoder,
            roots,
            threshold=options.threshold,
            renormalize=options.renormalize,
            encoder=encoder,
            budget=options.budget,
        )
        report(0.7, 1, "logit lens")
        lens = LogitLens(spec, loaded.tokenizer, final_norm=options.final_norm_in_logit_lens)
        nodes = _build_nodes(edges, roots, len(decoder), encoder, decoder, lens, options.top_k)
    to_tokens = loaded.tokenizer.convert_ids_to_tokens
    return ContributionGraph(
        provenance=provenance_with(loaded, prepared.languages),
        source_text=prepared.text,
        target_text=prepared.target_text,
        source_tokens=[str(t) for t in to_tokens(prepared.source_ids)] if loaded.kind == "seq2seq" else [],
        target_tokens=[str(t) for t in to_tokens(prepared.decoder_ids)],
        n_layers=len(decoder),
        n_heads=spec.decoder_blocks[0].self_attention.n_heads,
        threshold=float(options.threshold),
        renormalized=options.renormalize,
        root_tokens=roots,
        nodes=nodes,
        edges=edges,
        n_encoder_layers=len(encoder),
        final_norm_in_logit_lens=lens.final_norm,
    )


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
    languages: Languages | None = None,
) -> ContributionGraph:
    """Information-flow routes (Ferrando & Voita, 2024) of ``text`` through ``loaded``'s model.

    Causal models: ``target`` (optional) is appended to the prompt; roots index the whole token
    sequence and the default root (-1) explains the prediction after the last token. Seq2seq
    models: ``text`` is the source, ``target`` the target sentence (generated greedily when None);
    the decoder-side tokens are the decoder inputs (start token, then the target tokens), and the
    node at position i predicts token i + 1 (the last one predicts the end of the sentence).
    ``top_k`` = 0 skips the logit lens and neuron lists. ``budget`` bounds the elements of one
    overshoot-correction chunk (memory). ``languages``: the source and target language codes of a
    multilingual translation model (see :mod:`attribution.languages`). ``progress`` hears of each stage
    (fractions of 1).
    """
    _check_options(threshold, top_k)
    options = _GraphOptions(threshold, renormalize, top_k, final_norm_in_logit_lens, budget)
    architecture_spec(loaded.model)  # an unsupported family is refused before anything else
    languages = check_languages(loaded, languages)
    report = progress or no_progress
    text = _check_texts(loaded, text, target, max_tokens)
    with loaded.lock, offloaded_weights_loaded(loaded.model), languages_set(loaded, languages):
        spec = architecture_spec(loaded.model)  # in here: accelerate-offloaded weights are real tensors
        report(0.0, 1, "preparing inputs")
        prepared = _prepare(loaded, text, target, max_tokens, root_tokens, languages)
        report(0.1, 1, "forward pass")
        captured = run_instrumented(loaded.model, spec, prepared.inputs)
        graph = _graph(loaded, spec, prepared, captured, options, report)
    report(1.0, 1, "done")
    return graph


#: Families whose padded batch does not reproduce each record's own forward pass; they run one record at a time.
PADDING_INEXACT: frozenset[str] = frozenset()


def build_contribution_graphs(
    loaded: LoadedModel,
    texts: Sequence[str],
    *,
    targets: Sequence[str | None] | None = None,
    threshold: float = 0.04,
    root_tokens: int | list[int] | str = -1,
    renormalize: bool = False,
    top_k: int = 5,
    max_tokens: int | None = None,
    final_norm_in_logit_lens: bool = True,
    budget: int = DEFAULT_BUDGET,
    batch_size: int = 8,
    languages: Languages | None = None,
) -> list[ContributionGraph | Exception]:
    """:func:`build_contribution_graph` for many texts: per text, in order, its graph or the error it met.

    The forward pass runs once per ``batch_size`` records over a right-padded batch
    (:func:`~attribution.contributions.decompose.run_instrumented_batch`); each record's captured
    tensors are cut to its own lengths and its graph is built from them by the one-record code, so it
    is the graph that record gets alone (tested on every family, to float32 rounding). Decomposition
    and route tracing stay per record. A seq2seq record without a target has it generated alone
    first (greedy decoding), then joins the batch. Families in :data:`PADDING_INEXACT` run one
    record at a time. A bad record gets its own error; a batch whose forward pass fails is retried
    record by record, so the failure lands on the record that caused it. Bad options and a time
    budget running out (:class:`~attribution.errors.BudgetExceededError`) are raised.
    """
    _check_options(threshold, top_k)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise InvalidInputError(f"batch_size must be a positive whole number, not {batch_size!r}.")
    options = _GraphOptions(threshold, renormalize, top_k, final_norm_in_logit_lens, budget)
    architecture_spec(loaded.model)
    languages = check_languages(loaded, languages)  # one pair for the whole batch
    targets = list(targets) if targets is not None else [None] * len(texts)
    if len(targets) != len(texts):
        raise InvalidInputError(f"{len(texts)} texts but {len(targets)} targets: give one target per text.")
    results: dict[int, ContributionGraph | Exception] = {}  # by position: every text gets one
    with loaded.lock, offloaded_weights_loaded(loaded.model), languages_set(loaded, languages):
        spec = architecture_spec(loaded.model)
        prepared: dict[int, _Prepared] = {}
        for position, (text, target) in enumerate(zip(texts, targets, strict=True)):
            try:
                prepared[position] = _prepare(
                    loaded, _check_texts(loaded, text, target, max_tokens), target, max_tokens, root_tokens, languages
                )
            except BudgetExceededError:
                raise
            except Exception as error:
                results[position] = error
        ready = list(prepared)
        size = 1 if loaded.model.config.model_type in PADDING_INEXACT else batch_size
        for start in range(0, len(ready), size):
            chunk = ready[start : start + size]
            captures = _captured_batch(loaded, spec, [prepared[p] for p in chunk])
            for index, position in enumerate(chunk):
                captured, captures[index] = captures[index], None  # freed once its graph is built
                if isinstance(captured, Exception):
                    results[position] = captured
                    continue
                assert captured is not None  # freed only after this use
                try:
                    results[position] = _graph(loaded, spec, prepared.pop(position), captured, options, no_progress)
                except BudgetExceededError:
                    raise
                except Exception as error:
                    results[position] = error
    return [results[position] for position in range(len(texts))]


def _captured_batch(
    loaded: LoadedModel, spec: ArchitectureSpec, records: list[_Prepared]
) -> list[tuple[list[CapturedBlock], list[CapturedBlock]] | Exception | None]:
    """Every record's captured forward pass from one padded batch, or record by record when the batch fails."""
    inputs = [record.inputs for record in records]
    try:
        return list(run_instrumented_batch(loaded.model, spec, inputs, pad_token_id=pad_token_id(loaded)))
    except BudgetExceededError:
        raise
    except Exception as error:
        if len(records) == 1:
            return [error]
    out: list[tuple[list[CapturedBlock], list[CapturedBlock]] | Exception | None] = []
    for single in inputs:
        try:
            out.append(run_instrumented(loaded.model, spec, single))
        except BudgetExceededError:
            raise
        except Exception as error:
            out.append(error)
    return out
