"""Transformer Debugger's neuron viewer, for FFN neurons and SAE features: :func:`top_activations`.

A unit is named in the interventions' grammar without positions: ``decoder:2:neuron:113`` (FFN neuron 113 of
block 2) or ``decoder:2:sae:7`` (feature 7 of the SAE read after block 2). The viewer gives

- what the unit writes: its output direction (the FFN output row ``W_out[n]``, the SAE decoder row ``d_f``) read
  through the unembedding, ``readout(w) - readout(0)`` (biases left out), most promoted and suppressed tokens;
- where it fires most over a corpus: the ``k`` largest activations over every token of every record, with the
  tokens around each.

Records are the corpus engine's (:func:`attribution.corpus.records.read_records` reads a dataset file) or plain
texts; :func:`save_with_run` stores the result in a corpus run folder (``units/<unit>.json``) next to the run's
results.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

from attribution.anatomy.adapters import ArchitectureSpec, architecture_spec
from attribution.anatomy.hooks import hooked
from attribution.anatomy.places import blocks_of
from attribution.anatomy.sites import Site
from attribution.corpus.records import Record
from attribution.errors import InvalidInputError
from attribution.features.dictionary import FeatureDictionary
from attribution.features.results import ActivationExample, TopActivations
from attribution.features.streams import check_side, residual_states
from attribution.interventions.components import Component, parse_component
from attribution.interventions.inputs import prepare
from attribution.model_guard import exclusive_use
from attribution.models import LoadedModel
from attribution.validation import safe_file_name

#: Most examples one viewer keeps, most records it scans, most tokens of context on each side.
MAX_EXAMPLES = 200
MAX_RECORDS = 100_000
MAX_CONTEXT = 20
#: The folder of a corpus run where viewer results are stored.
UNITS_FOLDER = "units"


def parse_unit(unit: str, dictionary: FeatureDictionary | None) -> Component:
    """A neuron or SAE feature id without positions, checked against ``dictionary`` for features."""
    component = parse_component(unit)
    if component.kind not in ("neuron", "feature") or component.positions is not None:
        raise InvalidInputError(
            f"{unit!r}: the viewer shows an FFN neuron ('decoder:2:neuron:113') or an SAE feature ('decoder:2:sae:7'), "
            "without '@positions'."
        )
    if component.kind == "feature":
        if dictionary is None:
            raise InvalidInputError(f"{unit!r} is an SAE feature: give the SAE it belongs to.")
        if (component.side, component.layer) != (dictionary.side, dictionary.layer):
            raise InvalidInputError(
                f"{unit!r}: the SAE {dictionary.name} reads the {dictionary.side} at layer {dictionary.layer}."
            )
    return component


def _direction(spec: ArchitectureSpec, unit: Component, dictionary: FeatureDictionary | None) -> torch.Tensor:
    if unit.kind == "feature":
        assert dictionary is not None and unit.index is not None  # parse_unit checked both
        return dictionary.directions([dictionary.check_feature(unit.index, unit.id)])[0]
    blocks = blocks_of(spec, unit.side)
    if not 1 <= unit.layer <= len(blocks):
        raise InvalidInputError(f"{unit.id}: the {unit.side} has {len(blocks)} blocks.")
    weight = blocks[unit.layer - 1].ffn.out_weight
    assert unit.index is not None  # a neuron id names its neuron
    if not -weight.shape[0] <= unit.index < weight.shape[0]:
        raise InvalidInputError(f"{unit.id}: neuron {unit.index} is out of range (there are {weight.shape[0]}).")
    return weight.detach()[unit.index].float()


def unit_writes(
    loaded: LoadedModel, spec: ArchitectureSpec, direction: torch.Tensor, k: int
) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """(promoted, suppressed) tokens of an output direction through the unembedding, biases left out."""
    reference = next(loaded.model.parameters())
    with torch.no_grad():
        pair = torch.stack([direction, torch.zeros_like(direction)]).to(reference.device, reference.dtype)
        logits = spec.readout(pair).float()
    change = logits[0] - logits[1]
    up, down = change.topk(min(k, len(change))), (-change).topk(min(k, len(change)))
    tokens = loaded.tokenizer.convert_ids_to_tokens
    return (
        [(str(t), float(v)) for t, v in zip(tokens(up.indices.tolist()), up.values.tolist(), strict=True)],
        [(str(t), -float(v)) for t, v in zip(tokens(down.indices.tolist()), down.values.tolist(), strict=True)],
    )


def unit_activations(
    loaded: LoadedModel,
    spec: ArchitectureSpec,
    unit: Component,
    dictionary: FeatureDictionary | None,
    inputs: dict[str, torch.Tensor],
) -> torch.Tensor:
    """``[T]``: the unit's activation at every token of one input (batch of one)."""
    if unit.kind == "feature":
        assert dictionary is not None and unit.index is not None
        states = residual_states(loaded, spec, inputs, unit.side)[0, unit.layer]
        return dictionary.encode(states)[:, unit.index]
    taken: list[torch.Tensor] = []

    def keep(activation: torch.Tensor, _site: Site) -> None:
        taken.append(activation[0, :, unit.index].detach().float())

    with hooked(spec, {Site(unit.side, unit.layer, "ffn.act"): keep}), torch.no_grad():
        loaded.model(**inputs, use_cache=False)
    return taken[0]


