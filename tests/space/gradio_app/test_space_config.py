"""The Space's operator config and model offer: what the app accepts, refuses and offers offline."""

from __future__ import annotations

import json

import pytest

from attribution.errors import InvalidInputError
from attribution.models import ModelCache
from space.gradio_app.config import DEFAULT_CONFIG_PATH, SpaceConfig, offered_models
from space.gradio_app.context import AppContext


def test_bundled_default_config_loads_and_matches_its_file():
    config = SpaceConfig.load()
    data = json.loads(DEFAULT_CONFIG_PATH.read_text())
    assert config.profile == data["profile"] == "cpu-basic"  # the Space card's hardware
    assert config.models == tuple(data["profiles"]["cpu-basic"]["models"])
    assert config.default_model == "gpt2"
    assert "Helsinki-NLP/opus-mt-en-de" in config.models
    assert config.custom_models_allowed


def test_config_path_from_environment(tmp_path, monkeypatch):
    path = tmp_path / "op.json"
    path.write_text(json.dumps({"models": ["a/b"], "default_model": "a/b", "demo_mode": True, "max_input_tokens": 9}))
    monkeypatch.setenv("ATTRIBUTION_EXPLORER_SPACE_CONFIG", str(path))
    config = SpaceConfig.load()
    assert config.models == ("a/b",)
    assert config.max_input_tokens == 9
    assert not config.custom_models_allowed


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"modles": ["gpt2"]}, "unknown key(s) modles"),
        ({"models": ["gpt2"], "default_model": "opt"}, "default_model 'opt' is not in 'models'"),
        ({"demo_mode": True, "max_input_tokens": None}, "demo_mode needs a max_input_tokens limit"),
        ({"dtype": "float8"}, "dtype must be one of"),
        ({"concurrency_limit": 0}, "concurrency_limit must be at least 1"),
    ],
)
def test_bad_config_is_a_clear_error(data, message):
    with pytest.raises(InvalidInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SpaceConfig.from_dict(data)


def test_unreadable_config_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InvalidInputError, match="is not valid JSON"):
        SpaceConfig.load(bad)
    with pytest.raises(InvalidInputError, match="cannot read"):
        SpaceConfig.load(tmp_path / "missing.json")


def test_offline_offer_is_local_models_only_with_a_notice(tmp_path):
    local = tmp_path / "my-model"
    local.mkdir()
    config = SpaceConfig(models=("gpt2", str(local)), default_model="gpt2", offline_models=())
    offer = offered_models(config, hub_reachable=False)
    assert offer.models == (str(local),)
    assert offer.default_model == str(local)
    assert not offer.custom_allowed
    assert offer.notice == (
        "The Hugging Face Hub is unreachable from this machine, so the app offers only the models it has locally "
        f"({local}) instead of gpt2."
    )


def test_offline_notice_names_no_missing_model_when_every_configured_one_is_local(tmp_path):
    local = tmp_path / "my-model"
    local.mkdir()
    offer = offered_models(SpaceConfig(models=(str(local),), default_model=str(local)), hub_reachable=False)
    assert "instead of" not in offer.notice  # nothing configured is missing: the notice lists each model once
    assert offer.notice.count(str(local)) == 1 and offer.notice.endswith("a typed Hub id cannot be loaded.")


def test_offline_without_any_local_model_says_how_to_get_one():
    config = SpaceConfig(offline_models=())
    with pytest.raises(InvalidInputError, match=r"train_tiny_models\.py"):
        offered_models(config, hub_reachable=False)


def test_online_offer_is_the_config_models():
    config = SpaceConfig(offline_models=())
    offer = offered_models(config, hub_reachable=True)
    assert offer.models == config.models
    assert offer.default_model == "gpt2"
    assert offer.custom_allowed
    assert offer.notice == ""


def _context(**options) -> AppContext:
    config = SpaceConfig(offline_models=(), **options)
    return AppContext(config, offered_models(config, hub_reachable=True), ModelCache(max_models=1))


def test_demo_mode_refuses_models_outside_the_allow_list():
    ctx = _context(demo_mode=True)
    assert ctx.check_model(" gpt2 ") == "gpt2"
    with pytest.raises(InvalidInputError, match="Unknown model 'EleutherAI/pythia-70m': this app offers only gpt2"):
        ctx.check_model("EleutherAI/pythia-70m")


@pytest.mark.parametrize("name", ["/etc", "../secrets", "~/model", "a/b/c"])
def test_custom_models_must_be_hub_ids_not_server_paths(name):
    ctx = _context()
    assert ctx.check_model("EleutherAI/pythia-70m") == "EleutherAI/pythia-70m"
    with pytest.raises(InvalidInputError, match="is not a Hugging Face model id"):
        ctx.check_model(name)


def test_no_model_chosen():
    with pytest.raises(InvalidInputError, match="Choose a model first"):
        _context().check_model("  ")
