"""Faithfulness of feature attributions: ERASER comprehensiveness / sufficiency and deletion / insertion AOPC.

Why written here rather than taken from a library: ferret (``ferret-xai``) computes AOPC
comprehensiveness and sufficiency for sequence *classifiers* (one label, ``AutoModelForSequenceClassification``)
and Quantus targets classifiers of images and tabular data; neither scores the per-step predictions of a
causal LM or a seq2seq model, and Inseq has no faithfulness metrics (its issue #112 lists them as wanted).
The definitions below follow the papers.

For an explanation of step t (the generated token y_t) the features are the input tokens it scores:
the source tokens of a seq2seq model, the prompt tokens of a causal model (special tokens such as
``</s>`` and BOS are never removed; the already generated prefix is kept). Features are ranked by
absolute score. With ``p(y_t | x)`` the model's probability of y_t:

- comprehensiveness (DeYoung et al. 2020): ``p(y_t | x) - p(y_t | x without its top k%)``;
- sufficiency (DeYoung et al. 2020): ``p(y_t | x) - p(y_t | only the top k%)``; both averaged over
  ERASER's bins k in {1, 5, 10, 20, 50} % (at least one token each), i.e. the AOPC form, then over steps.
  High comprehensiveness and low sufficiency mean a faithful ranking.
- deletion / insertion curves (Petsiuk et al. 2018, on tokens): the mean ``p(y_t)`` after removing
  the top 0, 10, ..., 100 % of the features / with only those kept (the rest removed); the AOPC is the
  curve's mean. Low deletion and high insertion area mean a faithful ranking.

"Removing" a token replaces it, so positions never shift: ``unk`` (the tokenizer's unknown token, the
default when it has one), ``pad`` (its padding token), ``zero`` (a zero input embedding) or ``mean``
(the mean of the input-embedding matrix). The result states which. A random ranking (mean over seeds)
is the reference a useful explanation must beat.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from attribution.contributions.alignment import route_flow
from attribution.errors import InvalidInputError
from attribution.interventions.results import FaithfulnessResult
from attribution.languages import languages_of, provenance_with
from attribution.model_guard import exclusive_use
from attribution.models import LoadedModel
from attribution.results import AttributionResult, ContributionGraph, Side, node_id

#: ERASER's bins (fractions of the features) for comprehensiveness and sufficiency.
ERASER_FRACTIONS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.2, 0.5)
#: Points of the deletion / insertion curves.
CURVE_FRACTIONS: tuple[float, ...] = tuple(i / 10 for i in range(11))
REPLACEMENTS: tuple[str, ...] = ("unk", "pad", "zero", "mean")
#: Most perturbed inputs one call runs (steps x fractions x (1 + seeds)); a cost cap for servers.
MAX_ROWS = 20000


class NothingToExplain(InvalidInputError):
    """The explanation scores no target token that could be evaluated (no explained step, no usable root)."""


@dataclass
class _Problem:
    """What to perturb: feature ids (one side), the other side's ids, and per step its position, token, scores."""

    feature_ids: list[int]  # the side whose tokens are removed (seq2seq: source; causal: the whole sequence)
    decoder_ids: list[int] | None  # seq2seq decoder inputs (None for causal models)
    removable: list[int]  # feature positions that may be removed
    positions: list[int]  # per step: the logits position that predicts it
    targets: list[int]  # per step: the token id explained
    scores: np.ndarray  # [n_steps, len(removable)]


def _ids(loaded: LoadedModel, tokens: Sequence[str]) -> list[int]:
    ids = loaded.tokenizer.convert_tokens_to_ids(list(tokens))
    assert isinstance(ids, list)  # a list of tokens converts to a list of ids (typed for one token too)
    unk = loaded.tokenizer.unk_token_id
    for token, token_id in zip(tokens, ids, strict=True):
        if token_id is None or (token_id == unk and token != loaded.tokenizer.unk_token):
            raise InvalidInputError(f"The result's token {token!r} is not in this model's vocabulary: wrong model?")
    return list(ids)


def _problem_from_attribution(loaded: LoadedModel, result: AttributionResult) -> _Problem:
    if result.provenance.model_kind != loaded.kind:
        raise InvalidInputError("This attribution result was made with another kind of model.")
    start = result.attributed_start
    target_ids = _ids(loaded, result.target_tokens)
    steps = list(range(result.n_steps))
    targets = [target_ids[start + t] for t in steps]
    if loaded.kind == "seq2seq":
        if result.source_scores is None:
            raise InvalidInputError("This seq2seq result has no source scores to evaluate.")
        word_ids = result.source_word_ids or [0] * len(result.source_tokens)
        removable = [i for i, w in enumerate(word_ids) if w is not None]
        scores = np.asarray(result.source_scores, dtype=float)[removable].T
        return _Problem(
            _ids(loaded, result.source_tokens), target_ids, removable, [start + t - 1 for t in steps], targets, scores
        )
    if start < 1:
        raise InvalidInputError("This causal result has no prompt tokens to remove.")
    word_ids = (result.target_word_ids or [0] * len(result.target_tokens))[:start]
    removable = [i for i, w in enumerate(word_ids) if w is not None]
    scores = np.asarray(result.target_scores, dtype=float)[removable].T
    return _Problem(target_ids, None, removable, [start + t - 1 for t in steps], targets, scores)