def _records(records: Iterable[Record | str]) -> Iterable[Record]:
    for row, record in enumerate(records):
        if row >= MAX_RECORDS:
            raise InvalidInputError(f"The viewer scans at most {MAX_RECORDS:,} records.")
        yield record if isinstance(record, Record) else Record(str(row), row, record)


def _check_counts(k: int, context: int) -> None:
    if not isinstance(k, int) or not 0 < k <= MAX_EXAMPLES:
        raise InvalidInputError(f"k must be an integer from 1 to {MAX_EXAMPLES}, not {k!r}.")
    if not isinstance(context, int) or not 0 <= context <= MAX_CONTEXT:
        raise InvalidInputError(f"context must be an integer from 0 to {MAX_CONTEXT}, not {context!r}.")


def top_activations(
    loaded: LoadedModel,
    records: Iterable[Record | str],
    unit: str,
    *,
    dictionary: FeatureDictionary | None = None,
    k: int = 20,
    context: int = 5,
    max_tokens: int | None = None,
) -> TopActivations:
    """The ``k`` largest activations of ``unit`` over every token of ``records`` (ties: earlier record, then earlier
    position), with ``context`` tokens on each side, and what the unit writes. Records that cannot be read (a
    corpus ``problem``, an empty text) are skipped and not counted."""
    _check_counts(k, context)
    component = parse_unit(unit, dictionary)
    best: list[tuple[float, int, int, ActivationExample]] = []  # a min-heap of (activation, -record, -position)
    n_records = n_tokens = 0
    with exclusive_use(loaded):
        spec = architecture_spec(loaded.model)
        check_side(spec, component.side)
        promoted, suppressed = unit_writes(loaded, spec, _direction(spec, component, dictionary), 10)
        for record in _records(records):
            if record.problem is not None or not record.text.strip():
                continue
            prepared = prepare(loaded, record.text, record.target, max_tokens=max_tokens)
            source, target = prepared.tokens(loaded)
            tokens = source if component.side == "encoder" else target
            values = unit_activations(loaded, spec, component, dictionary, prepared.inputs).tolist()
            for position, value in enumerate(values):
                key = (value, -n_records, -position)
                if len(best) < k or key > best[0][:3]:
                    start = max(0, position - context)
                    example = ActivationExample(
                        record.record_id,
                        position,
                        tokens[position],
                        value,
                        tokens[start : position + context + 1],
                        position - start,
                    )
                    if len(best) < k:
                        heapq.heappush(best, (*key, example))
                    else:
                        heapq.heapreplace(best, (*key, example))
            n_records += 1
            n_tokens += len(values)
    examples = [item[3] for item in sorted(best, key=lambda item: item[:3], reverse=True)]
    return TopActivations(
        provenance=loaded.provenance(),
        unit=component.id,
        sae_name=dictionary.name if component.kind == "feature" and dictionary is not None else None,
        records=n_records,
        tokens=n_tokens,
        promoted=promoted,
        suppressed=suppressed,
        examples=examples,
    )


def save_with_run(run_dir: str | Path, result: TopActivations) -> Path:
    """Store ``result`` in a corpus run folder (``units/<unit>.json``, written atomically); returns its path."""
    from attribution.corpus.runfolder import MANIFEST, atomic_write

    run = Path(run_dir)
    if not (run / MANIFEST).is_file():
        raise InvalidInputError(f"{run} is not a corpus run folder (it has no {MANIFEST}).")
    path = run / UNITS_FOLDER / f"{safe_file_name(result.unit.replace(':', '-'))}.json"
    atomic_write(path, result.to_json().encode("utf-8"))
    return path


def load_from_run(run_dir: str | Path) -> Sequence[TopActivations]:
    """Every viewer result stored with a corpus run, by file name."""
    folder = Path(run_dir) / UNITS_FOLDER
    return [TopActivations.from_file(path) for path in sorted(folder.glob("*.json"))] if folder.is_dir() else []
