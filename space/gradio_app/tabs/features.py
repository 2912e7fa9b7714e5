"""The Features tab: SAE features at a graph node (and ablating or steering one), the neuron / feature viewer,
and two prompts compared layer by layer.

A node is chosen by the contribution graph's own node ids (``decoder:2:after_ffn:5``), so a node tapped in the
graph names the same state here; :func:`node_feature_section` is the node's feature section as HTML, for the
graph's details view to include. SAEs come from this module's offer, never from a request: the SAE bundled
with ``tiny-ioi-gpt2`` (a local SAELens folder, offline), and for GPT-2 small SAELens's pretrained residual
SAEs (``gpt2-small-res-jb``, downloaded, so only when the Hub is reachable). The viewer scans the bundled
sample prompts (the corpus of the app; the library's :func:`~attribution.features.viewer.top_activations`
takes any corpus).
"""

from __future__ import annotations

import html
import json
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gradio as gr

from attribution.bundled import bundled_model_path, samples_path
from attribution.errors import InvalidInputError
from attribution.progress import Progress, no_progress
from space.gradio_app.context import INTERVENTION_BUDGET_HINT, AppContext
from space.gradio_app.wiring import TRACK_PROGRESS, Page, Shown, redraw, reporter, user_errors

if TYPE_CHECKING:
    from attribution.features.dictionary import FeatureDictionary
    from attribution.models import LoadedModel

#: The SAE folder bundled with a bundled model (fitted by examples/train_tiny_sae.py).
BUNDLED_SAES = {"tiny-ioi-gpt2": "tiny-ioi-gpt2-sae"}
#: Models with SAELens pretrained residual SAEs: (release, SAE id of graph layer l = blocks.l.hook_resid_pre).
PRETRAINED_SAES = {"gpt2": ("gpt2-small-res-jb", "blocks.{layer}.hook_resid_pre")}
#: SAEs kept loaded at once (GPT-2 small's are ~150 MB each), the least recently loaded dropped first.
MAX_LOADED_SAES = 2
#: Most features listed, most viewer examples, the largest steering strength the tab accepts.
MAX_FEATURES = 30
VIEWER_EXAMPLES = 20
MAX_STRENGTH = 100.0

_loaded_saes: dict[tuple[str, int], FeatureDictionary] = {}
_sae_lock = threading.Lock()


def _layer_of(node_or_unit: str) -> int:
    parts = (node_or_unit or "").strip().split(":")
    if len(parts) < 3 or not parts[1].isdigit():
        raise InvalidInputError("Name a node as the graph does, e.g. 'decoder:2:after_ffn:5'.")
    return int(parts[1])


def sae_for(model: str, layer: int, *, hub_reachable: bool) -> FeatureDictionary:
    """The offered SAE of ``model`` at graph ``layer`` (loaded once, kept); one clear line when there is none."""
    from attribution.features.dictionary import load_pretrained_sae, load_sae_folder

    key = (model, layer)
    with _sae_lock:
        if key in _loaded_saes:
            return _loaded_saes[key]
        if model in BUNDLED_SAES:
            dictionary = load_sae_folder(bundled_model_path(model).parent / BUNDLED_SAES[model])
        elif model in PRETRAINED_SAES and hub_reachable:
            release, sae_id = PRETRAINED_SAES[model]
            dictionary = load_pretrained_sae(release, sae_id.format(layer=layer), layer=layer)
        else:
            raise InvalidInputError(
                f"No SAE is offered for {model} here: the bundled tiny-ioi-gpt2 has one (layer 2), GPT-2 small "
                "SAELens's residual SAEs when the Hub is reachable."
            )
        if dictionary.layer != layer:
            raise InvalidInputError(f"The SAE offered for {model} reads graph layer {dictionary.layer}, not {layer}.")
        _loaded_saes[key] = dictionary
        while len(_loaded_saes) > MAX_LOADED_SAES:
            del _loaded_saes[next(iter(_loaded_saes))]
        return dictionary


def _model_and_sae(ctx: AppContext, model: str, text: str, layer: int) -> tuple[LoadedModel, FeatureDictionary]:
    loaded = ctx.load(model)
    ctx.check_texts(loaded, input_text=text)
    return loaded, sae_for(ctx.check_model(model), layer, hub_reachable=not ctx.offer.notice)


def node_feature_section(ctx: AppContext, model: str, text: str, node: str, k: int = 10) -> str:
    """The node's SAE feature section (escaped HTML), for any view that shows a graph node."""
    from exporters.features import node_features_html

    return node_features_html(run_node_features(ctx, model, text, node, k))


def run_node_features(ctx: AppContext, model: str, text: str, node: str, k: int = 10) -> Any:
    """The ``k`` most active SAE features at graph node ``node`` of ``text``."""
    from attribution.features.nodes import node_features

    if not isinstance(k, int | float) or not 1 <= int(k) <= MAX_FEATURES:
        raise InvalidInputError(f"List 1 to {MAX_FEATURES} features.")
    loaded, dictionary = _model_and_sae(ctx, model, text, _layer_of(node))
    with ctx.time_budget(loaded, "The feature view", no_progress, hint=INTERVENTION_BUDGET_HINT):
        return node_features(loaded, text, node.strip(), dictionary, k=int(k), max_tokens=ctx.config.max_input_tokens)


