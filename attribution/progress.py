"""How long work says how far along it is: one protocol, ``progress(done, total, message)``, for every caller.

Why this signature. Work that counts says its count: Inseq's attribution steps (``(2, 3, "token 2 of
3")``), a corpus run's records (``(3, 10, "3 of 10 records")``). Work measured in stages weighted by
their cost (the contribution graph, the patching sweep) reports a fraction of one: ``(0.3, 1, "tracing
routes")``. A count gives the fraction (:func:`fraction_done`), a fraction would lose the count, and both
displays take counts: the command line's tqdm bar shows ``3/3`` and a rate in records per second, the
app's bar (Gradio's ``gr.Progress``) the fraction done with the message. A caller that runs several
pieces of work shows them as one bar with :func:`part`.

:data:`no_progress` is the reporter of work nobody watches. A reporter may raise to stop the work (the
app's time budget does): work calls it between its steps, never while it holds something it must release.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """``progress(done, total, message)``: ``done`` of ``total`` units of work (a fraction: of 1), and what it does."""

    def __call__(self, done: float, total: float, message: str = "") -> None: ...


def no_progress(done: float, total: float, message: str = "") -> None:
    """The reporter of work nobody watches."""


def fraction_done(done: float, total: float) -> float:
    """``done`` of ``total`` as a fraction in [0, 1] (nothing to do: nothing done)."""
    return min(max(done / total, 0.0), 1.0) if total > 0 else 0.0


def part(progress: Progress, start: float, end: float, label: str = "") -> Progress:
    """``progress`` for one piece of a larger piece of work: its fraction done lands in [``start``, ``end``] of 1.

    ``label`` (e.g. which model and method of a comparison) goes before each message.
    """

    def report(done: float, total: float, message: str = "") -> None:
        shown = f"{label} {message}".strip() if label else message
        progress(start + (end - start) * fraction_done(done, total), 1, shown)

    return report
