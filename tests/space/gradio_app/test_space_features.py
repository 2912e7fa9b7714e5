"""The Features tab: its handlers against the library with the SAE bundled with tiny-ioi-gpt2, and the served
tab driven in Chromium at a wide and a narrow width."""

from __future__ import annotations

import pytest

from attribution.errors import InvalidInputError
from attribution.features import compare_prompts, load_sae_folder, node_features, top_activations
from attribution.interventions.ablation import intervene
from attribution.interventions.graph_after import graph_after_intervention
from attribution.models import bundled_model_path
from space.gradio_app import context
from space.gradio_app.config import SpaceConfig
from space.gradio_app.tabs import features as features_tab
from tests.support import texts
from tests.support.app_context import offline_context
from tests.support.browser import wait_for_drawing
from tests.support.hostile_inputs import XSS_SCRIPT
from tests.support.paths import SCREENSHOTS

PROMPT = texts.IOI_PROMPT
MODEL = "tiny-ioi-gpt2"


@pytest.fixture(scope="module")
def ctx() -> context.AppContext:
    return offline_context(SpaceConfig(models=(MODEL, "tiny-synth-translate"), default_model=MODEL))


@pytest.fixture(scope="module")
def bundled_sae():
    return load_sae_folder(bundled_model_path(MODEL).parent / "tiny-ioi-gpt2-sae")


@pytest.mark.slow
def test_handlers_give_what_the_library_gives(ctx, bundled_sae):
    loaded = ctx.load(MODEL)
    view = features_tab.run_node_features(ctx, MODEL, PROMPT, "decoder:2:after_ffn:1", 5)
    direct = node_features(loaded, PROMPT, "decoder:2:after_ffn:1", bundled_sae, k=5)
    assert [(r.feature, r.activation) for r in view.features] == [(r.feature, r.activation) for r in direct.features]
    section = features_tab.node_feature_section(ctx, MODEL, PROMPT, "decoder:2:after_ffn:1", 5)
    assert f"{view.features[0].feature}</td>" in section and "reconstructs" in section
    component = f"decoder:2:sae:{view.features[0].feature}@1"
    ablated = features_tab.run_feature_intervention(ctx, MODEL, PROMPT, component, "zero", None)
    assert ablated.predictions == intervene(loaded, PROMPT, [component], saes=[bundled_sae]).predictions
    route = features_tab.run_feature_route(ctx, MODEL, PROMPT, component, "steer", 8.0)
    direct_route = graph_after_intervention(loaded, PROMPT, [component], mode="steer", strength=8.0, saes=[bundled_sae])
    assert [(e.source, e.target, e.weight) for e in route.edges] == [
        (e.source, e.target, e.weight) for e in direct_route.edges
    ]
    steered = features_tab.run_feature_intervention(ctx, MODEL, PROMPT, component, "steer", 8.0)
    assert (
        steered.strength == 8.0 and steered.predictions[0].probability_after != ablated.predictions[0].probability_after
    )
    viewer = features_tab.run_viewer(ctx, MODEL, "decoder:2:neuron:3")
    corpus = features_tab.sample_corpus(loaded)
    assert viewer.examples == top_activations(loaded, corpus, "decoder:2:neuron:3", k=20).examples
    other = texts.IOI_COUNTERFACTUAL
    comparison = features_tab.run_layer_comparison(ctx, MODEL, PROMPT, other)
    assert comparison.state_relative_l2 == compare_prompts(loaded, PROMPT, other).state_relative_l2


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda ctx: features_tab.run_node_features(ctx, "tiny-synth-translate", "the cat", "decoder:1:after_ffn:0"),
            "No SAE",
        ),
        (
            lambda ctx: features_tab.run_node_features(ctx, MODEL, PROMPT, "decoder:3:after_ffn:1"),
            "reads graph layer 2",
        ),
        (lambda ctx: features_tab.run_node_features(ctx, MODEL, PROMPT, XSS_SCRIPT), "graph does"),
        (lambda ctx: features_tab.run_node_features(ctx, MODEL, PROMPT, "decoder:2:after_ffn:99"), "out of range"),
        (
            lambda ctx: features_tab.run_feature_intervention(ctx, MODEL, PROMPT, "decoder:2:sae:1@1", "mean", None),
            "Ablate",
        ),
        (
            lambda ctx: features_tab.run_feature_intervention(ctx, MODEL, PROMPT, "decoder:2:sae:1@1", "steer", 1e9),
            "strength",
        ),
        (lambda ctx: features_tab.run_viewer(ctx, MODEL, "decoder:2:head:1"), "neuron"),
        (lambda ctx: features_tab.run_layer_comparison(ctx, MODEL, PROMPT, "When Mary went"), "same length"),
    ],
)
def test_mistakes_are_one_line(ctx, call, message):
    with pytest.raises(InvalidInputError, match=message) as refused:
        call(ctx)
    assert "\n" not in str(refused.value)


@pytest.mark.browser
@pytest.mark.server
@pytest.mark.parametrize("width", [1400, 800])
def test_browser_features_tab_at_both_widths(served, new_page, width):
    session = new_page(served.url, allowed_origin=served.url.rstrip("/"), viewport=(width, 1100))
    page = session.page
    page.wait_for_selector("#attribute-text textarea", timeout=60_000)
    page.get_by_role("tab", name="Features").click()
    page.fill("#features-text textarea", PROMPT)
    page.click("#features-run")
    page.wait_for_selector("#features-section .ae-node-features", timeout=60_000)
    section = page.inner_text("#features-section")
    assert "reconstructs" in section and "decoder:2:after_ffn:1" in section
    feature = page.locator("#features-section td").first.inner_text().strip()
    page.fill("#features-component textarea", f"decoder:2:sae:{feature}@1")
    page.click("#features-intervene")
    wait_for_drawing(page, "#features-intervention-plot")
    wait_for_drawing(page, "#features-route-plot")
    assert "→" in page.inner_text("#features-intervention-summary")
    page.click("#features-view")
    wait_for_drawing(page, "#features-viewer-plot")
    page.fill("#features-text-a textarea", PROMPT)
    page.fill("#features-text-b textarea", texts.IOI_COUNTERFACTUAL)
    page.click("#features-compare")
    wait_for_drawing(page, "#features-compare-plot")
    overflow = page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0  # nothing sticks out sideways at either width
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"space-features-{width}.png"), full_page=True)
    session.assert_clean()
