"""Exports of intervention results: every kind through the registry, escaped, offline, drawn in Chromium."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from attribution.interventions.ablation import intervene
from attribution.interventions.faithfulness import attribution_faithfulness
from attribution.interventions.routes import route_faithfulness
from attribution.interventions.sweeps import patching_sweep
from attribution.models import load_model
from attribution.results import load_result, load_result_file
from exporters import export_result
from exporters.base import resolve_kind
from space.cli import main
from tests.support import texts
from tests.support.hostile_inputs import XSS_IMG, XSS_SCRIPT
from tests.support.paths import REPO

IOI = texts.IOI_PROMPT
IOI_COUNTERFACTUAL = texts.IOI_COUNTERFACTUAL
KINDS = ("intervention", "patching", "route_faithfulness", "faithfulness")
#: Screenshots of the drawn pages go here when set (to look at them).
SCREENSHOTS = os.environ.get("ATTRIBUTION_EXPLORER_SCREENSHOTS")


@pytest.fixture(scope="module")
def results() -> dict:
    from attribution.inseq_runner import attribute

    loaded = load_model("tiny-ioi-gpt2")
    return {
        "intervention": intervene(
            loaded, IOI, ["decoder:4:head:1", "decoder:3:after_ffn:9"], contrast_token="John", root_tokens=[-2, -1]
        ),
        "patching": patching_sweep(loaded, IOI, IOI_COUNTERFACTUAL),
        "route_faithfulness": route_faithfulness(loaded, IOI, contrast_token="John", seeds=3),
        "faithfulness": attribution_faithfulness(loaded, attribute(loaded, IOI, method="saliency", target=" Mary")),
    }


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_exports_in_every_mode_from_its_json(results, kind, tmp_path: Path):
    path = tmp_path / f"{kind}.json"
    results[kind].to_json(path)
    assert resolve_kind(load_result_file(path), None) == kind
    for mode in ("standalone", "cdn", "snippet"):
        export = export_result(path, mode=mode)
        assert export.kind == kind and "tiny-ioi-gpt2" in export.html
    standalone = export_result(path).html
    assert "cdn.bokeh.org" not in standalone and len(standalone) < 2_000_000
    assert 'name="attribution-explorer:method"' in standalone


def test_user_strings_in_intervention_results_are_escaped(results):
    intervention = load_result(results["intervention"].to_json())
    intervention.source_text = XSS_SCRIPT
    intervention.components = [XSS_IMG]
    prediction = intervention.predictions[0]
    prediction.input_token = prediction.target_token = XSS_SCRIPT
    prediction.top_before = [(XSS_IMG, 0.5)]
    prediction.top_after = [(XSS_SCRIPT, 0.4, -0.1)]
    patching = load_result(results["patching"].to_json())
    patching.counterfactual_text = XSS_SCRIPT
    patching.maps[1].column_names = [XSS_IMG] * len(patching.maps[1].column_names)
    faithfulness = load_result(results["faithfulness"].to_json())
    faithfulness.explanation = XSS_SCRIPT
    for result in (intervention, patching, faithfulness):
        for mode in ("standalone", "snippet"):
            export = export_result(result, mode=mode, title=XSS_IMG)
            for text in (export.html, export.iframe_html or ""):
                assert XSS_SCRIPT not in text and "<img src=x" not in text


def test_cli_writes_intervention_and_patching_json_that_export_draws(tmp_path: Path):
    ablate, patch, route = tmp_path / "ablate.json", tmp_path / "patching.json", tmp_path / "route.json"
    common = ["--model", "tiny-ioi-gpt2", "--text", IOI]
    assert (
        main(
            ["intervene", *common, "--component", "decoder:4:head:1", "--contrast-token", "John", "--out", str(ablate)]
        )
        == 0
    )
    assert main(["patch", *common, "--counterfactual", IOI_COUNTERFACTUAL, "--maps", "head", "--out", str(patch)]) == 0
    assert main(["intervene", *common, "--route", "--seeds", "2", "--contrast-token", "John", "--out", str(route)]) == 0
    ablation = load_result_file(ablate)
    assert ablation.components == ["decoder:4:head:1"] and ablation.predictions[0].target_token == "Mary"
    assert [m.name for m in load_result_file(patch).maps] == ["head"]
    assert len(load_result_file(route).random_necessity) == 2
    for path in (ablate, patch, route):
        html = tmp_path / f"{path.stem}.html"
        assert main(["export", str(path), "--out", str(html)]) == 0
        assert html.stat().st_size > 1_000_000


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["intervene", "--text", IOI, "--out", "x.json"], "--component"),
        (["intervene", "--text", IOI, "--component", "decoder:9:head:0", "--out", "x.json"], "layer 9 does not exist"),
        (
            ["intervene", "--text", IOI, "--mode", "patch", "--component", "decoder:1:head:0", "--out", "x.json"],
            "--counterfactual",
        ),
        (["patch", "--text", IOI, "--out", "x.json"], "--counterfactual"),
        (["patch", "--text", IOI, "--counterfactual", "When Mary went", "--out", "x.json"], "same length"),
    ],
)
def test_cli_mistakes_are_one_line(arguments, message, capsys, tmp_path: Path):
    command, *rest = arguments
    assert main([command, "--model", "tiny-ioi-gpt2", *rest]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error:") and message in error


@pytest.mark.browser
@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_draws_offline_in_chromium(new_page, results, kind, tmp_path: Path):
    path = export_result(results[kind]).write(tmp_path / f"{kind}.html")
    session = new_page(path.as_uri(), viewport=(1400, 1000))
    session.page.wait_for_function("() => window.Bokeh && [...Bokeh.index].length > 0", timeout=10_000)
    session.page.wait_for_timeout(300)
    pixels = session.drawn_pixels()
    assert pixels["canvases"] >= 1 and pixels["drawn"] > 2_000, pixels
    text = " ".join(session.deep_text().split())
    expected = {
        "intervention": "decoder:4:head:1",
        "patching": "Exact vs attribution patching",
        "route_faithfulness": "necessity: drop of p",
        "faithfulness": "comprehensiveness (higher is better)",
    }[kind]
    assert expected in text
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        session.page.screenshot(path=str(Path(SCREENSHOTS) / f"{kind}.png"), full_page=True)
    session.assert_clean()


def test_docs_python_example_of_interventions_runs(tmp_path: Path, monkeypatch):
    """The Python block of the Interventions page, run as written."""
    page = (REPO / "docs" / "interventions.md").read_text(encoding="utf-8")
    code = page.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "docs/interventions.md", "exec"), namespace)
    assert namespace["ablation"].predictions[0].target_token == "Mary"
    assert namespace["route"].summary()["necessity_drop"] > 0.5
    assert load_result_file(tmp_path / "patching.json").map("head").exact.shape == (4, 4)


def test_patching_maps_show_byte_level_position_tokens_as_text():
    from bokeh.models import CustomJSTickFormatter

    from exporters.bokeh_html import build_figure
    from tests.support.synthetic_results import synthetic_patching

    result = synthetic_patching(n_tokens=3)
    tokens = ["When", "ĠMark", "Ġto"]  # GPT-2's byte-level spelling: a leading space is Ġ
    result.target_tokens = tokens
    result.maps[1].column_names = [f"{p}: {t}" for p, t in enumerate(tokens)]
    labels = {
        tuple(formatter.args["labels"])
        for formatter in build_figure(result).select({"type": CustomJSTickFormatter})
        if "labels" in formatter.args
    }
    assert ("0: When", "1: ·Mark", "2: ·to") in labels  # the position map's axis, as text
    assert not any("Ġ" in label for group in labels for label in group)
    assert load_result(result.to_json()).maps[1].column_names[1] == "1: ĠMark"  # the JSON keeps the raw spelling
