"""Value objects instead of loose parameters: ``Languages``, one ``ModelSpec``, one ``Progress`` protocol.

The guards read the modules themselves (``inspect``), so a new function that takes ``src_lang`` or a
progress callback of its own shape fails here. The model spec is checked end to end: the command line's
``graph`` and ``corpus`` commands load their model from the same spec, and the run manifest records it.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import shutil
from collections.abc import Iterator
from types import ModuleType

import pytest
import torch

import attribution
import space
from attribution import models
from attribution.bundled import bundled_model_path
from attribution.languages import Languages
from attribution.models import ModelCache, ModelSpec, load_model
from attribution.progress import Progress, fraction_done, no_progress, part
from tests.support import texts

PROMPT = texts.IOI_PROMPT


def _modules(package: ModuleType) -> Iterator[ModuleType]:
    yield package
    for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
        if not info.name.endswith(".__main__"):  # ``python -m`` entry files run when imported
            yield importlib.import_module(info.name)


def _signatures(package: ModuleType) -> Iterator[tuple[str, ModuleType, inspect.Signature]]:
    """Every function and method defined in ``package``'s modules (classes: their constructor), by name."""
    for module in _modules(package):
        for name, value in vars(module).items():
            if getattr(value, "__module__", None) != module.__name__:
                continue  # imported from elsewhere: checked where it is defined
            if inspect.isfunction(value):
                yield f"{module.__name__}.{name}", module, inspect.signature(value)
            elif inspect.isclass(value):
                members = [(attribute, member) for attribute, member in vars(value).items() if attribute != "__init__"]
                for attribute, member in [("__init__", value), *members]:
                    function = member if attribute == "__init__" else getattr(member, "__func__", member)
                    if attribute == "__init__" or inspect.isfunction(function):
                        try:
                            signature = inspect.signature(function)
                        except (TypeError, ValueError):
                            continue  # a builtin constructor (an exception class, a Protocol)
                        yield f"{module.__name__}.{name}.{attribute}", module, signature


def test_no_library_signature_takes_loose_languages():
    loose, typed = [], []
    for where, module, signature in _signatures(attribution):
        for parameter in signature.parameters.values():
            if parameter.name in {"src_lang", "tgt_lang"}:  # a result's provenance keeps its JSON fields
                loose.append(f"{where}({parameter.name})")
            if parameter.name == "languages":
                typed.append(where)
                assert parameter.annotation in {"Languages", "Languages | None"}, (where, parameter.annotation)
                assert vars(module)["Languages"] is Languages, where
    assert loose == [], f"languages travel as one Languages value: {loose}"
    for entry_point in (
        "attribution.inseq_runner.attribute",
        "attribution.inseq_runner.attribute_batch",
        "attribution.contributions.graph.build_contribution_graph",
        "attribution.contributions.graph.build_contribution_graphs",
        "attribution.interventions.ablation.intervene",
        "attribution.interventions.routes.route_faithfulness",
        "attribution.interventions.graph_after.graph_after_intervention",
        "attribution.corpus.tasks.TaskConfig.__init__",
    ):
        assert entry_point in typed, entry_point


def test_every_progress_parameter_is_the_one_protocol():
    checked = []
    for package in (attribution, space):
        for where, module, signature in _signatures(package):
            parameter = signature.parameters.get("progress")
            if parameter is None:
                continue
            checked.append(where)
            if where == "space.gradio_app.wiring.reporter":  # the edge: Gradio's tracker in, the protocol out
                assert parameter.annotation == "gr.Progress" and signature.return_annotation == "Progress"
                continue
            assert parameter.annotation in {"Progress", "Progress | None"}, (where, parameter.annotation)
            assert vars(module)["Progress"] is Progress, where
    for package in (attribution, space):  # no alias of another shape left anywhere
        for module in _modules(package):
            assert vars(module).get("Progress", Progress) is Progress, module.__name__
    for reporter in (
        "attribution.inseq_runner.attribute",
        "attribution.contributions.graph.build_contribution_graph",
        "attribution.interventions.sweeps.patching_sweep",
        "attribution.corpus.run.run_corpus",
        "space.gradio_app.tabs.attribute.run_attribution",
        "space.gradio_app.tabs.corpus.run_uploaded_corpus",
    ):
        assert reporter in checked, reporter


def test_the_progress_helpers_count_and_share_one_bar():
    assert fraction_done(2, 3) == pytest.approx(2 / 3) and fraction_done(0, 0) == 0.0 and fraction_done(5, 3) == 1.0
    assert no_progress(1, 2, "anything") is None
    reports: list[tuple[float, float, str]] = []
    second = part(lambda done, total, message="": reports.append((done, total, message)), 0.5, 1.0, "model / saliency")
    second(0, 1, "generating")
    second(2, 4, "token 2 of 4")
    second(4, 4)
    assert reports == [
        (0.5, 1, "model / saliency generating"),
        (0.75, 1, "model / saliency token 2 of 4"),
        (1.0, 1, "model / saliency"),
    ]


def test_load_model_takes_one_spec():
    cache = ModelCache()
    spec = ModelSpec("tiny-ioi-gpt2", dtype="bfloat16")
    loaded = load_model(spec, cache=cache)
    assert loaded.dtype == torch.bfloat16 and loaded.model_id == "tiny-ioi-gpt2"
    assert load_model("tiny-ioi-gpt2", dtype="bfloat16", cache=cache) is loaded  # the name and options: that spec
    assert len(cache) == 1
    assert load_model(ModelSpec("tiny-ioi-gpt2", threads=1), cache=cache) is not loaded  # another dtype
    with pytest.raises(TypeError, match="in the ModelSpec"):
        load_model(spec, dtype="float32", cache=cache)
    with pytest.raises(TypeError):
        load_model("tiny-ioi-gpt2", bogus=1, cache=cache)  # an option that is not a field of the spec
    assert spec.defining() == {"model_id": "tiny-ioi-gpt2", "revision": None, "dtype": "bfloat16"}


def test_the_command_line_and_its_corpus_run_load_the_model_from_one_spec(tmp_path, monkeypatch):
    from space.cli import main

    folder = tmp_path / "my-gpt2"  # a path of its own: no model cached under it yet
    shutil.copytree(bundled_model_path("tiny-ioi-gpt2"), folder)
    loaded_from: list[ModelSpec] = []
    load_uncached = models.load_model_uncached
    monkeypatch.setattr(models, "load_model_uncached", lambda spec: loaded_from.append(spec) or load_uncached(spec))
    options = ["--model", str(folder), "--dtype", "bfloat16"]
    assert main(["graph", *options, "--text", PROMPT, "--top-k", "0", "--out", str(tmp_path / "graph.json")]) == 0
    data = tmp_path / "prompts.jsonl"
    data.write_text(json.dumps({"source": PROMPT}) + "\n", encoding="utf-8")
    run_dir = tmp_path / "run"
    assert main(["corpus", *options, "--methods", "graph", "--data", str(data), "--out", str(run_dir)]) == 0
    assert loaded_from == [ModelSpec(str(folder), dtype="bfloat16")] * 2  # the graph's, then the run's
    manifest = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    assert (
        manifest["model"]
        == loaded_from[1].defining()
        == {"model_id": str(folder), "revision": None, "dtype": "bfloat16"}
    )
    graph = json.loads((tmp_path / "graph.json").read_text(encoding="utf-8"))
    assert graph["provenance"]["model_id"] == str(folder)
