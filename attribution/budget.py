"""Time budgets for model runs: a request that runs too long is stopped cleanly, wherever it is.

Attribution runs forward passes inside Inseq and Captum (integrated gradients batches its steps,
occlusion and LIME loop over perturbations), so no single callback of ours sees every step. A
:func:`time_budget` therefore installs a forward pre-hook on every module of the models it
watches: whichever library runs the model, the next module call after the deadline raises
:class:`~attribution.errors.BudgetExceededError`, the exception unwinds through the library, and
the usual clean-up runs on the way out (``inseq_runner``'s state guard removes the hooks Inseq and
Captum left and releases the model's lock; the graph engine removes its capture hooks). On exit the
budget removes its own hooks, so the model is exactly as it was (tested: bit-identical logits after
a cancelled run). Long stretches without a forward pass call :meth:`TimeBudget.check` themselves,
e.g. from progress callbacks.

The hooks only act in the thread that opened the budget: a model shared by several requests (the
Space) runs other requests' forward passes unaffected. The clock starts at the first forward pass
or ``check()`` inside the budget, so time spent waiting for the model's lock or loading it is not
counted.

Usable around any library call that runs a loaded model::

    with time_budget(loaded, 30, what="The attribution") as budget:
        result = attribute(loaded, text, progress=lambda *a: budget.check())
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from torch import nn

from attribution.errors import BudgetExceededError

#: The clock budgets read (a module attribute so tests can make it tick deterministically).
_now = time.monotonic


class TimeBudget:
    """A deadline for the work of one thread, enforced at every module call of the watched models."""

    def __init__(self, seconds: float | None, *, what: str = "This request", hint: str = "") -> None:
        if seconds is not None and not seconds > 0:
            raise ValueError(f"a time budget must be positive seconds or None, not {seconds!r}")
        self.seconds = seconds
        self.what = what
        self.hint = hint
        self.started: float | None = None
        self._thread = threading.get_ident()
        self._handles: list[Any] = []
        self._watched: set[int] = set()

    @property
    def elapsed(self) -> float:
        """Seconds since the clock started (0 before the first forward pass or check)."""
        return 0.0 if self.started is None else _now() - self.started

    @property
    def remaining(self) -> float | None:
        return None if self.seconds is None else self.seconds - self.elapsed

    def check(self) -> None:
        """Raise :class:`BudgetExceededError` if the budget is spent (starts the clock on first call)."""
        if self.seconds is None:
            return
        now = _now()
        if self.started is None:
            self.started = now
        elif now - self.started > self.seconds:
            hint = f" {self.hint}" if self.hint else ""
            raise BudgetExceededError(
                f"{self.what} was stopped: it ran past this deployment's time budget of {self.seconds:g} s.{hint}"
            )

    def watch(self, model: Any) -> None:
        """Enforce the budget at every module call of ``model`` (a LoadedModel or a torch module)."""
        module = getattr(model, "model", model)
        if self.seconds is None or id(module) in self._watched:
            return
        if not isinstance(module, nn.Module):
            raise TypeError(f"cannot watch a {type(module).__name__}: expected a LoadedModel or a torch module")
        self._watched.add(id(module))
        for submodule in module.modules():
            self._handles.append(submodule.register_forward_pre_hook(self._pre_hook))

    def _pre_hook(self, module: nn.Module, args: Any) -> None:
        if threading.get_ident() == self._thread:
            self.check()

    def close(self) -> None:
        """Remove every hook this budget installed."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._watched.clear()


@contextmanager
def time_budget(
    models: Any | Iterable[Any], seconds: float | None, *, what: str = "This request", hint: str = ""
) -> Iterator[TimeBudget]:
    """A :class:`TimeBudget` watching ``models`` (one or several LoadedModels / torch modules) for the block.

    ``seconds=None`` means no limit (nothing is installed). ``what`` starts the error message ("The
    attribution was stopped: ..."); ``hint`` ends it (what to try instead).
    """
    budget = TimeBudget(seconds, what=what, hint=hint)
    try:
        for model in models if isinstance(models, list | tuple) else [models]:
            budget.watch(model)
        yield budget
    finally:
        budget.close()
