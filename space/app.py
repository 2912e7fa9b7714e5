"""The Gradio app: four tabs wired to :mod:`space.handlers` (which call the library).

Run it with ``attribution-explorer serve [--host 127.0.0.1] [--port 7860] [--config path]`` or, on
Hugging Face Spaces, as ``app_file: space/app.py``. This module only builds widgets and connects
them: user mistakes (:class:`AttributionExplorerError`) become ``gr.Error`` messages, anything else
is logged and reported as a generic error, and the app keeps serving either way.
"""

import functools
import html
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # `python space/app.py [--host --port --config]`, as Spaces runs it
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # make `space` importable from a checkout
    from space.cli import main  # parses the options (and answers --help) before Gradio is imported

    sys.exit(main(["serve", *sys.argv[1:]]))

import gradio as gr

from attribution.errors import AttributionExplorerError
from attribution.models import hub_reachable as probe_hub
from space import handlers, sessions, views
from space import handlers_interventions as interventions
from space.config import SpaceConfig, offered_models
from space.examples import attribute_examples, compare_examples, graph_examples

logger = logging.getLogger("attribution_explorer.space")

GENERIC_ERROR = "Something went wrong on our side (it has been logged). Try again, or with other settings."
#: Gradio swaps this default for a per-request progress tracker (its documented idiom).
TRACK_PROGRESS = gr.Progress()
#: The Bokeh figures fill their panel (they stretch to its width and wrap side-by-side parts themselves).
APP_CSS = """
.gradio-bokeh { justify-content: flex-start !important; }
.gradio-bokeh > * { flex: 1 1 auto; min-width: 0; }
"""
#: Number boxes (a slider's) with this class apply their value on Enter, as they do when they lose focus.
ENTER_APPLIES = "ae-enter-applies"
APP_JS = f"""
() => {{
  document.addEventListener('keydown', (event) => {{
    const box = event.target;
    if (event.key === 'Enter' && box instanceof HTMLInputElement && box.type === 'number'
        && box.closest('.{ENTER_APPLIES}')) {{
      event.preventDefault();
      box.blur();  // a Gradio slider's number box releases (applies) its value on blur
    }}
  }}, true);
}}
"""
#: The graph tab's selection box: the figure writes the tapped node id / edge key into it.
GRAPH_SELECTION_ID = "graph-selection"
GRAPH_SELECTION_INPUT = f"#{GRAPH_SELECTION_ID} textarea, #{GRAPH_SELECTION_ID} input"
#: Selecting in the app's menus selects (highlights) the same node or edge in the shown figure.
SELECT_IN_FIGURE_JS = """
(selected) => {
  const [ends, kind] = selected.split('#');
  for (const doc of (window.Bokeh?.documents ?? [])) {
    const nodes = doc.get_model_by_name('nodes');
    const edges = doc.get_model_by_name('edges');
    if (!nodes || !edges) continue;
    const id = nodes.data.id;
    const n = id.indexOf(selected);
    let e = -1;
    if (n < 0 && kind === undefined) {  // the menus offer attention edges: the ones with heads
      const d = edges.data;
      for (let i = 0; i < d.weight.length && e < 0; i++) {
        if (`${id[d.source_node[i]]}->${id[d.target_node[i]]}` === ends && d.heads[i] !== '—') e = i;
      }
    }
    const same = (a, b) => a.length === b.length && a.every((v, i) => v === b[i]);
    if (!same(edges.selected.indices, e >= 0 ? [e] : [])) edges.selected.indices = e >= 0 ? [e] : [];
    if (!same(nodes.selected.indices, n >= 0 ? [n] : [])) nodes.selected.indices = n >= 0 ? [n] : [];
  }
  return [];
}
"""
NODE_TABLE_MIN_PX, EDGE_TABLE_MIN_PX = 560, 340
NODE_TABLE_LABEL = "Node: logit lens, promoted / suppressed tokens, FFN neurons"
EDGE_TABLE_LABEL = "Edge: split over heads"
EMPTY_STEP_TABLE = {"headers": handlers.EMPTY_STEP_TABLE_HEADERS, "data": []}
EXPORT_SOURCES = {
    "Attribute": "attribute",
    "Contribution graph": "contribution graph",
    "Compare": "compare",
    "Intervene": "intervene",
}


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Show library errors as their one-line message and any other failure as a generic one."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except AttributionExplorerError as error:
            # gr.Error renders HTML: escape what may echo user input (model ids, text). One line, bounded.
            raise gr.Error(html.escape(one_line(str(error)), quote=False), print_exception=False) from None
        except Exception:
            logger.exception("unexpected error in %s", fn.__name__)
            raise gr.Error(GENERIC_ERROR) from None

    return wrapper


