"""The shipped hardware profiles: each resolves, and every run it offers is within its caps (estimates only)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from attribution.errors import InvalidInputError
from attribution.results import AttributionResult
from space.gradio_app.config import DEFAULT_CONFIG_PATH, SpaceConfig, profile_names, read_config_file
from space.gradio_app.context import offered_methods
from space.gradio_app.examples import PROFILE_EXAMPLES
from space.gradio_app.offered_runs import GRAPH, PATCHING, offered_runs
from tests.support.app_server import call, serve_app
from tests.support.published_models import PUBLISHED, save_to_hub_cache, stand_in

PROFILES = profile_names(read_config_file())


PROMPT = PROFILE_EXAMPLES["causal"][0]


def shape_only(model_id: str):
    """The configured model's published architecture on the meta device: tokenizes and estimates, never runs."""
    return stand_in(model_id, device="meta")


def test_the_shipped_file_defines_the_three_hardware_profiles_and_defaults_to_cpu_basic():
    assert PROFILES == ("cpu-basic", "zero-gpu", "gpu")
    assert json.loads(DEFAULT_CONFIG_PATH.read_text())["profile"] == "cpu-basic"
    zero = SpaceConfig.load(profile="zero-gpu")
    assert zero.preload_models and zero.device == "cuda"
    assert {"facebook/nllb-200-distilled-600M", "Qwen/Qwen2.5-0.5B-Instruct"} <= set(zero.models)
    assert zero.cache_max_models >= len(zero.models)  # ZeroGPU moves what is loaded at start-up: keep them all


@pytest.mark.parametrize("profile", PROFILES)
def test_every_offered_run_of_the_profile_is_within_its_cap(profile):
    config = SpaceConfig.load(profile=profile)
    runs = list(offered_runs(config, shape_only))
    methods = offered_methods(config)
    per_model = (len(methods) + 2) * 1  # each method, the graph and the patching sweep, on the model's one example
    assert all(len(examples) == 1 for examples in PROFILE_EXAMPLES.values())
    assert len(runs) == len(config.models) * per_model
    assert {run.method for run in runs} == {*methods, GRAPH, PATCHING}
    over = [run.describe() for run in runs if not run.within_cap]
    assert not over, "\n".join(over)
    ran = [run for run in runs if run.estimate is not None]
    assert len(ran) >= len(runs) - len(config.models)  # at most one method refused per model, never most of them


def test_a_profile_whose_method_defaults_break_its_cap_is_caught():
    config = SpaceConfig.load(profile="cpu-basic")
    costly = dataclasses.replace(config, method_params={"integrated_gradients": {"n_steps": 50}})
    over = [run for run in offered_runs(costly, shape_only) if not run.within_cap]
    assert {run.method for run in over} == {"integrated_gradients"}
    assert {run.model for run in over} == set(config.models)
    gpt2 = next(run for run in over if run.model == "gpt2")
    # 12 generated tokens: 50 steps each, one prediction each, one generation pass each.
    assert gpt2.estimate.passes == 12 * 50 + 12 + 12 > config.max_model_passes


def _file(**extra):
    return {"models": ["a/b"], "default_model": "a/b", **extra}


def test_a_profile_overrides_the_top_level_keys_and_is_named():
    data = _file(profiles={"small": {"max_new_tokens": 3}, "big": {"models": ["c/d"], "default_model": "c/d"}})
    assert SpaceConfig.from_dict(data).profile is None
    assert SpaceConfig.from_dict({**data, "profile": "small"}).max_new_tokens == 3
    big = SpaceConfig.from_dict({**data, "profile": "small"}, profile="big")
    assert (big.profile, big.models, big.max_new_tokens) == ("big", ("c/d",), 20)


def test_the_environment_names_the_profile(monkeypatch):
    monkeypatch.setenv("ATTRIBUTION_EXPLORER_PROFILE", "small")
    data = _file(profile="big", profiles={"small": {"max_new_tokens": 3}, "big": {"max_new_tokens": 9}})
    assert SpaceConfig.from_dict(data).max_new_tokens == 3


@pytest.mark.parametrize(
    ("data", "profile", "message"),
    [
        (_file(profiles={"small": {}}), "large", "unknown profile 'large'; this file defines: small"),
        (_file(), "small", "unknown profile 'small'; this file defines: none"),
        (_file(profiles={"small": {"profile": "big"}}), "small", "profile 'small' may not set profile"),
        (_file(profiles={"small": {"max_new_tokens": 0}}), "small", "max_new_tokens must be at least 1"),
        (_file(profiles={"small": {"modls": []}}), "small", "unknown key(s) modls"),
        (_file(profiles=["small"]), None, "'profiles' must map each profile name to an object"),
    ],
)
def test_a_bad_profile_is_a_clear_error(data, profile, message):
    with pytest.raises(InvalidInputError) as error:
        SpaceConfig.from_dict(data, profile=profile)
    assert message in str(error.value)


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory):
    """A Hub cache folder holding a small stand-in of every model a profile offers, as ``preload_from_hub`` leaves
    the real ones (one layer per stack, published widths)."""
    cache = tmp_path_factory.mktemp("hub-cache")
    for model_id in PUBLISHED:
        save_to_hub_cache(model_id, cache, small=True)
    return cache


@pytest.mark.server
@pytest.mark.slow  # three app processes (~30 s each on the shared machine)
@pytest.mark.parametrize("profile", PROFILES)
def test_the_app_starts_with_the_profile_and_serves_its_default_model_preloaded(
    profile, hub_cache, tmp_path, monkeypatch
):
    """The shipped file with the profile chosen by the environment, on CPU (this machine has no GPU), its models
    loaded by Hub id from the cache; the default model's files are moved away once the app is up: it answers
    from memory, so it was loaded at start-up."""
    data = read_config_file()
    for overrides in data["profiles"].values():
        overrides["device"] = "cpu"
    config = SpaceConfig.from_dict(data, profile=profile)
    assert set(config.models) <= set(PUBLISHED)
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setenv("ATTRIBUTION_EXPLORER_PROFILE", profile)
    default_files = hub_cache / f"models--{config.default_model.replace('/', '--')}"
    with serve_app(data, tmp_path / "app", online=True) as app:
        default_files.rename(default_files.with_name("moved-away"))
        try:
            answer = call(
                app.url, "attribute", config.default_model, PROMPT, " Mary", config.default_method, [], "", "", ""
            )
        finally:
            default_files.with_name("moved-away").rename(default_files)
    assert answer.event == "complete", answer.data
    result = AttributionResult.from_json(answer.data[-1])
    assert (result.provenance.model_id, result.method) == (config.default_model, config.default_method)
    assert "".join(result.generated_tokens).replace("Ġ", " ") == " Mary"


def test_the_space_card_lists_and_preloads_the_models_of_the_default_profile():
    from huggingface_hub.repocard import metadata_load

    card = metadata_load(DEFAULT_CONFIG_PATH.with_name("README.md"))
    models = list(SpaceConfig.from_dict(read_config_file(), profile=None).models)
    assert card["models"] == card["preload_from_hub"] == models
