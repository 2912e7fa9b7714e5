"""The model's anatomy: every named site of every family layout, read and written through one hook installer.

Ground truth: the model's own outputs (``output_hidden_states``, ``output_attentions``, its logits), the
identities the sites must satisfy whatever the family (a head's output mixes the values with the
probabilities; the output projections map head outputs and neuron activations to the branch outputs;
without norms on the branches a block adds its branches to the residual stream), and torch's own hook
dictionaries on every module (what is installed, and that nothing is left). Batches of two different
inputs, so the batch dimension (flattened by OPT's FFN) is checked too.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from attribution.anatomy.adapters import ArchitectureSpec, architecture_spec
from attribution.anatomy.hooks import hooked
from attribution.anatomy.inputs import prepare_inputs
from attribution.anatomy.places import all_sites, blocks_of, place
from attribution.anatomy.replay import read_out
from attribution.anatomy.sites import POINTS, Site
from attribution.budget import time_budget
from attribution.errors import BudgetExceededError, UnsupportedError
from attribution.models import LoadedModel
from tests.support.paths import REPO
from tests.support.random_models import build_random_model

TEXTS = (
    "when mary and john went to the store , john gave a drink to",
    "when john and mary went to the house , mary gave a book to",
)
PAIRS = (
    ("the small cat sees the red house .", "die klein katze sieht das rot haus ."),
    ("the big dog sees the blue house .", "die groß hund sieht das blau haus ."),
)
#: Sites whose function may return a replacement.
WRITABLE = ("resid_pre", "attn.head_out", "attn.out", "attn.probs", "ffn.act", "ffn.out", "resid_post")


#: ``family_model`` (tests/attribution/conftest.py): every family and layout, built with this seed.
FAMILY_SEED = 7


def _inputs(loaded: LoadedModel) -> dict[str, torch.Tensor]:
    """Two different inputs of the same length side by side."""
    if loaded.kind == "seq2seq":
        records = [prepare_inputs(loaded, text, target, None)[0] for text, target in PAIRS]
    else:
        records = [prepare_inputs(loaded, text, None, None)[0] for text in TEXTS]
    return {name: torch.cat([record[name] for record in records]) for name in records[0]}


def _read(loaded: LoadedModel, spec: ArchitectureSpec, inputs: dict, functions: dict | None = None):
    """Every site's activation (a copy taken when the pass reached it) and the model's output, with ``functions``
    installed before the readers."""
    seen = {}

    def keep(activation, site: Site) -> None:
        seen[site] = activation if site.point == "call_args" else activation.detach().clone()

    readers = hooked(spec, dict.fromkeys(all_sites(spec), keep))
    with hooked(spec, functions or {}, prepend=True), readers, torch.no_grad():
        output = loaded.model(**inputs, output_hidden_states=True, output_attentions=True, use_cache=False)
    return seen, output


def _hooks(model: torch.nn.Module) -> list[tuple[int, str, tuple]]:
    """Every hook torch holds on every module of ``model``."""
    names = ("_forward_hooks", "_forward_pre_hooks", "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs")
    return [(id(module), name, tuple(getattr(module, name))) for module in model.modules() for name in names]


def test_site_names_read_back_and_bad_names_are_refused():
    site = Site("decoder", 3, "cross_attn.probs")
    assert str(site) == "decoder.3.cross_attn.probs" and Site.parse(str(site)) == site
    for bad in ("decoder.three.attn.probs", "middle.1.attn.probs", "decoder.1.attn.weights", "decoder.1"):
        with pytest.raises(ValueError, match="is not a site name"):
            Site.parse(bad)


def test_names_and_shapes_load_without_torch():
    """Component ids are parsed and checked against a model's shape before the model (or torch) is loaded."""
    modules = ["attribution.anatomy.sites", "attribution.anatomy.shape", "attribution.interventions.components"]
    probe = (
        f"import importlib, sys\nfor m in {modules!r}:\n    importlib.import_module(m)\nprint('torch' in sys.modules)"
    )
    completed = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "False"