#: Longest message shown to a user (a message echoing a huge input is cut, never the app's answer).
MAX_MESSAGE_CHARS = 600


def one_line(message: str) -> str:
    """``message`` on one line, at most :data:`MAX_MESSAGE_CHARS` characters."""
    flat = " ".join(message.split())
    return flat if len(flat) <= MAX_MESSAGE_CHARS else flat[: MAX_MESSAGE_CHARS - 1] + "…"


def concurrency_groups(config: SpaceConfig) -> dict[str, dict[str, Any]]:
    """Event options per queue group, so that cheap requests never wait behind model runs.

    Gradio queues each concurrency group separately: ``attribution`` (Attribute, Compare) and
    ``graph`` (contribution graphs) and ``intervention`` (ablations, patching sweeps, faithfulness) run
    models, at most ``concurrency_limit`` each at once, and ``corpus`` (uploaded data sets) one at a time; ``light``
    (threshold re-walks, node/edge details, exports) needs no model in the usual case; ``push`` waits
    on the Hub. Every model run is also bounded by the time budget and the cost cap.
    """
    return {
        "attribution": {"concurrency_id": "attribution", "concurrency_limit": config.concurrency_limit},
        "graph": {"concurrency_id": "graph", "concurrency_limit": config.concurrency_limit},
        "intervention": {"concurrency_id": "intervention", "concurrency_limit": config.concurrency_limit},
        "corpus": {"concurrency_id": "corpus", "concurrency_limit": 1},
        "light": {"concurrency_id": "light", "concurrency_limit": config.light_concurrency_limit},
        "push": {"concurrency_id": "push", "concurrency_limit": 4},
    }


def export_root() -> Path:
    """Export files live inside Gradio's own cache folder, so Gradio serves them without a second copy."""
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder()) / "attribution-explorer"


def oauth_available() -> bool:
    """Sign-in works on a Space whose front matter says ``hf_oauth: true`` (Spaces then set OAUTH_CLIENT_ID).

    Elsewhere Gradio would mock the login with the machine's own Hub token, which is not what a user
    of a deployed app should push with, so the button is left out and the token box is the way.
    """
    return os.environ.get("SYSTEM") == "spaces" and bool(os.environ.get("OAUTH_CLIENT_ID"))


def _reporter(progress: gr.Progress) -> handlers.Progress:
    return lambda fraction, message: progress(min(max(fraction, 0.0), 1.0), desc=message or None)


def _examples_cache(config: SpaceConfig) -> dict[str, Any]:
    if config.cache_examples == "off":
        return {"cache_examples": False}
    return {"cache_examples": True, "cache_mode": config.cache_examples}


def language_boxes(tab: str) -> tuple[gr.Textbox, gr.Textbox]:
    """Source / target language code boxes of a multilingual translation model (NLLB, mBART-50); empty: not set."""
    from attribution.languages import MAX_CODE_LENGTH

    with gr.Row():
        source = gr.Textbox(
            value="",
            label="Source language (NLLB, mBART-50; optional)",
            placeholder="eng_Latn",
            max_length=MAX_CODE_LENGTH,
            elem_id=f"{tab}-src-lang",
        )
        target = gr.Textbox(
            value="",
            label="Target language (the translation starts with it; optional)",
            placeholder="deu_Latn",
            max_length=MAX_CODE_LENGTH,
            elem_id=f"{tab}-tgt-lang",
        )
    return source, target


def redraw(trigger: Callable[..., Any], plot: gr.Plot, **options: Any) -> Any:
    """Empty ``plot`` before it gets a new Bokeh figure.

    Gradio 6.31's Bokeh view re-renders a figure it already shows into a fresh element and the old
    view then fails to find its own ("Error rendering Bokeh model: could not find #bokehDiv-…");
    starting from an empty plot avoids that page error. Returns the event to chain ``.then`` on.
    """
    return trigger(lambda: None, None, plot, queue=False, show_progress="hidden", api_visibility="private", **options)


