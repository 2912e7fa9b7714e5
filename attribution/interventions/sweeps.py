"""Activation-patching sweeps and their gradient approximation (attribution patching), in batches.

:func:`patching_sweep` patches one component per cell of a map from a *source* run into a *base*
run and records the "logit difference recovered" of Wang et al. (2022)::

    recovered = (LD(patched) - LD(base)) / (LD(source) - LD(base)),   LD = logit(target) - logit(contrast)

``direction="denoise"`` (default, the IOI literature's maps): the base is the counterfactual input and
the source the clean one, so 1 means "this component alone restores the clean behaviour";
``"noise"``: the base is clean and the source counterfactual, so 1 means "this component alone carries
the counterfactual's behaviour over".

Maps: ``head`` ([decoder layer x head], every query position unless ``query_positions``), and for
seq2seq also ``cross_head`` and ``encoder_head``; ``position`` ([graph layer 0..L-1 x decoder
position], the residual stream entering each block) and for seq2seq ``encoder_position``.

Exact patching runs the cells as one batch per ``batch_size`` cells (every batch row patches its own
cell). A patched run only needs the blocks at and above its cell: each row starts from the recorded base
run's residual stream entering the cell's block (a decoder cell of a seq2seq model also reuses the base
run's encoder states) and only the root position is read out (:func:`engine.forward_from`); encoder
cells run the whole model. Attribution patching (Nanda 2022; Syed et al. 2023) estimates every cell at once from one
forward pass on the source input, one forward and one backward pass on the base input:
``LD(patched) - LD(base) ~ (a_source - a_base) . dLD/da`` at the base, summed over the patched
positions, for a = a head's mixed values or the residual stream. Its agreement with exact patching
(Spearman, top-10 overlap) is reported with each map.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import spearmanr

from attribution.anatomy.adapters import ArchitectureSpec, architecture_spec
from attribution.anatomy.shape import ModelShape
from attribution.contributions.graph import resolve_root_tokens
from attribution.errors import InvalidInputError
from attribution.interventions import engine
from attribution.interventions.ablation import build_edits
from attribution.interventions.components import Component
from attribution.interventions.inputs import PreparedInput, model_shape, prepare, prepare_like
from attribution.interventions.maps import map_grid, map_names
from attribution.interventions.metrics import default_targets, token_id
from attribution.interventions.results import DIRECTIONS, PatchingMap, PatchingResult
from attribution.model_guard import exclusive_use
from attribution.models import LoadedModel
from attribution.progress import Progress, no_progress

#: Largest batch of patched runs per forward pass (memory grows linearly with it).
DEFAULT_BATCH_SIZE = 64


@dataclass
class _Map:
    """The cells of one map: a component per (row, column)."""

    name: str
    row_label: str
    column_label: str
    row_names: list[str]
    column_names: list[str]
    cells: list[list[Component]]


def _layout(name: str, shape: ModelShape, tokens: tuple[list[str], list[str]], query: tuple | None) -> _Map:
    grid = map_grid(shape, name)
    side = grid.side
    if grid.attention is not None:
        positions = query if side == "decoder" else None
        layers = [site.block for site in grid.rows]  # the graph's ids: a head of block l is at layer l (1 … n)
        cells = [
            [Component("head", side, layer, grid.attention, index=h, positions=positions) for h in range(grid.columns)]
            for layer in layers
        ]
        return _Map(
            name, "block", "head", [str(layer) for layer in layers], [str(h) for h in range(grid.columns)], cells
        )
    # the graph's ids: the residual stream entering block l + 1 is the one after block l (0 = the embeddings)
    layers = [site.block - 1 for site in grid.rows]
    names = tokens[0] if side == "encoder" else tokens[1]
    cells = [[Component("residual", side, layer, positions=(p,)) for p in range(grid.columns)] for layer in layers]
    return _Map(
        name, "layer", "position", [str(layer) for layer in layers], [f"{p}: {t}" for p, t in enumerate(names)], cells
    )


def _logit_diffs(logits: torch.Tensor, target: int, contrast: int) -> torch.Tensor:
    """``logit(target) - logit(contrast)`` per row of logits ``[B, V]`` at the root position."""
    return logits[:, target] - logits[:, contrast]


def _exact(
    loaded: LoadedModel,
    spec: ArchitectureSpec,
    base: tuple[PreparedInput, engine.Recording],
    source: engine.Recording,
    layout: _Map,
    root: int,
    measure: Callable[[torch.Tensor], torch.Tensor],
    batch_size: int,
    report: Callable[[int], None],
) -> np.ndarray:
    """Each cell patched alone into the base run, ``batch_size`` cells per batch; a cell's row resumes from
    the recorded base run at the cell's own block (:func:`engine.forward_from`), so the blocks below it,
    and for a decoder cell of a seq2seq model the encoder, are not run again."""
    base_input, base_run = base
    shape = model_shape(spec, base_input)
    flat = [c for row in layout.cells for c in row]
    values = np.empty(len(flat))
    for start in range(0, len(flat), batch_size):
        chunk = flat[start : start + batch_size]
        edits = [
            edit
            for row, component in enumerate(chunk)
            for edit in build_edits([component], torch.tensor([row]), "patch", spec, shape, source)
        ]
        logits = engine.forward_from(loaded.model, spec, base_input.inputs, base_run, edits, len(chunk), [root])
        values[start : start + len(chunk)] = measure(logits[:, 0]).double().cpu().numpy()
        report(len(chunk))
    return values.reshape(len(layout.cells), -1)


def _approximate(
    base: engine.Recording, source: engine.Recording, layout: _Map, gradients: dict[tuple, torch.Tensor]
) -> np.ndarray:
    """``(a_source - a_base) . dLD/da`` per cell, summed over the cell's positions."""
    out = np.zeros((len(layout.cells), len(layout.cells[0]) if layout.cells else 0))
    for r, row in enumerate(layout.cells):
        for c, component in enumerate(row):
            if component.kind == "head":
                key: tuple = (component.side, component.layer, component.attention)
                grad = gradients[("head_in", *key)][0, :, component.index]
                delta = source.head_inputs[key][0, :, component.index] - base.head_inputs[key][0, :, component.index]
            else:
                key = (component.side, component.layer + 1)
                grad = gradients[("block_in", *key)][0]
                delta = source.block_inputs[key][0] - base.block_inputs[key][0]
            positions = list(component.positions) if component.positions is not None else slice(None)
            out[r, c] = float((delta[positions] * grad[positions].float()).sum())
    return out