def feature_edit(mode: str, strength: float | None) -> float | None:
    """The strength of a checked feature edit: ``None`` to ablate (``zero``), the bounded one to ``steer``."""
    if mode not in ("zero", "steer"):
        raise InvalidInputError("Ablate the feature (zero) or steer with it (steer).")
    if mode == "zero":
        return None
    if strength is None or not abs(float(strength)) <= MAX_STRENGTH:
        raise InvalidInputError(f"Steering needs a strength from -{MAX_STRENGTH:g} to {MAX_STRENGTH:g}.")
    return float(strength)


def run_feature_intervention(
    ctx: AppContext, model: str, text: str, component: str, mode: str, strength: float | None
) -> Any:
    """Ablate (``zero``) or steer (``steer``, ``strength``) one SAE feature component (``decoder:2:sae:17@5``)."""
    from attribution.interventions.ablation import intervene

    strength = feature_edit(mode, strength)
    loaded, dictionary = _model_and_sae(ctx, model, text, _layer_of(component))
    with ctx.time_budget(loaded, "The feature intervention", no_progress, hint=INTERVENTION_BUDGET_HINT):
        return intervene(
            loaded,
            text,
            [component.strip()],
            mode=mode,  # type: ignore[arg-type]  # checked to be zero or steer just above
            strength=strength,
            saes=[dictionary],
            max_tokens=ctx.config.max_input_tokens,
        )


def run_feature_route(ctx: AppContext, model: str, text: str, component: str, mode: str, strength: float | None) -> Any:
    """The contribution graph of the pass with the feature ablated / steered: the route re-drawn after it."""
    from attribution.interventions.graph_after import graph_after_intervention

    strength = feature_edit(mode, strength)
    loaded, dictionary = _model_and_sae(ctx, model, text, _layer_of(component))
    with ctx.time_budget(loaded, "The re-drawn route", no_progress, hint=INTERVENTION_BUDGET_HINT):
        return graph_after_intervention(
            loaded,
            text,
            [component.strip()],
            mode=mode,
            strength=strength,
            saes=[dictionary],
            max_tokens=ctx.config.max_input_tokens,
        )


def sample_corpus(loaded: LoadedModel) -> list[str]:
    """The app's corpus for the viewer: the bundled sample prompts (sources for a translation model)."""
    samples = json.loads(samples_path().read_text(encoding="utf-8"))
    if loaded.kind == "seq2seq":
        return [pair["source"] for pair in samples["translations"]]
    return list(samples["ioi_prompts"])


def run_viewer(ctx: AppContext, model: str, unit: str, progress: Progress = no_progress) -> Any:
    """Where a neuron (``decoder:2:neuron:113``) or an SAE feature (``decoder:2:sae:17``) fires most."""
    from attribution.features.viewer import top_activations

    loaded = ctx.load(model)
    dictionary = None
    if ":sae:" in (unit or ""):
        dictionary = sae_for(ctx.check_model(model), _layer_of(unit), hub_reachable=not ctx.offer.notice)
    with ctx.time_budget(loaded, "The viewer", progress, hint=INTERVENTION_BUDGET_HINT):
        return top_activations(
            loaded,
            sample_corpus(loaded),
            (unit or "").strip(),
            dictionary=dictionary,
            k=VIEWER_EXAMPLES,
            max_tokens=ctx.config.max_input_tokens,
        )


def run_layer_comparison(ctx: AppContext, model: str, text_a: str, text_b: str) -> Any:
    """Two prompts of the same length compared layer by layer."""
    from attribution.features.layer_compare import compare_prompts

    loaded = ctx.load(model)
    ctx.check_texts(loaded, input_text=text_a, counterfactual=text_b)
    with ctx.time_budget(loaded, "The comparison", no_progress, hint=INTERVENTION_BUDGET_HINT):
        return compare_prompts(loaded, text_a, text_b, max_tokens=ctx.config.max_input_tokens)


def feature_examples(bundled: tuple[str, ...]) -> list[list[Any]]:
    """(model, prompt, node, features listed, prompt A, prompt B) on the bundled models that have an SAE."""
    from space.gradio_app.examples import ioi_prompts, swap_names

    models = [model for model in bundled if model in BUNDLED_SAES]
    return [
        [model, prompt, "decoder:2:after_ffn:1", 8, prompt, swap_names(prompt)]
        for model in models
        for prompt in ioi_prompts(1)
    ]


@dataclass
class _Endpoints:
    node: Any
    intervention: Any
    route: Any
    viewer: Any
    compare: Any