def corpus_upload(
    ctx: handlers.AppContext, models: gr.Dropdown, methods: gr.CheckboxGroup, queue_group: dict[str, Any]
) -> None:
    """The Compare tab's corpus section: upload a small data set, get its corpus report (first model, methods)."""
    from space import handlers_corpus

    rows = ctx.config.max_corpus_rows
    with gr.Accordion(f"Corpus: a data set of up to {rows} records → an interactive report", open=False):
        gr.Markdown(
            "Upload JSON lines, CSV or Parquet with a text field (and optionally a target and a gold alignment "
            "such as `0-0 1-2`). The first selected model explains every record with the selected methods; the "
            "report shows AER distributions, method agreement and each record's heatmap."
        )
        k_file = gr.File(
            label="Data (.jsonl, .csv, .parquet)",
            file_types=list(handlers_corpus.UPLOAD_FORMATS),
            type="filepath",
            elem_id="corpus-file",
        )
        with gr.Row():
            k_text = gr.Textbox(value="source", label="Text field")
            k_target = gr.Textbox(value="target", label="Target field (optional)")
            k_alignment = gr.Textbox(value="alignment", label="Gold alignment field (optional)")
            k_graph = gr.Checkbox(value=False, label="Also the contribution graph")
        k_run = gr.Button("Run corpus", elem_id="corpus-run")
        k_summary = gr.Markdown(elem_id="corpus-summary")
        k_files = gr.File(label="Report and results", file_count="multiple", interactive=False, elem_id="corpus-files")
        k_preview = gr.HTML(label="Report")

    @user_errors
    def corpus(upload, models_, methods_, graph, text, target, alignment, progress=TRACK_PROGRESS):
        view = handlers_corpus.run_uploaded_corpus(
            ctx,
            upload,
            models_,
            methods_,
            graph,
            text,
            target,
            alignment,
            upload_root=Path(gr.utils.get_upload_folder()),
            progress=_reporter(progress),
        )
        return html.escape(view.summary), [str(view.report_path), str(view.results_path)], view.preview_html

    inputs = [k_file, models, methods, k_graph, k_text, k_target, k_alignment]
    k_run.click(corpus, inputs, [k_summary, k_files, k_preview], api_name="corpus", **queue_group)