def _agreement(exact: np.ndarray, approximate: np.ndarray) -> tuple[float | None, float | None]:
    a, b = exact.ravel(), approximate.ravel()
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None, None
    rho = float(spearmanr(a, b).statistic)
    k = min(10, a.size)
    top_exact = set(np.argsort(-np.abs(a), kind="stable")[:k].tolist())
    top_approximate = set(np.argsort(-np.abs(b), kind="stable")[:k].tolist())
    return (None if math.isnan(rho) else rho), len(top_exact & top_approximate) / k


def patching_sweep(
    loaded: LoadedModel,
    text: str,
    counterfactual: str | None = None,
    *,
    target: str | None = None,
    counterfactual_target: str | None = None,
    root_token: int = -1,
    target_token: str | None = None,
    contrast_token: str | None = None,
    maps: Sequence[str] | None = None,
    direction: str = "denoise",
    query_positions: Sequence[int] | None = None,
    exact: bool = True,
    approximate: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_tokens: int | None = None,
    progress: Progress | None = None,
) -> PatchingResult:
    """Patching maps between ``text`` and a same-length ``counterfactual`` (see the module docstring).

    ``target_token`` defaults to the clean input's next token at ``root_token`` (the forced
    continuation, else the clean prediction), ``contrast_token`` to the counterfactual's prediction
    there. ``maps`` defaults to ``head`` and ``position`` (plus the encoder and cross-attention maps
    for seq2seq). :func:`attribution.cost.estimate_patching_cost` says what a sweep costs before it runs.
    """
    report = progress or no_progress
    if direction not in DIRECTIONS:
        raise InvalidInputError(f"direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}.")
    if not exact and not approximate:
        raise InvalidInputError("Ask for exact patching, attribution patching, or both.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"batch_size must be a positive integer, not {batch_size!r}.")
    names = map_names(bool(architecture_spec(loaded.model).encoder_blocks), maps)
    if counterfactual is None and counterfactual_target is None:
        raise InvalidInputError("Patching needs a counterfactual input (text and/or target) of the same length.")
    with exclusive_use(loaded):
        spec = architecture_spec(loaded.model)  # in here: accelerate-offloaded weights are real tensors
        report(0.0, 1, "preparing inputs")
        clean = prepare(loaded, text, target, max_tokens=max_tokens)
        other = prepare_like(
            loaded,
            clean,
            counterfactual if counterfactual is not None else text,
            counterfactual_target,
            max_tokens=max_tokens,
        )
        roots = resolve_root_tokens(root_token, len(clean.decoder_ids))
        if len(roots) != 1:
            raise InvalidInputError("A patching sweep measures one root position; give one token index.")
        root = roots[0]
        query = None
        if query_positions is not None:
            query = tuple(resolve_root_tokens(list(query_positions), len(clean.decoder_ids)))
        tokens = clean.tokens(loaded)
        layouts = [_layout(name, model_shape(spec, clean), tokens, query) for name in names]
        n_cells = sum(len(layout.cells) * len(layout.cells[0]) for layout in layouts if layout.cells)
        clean_run = engine.forward(loaded.model, spec, clean.inputs, record=True)
        other_run = engine.forward(loaded.model, spec, other.inputs, record=True)
        started = time.perf_counter()  # the unit of the timings: one plain forward pass (after the two above)
        engine.forward(loaded.model, spec, clean.inputs)
        seconds_forward = time.perf_counter() - started
        target_id = (
            token_id(loaded, target_token)
            if target_token is not None
            else default_targets(loaded, clean.decoder_ids, [root], clean_run.logits[0])[0]
        )
        if contrast_token is not None:
            contrast_id = token_id(loaded, contrast_token, role="contrast token")
        else:
            contrast_id = int(other_run.logits[0, root].argmax())
        if contrast_id == target_id:
            raise InvalidInputError(
                "The counterfactual predicts the same token as the input at this position; name a contrast token."
            )
        base, source, source_run = (other, clean, clean_run) if direction == "denoise" else (clean, other, other_run)
        base_run = other_run if direction == "denoise" else clean_run

        def measure(logits: torch.Tensor) -> torch.Tensor:
            return _logit_diffs(logits, target_id, contrast_id)

        ld_clean, ld_other = float(measure(clean_run.logits[:, root])[0]), float(measure(other_run.logits[:, root])[0])
        ld_base, ld_source = (ld_other, ld_clean) if direction == "denoise" else (ld_clean, ld_other)
        scale = ld_source - ld_base
        if abs(scale) < 1e-6:
            raise InvalidInputError(
                "The input and the counterfactual give the same logit difference, so there is nothing to recover; "
                "change the counterfactual or the target / contrast tokens."
            )
        results: list[PatchingMap] = []
        seconds_approximate = None
        gradients: dict[tuple, torch.Tensor] = {}
        grad_run = None
        if approximate:
            report(0.05, 1, "attribution patching")
            started = time.perf_counter()
            source_again = engine.forward(loaded.model, spec, source.inputs, record=True)
            grad_run = engine.forward(loaded.model, spec, base.inputs, record=True, grad_leaves=True)
            leaves = list(grad_run.grad_leaves.items())
            grads = torch.autograd.grad(
                measure(grad_run.logits[:, root])[0], [leaf for _, leaf in leaves], allow_unused=True
            )
            gradients = {
                key: (g if g is not None else torch.zeros_like(leaf))
                for (key, leaf), g in zip(leaves, grads, strict=True)
            }
            seconds_approximate = time.perf_counter() - started
            source_run = source_again
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            report(0.1 + 0.9 * done / max(n_cells, 1), 1, f"patched {done} of {n_cells} components")

        for layout in layouts:
            if not layout.cells or not layout.cells[0]:
                continue
            exact_map = approximate_map = None
            seconds_exact = None
            if exact:
                started = time.perf_counter()
                cells = _exact(loaded, spec, (base, base_run), source_run, layout, root, measure, batch_size, advance)
                exact_map = (cells - ld_base) / scale
                seconds_exact = time.perf_counter() - started
            if approximate:
                assert grad_run is not None  # run above when approximate
                approximate_map = _approximate(grad_run, source_run, layout, gradients) / scale
            rho, overlap = (
                _agreement(exact_map, approximate_map)
                if exact_map is not None and approximate_map is not None
                else (None, None)
            )
            results.append(
                PatchingMap(
                    name=layout.name,
                    row_label=layout.row_label,
                    column_label=layout.column_label,
                    row_names=layout.row_names,
                    column_names=layout.column_names,
                    exact=exact_map,
                    approximate=approximate_map,
                    spearman=rho,
                    top10_overlap=overlap,
                    seconds_exact=seconds_exact,
                    seconds_approximate=seconds_approximate,
                )
            )
        del gradients, grad_run
    report(1.0, 1, "done")
    convert = loaded.tokenizer.convert_ids_to_tokens
    other_tokens = other.tokens(loaded)
    return PatchingResult(
        provenance=loaded.provenance(),
        source_text=clean.text,
        target_text=clean.target_text,
        counterfactual_text=other.text,
        counterfactual_target=other.target_text,
        source_tokens=tokens[0],
        target_tokens=tokens[1],
        counterfactual_source_tokens=other_tokens[0],
        counterfactual_target_tokens=other_tokens[1],
        root_position=root,
        target_token=str(convert(target_id)),
        contrast_token=str(convert(contrast_id)),
        direction=direction,
        logit_diff_clean=ld_clean,
        logit_diff_counterfactual=ld_other,
        maps=results,
        seconds_forward=seconds_forward,
    )
