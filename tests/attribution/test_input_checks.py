"""Library-side input checks: Hub-only model ids for shared deployments, devices, text before tokenizing."""

from __future__ import annotations

from pathlib import Path

import pytest

from attribution import models
from attribution.errors import HubUnreachableError, InvalidInputError
from attribution.models import ModelCache, load_model, resolve_device
from tests.support.paths import REPO


@pytest.fixture
def no_local_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record what transformers is asked to load, and refuse every local path (nothing may read one)."""
    asked: list[str] = []
    original = models.AutoConfig.from_pretrained

    def guarded(source, *args, **kwargs):
        asked.append(str(source))
        assert not Path(source).exists(), f"transformers was asked to read the local path {source}"
        return original(source, *args, **kwargs)

    monkeypatch.setattr(models.AutoConfig, "from_pretrained", guarded)
    monkeypatch.chdir(REPO)
    return asked


@pytest.mark.parametrize("name", ["examples/models", "space/config.json", "examples/data"])
def test_hub_only_ids_never_resolve_to_local_paths_and_answer_like_a_missing_model(
    name: str, no_local_reads: list[str]
) -> None:
    assert (REPO / name).exists()
    with pytest.raises(HubUnreachableError) as local:
        load_model(name, allow_local=False, cache=ModelCache())
    with pytest.raises(HubUnreachableError) as missing:
        load_model("nobody/nothing", allow_local=False, cache=ModelCache())
    assert str(local.value) == str(missing.value).replace("nobody/nothing", name)
    assert name not in no_local_reads  # refused before transformers could look at the folder or file
    # The same name is a local folder / file for the CLI and the Python API, where paths are the point.
    if name != "space/config.json":
        with pytest.raises(models.ModelLoadError, match=r"(not a model folder|no config\.json)"):
            load_model(name, cache=ModelCache())


@pytest.mark.parametrize("name", ["/etc", "../secrets", "~/models", "a/b/c", "x" * 200, "tiny-ioi-gpt2/../..", ""])
def test_hub_only_ids_must_look_like_hub_ids(name: str, no_local_reads: list[str]) -> None:
    with pytest.raises(InvalidInputError, match=r"(is not a Hugging Face model id|No model given)") as refused:
        load_model(name, allow_local=False, cache=ModelCache())
    assert len(str(refused.value)) < 300 and no_local_reads == []


def test_offered_local_models_still_load_by_path() -> None:
    loaded = load_model(str(models.bundled_model_path("tiny-ioi-gpt2")), cache=ModelCache())
    assert loaded.kind == "causal"


@pytest.mark.parametrize(
    ("device", "expect"),
    [
        ("bogus", "Unknown device 'bogus'"),
        ("meta", "Unknown device 'meta'"),
        ("cuda:-1", "Unknown device|does not exist|no CUDA"),
        ("x" * 100, "Unknown device this device"),
    ],
)
def test_bad_devices_are_refused(device: str, expect: str) -> None:
    with pytest.raises(InvalidInputError, match=expect):
        resolve_device(device)
    assert resolve_device("cpu") == "cpu" and resolve_device("auto") in ("cpu", "cuda")


def test_texts_far_too_long_or_not_unicode_are_refused_before_tokenizing(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = load_model("tiny-ioi-gpt2", cache=ModelCache())

    def no_tokenizing(text: str) -> int:
        raise AssertionError("the tokenizer ran on a text that should have been refused first")

    monkeypatch.setattr(loaded, "count_tokens", no_tokenizing)
    with pytest.raises(InvalidInputError, match=r"is 2,000,000 characters long, far more than the 10 tokens"):
        loaded.validate_text("ab" * 1_000_000, max_tokens=10)
    with pytest.raises(InvalidInputError, match="not valid text: character 3 is a lone surrogate"):
        loaded.validate_text("ab\udc80cd")
