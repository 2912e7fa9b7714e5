"""The Blocks app from its tabs (:func:`build_app`), and serving it (:func:`launch`).

The app is its tabs (:data:`TABS`), each built by its own module around one shared
:class:`~space.gradio_app.wiring.Page`; here only what the whole app has: the header, the queue groups,
the request and upload limits, the examples computed at start-up, the page's CSS and script.
"""

from __future__ import annotations

import html
import logging
import signal
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gradio as gr

from attribution.errors import AttributionExplorerError
from attribution.models import hub_reachable as probe_hub
from space.gradio_app import request_guard, sessions, views, zerogpu
from space.gradio_app.config import SpaceConfig, offered_models
from space.gradio_app.context import AppContext, bundled_examples_available, offered_methods
from space.gradio_app.export_store import ExportStore
from space.gradio_app.tabs import attribute, compare, export, features, graph, intervene
from space.gradio_app.wiring import ENTER_APPLIES, Page, Tab

logger = logging.getLogger("attribution_explorer.space")

#: The app's tabs in order: modules with ``build(page)``. Export comes last: it exports the others' results.
TABS: tuple[Tab, ...] = (attribute, graph, compare, intervene, features, export)
#: The Bokeh figures fill their panel (they stretch to its width and wrap side-by-side parts themselves).
APP_CSS = """
.gradio-bokeh { justify-content: flex-start !important; }
.gradio-bokeh > * { flex: 1 1 auto; min-width: 0; }
"""
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
  // A plot drawing a new figure empties its element: the old figure's Bokeh views (and its document, whose
  // notifications view stays on the page) stay in Bokeh.index / Bokeh.documents, holding the old figure's
  // data. A document with a view once on the page and now off it is released, with all its views, so the
  // page's memory does not grow with each new figure.
  const release = () => {{
    const bokeh = window.Bokeh;
    if (!bokeh?.index) return;
    const views = [...bokeh.index];
    for (const view of views) if (view.el.isConnected) view.aeShown = true;
    const gone = new Set(views.filter((view) => view.aeShown && !view.el.isConnected).map((v) => v.model.document));
    for (const view of views) if (gone.has(view.model.document)) view.remove();
    for (const doc of gone) if (bokeh.documents.includes(doc)) bokeh.documents.splice(bokeh.documents.indexOf(doc), 1);
  }};
  let pending = null;
  new MutationObserver(() => {{
    clearTimeout(pending);
    pending = setTimeout(release, 250);
  }}).observe(document.body, {{childList: true, subtree: true}});
}}
"""


def concurrency_groups(config: SpaceConfig) -> dict[str, dict[str, Any]]:
    """Event options per queue group, so that cheap requests never wait behind model runs.

    Gradio queues each concurrency group separately: ``attribution`` (Attribute, Compare) and
    ``graph`` (contribution graphs, and re-thresholding one that must be recomputed) and ``intervention``
    (ablations, patching sweeps, faithfulness) run models, at most ``concurrency_limit`` each at once, and
    ``corpus`` (uploaded data sets) one at a time; ``light`` (re-walks of a given graph, node/edge details,
    exports) never runs a model: its handlers take no model cache; ``push`` waits on the Hub. Every model run
    is also bounded by the time budget and the cost cap.
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


def upload_store(config: SpaceConfig, demo: gr.Blocks) -> request_guard.Uploads:
    """Uploaded files, moved into a bounded store inside Gradio's cache folder (where Gradio put them)."""
    from gradio.utils import get_upload_folder

    root = Path(get_upload_folder()) / "attribution-explorer-uploads"
    store = ExportStore(root, max_age_s=config.export_max_age_s, max_bytes=int(config.uploads_max_mb * 1024**2))
    return request_guard.Uploads(store, demo.upload_file_set)


