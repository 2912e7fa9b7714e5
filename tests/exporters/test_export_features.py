"""Exports of the feature results (a node's SAE features, two prompts layer by layer, the neuron / feature viewer):
every kind from its JSON through the registry, user strings escaped, drawn offline in Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest

from attribution.features import compare_prompts, load_sae_folder, node_features, top_activations
from attribution.models import bundled_model_path, load_model
from attribution.results import load_result, load_result_file
from exporters import export_result
from exporters.base import resolve_kind
from tests.support import texts
from tests.support.hostile_inputs import XSS_IMG, XSS_SCRIPT
from tests.support.paths import SCREENSHOTS

KINDS = ("node_features", "layer_comparison", "top_activations")


@pytest.fixture(scope="module")
def results() -> dict:
    loaded = load_model("tiny-ioi-gpt2")
    sae = load_sae_folder(bundled_model_path("tiny-ioi-gpt2").parent / "tiny-ioi-gpt2-sae")
    return {
        "node_features": node_features(loaded, texts.IOI_PROMPT, "decoder:2:after_ffn:1", sae, k=6),
        "layer_comparison": compare_prompts(loaded, texts.IOI_PROMPT, texts.IOI_COUNTERFACTUAL),
        "top_activations": top_activations(
            loaded, [texts.IOI_PROMPT, texts.IOI_COUNTERFACTUAL], "decoder:2:sae:17", dictionary=sae, k=5
        ),
    }


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_exports_from_its_json(results, kind, tmp_path: Path):
    path = tmp_path / f"{kind}.json"
    results[kind].to_json(path)
    assert load_result_file(path) == results[kind]
    assert resolve_kind(load_result_file(path), None) == kind
    for mode in ("standalone", "snippet"):
        export = export_result(path, mode=mode)
        assert export.kind == kind and "tiny-ioi-gpt2" in export.html
    assert "cdn.bokeh.org" not in export_result(path).html


def test_user_strings_in_feature_results_are_escaped(results):
    view = load_result(results["node_features"].to_json())
    view.node = view.sae_name = XSS_SCRIPT
    view.features[0].promoted = [(XSS_IMG, 1.0)]
    view.features[0].neuronpedia_url = "javascript:alert(1)"
    comparison = load_result(results["layer_comparison"].to_json())
    comparison.tokens_a = [XSS_IMG] * len(comparison.tokens_a)
    viewer = load_result(results["top_activations"].to_json())
    viewer.unit = XSS_SCRIPT
    viewer.examples[0].context = [XSS_IMG] * len(viewer.examples[0].context)
    viewer.examples[0].record = XSS_SCRIPT
    for result in (view, comparison, viewer):
        for mode in ("standalone", "snippet"):
            export = export_result(result, mode=mode, title=XSS_IMG)
            for text in (export.html, export.iframe_html or ""):
                assert XSS_SCRIPT not in text and "<img src=x" not in text and "javascript:alert" not in text


@pytest.mark.browser
@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_draws_offline_in_chromium(new_page, results, kind, tmp_path: Path):
    path = export_result(results[kind]).write(tmp_path / f"{kind}.html")
    for width in (1400, 800):
        session = new_page(path.as_uri(), viewport=(width, 1000))
        session.page.wait_for_function("() => window.Bokeh && [...Bokeh.index].length > 0", timeout=10_000)
        session.page.wait_for_timeout(300)
        pixels = session.drawn_pixels()
        assert pixels["canvases"] >= 1 and pixels["drawn"] > 2_000, pixels
        text = " ".join(session.deep_text().split())
        expected = {
            "node_features": "reconstructs",
            "layer_comparison": "The states first differ",
            "top_activations": "largest activations over 2 records",
        }[kind]
        assert expected in text
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        session.page.screenshot(path=str(SCREENSHOTS / f"export-{kind}-{width}.png"), full_page=True)
        session.assert_clean()