def route_flow_scores(graph: ContributionGraph, root: int) -> dict[int, float]:
    """Input-token scores of one root: the route flow (:func:`attribution.contributions.alignment.route_flow`,
    edge weights multiplied along paths and summed over paths) reaching each token's embedding node."""
    side: Side = "encoder" if graph.n_encoder_layers else "decoder"
    tokens = graph.source_tokens if graph.n_encoder_layers else graph.target_tokens
    flow = route_flow(graph, root)
    embeddings = {position: node_id(side, 0, "embedding", position) for position in range(len(tokens))}
    return {position: flow[node] for position, node in embeddings.items() if node in flow}


def _problem_from_graph(loaded: LoadedModel, graph: ContributionGraph) -> _Problem:
    if graph.provenance.model_kind != loaded.kind:
        raise InvalidInputError("This graph was made with another kind of model.")
    decoder_ids = _ids(loaded, graph.target_tokens)
    if loaded.kind == "seq2seq":
        features = _ids(loaded, graph.source_tokens)
        special = set(loaded.tokenizer.all_special_ids) - {loaded.tokenizer.unk_token_id}
        removable = [i for i, t in enumerate(features) if t not in special]
        positions = [i for i in graph.root_tokens if i + 1 < len(decoder_ids)]
    else:
        features = decoder_ids
        n_prompt = len(loaded.tokenizer(graph.source_text, add_special_tokens=True)["input_ids"])
        special = set(loaded.tokenizer.all_special_ids) - {loaded.tokenizer.unk_token_id}
        removable = [i for i in range(n_prompt) if features[i] not in special]
        positions = [i for i in graph.root_tokens if n_prompt - 1 <= i < len(decoder_ids) - 1]
    if not positions:
        raise NothingToExplain(
            "The graph has no route from a position that predicts a target token; build it with root tokens 'all'."
        )
    scores = np.zeros((len(positions), len(removable)))
    for s, position in enumerate(positions):
        flow = route_flow_scores(graph, position)
        scores[s] = [flow.get(i, 0.0) for i in removable]
    targets = [decoder_ids[i + 1] for i in positions]
    return _Problem(features, decoder_ids if loaded.kind == "seq2seq" else None, removable, positions, targets, scores)


def _resolve_replacement(loaded: LoadedModel, replacement: str | None) -> tuple[str, int | None]:
    """(mode, token id for token modes); the default is ``unk``, else ``pad``, else ``mean``."""
    tokenizer = loaded.tokenizer
    if replacement is None:
        replacement = (
            "unk" if tokenizer.unk_token_id is not None else "pad" if tokenizer.pad_token_id is not None else "mean"
        )
    if replacement not in REPLACEMENTS:
        raise InvalidInputError(f"Unknown replacement {replacement!r}; choose one of {', '.join(REPLACEMENTS)}.")
    if replacement in ("unk", "pad"):
        token_id = tokenizer.unk_token_id if replacement == "unk" else tokenizer.pad_token_id
        if token_id is None:
            raise InvalidInputError(f"This tokenizer has no {replacement} token; use 'zero' or 'mean' embeddings.")
        return replacement, int(token_id)
    return replacement, None


def _describe(loaded: LoadedModel, mode: str, token_id: int | None) -> str:
    if token_id is not None:
        return f"{mode} token {loaded.tokenizer.convert_ids_to_tokens(token_id)!r}"
    return "zero input embedding" if mode == "zero" else "mean input embedding"