def test_every_named_site_of_every_family_resolves(family_model):
    spec = architecture_spec(family_model.model)
    sites = all_sites(spec)
    cross = 4 if spec.encoder_blocks else 0  # the four cross-attention points of each decoder block
    n_blocks = len(spec.encoder_blocks) + len(spec.decoder_blocks)
    assert len(sites) == n_blocks * (len(POINTS) - 4) + len(spec.decoder_blocks) * cross
    assert len(set(sites)) == len(sites)
    for site in sites:
        where = place(spec, site)
        assert where.block is blocks_of(spec, site.side)[site.block - 1].module
        assert (where.write is None) == (site.point.endswith("values") or site.point == "call_args")
    for missing in (Site("decoder", len(spec.decoder_blocks) + 1, "resid_pre"), Site("decoder", 0, "ffn.out")):
        with pytest.raises(UnsupportedError, match="blocks"):
            place(spec, missing)
    if not spec.encoder_blocks:
        with pytest.raises(UnsupportedError, match="no cross-attention"):
            place(spec, Site("decoder", 1, "cross_attn.probs"))


def _states(loaded: LoadedModel, output, side: str):
    if loaded.kind == "causal":
        return output.hidden_states, output.attentions, None
    if side == "encoder":
        return output.encoder_hidden_states, output.encoder_attentions, None
    return output.decoder_hidden_states, output.decoder_attentions, output.cross_attentions


def test_reading_a_site_gives_the_tensor_the_model_computes_there(family_model):
    loaded = family_model
    spec = architecture_spec(loaded.model)
    seen, output = _read(loaded, spec, _inputs(loaded))
    for side in ("encoder", "decoder"):
        blocks = blocks_of(spec, side)
        if not blocks:
            continue
        hidden_states, attentions, cross_attentions = _states(loaded, output, side)
        for block in range(1, len(blocks) + 1):
            assert torch.equal(seen[Site(side, block, "resid_pre")], hidden_states[block - 1])
            if block < len(blocks):  # the model's last hidden state is after the final norm
                assert torch.equal(seen[Site(side, block, "resid_post")], hidden_states[block])
            assert torch.equal(seen[Site(side, block, "attn.probs")], attentions[block - 1])
            if cross_attentions is not None:
                assert torch.equal(seen[Site(side, block, "cross_attn.probs")], cross_attentions[block - 1])
            args, kwargs = seen[Site(side, block, "call_args")]
            assert isinstance(args, tuple) and "hidden_states" not in kwargs
    logits = read_out(spec, seen[Site("decoder", len(spec.decoder_blocks), "resid_post")])
    torch.testing.assert_close(logits, output.logits, atol=1e-5, rtol=1e-5)