def build_app(
    config: SpaceConfig, *, hub_reachable: bool | None = None, tabs: Sequence[Tab] = TABS
) -> tuple[gr.Blocks, AppContext]:
    """The Blocks app with ``tabs`` (each a :class:`~space.gradio_app.wiring.Tab`, in order) and its shared context."""
    from exporters.hub import install_deadline_hook

    reachable = probe_hub() if hub_reachable is None else hub_reachable  # where models come from
    offer = offered_models(config, hub_reachable=reachable)
    ctx = AppContext.create(config, offer, export_root=export_root())
    if config.preload_models:
        preload(ctx)
    install_deadline_hook()  # before any request uses the Hub client (installing it replaces that client)
    age = max(1, int(config.export_max_age_s))  # Gradio deletes the download files by age too (all at shutdown)
    with gr.Blocks(title="Attribution Explorer", delete_cache=(min(age, 600), age)) as demo:
        page = Page(
            ctx=ctx,
            uploads=upload_store(config, demo),
            groups=concurrency_groups(config),
            methods=offered_methods(config),
            bundled=bundled_examples_available(offer),
            latest=views.LatestRequests(),
            examples=views.ExampleResults(config.cache_examples),
        )
        gr.Markdown(
            "# Attribution Explorer\nWhy did the language model say that? Feature attribution (Inseq), "
            "information-flow contribution graphs, comparisons and static exports."
        )
        if offer.notice:
            gr.Markdown(f"**Offline:** {html.escape(offer.notice)}", elem_id="offline-notice")
        with gr.Tabs():
            for tab in tabs:
                tab.build(page)
    _set_limits(demo, config, page.uploads)
    spaces = zerogpu.zero_gpu_spaces()
    if spaces is not None:
        zerogpu.run_models_on_gpu(demo, ctx, spaces)  # before launch: ZeroGPU registers its functions then
    if config.cache_examples == "eager":
        views.warm_examples(page.examples, page.example_rows.values())
    return demo, ctx


def preload(ctx: AppContext) -> None:
    """Load the offered models now (as many as the cache keeps): a visitor's first click does not wait for a load,
    and on ZeroGPU only models loaded at start-up are moved onto its GPU. A model that fails to load is logged
    and left to load (and say why it cannot) on first use."""
    for name in ctx.offer.models[: ctx.config.cache_max_models]:
        try:
            ctx.load(name)
        except AttributionExplorerError as error:
            logger.warning("preloading %s failed: %s", name, error)


def _set_limits(demo: gr.Blocks, config: SpaceConfig, uploads: request_guard.Uploads) -> None:
    """The queue, the per-session state and the request and upload limits (``launch`` applies the last ones)."""
    demo.queue(default_concurrency_limit=config.concurrency_limit, max_size=config.max_queue_size)
    demo.state_session_capacity = config.max_sessions  # kept by launch(): per-session state is bounded
    sessions.keep_no_deep_link_copies(demo)  # ... and small
    demo.max_file_size = config.max_upload_bytes  # likewise: Gradio refuses a larger file while it arrives
    demo.request_limits = request_guard.RequestLimits(config.max_request_bytes, config.max_upload_bytes, uploads)


def launch(demo: gr.Blocks, *, host: str = "127.0.0.1", port: int = 7860, **options: Any) -> None:
    """Serve the app (with its CSS and script); ``options`` go to ``Blocks.launch`` (e.g. ``prevent_thread_lock``).

    The FastAPI app Gradio builds gets the :class:`~space.gradio_app.request_guard.RequestGuard` middleware (body
    limits, file inputs naming this session's uploads only) and Gradio's ``max_file_size``, both from the config.
    A blocking launch stops on SIGTERM (what Spaces, Docker and systemd send) as on Ctrl-C: Gradio closes
    its server and the process exits normally, so the export folder is removed (Python's default for
    SIGTERM ends the process without running any clean-up).
    """
    from starlette.middleware import Middleware

    options.setdefault("state_session_capacity", demo.state_session_capacity)
    options.setdefault("max_file_size", demo.max_file_size)
    app_kwargs = dict(options.pop("app_kwargs", None) or {})
    guard = Middleware(request_guard.RequestGuard, limits=demo.request_limits)
    app_kwargs["middleware"] = [guard, *app_kwargs.get("middleware", [])]
    options["app_kwargs"] = app_kwargs
    if not options.get("prevent_thread_lock") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
    demo.launch(server_name=host, server_port=port, css=APP_CSS, js=APP_JS, **options)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
