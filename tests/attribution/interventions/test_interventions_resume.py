"""Patched runs that resume at the patched block: the same numbers as rerunning the whole model.

Ground truth: :func:`engine.forward`, the full forward pass with the same edits (what sweeps, routes and
faithfulness ran before they skipped anything), on every family layout of ``tests/support/random_models.py``
with random biases, both patching directions; and the model's own logits for the readout at chosen
positions. The structure is checked too: a row that patches block l makes blocks below l run without
it, and a decoder-side patch of a seq2seq model never runs the encoder.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attribution.anatomy.adapters import architecture_spec
from attribution.anatomy.places import blocks_of
from attribution.interventions import engine
from attribution.interventions.ablation import build_edits
from attribution.interventions.components import Component
from attribution.interventions.faithfulness import _logits_at
from attribution.interventions.inputs import model_shape, prepare, prepare_like
from attribution.interventions.routes import route_faithfulness
from attribution.interventions.sweeps import patching_sweep
from attribution.models import LoadedModel, load_model
from tests.support import texts
from tests.support.paths import REPO
from tests.support.random_models import BART_FAMILIES, build_random_model

PROMPT = texts.RANDOM_PROMPT
COUNTERFACTUAL_PROMPT = texts.RANDOM_COUNTERFACTUAL_PROMPT
SOURCE = texts.RANDOM_SOURCE
COUNTERFACTUAL_SOURCE = texts.RANDOM_COUNTERFACTUAL_SOURCE
TARGET = texts.RANDOM_TARGET
COUNTERFACTUAL_TARGET = texts.RANDOM_COUNTERFACTUAL_TARGET
#: Families whose attention adds too little at random init for a head's patch to move the logits (scaled up).


#: ``family_model`` (tests/attribution/conftest.py): every family and layout, built with this seed.
FAMILY_SEED = 3
LOUDER_FAMILIES = BART_FAMILIES


def _pair(loaded: LoadedModel, direction: str):
    """(base, source) inputs: denoise patches the clean input into the counterfactual run, noise the reverse."""
    if loaded.kind == "seq2seq":
        clean = prepare(loaded, SOURCE, TARGET)
        other = prepare_like(loaded, clean, COUNTERFACTUAL_SOURCE, COUNTERFACTUAL_TARGET)
    else:
        clean = prepare(loaded, PROMPT)
        other = prepare_like(loaded, clean, COUNTERFACTUAL_PROMPT)
    return (other, clean) if direction == "denoise" else (clean, other)


def _decoder_cells(loaded: LoadedModel, n_blocks: int, n_tokens: int) -> list[Component]:
    """Heads of every block, residual streams of every layer, a neuron and an edge: out of block order."""
    cells = [Component("head", "decoder", layer, "self", index=h) for layer in range(1, n_blocks + 1) for h in (0, 1)]
    cells += [Component("residual", "decoder", layer, positions=(p,)) for layer in range(n_blocks + 1) for p in (1, 3)]
    cells += [Component("neuron", "decoder", n_blocks, index=5), Component("ffn", "decoder", 1, positions=(2,))]
    cells += [Component("edge", "decoder", n_blocks, "self", positions=(n_tokens - 1,), source=1)]
    if loaded.kind == "seq2seq":
        cells += [Component("head", "decoder", layer, "cross", index=1) for layer in range(1, n_blocks + 1)]
    return cells[::-1]  # last blocks first: forward_from sorts the rows by the block they start at


def _block_batches(spec, side: str) -> tuple[list[int], list]:
    """Hooks recording the batch size each block of ``side`` runs with."""
    seen: list[int] = []
    handles = [
        block.module.register_forward_pre_hook(
            lambda _m, args, kwargs, layer=layer: seen.append(
                (layer, (args[0] if args else kwargs["hidden_states"]).shape[0])
            ),
            with_kwargs=True,
        )
        for layer, block in enumerate(blocks_of(spec, side), start=1)
    ]
    return seen, handles


@pytest.mark.parametrize("direction", ["denoise", "noise"])
def test_resumed_rows_equal_the_full_forward_pass(family_model, direction):
    loaded = family_model
    base, source = _pair(loaded, direction)
    spec = architecture_spec(loaded.model)
    shape = model_shape(spec, base)
    n_blocks, n_tokens = len(spec.decoder_blocks), len(base.decoder_ids)
    base_run = engine.forward(loaded.model, spec, base.inputs, checkpoint=True)
    assert not base_run.probabilities and not base_run.head_inputs  # the residual stream only
    source_run = engine.forward(loaded.model, spec, source.inputs, record=True)
    cells = _decoder_cells(loaded, n_blocks, n_tokens)
    edits = [
        edit
        for row, cell in enumerate(cells)
        for edit in build_edits(
            [cell], torch.tensor([row]), "zero" if cell.kind == "edge" else "patch", spec, shape, source_run
        )
    ]
    repeated = {name: tensor.repeat(len(cells), 1) for name, tensor in base.inputs.items()}
    full = engine.forward(loaded.model, spec, repeated, edits).logits
    assert (full - base_run.logits).abs().max() > 1e-4  # the patches move the logits: 10x the tolerance
    positions = list(range(n_tokens))
    decoder_seen, handles = _block_batches(spec, "decoder")
    encoder_seen, more = _block_batches(spec, "encoder")
    try:
        resumed = engine.forward_from(loaded.model, spec, base.inputs, base_run, edits, len(cells), positions)
    finally:
        for handle in handles + more:
            handle.remove()
    torch.testing.assert_close(resumed, full, atol=1e-5, rtol=1e-5)
    starts = [engine.start_block(spec, edit)[1] for edit in edits]
    assert decoder_seen == [(layer, sum(s <= layer for s in starts)) for layer in range(1, n_blocks + 1)]
    assert encoder_seen == []  # decoder cells reuse the recorded encoder states
    root = engine.forward_from(loaded.model, spec, base.inputs, base_run, edits, len(cells), [n_tokens - 2])
    torch.testing.assert_close(root[:, 0], full[:, n_tokens - 2], atol=1e-5, rtol=1e-5)


def test_an_encoder_edit_runs_the_whole_model():
    loaded = build_random_model("t5", seed=3)
    base, source = _pair(loaded, "denoise")
    spec = architecture_spec(loaded.model)
    shape = model_shape(spec, base)
    base_run = engine.forward(loaded.model, spec, base.inputs, record=True)
    source_run = engine.forward(loaded.model, spec, source.inputs, record=True)
    cells = [Component("head", "encoder", 2, "self", index=0), Component("head", "decoder", 2, "self", index=1)]
    edits = [
        e
        for row, c in enumerate(cells)
        for e in build_edits([c], torch.tensor([row]), "patch", spec, shape, source_run)
    ]
    full = engine.forward(loaded.model, spec, {k: v.repeat(2, 1) for k, v in base.inputs.items()}, edits).logits
    resumed = engine.forward_from(loaded.model, spec, base.inputs, base_run, edits, 2, [1, 4])
    torch.testing.assert_close(resumed, full[:, [1, 4]], atol=1e-5, rtol=1e-5)
    assert (full[0] - base_run.logits[0]).abs().max() > 1e-3


def _full_rerun(model, spec, inputs, recorded, edits, n_rows, positions):
    """What the sweeps and routes ran before they resumed: the whole model, logits at every position."""
    repeated = {name: tensor.repeat(n_rows, 1) for name, tensor in inputs.items()}
    return engine.forward(model, spec, repeated, edits).logits[:, positions]


@pytest.mark.parametrize("direction", ["denoise", "noise"])
def test_patching_sweeps_give_the_numbers_of_full_reruns(family_model, direction, monkeypatch):
    loaded = family_model
    seq2seq = loaded.kind == "seq2seq"
    text, other, target = (SOURCE, COUNTERFACTUAL_SOURCE, TARGET) if seq2seq else (PROMPT, COUNTERFACTUAL_PROMPT, None)
    options = {
        "target": target,
        "counterfactual_target": COUNTERFACTUAL_TARGET if seq2seq else None,
        "root_token": -2,
        "contrast_token": "das" if seq2seq else "the",
        "direction": direction,
        "batch_size": 5,  # chunks that cut through blocks
        "approximate": False,
    }
    resumed = patching_sweep(loaded, text, other, **options)
    monkeypatch.setattr(engine, "forward_from", _full_rerun)
    full = patching_sweep(loaded, text, other, **options)
    scale = abs(full.logit_diff_clean - full.logit_diff_counterfactual)  # cells are LD changes / scale
    assert [m.name for m in resumed.maps] == [m.name for m in full.maps]
    for mine, theirs in zip(resumed.maps, full.maps, strict=True):
        np.testing.assert_allclose(mine.exact * scale, theirs.exact * scale, atol=1e-5, err_msg=mine.name)
        np.testing.assert_allclose(mine.exact, theirs.exact, atol=1e-3, err_msg=mine.name)  # shares of LD
    assert max(np.ptp(m.exact) for m in full.maps) > 0.1  # cells differ: a mixed-up order would show


@pytest.mark.parametrize(
    ("model_name", "text", "target", "root"),
    [
        ("tiny-ioi-gpt2", "When Mary and John went to the store, John gave a drink to", None, -1),
        ("tiny-synth-translate", None, None, 2),
    ],
)
def test_route_faithfulness_gives_the_numbers_of_full_reruns(model_name, text, target, root, monkeypatch):
    loaded = load_model(model_name)
    if text is None:  # the first pair of the synthetic translation test set
        import json

        data = REPO / "examples" / "data" / "synth_translate_test.jsonl"
        pair = json.loads(data.read_text().splitlines()[0])
        text, target = pair["source"], pair["target"]
    resumed = route_faithfulness(loaded, text, target=target, root_token=root, seeds=3)
    monkeypatch.setattr(engine, "forward_from", _full_rerun)
    full = route_faithfulness(loaded, text, target=target, root_token=root, seeds=3)
    effects = lambda r: [r.necessity, r.sufficiency, *r.random_necessity, *r.random_sufficiency]  # noqa: E731
    assert resumed.route_edges == full.route_edges
    for mine, theirs in zip(effects(resumed), effects(full), strict=True):
        assert mine.probability == pytest.approx(theirs.probability, abs=1e-6)
        assert mine.logit_diff == pytest.approx(theirs.logit_diff, abs=1e-5)
    assert resumed.probability_clean - resumed.necessity.probability > 0.1  # the route's removal matters


def test_faithfulness_reads_out_each_row_at_its_own_position(family_model):
    """The LM head at one position per row (``logits_to_keep`` where the model takes it) = the full logits there."""
    loaded = family_model
    base, other = _pair(loaded, "denoise")
    inputs = {name: torch.cat([base.inputs[name], other.inputs[name], base.inputs[name]]) for name in base.inputs}
    positions = [len(base.decoder_ids) - 1, 2, 0]
    with torch.no_grad():
        full = loaded.model(**inputs, use_cache=False).logits
        kept = _logits_at(loaded.model, inputs, positions)
    torch.testing.assert_close(kept, full[torch.arange(3), positions], atol=1e-5, rtol=1e-5)
