"""What every tab's layout shares, with Gradio: the page being built, error and progress adapters, common widgets.

A tab module's ``build(page)`` lays out its widgets inside the app's ``gr.Tabs`` and connects them to
its handlers through this module: :func:`user_errors` turns a refusal into its one-line ``gr.Error``
(anything else is logged and answered with :data:`GENERIC_ERROR`, and the app keeps serving),
:func:`reporter` turns Gradio's progress tracker into the handlers' :class:`~attribution.progress.Progress`,
and :class:`Page` carries what tabs share: the :class:`~space.gradio_app.context.AppContext`, the queue
groups, the views' bookkeeping, the example rows and the results the Export tab offers.
"""

from __future__ import annotations

import functools
import html
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import gradio as gr

from attribution.errors import AttributionExplorerError
from attribution.progress import Progress, fraction_done
from space.gradio_app import views
from space.gradio_app.context import AppContext
from space.gradio_app.request_guard import Uploads

logger = logging.getLogger("attribution_explorer.space")

GENERIC_ERROR = "Something went wrong on our side (it has been logged). Try again, or with other settings."
#: Longest message shown to a user (a message echoing a huge input is cut, never the app's answer).
MAX_MESSAGE_CHARS = 600
#: Gradio swaps this default for a per-request progress tracker (its documented idiom).
TRACK_PROGRESS = gr.Progress()
#: Number boxes (a slider's) with this class apply their value on Enter, as they do when they lose focus.
ENTER_APPLIES = "ae-enter-applies"


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Show library errors as their one-line message and any other failure as a generic one.

    ``fn`` may be any callable, a ``functools.partial`` included (it has no ``__name__``: the log names the
    function it wraps).
    """
    name = function_name(fn)

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
            logger.exception("unexpected error in %s", name)
            raise gr.Error(GENERIC_ERROR) from None

    return wrapper


def function_name(fn: Callable[..., Any]) -> str:
    """A callable's name for the log: a partial's function's, else its own (or its repr when it has none)."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    return getattr(fn, "__qualname__", None) or repr(fn)


def one_line(message: str) -> str:
    """``message`` on one line, at most :data:`MAX_MESSAGE_CHARS` characters."""
    flat = " ".join(message.split())
    return flat if len(flat) <= MAX_MESSAGE_CHARS else flat[: MAX_MESSAGE_CHARS - 1] + "…"


def reporter(progress: gr.Progress) -> Progress:
    """Gradio's progress tracker as the handlers' :class:`~attribution.progress.Progress`."""

    def report(done: float, total: float, message: str = "") -> None:
        progress(fraction_done(done, total), desc=message or None)

    return report


def redraw(trigger: Callable[..., Any], plot: gr.Plot, **options: Any) -> Any:
    """Empty ``plot`` before it gets a new Bokeh figure.

    Gradio 6.31's Bokeh view re-renders a figure it already shows into a fresh element and the old
    view then fails to find its own ("Error rendering Bokeh model: could not find #bokehDiv-…");
    starting from an empty plot avoids that page error. Returns the event to chain ``.then`` on.
    """
    return trigger(lambda: None, None, plot, queue=False, show_progress="hidden", api_visibility="private", **options)


def watch_cost(page: Page, inputs: list[Any], note: gr.HTML, estimate: Callable[..., str]) -> None:
    """Keep ``note`` (the cost line under a run button) up to date: ``estimate`` of the inputs on each change.

    Only the last change of a burst is estimated (typing), without a progress overlay or an API endpoint;
    it may generate the model's output (cheap) and never runs the attribution, so it waits in the
    ``attribution`` queue like the runs it estimates.
    """
    for component in inputs:
        component.change(
            estimate,
            inputs,
            note,
            show_progress="hidden",
            trigger_mode="always_last",
            api_visibility="private",
            **page.groups["attribution"],
        )


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


class Tab(Protocol):
    """A tab of the app: a module (or any object) whose ``build(page)`` lays it out inside the app's ``gr.Tabs``."""

    def build(self, page: Page) -> None: ...


@dataclass
class Shown:
    """An analysis tab and the box holding its current result JSON (what the Export tab exports)."""

    tab: gr.Tab
    result_json: gr.Code


@dataclass
class Page:
    """What each tab's ``build`` gets: the shared context and what the tabs built so far share."""

    ctx: AppContext
    uploads: Uploads  # this app's store of uploaded files
    groups: dict[str, dict[str, Any]]  # event options per queue group (see build.concurrency_groups)
    methods: list[str]  # the attribution methods offered
    bundled: tuple[str, ...]  # the bundled models offered: the examples run on them
    latest: views.LatestRequests  # which request each session's views must show
    examples: views.ExampleResults  # example results, computed once
    #: Example rows by view name, computed at start-up when the config says ``cache_examples: "eager"``.
    example_rows: dict[str, tuple[views.View, list[list[Any]]]] = field(default_factory=dict)
    #: The analysis tabs' results by the Export tab's name for them ("Attribute", ...), in tab order.
    results: dict[str, Shown] = field(default_factory=dict)

    @property
    def default_method(self) -> str:
        default = self.ctx.config.default_method
        return default if default in self.methods else self.methods[0]

    def model_dropdown(
        self, label: str = "Model", *, multiselect: bool = False, elem_id: str | None = None
    ) -> gr.Dropdown:
        """A model menu offering this app's models; a typed id is allowed through (the handler says why one cannot
        be loaded, instead of the menu silently reverting to the previous model and running that)."""
        offer = self.ctx.offer
        return gr.Dropdown(
            choices=list(offer.models),
            value=[offer.default_model] if multiselect else offer.default_model,
            multiselect=multiselect,
            allow_custom_value=True,
            label=label,
            info="Pick one, or type a Hugging Face model id" if offer.custom_allowed else None,
            elem_id=elem_id,
        )

    def offer_examples(
        self, view: views.View, rows: Callable[[tuple[str, ...]], list[list[Any]]], inputs: list[Any], group: str
    ) -> None:
        """Example rows (on the bundled models) under a view: a click fills ``inputs`` and shows its kept result."""
        if not self.bundled:
            return
        self.example_rows[view.name] = (view, rows(self.bundled))
        self.examples.offer(view.name, self.example_rows[view.name][1])  # only these rows' results are kept
        shown = gr.Examples(self.example_rows[view.name][1], inputs, elem_id=f"{view.name}-examples")
        view.on(shown.load_input_event.then, inputs, from_examples=True, **self.groups[group])