@contextmanager
def _embedding_replacement(loaded: LoadedModel, features: torch.Tensor, masks: torch.Tensor, vector: torch.Tensor):
    """Replace the input embedding where ``masks`` [N, L] is true, only in the call that embeds ``features``."""
    embeddings = loaded.model.get_input_embeddings()

    def hook(_module, args, output):
        ids = args[0]
        if ids.shape != features.shape or ids.data_ptr() != features.data_ptr():
            return None  # the decoder's tokens (seq2seq models share the embedding)
        return torch.where(masks.to(output.device)[..., None], vector.to(output.dtype), output)

    handle = embeddings.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _probabilities(
    loaded: LoadedModel, problem: _Problem, rows: list[tuple[int, np.ndarray]], mode: str, token_id, batch_size: int
) -> np.ndarray:
    """``p(target of step s)`` for each row (step s, boolean removal mask over the removable features)."""
    device = loaded.device
    out = np.empty(len(rows))
    removable = torch.tensor(problem.removable, dtype=torch.long)
    vector = None
    if mode in ("zero", "mean"):
        weight = loaded.model.get_input_embeddings().weight
        assert isinstance(weight, torch.Tensor)  # an embedding's weight (nn.Module types attributes loosely)
        weight = weight.detach()
        vector = torch.zeros_like(weight[0]) if mode == "zero" else weight.float().mean(0).to(weight.dtype)
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        features = torch.tensor([problem.feature_ids] * len(chunk), device=device)
        masks = torch.zeros(features.shape, dtype=torch.bool)
        for r, (_, removed) in enumerate(chunk):
            masks[r, removable[torch.from_numpy(removed)]] = True
        if token_id is not None:
            features = torch.where(masks.to(device), torch.tensor(token_id, device=device), features)
        inputs = {"input_ids": features}
        if problem.decoder_ids is not None:
            inputs["decoder_input_ids"] = torch.tensor([problem.decoder_ids] * len(chunk), device=device)
        positions = [problem.positions[step] for step, _ in chunk]
        with torch.no_grad():
            if vector is None:
                logits = _logits_at(loaded.model, inputs, positions)
            else:
                with _embedding_replacement(loaded, features, masks, vector):
                    logits = _logits_at(loaded.model, inputs, positions)
        for r, (step, _) in enumerate(chunk):
            distribution = logits[r].double().softmax(-1)
            out[start + r] = float(distribution[problem.targets[step]])
    return out


def _logits_at(model: torch.nn.Module, inputs: dict[str, torch.Tensor], positions: list[int]) -> torch.Tensor:
    """Logits ``[B, V]`` of row r at ``positions[r]``: the LM head runs at those positions only where the model
    takes ``logits_to_keep`` (a large vocabulary's projection at every position is much of a short pass)."""
    device = next(iter(inputs.values())).device
    keep = torch.tensor(positions, device=device)[:, None]  # [B, 1]: one position per row
    if "logits_to_keep" in inspect.signature(model.forward).parameters:
        return model(**inputs, use_cache=False, logits_to_keep=keep).logits[:, 0]
    logits = model(**inputs, use_cache=False).logits
    return logits.gather(1, keep[:, :, None].expand(-1, -1, logits.shape[-1]))[:, 0]


def count_rows(n_steps: int, random_seeds: int) -> int:
    """Perturbed inputs (forward rows) one evaluation runs: per explained step the full input, the ERASER
    bins removed and kept (for the explanation and each random ranking), and both curves' points."""
    per_step = 1 + 2 * len(ERASER_FRACTIONS) * (1 + random_seeds) + 2 * len(CURVE_FRACTIONS)
    return n_steps * per_step


def _top(order: np.ndarray, n: int, fraction: float, *, at_least_one: bool) -> np.ndarray:
    k = math.ceil(fraction * n - 1e-9)
    if at_least_one:
        k = max(1, k)
    mask = np.zeros(n, dtype=bool)
    mask[order[: min(k, n)]] = True
    return mask


