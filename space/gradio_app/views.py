"""Views that show the result of their latest request only, and example results computed once.

A *view* is a set of outputs filled by one computation (the Attribute tab's heatmap, token strip,
table and JSON; the graph; the comparison). Requests can overlap: a user presses Enter in the
threshold box and then clicks an example, or clicks twice; Gradio then runs both, and the slower,
older one used to land last and stay on screen. Here every request takes a *ticket* at once (a
quick, unqueued step that also clears the view, so nothing stale is shown while it runs) and the
computation's result is shown only if its ticket is still the view's latest for that browser
session; a superseded result (or error) is dropped with ``gr.skip()``.

Example rows are computed once per app (on first click, or at start-up with ``cache_examples:
"eager"``) and shown from memory afterwards; figures are rebuilt from the kept result each time,
since a Bokeh layout can belong to one document only.
"""

from __future__ import annotations

import functools
import itertools
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

#: Sessions whose latest tickets are remembered (oldest forgotten first; a forgotten one shows anything).
MAX_SESSIONS = 10_000
#: A request without a ticket (none was taken): its result is always shown.
UNTRACKED = 0


class LatestRequests:
    """Per (browser session, view), the ticket of the request whose result the view must show."""

    def __init__(self, max_entries: int = MAX_SESSIONS) -> None:
        self._latest: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._max_entries = max_entries

    def begin(self, session: str, view: str) -> int:
        """A new request of ``view`` in ``session``: it becomes the one to show."""
        with self._lock:
            ticket = next(self._numbers)
            self._latest[(session, view)] = ticket
            self._latest.move_to_end((session, view))
            while len(self._latest) > self._max_entries:
                self._latest.popitem(last=False)
            return ticket

    def superseded(self, session: str, view: str, ticket: int) -> bool:
        """Whether a newer request of ``view`` started in ``session`` after the one holding ``ticket``."""
        if int(ticket or UNTRACKED) == UNTRACKED:
            return False
        with self._lock:
            latest = self._latest.get((session, view))
        return latest is not None and latest != int(ticket)