def _out_of(projection: torch.nn.Module, weight: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """What an output projection with ``weight`` ``[in, out]`` makes of ``inputs``, bias included."""
    bias = projection.bias if projection.bias is not None else 0.0
    return inputs @ weight + bias


def test_sites_satisfy_the_identities_of_the_forward_pass(family_model):
    """Head outputs = probabilities x values (per head, key/value heads shared in groups); the attention
    output = the output projection of the head outputs; the FFN output = its projection of the neuron
    activations; and where no norm sits on a branch, the block's output = its input + its branches."""
    loaded = family_model
    spec = architecture_spec(loaded.model)
    seen, _ = _read(loaded, spec, _inputs(loaded))
    for side in ("encoder", "decoder"):
        for block, block_spec in enumerate(blocks_of(spec, side), start=1):
            attentions = {"attn": block_spec.self_attention, "cross_attn": block_spec.cross_attention}
            branches = seen[Site(side, block, "ffn.out")]
            for prefix, attention in attentions.items():
                if attention is None:
                    continue
                probs, values, heads, out = (
                    seen[Site(side, block, f"{prefix}.{what}")] for what in ("probs", "values", "head_out", "out")
                )
                per_head = values.transpose(1, 2).repeat_interleave(attention.n_heads // values.shape[2], dim=1)
                torch.testing.assert_close(heads, (probs @ per_head).transpose(1, 2), atol=1e-5, rtol=1e-4)
                weight = attention.out_weight.flatten(0, 1)
                torch.testing.assert_close(out, _out_of(attention.out_module, weight, heads.flatten(-2)))
                branches = branches + out
            ffn = block_spec.ffn
            expected = _out_of(ffn.out_module, ffn.out_weight, seen[Site(side, block, "ffn.act")])
            torch.testing.assert_close(seen[Site(side, block, "ffn.out")], expected, atol=1e-5, rtol=1e-4)
            norms = [ffn.post_norm, ffn.branch_norm] + [
                norm for a in attentions.values() if a is not None for norm in (a.post_norm, a.branch_norm)
            ]
            if all(norm is None for norm in norms):
                residual = seen[Site(side, block, "resid_pre")] + branches
                torch.testing.assert_close(seen[Site(side, block, "resid_post")], residual, atol=1e-5, rtol=1e-4)


def test_writing_a_site_changes_exactly_that_tensor(family_model):
    """Each writable site in turn: it then holds what was written, every site the pass reached before it is as
    in the clean pass, the next block reads a written block output, and the logits move (except for the
    probabilities: the model returns them, it does not read them back)."""
    loaded = family_model
    spec = architecture_spec(loaded.model)
    inputs = _inputs(loaded)
    clean, clean_output = _read(loaded, spec, inputs)
    cross = ("cross_attn.head_out", "cross_attn.out", "cross_attn.probs") if spec.encoder_blocks else ()
    generator = torch.Generator().manual_seed(0)
    for point in (*WRITABLE, *cross):
        site = Site("decoder", 1 if point == "resid_post" else 2, point)  # blocks before it, or a block after it
        written = clean[site] + torch.randn(clean[site].shape, generator=generator, dtype=clean[site].dtype)
        seen, output = _read(loaded, spec, inputs, {site: lambda activation, _site, w=written: w.clone()})
        torch.testing.assert_close(seen[site], written, rtol=0, atol=1e-6)  # exact, but BLOOM's residual add
        before = [s for s in seen if (s.side, s.block, s.order) < (site.side, site.block, site.order)]
        assert before and all(torch.equal(seen[s], clean[s]) for s in before if s.point != "call_args"), point
        if point == "resid_post":
            assert torch.equal(seen[Site("decoder", 2, "resid_pre")], written)
        moved = (output.logits - clean_output.logits).abs().max()
        assert moved == 0 if point.endswith("probs") else moved > 1e-4, point


def test_a_read_only_site_refuses_a_replacement():
    loaded = build_random_model("gpt2", seed=7)
    spec = architecture_spec(loaded.model)
    with pytest.raises(ValueError, match=r"decoder\.1\.attn\.values is read only"):
        _read(loaded, spec, _inputs(loaded), {Site("decoder", 1, "attn.values"): lambda values, _site: values * 2})


def test_no_hook_remains_after_an_exception_inside(family_model):
    """A site function that fails, a time budget that stops the pass, an error in the block itself and a site
    the model lacks: every hook the anatomy installed is gone, and the model computes what it did before."""
    loaded = family_model
    model, spec, inputs = loaded.model, architecture_spec(loaded.model), _inputs(loaded)
    hooks, clean = _hooks(model), _read(loaded, spec, inputs)[1].logits
    readers = dict.fromkeys(all_sites(spec), lambda activation, site: None)
    last = Site("decoder", len(spec.decoder_blocks), "ffn.out")

    def fail(activation, site):
        raise RuntimeError("stopped inside the pass")

    with pytest.raises(RuntimeError, match="stopped inside the pass"), hooked(spec, {**readers, last: fail}):
        model(**inputs, use_cache=False)
    assert _hooks(model) == hooks
    with pytest.raises(BudgetExceededError), time_budget(loaded, 1e-9), hooked(spec, readers), torch.no_grad():
        model(**inputs, use_cache=False)
    assert _hooks(model) == hooks
    with pytest.raises(KeyError), hooked(spec, readers):
        assert _hooks(model) != hooks  # installed while inside
        raise KeyError("the block failed")
    assert _hooks(model) == hooks
    beyond = Site("decoder", len(spec.decoder_blocks) + 1, "ffn.out")
    with pytest.raises(UnsupportedError), hooked(spec, {**readers, beyond: fail}):
        pass
    assert _hooks(model) == hooks
    with torch.no_grad():
        assert torch.equal(model(**inputs, use_cache=False).logits, clean)
