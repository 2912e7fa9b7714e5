"""Fixtures of the library's tests: random-initialised models of every family, and models placed by accelerate."""

from __future__ import annotations

import pytest

from attribution.models import LoadedModel, load_model
from tests.support.random_models import FAMILIES, VARIANTS, build_random_model, louder_attention
from tests.support.tiers import across_families


@pytest.fixture(scope="module", params=across_families(FAMILIES + VARIANTS))
def family_model(request: pytest.FixtureRequest) -> LoadedModel:
    """A random-initialised model (non-zero biases) of every family and layout, built once per test module.

    The module says how: ``FAMILY_SEED`` (its tolerances were checked with that seed) and ``LOUDER_FAMILIES``,
    the families whose quiet attention ``louder_attention`` scales up so that graph edges pass a threshold.
    """
    loaded = build_random_model(request.param, seed=request.module.FAMILY_SEED)
    return louder_attention(loaded) if request.param in getattr(request.module, "LOUDER_FAMILIES", ()) else loaded


@pytest.fixture(scope="module", params=["gpt2", "marian"])
def offloaded_models(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """(whole model, the same weights offloaded to disk by accelerate): a random GPT-2 and Marian saved and loaded
    back with a memory budget of half their weights, used by the offloading tests of the library and interventions."""
    accelerate = pytest.importorskip("accelerate")
    folder = tmp_path_factory.mktemp(request.param)
    reference = build_random_model(request.param, seed=3)
    reference.model.save_pretrained(folder)
    reference.tokenizer.save_pretrained(folder)
    whole = load_model(str(folder), cache=None)
    n_bytes = sum(p.numel() * p.element_size() for p in whole.model.parameters())
    budget = {"cpu": int(n_bytes * 0.5)}
    if request.param == "gpt2":
        placement = "auto"
    else:  # Marian's sinusoidal position table is not in its checkpoint, so it cannot be offloaded to disk
        placement = {
            name: "cpu" if name.endswith("embed_positions") else device
            for name, device in accelerate.infer_auto_device_map(reference.model, max_memory=budget).items()
        }
    sharded = load_model(
        str(folder), device_map=placement, max_memory=budget, offload_folder=str(folder / "offload"), cache=None
    )
    return whole, sharded