def _evaluate(
    loaded: LoadedModel,
    problem: _Problem,
    *,
    explanation: str,
    source_text: str,
    target_text: str,
    provenance,
    replacement: str | None,
    random_seeds: int,
    batch_size: int,
) -> FaithfulnessResult:
    mode, token_id = _resolve_replacement(loaded, replacement)
    n_steps, n = problem.scores.shape
    if n == 0:
        raise InvalidInputError("The explanation scores no removable input token.")
    if n_steps == 0:
        raise NothingToExplain("The explanation explains no target token.")
    if count_rows(n_steps, random_seeds) > MAX_ROWS:
        raise InvalidInputError(
            f"This evaluation needs {count_rows(n_steps, random_seeds)} forward rows; at most {MAX_ROWS} are allowed."
        )
    orders = [np.argsort(-np.nan_to_num(np.abs(problem.scores[s]), nan=0.0), kind="stable") for s in range(n_steps)]
    rng = np.random.default_rng(0)
    random_orders = [[rng.permutation(n) for _ in range(n_steps)] for _ in range(random_seeds)]
    rows: list[tuple[int, np.ndarray]] = []
    for s in range(n_steps):
        rows.append((s, np.zeros(n, dtype=bool)))  # the full input
    layout = []  # (kind, seed, step, fraction) per row after the full-input rows

    def add(kind: str, seed: int, step: int, fraction: float, mask: np.ndarray) -> None:
        rows.append((step, mask))
        layout.append((kind, seed, step, fraction))

    for seed, order_set in enumerate([orders, *random_orders]):
        for s in range(n_steps):
            for fraction in ERASER_FRACTIONS:
                top = _top(order_set[s], n, fraction, at_least_one=True)
                add("comprehensiveness", seed, s, fraction, top)
                add("sufficiency", seed, s, fraction, ~top)
            if seed == 0:
                for fraction in CURVE_FRACTIONS:
                    top = _top(order_set[s], n, fraction, at_least_one=False)
                    add("deletion", 0, s, fraction, top)
                    add("insertion", 0, s, fraction, ~top)
    with exclusive_use(loaded):
        probabilities = _probabilities(loaded, problem, rows, mode, token_id, batch_size)
    full = probabilities[:n_steps]
    values: dict[tuple[str, int], list[float]] = {}
    curves: dict[str, np.ndarray] = {
        "deletion": np.zeros(len(CURVE_FRACTIONS)),
        "insertion": np.zeros(len(CURVE_FRACTIONS)),
    }
    for (kind, seed, step, fraction), p in zip(layout, probabilities[n_steps:], strict=True):
        if kind in curves:
            curves[kind][CURVE_FRACTIONS.index(fraction)] += p / n_steps
        else:
            values.setdefault((kind, seed), []).append(full[step] - p)

    def mean(kind: str, seeds: range) -> float | None:
        pooled = [v for seed in seeds for v in values.get((kind, seed), [])]
        return float(np.mean(pooled)) if pooled else None

    comprehensiveness, sufficiency = mean("comprehensiveness", range(1)), mean("sufficiency", range(1))
    assert comprehensiveness is not None and sufficiency is not None  # measured at every step with seed 0
    return FaithfulnessResult(
        provenance=provenance,
        explanation=explanation,
        source_text=source_text,
        target_text=target_text,
        replacement=_describe(loaded, mode, token_id),
        fractions=list(ERASER_FRACTIONS),
        n_steps=n_steps,
        comprehensiveness=comprehensiveness,
        sufficiency=sufficiency,
        deletion_curve=[float(v) for v in curves["deletion"]],
        insertion_curve=[float(v) for v in curves["insertion"]],
        deletion_aopc=float(curves["deletion"].mean()),
        insertion_aopc=float(curves["insertion"].mean()),
        random_comprehensiveness=mean("comprehensiveness", range(1, random_seeds + 1)),
        random_sufficiency=mean("sufficiency", range(1, random_seeds + 1)),
        random_seeds=random_seeds,
    )


def attribution_faithfulness(
    loaded: LoadedModel,
    result: AttributionResult,
    *,
    replacement: str | None = None,
    random_seeds: int = 3,
    batch_size: int = 64,
) -> FaithfulnessResult:
    """Comprehensiveness, sufficiency and deletion / insertion AOPC of an Inseq :class:`AttributionResult`."""
    _check(random_seeds, batch_size)
    problem = _problem_from_attribution(loaded, result)
    return _evaluate(
        loaded,
        problem,
        explanation=result.method,
        source_text=result.source_text,
        target_text=result.target_text,
        provenance=provenance_with(loaded, languages_of(result.provenance)),
        replacement=replacement,
        random_seeds=random_seeds,
        batch_size=batch_size,
    )


def graph_faithfulness(
    loaded: LoadedModel,
    graph: ContributionGraph,
    *,
    replacement: str | None = None,
    random_seeds: int = 3,
    batch_size: int = 64,
) -> FaithfulnessResult:
    """The same metrics for a contribution graph, reading each root's route flow into the input tokens as
    its scores (:func:`route_flow_scores`); build the graph with ``root_tokens="all"`` to explain every step."""
    _check(random_seeds, batch_size)
    problem = _problem_from_graph(loaded, graph)
    return _evaluate(
        loaded,
        problem,
        explanation=f"contribution graph (routes, threshold {graph.threshold:g})",
        source_text=graph.source_text,
        target_text=graph.target_text,
        provenance=provenance_with(loaded, languages_of(graph.provenance)),
        replacement=replacement,
        random_seeds=random_seeds,
        batch_size=batch_size,
    )


def _check(random_seeds: int, batch_size: int) -> None:
    if not isinstance(random_seeds, int) or not 0 <= random_seeds <= 20:
        raise InvalidInputError(f"random_seeds must be an integer from 0 to 20, not {random_seeds!r}.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"batch_size must be a positive integer, not {batch_size!r}.")


__all__ = ["NothingToExplain", "attribution_faithfulness", "count_rows", "graph_faithfulness", "route_flow_scores"]