def _endpoints(ctx: AppContext) -> _Endpoints:
    from exporters.bokeh_html import build_figure
    from exporters.features import node_features_html

    @user_errors
    def features(model, text, node, k):
        view = run_node_features(ctx, model, text, node, int(k))
        return node_features_html(view), view.to_json()

    @user_errors
    def feature_intervention(model, text, component, mode, strength):
        result = run_feature_intervention(ctx, model, text, component, mode, strength)
        change = result.predictions[0]
        summary = (
            f"{html.escape(component.strip())}: p({html.escape(change.target_token)}) "
            f"{change.probability_before:.4f} → {change.probability_after:.4f}, KL {change.kl_divergence:.4f}"
        )
        return summary, build_figure(result), result.to_json()

    @user_errors
    def feature_route(model, text, component, mode, strength):
        return build_figure(run_feature_route(ctx, model, text, component, mode, strength))

    @user_errors
    def viewer(model, unit, progress=TRACK_PROGRESS):
        result = run_viewer(ctx, model, unit, reporter(progress))
        return build_figure(result), result.to_json()

    @user_errors
    def compare(model, text_a, text_b):
        result = run_layer_comparison(ctx, model, text_a, text_b)
        return build_figure(result), result.to_json()

    return _Endpoints(features, feature_intervention, feature_route, viewer, compare)


def build(page: Page) -> None:
    with gr.Tab("Features", id="features") as tab:
        gr.Markdown(
            "SAE features at a contribution-graph node (name it as the graph does, e.g. `decoder:2:after_ffn:5`), "
            "ablating or steering one feature, where a neuron or feature fires most over the sample corpus, and "
            "two prompts compared layer by layer."
        )
        with gr.Row():
            model = page.model_dropdown(elem_id="features-model")
            node = gr.Textbox(value="decoder:2:after_ffn:1", label="Node (graph node id)", elem_id="features-node")
            k = gr.Number(value=8, precision=0, minimum=1, maximum=MAX_FEATURES, label="Features listed")
        text = gr.Textbox(label="Prompt", lines=2, elem_id="features-text")
        run = gr.Button("Show features", variant="primary", elem_id="features-run")
        section = gr.HTML(elem_id="features-section")
        with gr.Row():
            component = gr.Textbox(label="Feature (e.g. decoder:2:sae:17@1)", elem_id="features-component")
            mode = gr.Radio(["zero", "steer"], value="zero", label="Ablate (zero) or steer")
            strength = gr.Number(value=4.0, label="Steering strength", elem_id="features-strength")
        change = gr.Button("Intervene on the feature", elem_id="features-intervene")
        change_summary = gr.Markdown(elem_id="features-intervention-summary")
        change_plot = gr.Plot(show_label=False, elem_id="features-intervention-plot")
        gr.Markdown("**The route re-drawn on the intervened pass**")
        route_plot = gr.Plot(show_label=False, elem_id="features-route-plot")
        gr.Markdown("**Neuron / feature viewer** (what it writes, where it fires most over the sample prompts)")
        with gr.Row():
            unit = gr.Textbox(value="decoder:2:neuron:0", label="Neuron or feature", elem_id="features-unit")
            view = gr.Button("View", elem_id="features-view")
        viewer_plot = gr.Plot(show_label=False, elem_id="features-viewer-plot")
        gr.Markdown("**Two prompts, layer by layer** (same number of tokens)")
        with gr.Row():
            text_a = gr.Textbox(label="Prompt A", elem_id="features-text-a")
            text_b = gr.Textbox(label="Prompt B", elem_id="features-text-b")
        compare = gr.Button("Compare", elem_id="features-compare")
        compare_plot = gr.Plot(show_label=False, elem_id="features-compare-plot")
        with gr.Accordion("Result JSON", open=False):
            result_json = gr.Code("", language="json", label="Latest result", interactive=False)

        endpoints = _endpoints(page.ctx)
        group = page.groups["intervention"]
        run.click(endpoints.node, [model, text, node, k], [section, result_json], api_name="features", **group)
        rows = feature_examples(page.bundled)
        if rows:
            gr.Examples(
                rows,
                [model, text, node, k, text_a, text_b],
                elem_id="features-examples",
                label="Example (the bundled model and its SAE): fills the prompts, then press the buttons",
            )
        intervened = redraw(change.click, change_plot).then(
            endpoints.intervention,
            [model, text, component, mode, strength],
            [change_summary, change_plot, result_json],
            api_name="feature_intervention",
            **group,
        )
        # one Bokeh figure per event: two at once race in Gradio's Bokeh view, so the route is drawn after
        redraw(intervened.then, route_plot).then(
            endpoints.route, [model, text, component, mode, strength], route_plot, api_name="feature_route", **group
        )
        redraw(view.click, viewer_plot).then(
            endpoints.viewer, [model, unit], [viewer_plot, result_json], api_name="viewer", **group
        )
        redraw(compare.click, compare_plot).then(
            endpoints.compare, [model, text_a, text_b], [compare_plot, result_json], api_name="layer_compare", **group
        )
    page.results["Features"] = Shown(tab, result_json)