class ExampleResults:
    """Results of the example rows, computed once and kept (``mode``: ``"lazy"``, ``"eager"`` or ``"off"``).

    Only the rows given to :meth:`offer` are kept. Any client can send the examples' event with
    inputs of its own (a browser's events are plain HTTP requests): those are computed each time,
    like any request, so what is kept is bounded by the example rows.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self._kept: dict[str, Any] = {}
        self._offered: set[str] = set()
        self._lock = threading.Lock()

    @staticmethod
    def _key(view: str, inputs: Sequence[Any]) -> str:
        return json.dumps([view, *inputs], sort_keys=True, default=str)

    def offer(self, view: str, rows: Sequence[Sequence[Any]]) -> None:
        """The example rows of ``view``: the inputs whose results are kept."""
        with self._lock:
            self._offered.update(self._key(view, row) for row in rows)

    def get(self, view: str, inputs: Sequence[Any], compute: Callable[[], Any]) -> Any:
        if self.mode == "off":
            return compute()
        key = self._key(view, inputs)
        if key not in self._offered:
            return compute()
        with self._lock:
            if key in self._kept:
                return self._kept[key]
        data = compute()
        with self._lock:
            self._kept[key] = data
        return data

    def __len__(self) -> int:
        return len(self._kept)


def begin_js(progress_elem_id: str | None) -> str:
    """What the browser does as a view's request starts: error toasts of earlier requests are dismissed (they
    stayed over the new result), and the output that shows the progress (the view's first) is scrolled into
    sight when it is out of the window, so a click on a button far above it visibly starts something."""
    return f"""() => {{
  document.querySelectorAll('[data-testid="toast-close"]').forEach((button) => button.click());
  const shown = document.getElementById({json.dumps(progress_elem_id)});
  if (shown) {{
    const box = shown.getBoundingClientRect();
    if (box.top > window.innerHeight - 120 || box.bottom < 0) shown.scrollIntoView({{block: 'center'}});
  }}
  return [];
}}"""


def _session(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "no-session"


@dataclass
class View:
    """One view's outputs and how to fill them: ``compute(*inputs, progress)`` → data, ``present(data)`` → outputs.

    ``cleared`` are the output values shown while a request runs. Create it inside the Blocks
    (it adds a hidden ticket box), then connect triggers with :meth:`on`.
    """

    name: str
    latest: LatestRequests
    outputs: list[Any]
    cleared: tuple[Any, ...]
    compute: Callable[..., Any]
    present: Callable[[Any], tuple[Any, ...]]
    examples: ExampleResults | None = None
    ticket: Any = field(init=False)

    def __post_init__(self) -> None:
        self.ticket = gr.Number(value=UNTRACKED, precision=0, visible=False, label=f"{self.name} request number")

    def _begin(self, request: gr.Request) -> tuple[Any, ...]:
        return (self.latest.begin(_session(request), self.name), *self.cleared)

    def _skip(self) -> tuple[Any, ...]:
        return tuple(gr.skip() for _ in self.outputs)

    def _finisher(self, *, from_examples: bool) -> Callable[..., Any]:
        def finish(request: gr.Request, progress=gr.Progress(), *values: Any) -> Any:  # noqa: B008 (Gradio's idiom)
            *inputs, ticket = values
            session = _session(request)
            try:
                if from_examples and self.examples is not None:
                    data = self.examples.get(self.name, inputs, lambda: self.compute(*inputs, progress=progress))
                else:
                    data = self.compute(*inputs, progress=progress)
                shown = self.present(data)
            except gr.Error:
                if self.latest.superseded(session, self.name, ticket):
                    return self._skip()
                raise
            if self.latest.superseded(session, self.name, ticket):
                return self._skip()
            return shown

        return finish

    def on(
        self,
        trigger: Callable[..., Any],
        inputs: list[Any],
        *,
        api_name: str | None = None,
        from_examples: bool = False,
        **options: Any,
    ) -> Any:
        """Run this view on ``trigger``: take a ticket and clear the outputs at once, then compute (queued).

        ``api_name`` also publishes the computation as an API endpoint taking ``inputs`` only (no
        ticket: an API call is its own request), on a hidden trigger of its own.
        """
        started = trigger(
            self._begin,
            None,
            [self.ticket, *self.outputs],
            queue=False,
            show_progress="hidden",
            api_visibility="private",
            trigger_mode="multiple",
            js=begin_js(getattr(self.outputs[0], "elem_id", None)),
        )
        if api_name:
            self._api_endpoint(api_name, inputs, **options)
        return started.then(
            self._finisher(from_examples=from_examples),
            [*inputs, self.ticket],
            self.outputs,
            trigger_mode="multiple",
            api_visibility="private",
            show_progress_on=[self.outputs[0]],
            **options,
        )

    def _api_endpoint(self, api_name: str, inputs: list[Any], **options: Any) -> None:
        # Gradio reads the computation's own signature (parameter defaults, where its progress goes):
        # API callers may leave out what it lets them leave out.
        @functools.wraps(self.compute)
        def run(*values: Any) -> Any:
            return self.present(self.compute(*values))

        gr.Button(visible=False, elem_id=f"api-{api_name}").click(
            run, inputs, self.outputs, api_name=api_name, **options
        )


def _no_progress(*args: Any, **kwargs: Any) -> None:
    """Progress of work nobody watches (examples computed at start-up)."""


def warm_examples(examples: ExampleResults, views: Any) -> threading.Thread:
    """Compute every example row of ``views`` (pairs of a :class:`View` and its rows) in the background."""

    def run() -> None:
        for view, rows in list(views):
            for row in rows:
                try:
                    examples.get(view.name, row, lambda v=view, r=row: v.compute(*r, progress=_no_progress))
                except gr.Error:
                    continue  # shown to whoever clicks the example, like any other error

    worker = threading.Thread(target=run, name="examples-warm-up", daemon=True)
    worker.start()
    return worker