def build_app(config: SpaceConfig, *, hub_reachable: bool | None = None) -> tuple[gr.Blocks, handlers.AppContext]:
    """The Blocks app and its shared context (model cache, offered models)."""
    reachable = probe_hub() if hub_reachable is None else hub_reachable  # where models come from
    offer = offered_models(config, hub_reachable=reachable)
    ctx = handlers.AppContext.create(config, offer, export_root=export_root())
    from attribution.inseq_runner import available_step_scores
    from exporters.hub import install_deadline_hook

    install_deadline_hook()  # before any request uses the Hub client (installing it replaces that client)

    methods = handlers.offered_methods(config)
    default_method = config.default_method if config.default_method in methods else methods[0]
    bundled = handlers.bundled_examples_available(offer)
    cache = _examples_cache(config)  # the Intervene tab's examples
    groups = concurrency_groups(config)
    max_bytes = config.max_result_bytes
    latest = views.LatestRequests()  # which request each session's views must show
    examples = views.ExampleResults(config.cache_examples)
    example_rows: dict[str, tuple[views.View, list[list[Any]]]] = {}

    def model_dropdown(label: str = "Model", *, multiselect: bool = False, elem_id: str | None = None) -> gr.Dropdown:
        # Typed ids always reach the handler, which says why one cannot be loaded (instead of the
        # dropdown silently reverting to the previous model and running that).
        return gr.Dropdown(
            choices=list(offer.models),
            value=[offer.default_model] if multiselect else offer.default_model,
            multiselect=multiselect,
            allow_custom_value=True,
            label=label,
            info="Pick one, or type a Hugging Face model id" if offer.custom_allowed else None,
            elem_id=elem_id,
        )

    # Gradio deletes the download files by age too (and all of them at shutdown).
    age = max(1, int(config.export_max_age_s))
    with gr.Blocks(title="Attribution Explorer", delete_cache=(min(age, 600), age)) as demo:
        gr.Markdown(
            "# Attribution Explorer\nWhy did the language model say that? Feature attribution (Inseq), "
            "information-flow contribution graphs, comparisons and static exports."
        )
        if offer.notice:
            gr.Markdown(f"**Offline:** {html.escape(offer.notice)}", elem_id="offline-notice")

        with gr.Tabs():
            # ------------------------------------------------------------------------ Attribute
            with gr.Tab("Attribute", id="attribute") as attribute_tab:
                with gr.Row():
                    a_model = model_dropdown(elem_id="attribute-model")
                    a_method = gr.Dropdown(methods, value=default_method, label="Method")
                a_text = gr.Textbox(label="Input text (prompt or source sentence)", lines=2, elem_id="attribute-text")
                with gr.Row():
                    a_target = gr.Textbox(label="Target text (optional; else the model generates)")
                    a_contrast = gr.Textbox(label="Contrastive target (optional)")
                a_steps = gr.CheckboxGroup(available_step_scores(), value=["probability"], label="Step scores")
                a_src_lang, a_tgt_lang = language_boxes("attribute")
                a_run = gr.Button("Attribute", variant="primary", elem_id="attribute-run")
                # The figure names its method and model on every panel: no Gradio label badge over it.
                a_plot = gr.Plot(label="Attribution heatmap", show_label=False, elem_id="attribute-plot")
                a_tokens = gr.HTML(elem_id="attribute-tokens")
                a_table = gr.Dataframe(
                    value=EMPTY_STEP_TABLE,
                    label="Step scores per generated token",
                    interactive=False,
                    elem_id="attribute-steps",
                )
                with gr.Accordion("Result JSON", open=False):
                    a_json = gr.Code(language="json", label="Attribution result", interactive=False)

                @user_errors
                def attribute(
                    model,
                    text,
                    target,
                    method,
                    step_scores,
                    contrast,
                    src_lang=None,
                    tgt_lang=None,
                    progress=TRACK_PROGRESS,
                ):
                    return handlers.run_attribution(
                        ctx,
                        model,
                        text,
                        target,
                        method,
                        step_scores,
                        contrast,
                        src_lang,
                        tgt_lang,
                        progress=_reporter(progress),
                    )

                def show_attribution(view: handlers.AttributeView) -> tuple[Any, ...]:
                    table = {"headers": view.step_headers, "data": view.step_table}
                    return handlers.figure_for(view.result), view.tokens_html, table, view.result_json

                a_inputs = [a_model, a_text, a_target, a_method, a_steps, a_contrast, a_src_lang, a_tgt_lang]
                a_view = views.View(
                    "attribute",
                    latest,
                    [a_plot, a_tokens, a_table, a_json],
                    (None, "", EMPTY_STEP_TABLE, ""),
                    attribute,
                    show_attribution,
                    examples,
                )
                a_view.on(a_run.click, a_inputs, api_name="attribute", **groups["attribution"])
                a_view.on(a_text.submit, a_inputs, **groups["attribution"])
                if bundled:
                    example_rows["attribute"] = (a_view, attribute_examples(bundled))
                    shown = gr.Examples(example_rows["attribute"][1], a_inputs, elem_id="attribute-examples")
                    a_view.on(shown.load_input_event.then, a_inputs, from_examples=True, **groups["attribution"])

            # --------------------------------------------------------------- Contribution graph
            with gr.Tab("Contribution graph", id="graph") as graph_tab:
                with gr.Row():
                    g_model = model_dropdown(elem_id="graph-model")
                    g_root = gr.Dropdown(
                        handlers.ROOT_TOKEN_CHOICES,
                        value="-1",
                        label="Routes from (root token)",
                        allow_custom_value=True,
                        elem_id="graph-root",
                    )
                g_text = gr.Textbox(label="Prompt (or source sentence)", lines=2, elem_id="graph-text")
                g_target = gr.Textbox(label="Target text (seq2seq: the translation to explain; optional)")
                g_src_lang, g_tgt_lang = language_boxes("graph")
                with gr.Row():
                    g_threshold = gr.Slider(
                        0.0,
                        0.5,
                        value=0.04,
                        step=0.01,
                        label="Threshold (type a value and press Enter, or drag)",
                        elem_id="graph-threshold",
                        elem_classes=[ENTER_APPLIES],
                    )
                    g_renormalize = gr.Checkbox(label="Renormalise kept edges", value=False)
                g_run = gr.Button("Build graph", variant="primary", elem_id="graph-run")
                g_plot = gr.Plot(label="Contribution graph", show_label=False, elem_id="graph-plot")
                # The selected node id or edge key: written by a tap in the figure or by the menus below;
                # the details tables follow it (and later actions on the selection can read it).
                g_selection = gr.Textbox(
                    label="Selected node or edge", visible="hidden", elem_id=GRAPH_SELECTION_ID, interactive=True
                )
                with gr.Row():  # side by side when there is room, one under the other otherwise
                    with gr.Column(min_width=NODE_TABLE_MIN_PX, scale=3):
                        g_node = gr.Dropdown(
                            [], label="Node (or tap one in the figure)", elem_id="graph-node", allow_custom_value=True
                        )
                        g_node_table = gr.Dataframe(
                            headers=handlers.NODE_TABLE_HEADERS,
                            label=NODE_TABLE_LABEL,
                            interactive=False,
                            wrap=True,
                            elem_id="graph-node-table",
                        )
                    with gr.Column(min_width=EDGE_TABLE_MIN_PX, scale=2):
                        g_edge = gr.Dropdown(
                            [],
                            label="Attention edge (or tap one in the figure)",
                            elem_id="graph-edge",
                            allow_custom_value=True,
                        )
                        g_edge_table = gr.Dataframe(
                            headers=handlers.EDGE_TABLE_HEADERS,
                            label=EDGE_TABLE_LABEL,
                            interactive=False,
                            elem_id="graph-edge-table",
                        )
                with gr.Accordion("Graph JSON", open=False):
                    g_json = gr.Code(language="json", label="Contribution graph", interactive=False)

                @user_errors
                def graph(
                    model,
                    text,
                    target,
                    threshold,
                    renormalize,
                    root,
                    src_lang=None,
                    tgt_lang=None,
                    progress=TRACK_PROGRESS,
                ):
                    return handlers.run_graph(
                        ctx,
                        model,
                        text,
                        target,
                        threshold,
                        renormalize,
                        root,
                        src_lang,
                        tgt_lang,
                        progress=_reporter(progress),
                    )

                @user_errors
                def rethreshold(
                    model,
                    text,
                    target,
                    threshold,
                    renormalize,
                    root,
                    shown=None,
                    src_lang=None,
                    tgt_lang=None,
                    progress=TRACK_PROGRESS,
                ):
                    return handlers.rethreshold_graph(
                        ctx,
                        model,
                        text,
                        target,
                        threshold,
                        renormalize,
                        root,
                        shown,
                        src_lang,
                        tgt_lang,
                        progress=_reporter(progress),
                    )

                def show_graph(view: handlers.GraphView) -> tuple[Any, ...]:
                    return handlers.figure_for(view.graph, selection_input=GRAPH_SELECTION_INPUT), view.graph_json

                def graph_dropdowns(graph_json):
                    """A new graph (or none, while one is computed): fresh menus, nothing selected."""
                    choices = handlers.graph_choices(graph_json, max_bytes=max_bytes)
                    return (
                        gr.Dropdown(choices=choices.roots),
                        gr.Dropdown(choices=choices.nodes, value=None),
                        gr.Dropdown(choices=choices.attention_edges, value=None),
                        "",
                    )

                @user_errors
                def show_selection(graph_json, selected):
                    chosen = handlers.graph_selection(graph_json, selected, max_bytes=max_bytes)
                    return (
                        gr.Dropdown(value=chosen.node_id),
                        gr.Dataframe(value=chosen.node_rows, label=chosen.node_title or NODE_TABLE_LABEL),
                        gr.Dropdown(value=chosen.edge_key),
                        gr.Dataframe(value=chosen.edge_rows, label=chosen.edge_title or EDGE_TABLE_LABEL),
                    )

                g_inputs = [g_model, g_text, g_target, g_threshold, g_renormalize, g_root, g_src_lang, g_tgt_lang]
                g_view = views.View("graph", latest, [g_plot, g_json], (None, ""), graph, show_graph, examples)
                g_view.on(g_run.click, g_inputs, api_name="graph", **groups["graph"])
                g_view.on(g_text.submit, g_inputs, **groups["graph"])
                # The threshold re-walks the shown graph when it can (no model): that graph stays until then.
                g_rewalk = views.View(
                    "graph", latest, [g_plot, g_json], (None, gr.skip()), rethreshold, show_graph, examples
                )
                g_rewalk.on(
                    g_threshold.release,
                    [*g_inputs[:6], g_json, g_src_lang, g_tgt_lang],  # new inputs last: old API calls still work
                    api_name="graph_threshold",
                    **groups["light"],
                )
                if bundled:
                    example_rows["graph"] = (g_view, graph_examples(bundled))
                    shown = gr.Examples(example_rows["graph"][1], g_inputs, elem_id="graph-examples")
                    g_view.on(shown.load_input_event.then, g_inputs, from_examples=True, **groups["graph"])
                node_details = functools.partial(handlers.node_details, max_bytes=max_bytes)
                edge_details = functools.partial(handlers.edge_details, max_bytes=max_bytes)
                menus = [g_root, g_node, g_edge, g_selection]
                g_json.change(user_errors(graph_dropdowns), g_json, menus, api_name="graph_choices", **groups["light"])
                selected_outputs = [g_node, g_node_table, g_edge, g_edge_table]
                g_selection.change(
                    show_selection,
                    [g_json, g_selection],
                    selected_outputs,
                    api_name="graph_selection",
                    **groups["light"],
                )
                g_selection.change(None, g_selection, None, js=SELECT_IN_FIGURE_JS)
                g_node.input(lambda node: node or "", g_node, g_selection, queue=False, api_visibility="private")
                g_edge.input(lambda edge: edge or "", g_edge, g_selection, queue=False, api_visibility="private")
                g_node.change(
                    user_errors(node_details), [g_json, g_node], g_node_table, api_name="graph_node", **groups["light"]
                )
                g_edge.change(
                    user_errors(edge_details), [g_json, g_edge], g_edge_table, api_name="graph_edge", **groups["light"]
                )

                # ------------------------------------------------ Ablate (attribution.interventions)
                with gr.Accordion("Ablate the selected node or edge", open=False, elem_id="graph-ablate"):
                    with gr.Row():
                        g_ablate_what = gr.Radio(["edge", "node"], value="edge", label="Ablate the selected")
                        g_ablate_mode = gr.Radio(list(interventions.ABLATION_MODES), value="zero", label="Mode")
                        g_ablate_id = gr.Textbox(
                            label="…or a component id (overrides the selection)",
                            placeholder="decoder:2:head:1, decoder:1:ffn:*, decoder:3:neuron:7@5",
                        )
                    g_ablate_run = gr.Button("Ablate", elem_id="graph-ablate-run")
                    g_ablate_note = gr.Markdown(elem_id="graph-ablate-note")
                    g_ablate_table = gr.Dataframe(label="Prediction before → after", interactive=False)
                    # A heading, not Gradio's label badge (which would sit on the figure's own title).
                    gr.Markdown("**Route after the ablation**")
                    g_ablate_plot = gr.Plot(
                        label="Route after the ablation", show_label=False, elem_id="graph-ablate-plot"
                    )

                @user_errors
                def ablate(
                    model, text, target, graph_json, node, edge, what, mode, threshold, typed, progress=TRACK_PROGRESS
                ):
                    view = interventions.ablate_from_graph(
                        ctx,
                        model,
                        text,
                        target,
                        graph_json,
                        (typed or "").strip() or (edge if what == "edge" else node),
                        mode,
                        threshold,
                        progress=_reporter(progress),
                    )
                    table = {"headers": view.headers, "data": view.table}
                    return html.escape(view.note), table, view.figure

                redraw(g_ablate_run.click, g_ablate_plot).then(
                    ablate,
                    [
                        *[g_model, g_text, g_target, g_json, g_node, g_edge],
                        *[g_ablate_what, g_ablate_mode, g_threshold, g_ablate_id],
                    ],
                    [g_ablate_note, g_ablate_table, g_ablate_plot],
                    api_name="graph_ablate",
                    **groups["intervention"],
                )

            # ------------------------------------------------------------------------- Compare
            with gr.Tab("Compare", id="compare") as compare_tab:
                gr.Markdown(
                    "Attribute one input with several methods (and models of one kind), then compare them on one "
                    "colour scale, by rank agreement, and, for a translation with a gold word alignment, by "
                    "alignment error rate."
                )
                c_text = gr.Textbox(label="Input text (prompt, or source sentence)", lines=2, elem_id="compare-text")
                with gr.Row():
                    c_models = model_dropdown(
                        "Models (all causal, or all seq2seq)", multiselect=True, elem_id="compare-models"
                    )
                    c_methods = gr.CheckboxGroup(
                        methods, value=[m for m in ("saliency", "attention") if m in methods], label="Methods"
                    )
                with gr.Row():
                    c_target = gr.Textbox(label="Target text (optional; else the first model's output)")
                    c_gold = gr.Textbox(
                        label="Gold word alignment (optional; translations, Pharaoh format: 0-0 1-2 …)",
                        elem_id="compare-gold",
                    )
                c_src_lang, c_tgt_lang = language_boxes("compare")
                c_run = gr.Button("Compare", variant="primary", elem_id="compare-run")
                # The figure ends with the agreement table: rank correlations, and AER when a gold alignment is given.
                c_plot = gr.Plot(label="Side by side, one colour scale", show_label=False, elem_id="compare-plot")
                with gr.Row():
                    c_faith_on = gr.Checkbox(
                        label="Faithfulness (ERASER comprehensiveness / sufficiency, deletion / insertion AOPC)",
                        value=True,
                    )
                c_faith = gr.Dataframe(
                    label="Faithfulness per result", interactive=False, wrap=True, elem_id="compare-faithfulness"
                )
                with gr.Accordion("Comparison JSON", open=False):
                    c_json = gr.Code(language="json", label="Comparison", interactive=False)

                @user_errors
                def comparison(
                    text, models, methods_, target, gold, src_lang=None, tgt_lang=None, progress=TRACK_PROGRESS
                ):
                    return handlers.run_comparison(
                        ctx, text, models, methods_, target, gold, src_lang, tgt_lang, progress=_reporter(progress)
                    )

                def show_comparison(view: handlers.CompareView) -> tuple[Any, ...]:
                    return handlers.figure_for(view.comparison), view.comparison_json

                @user_errors
                def faithfulness(comparison_json, enabled, progress=TRACK_PROGRESS):
                    if not enabled or not comparison_json:
                        return None
                    headers, data = interventions.faithfulness_table(ctx, comparison_json, _reporter(progress))
                    return {"headers": headers, "data": data}

                c_json.change(
                    faithfulness,
                    [c_json, c_faith_on],
                    c_faith,
                    api_name="compare_faithfulness",
                    **groups["intervention"],
                )

                c_inputs = [c_text, c_models, c_methods, c_target, c_gold, c_src_lang, c_tgt_lang]
                c_view = views.View(
                    "compare", latest, [c_plot, c_json], (None, ""), comparison, show_comparison, examples
                )
                c_view.on(c_run.click, c_inputs, api_name="compare", **groups["attribution"])
                if bundled:
                    example_rows["compare"] = (c_view, compare_examples(bundled))
                    shown = gr.Examples(example_rows["compare"][1], c_inputs, elem_id="compare-examples")
                    c_view.on(shown.load_input_event.then, c_inputs, from_examples=True, **groups["attribution"])
                if config.max_corpus_rows:
                    corpus_upload(ctx, c_models, c_methods, groups["corpus"])

            # ------------------------------------------------------- Intervene (attribution.interventions)
            with gr.Tab("Intervene", id="intervene") as intervene_tab:
                gr.Markdown(
                    "Patch every head and every position from a counterfactual input of the same length "
                    "(exact activation patching and its gradient approximation, attribution patching, side by "
                    "side), and test whether the contribution graph's route is necessary and sufficient."
                )
                with gr.Row():
                    i_model = model_dropdown(elem_id="intervene-model")
                    i_root = gr.Textbox(value="-1", label="Position measured (token index, -1 = last)")
                    i_contrast = gr.Textbox(label="Contrast token (default: the counterfactual's prediction)")
                i_text = gr.Textbox(label="Prompt (or source sentence)", lines=2, elem_id="intervene-text")
                i_counterfactual = gr.Textbox(
                    label="Counterfactual (same number of tokens)", lines=2, elem_id="intervene-counterfactual"
                )
                with gr.Row():
                    i_target = gr.Textbox(label="Target text (seq2seq; optional)")
                    i_counterfactual_target = gr.Textbox(label="Counterfactual target (seq2seq; optional)")
                i_run = gr.Button("Patch", variant="primary", elem_id="intervene-run")
                i_summary = gr.Markdown(elem_id="intervene-summary")
                gr.Markdown("**Logit difference recovered: exact vs attribution patching**")
                i_plot = gr.Plot(
                    label="Logit difference recovered: exact vs attribution patching",
                    show_label=False,
                    elem_id="intervene-plot",
                )
                i_route = gr.Dataframe(
                    headers=["route faithfulness", "route", "random edge sets (mean; weights: each)"],
                    label="Route from the measured position",
                    interactive=False,
                )
                with gr.Accordion("Patching JSON", open=False):
                    i_json = gr.Code("", language="json", label="Patching result", interactive=False)

                @user_errors
                def intervene(
                    model, text, counterfactual, target, counterfactual_target, contrast, root, progress=TRACK_PROGRESS
                ):
                    view = interventions.run_intervene(
                        ctx,
                        model,
                        text,
                        counterfactual,
                        target,
                        counterfactual_target,
                        contrast,
                        root,
                        progress=_reporter(progress),
                    )
                    table = {"headers": ["route faithfulness", "route", "random edge sets"], "data": view.route_rows}
                    return html.escape(view.summary), view.figure, table, view.patching_json

                i_inputs = [i_model, i_text, i_counterfactual, i_target, i_counterfactual_target, i_contrast, i_root]
                i_outputs = [i_summary, i_plot, i_route, i_json]
                redraw(i_run.click, i_plot).then(
                    intervene, i_inputs, i_outputs, api_name="intervene", **groups["intervention"]
                )
                i_examples = interventions.intervene_examples(bundled) if bundled else []
                if i_examples:
                    gr.Examples(i_examples, i_inputs, i_outputs, intervene, elem_id="intervene-examples", **cache)

            # -------------------------------------------------------------------------- Export
            with gr.Tab("Export", id="export"):
                with gr.Row():
                    e_source = gr.Radio(list(EXPORT_SOURCES), value="Attribute", label="Result of the tab")
                    e_format = gr.Radio(
                        list(handlers.EXPORT_FORMATS), value=next(iter(handlers.EXPORT_FORMATS)), label="Format"
                    )
                e_run = gr.Button("Create file", variant="primary", elem_id="export-run")
                e_file = gr.File(label="Download", interactive=False, elem_id="export-file")
                e_preview = gr.HTML(label="Preview")
                gr.Markdown("### Push to the Hugging Face Hub (dataset repository)")
                with gr.Row():
                    e_repo = gr.Textbox(label="Repository", placeholder="your-name/attribution-demo")
                    e_token = gr.Textbox(label="Write token (or sign in)", type="password")
                    if oauth_available():
                        gr.LoginButton()
                e_push = gr.Button("Push")
                e_link = gr.Markdown(elem_id="export-link")

                def current_json(source: str, *tab_jsons: str) -> str:
                    return dict(zip(EXPORT_SOURCES, tab_jsons, strict=True)).get(source, "")

                @user_errors
                def export(source, format_, attribute_json, graph_json, compare_json, intervene_json):
                    what = EXPORT_SOURCES.get(source, source)
                    chosen = current_json(source, attribute_json, graph_json, compare_json, intervene_json)
                    view = handlers.make_export(ctx, chosen, what, format_)
                    return str(view.path), view.preview_html or ""

                @user_errors
                def push(
                    source,
                    attribute_json,
                    graph_json,
                    compare_json,
                    repo,
                    token,
                    intervene_json,
                    oauth: gr.OAuthToken | None,
                ):
                    what = EXPORT_SOURCES.get(source, source)
                    chosen = current_json(source, attribute_json, graph_json, compare_json, intervene_json)
                    url = handlers.push_to_hub(ctx, chosen, what, repo, token or (oauth.token if oauth else None))
                    return f'Pushed: <a href="{html.escape(url)}" target="_blank">{html.escape(url)}</a>'

                # The Export tab exports the current view: the analysis tab the user looked at last.
                analysis_tabs = {
                    attribute_tab: "Attribute",
                    graph_tab: "Contribution graph",
                    compare_tab: "Compare",
                    intervene_tab: "Intervene",
                }
                for tab, source in analysis_tabs.items():
                    tab.select(lambda s=source: s, None, e_source, queue=False, api_visibility="private")

                jsons = [a_json, g_json, c_json]  # the Intervene tab's JSON comes last (older API calls stay valid)
                e_run.click(
                    export,
                    [e_source, e_format, *jsons, i_json],
                    [e_file, e_preview],
                    api_name="export",
                    **groups["light"],
                )
                e_push.click(
                    push, [e_source, *jsons, e_repo, e_token, i_json], e_link, api_name="push", **groups["push"]
                )

    demo.queue(default_concurrency_limit=config.concurrency_limit, max_size=config.max_queue_size)
    demo.state_session_capacity = config.max_sessions  # kept by launch(): per-session state is bounded
    sessions.keep_no_deep_link_copies(demo)  # ... and small
    for view, rows in example_rows.values():
        examples.offer(view.name, rows)  # only these rows' results are kept
    if config.cache_examples == "eager":
        views.warm_examples(examples, example_rows.values())
    return demo, ctx


def launch(demo: gr.Blocks, *, host: str = "127.0.0.1", port: int = 7860, **options: Any) -> None:
    """Serve the app (with its CSS and script); ``options`` go to ``Blocks.launch`` (e.g. ``prevent_thread_lock``).

    A blocking launch stops on SIGTERM (what Spaces, Docker and systemd send) as on Ctrl-C: Gradio closes
    its server and the process exits normally, so the export folder is removed (Python's default for
    SIGTERM ends the process without running any clean-up).
    """
    options.setdefault("state_session_capacity", demo.state_session_capacity)
    if not options.get("prevent_thread_lock") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
    demo.launch(server_name=host, server_port=port, css=APP_CSS, js=APP_JS, **options)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
