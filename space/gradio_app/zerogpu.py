"""ZeroGPU: on a ZeroGPU Space every model run happens inside ``spaces.GPU``, for the seconds its estimate needs.

A ZeroGPU Space (``SPACES_ZERO_GPU`` set, the ``spaces`` package preinstalled) has no GPU in the app's process:
a function decorated with ``spaces.GPU(duration=...)`` is run in a worker process that holds a GPU for that
many seconds, with the models the app loaded at start-up moved onto it. Elsewhere (locally, in CI, on a CPU
or dedicated-GPU Space) nothing here is used and the app runs as it always did.

The decoration is applied at one place: the events of the model queue groups (:data:`MODEL_GROUPS`, see
:func:`space.gradio_app.build.concurrency_groups`) are exactly the handlers that run a model, and their
functions are wrapped once the app is built (as Gradio's own ``spaces`` auto-wrap does). A wrapped call first
runs its handler here as a dry run (:meth:`~space.gradio_app.context.AppContext.estimating`): the inputs are
checked, the model loaded, the cost estimated and held to the caps, and it stops where the model would run. So:

- a refused request (bad input, over the pass cap) is answered without asking for a GPU;
- a request that needed no model (a graph re-walked at a higher threshold) is answered from the dry run;
- otherwise the GPU is asked for :func:`gpu_seconds` of the estimate (the request's time budget when the
  handler estimates nothing, e.g. a contribution graph), and the handler runs again inside the decorated call.

One decorated function serves every event (one GPU worker process): it takes the event's arguments only
(widget values and Gradio's progress tracker), which ``spaces`` pickles to its worker.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Callable
from types import ModuleType
from typing import Any

from space.gradio_app.config import SpaceConfig
from space.gradio_app.context import AppContext, DryRun, ModelWorkReached

logger = logging.getLogger("attribution_explorer.space")

#: The queue groups whose events run a model (the others never do: see build.concurrency_groups).
MODEL_GROUPS = ("attribution", "graph", "intervention", "corpus")
#: What ZeroGPU Spaces set (the ``spaces`` package reads the same variable).
ZERO_GPU_ENV_VAR = "SPACES_ZERO_GPU"


def zero_gpu_spaces() -> ModuleType | None:
    """The ``spaces`` package when this process runs on ZeroGPU hardware, else None (no import attempted)."""
    if os.environ.get(ZERO_GPU_ENV_VAR, "").lower() not in ("1", "t", "true"):
        return None
    try:
        import spaces
    except ImportError:
        logger.warning("%s is set but the spaces package is missing: model runs stay on this process", ZERO_GPU_ENV_VAR)
        return None
    return spaces


def gpu_seconds(dry_run: DryRun, config: SpaceConfig, *, budget_s: float | None) -> int:
    """The GPU seconds a request asks for: its estimated passes times ``gpu_seconds_per_pass``, at most its time
    budget; the whole budget when it estimated nothing (60 s, ZeroGPU's default, without a budget)."""
    limit = math.ceil(budget_s) if budget_s else 60
    if not dry_run.estimated:
        return limit
    return max(1, min(limit, math.ceil(dry_run.passes * config.gpu_seconds_per_pass)))


class GpuRuns:
    """The app's one ``spaces.GPU`` function and the handlers it runs (registered before the worker forks)."""

    def __init__(self, ctx: AppContext, spaces: ModuleType) -> None:
        self.ctx = ctx
        self._handlers: list[Callable[..., Any]] = []
        self._on_gpu = spaces.GPU(duration=self._duration)(self._run)

    @staticmethod
    def _duration(index: int, seconds: int, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
        return seconds  # decided by the dry run before the call: see wrap()

    def _run(self, index: int, seconds: int, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return self._handlers[index](*args, **kwargs)

    def wrap(self, handler: Callable[..., Any], *, budget_s: float | None) -> Callable[..., Any]:
        """``handler`` dry-run here first, then run on the GPU for the seconds its estimate needs (module doc)."""
        index = len(self._handlers)
        self._handlers.append(handler)

        @functools.wraps(handler)
        def on_gpu(*args: Any, **kwargs: Any) -> Any:
            with self.ctx.estimating() as dry_run:
                try:
                    return handler(*args, **kwargs)  # refused, or done without a model
                except ModelWorkReached:
                    pass
            seconds = gpu_seconds(dry_run, self.ctx.config, budget_s=budget_s)
            return self._on_gpu(index, seconds, args, kwargs)

        on_gpu.zero_gpu = True  # type: ignore[attr-defined]
        return on_gpu


def run_models_on_gpu(demo: Any, ctx: AppContext, spaces: ModuleType) -> GpuRuns:
    """Wrap the function of every event of :data:`MODEL_GROUPS` in ``demo`` (a built ``gr.Blocks``)."""
    runs = GpuRuns(ctx, spaces)
    config = ctx.config
    for block_fn in demo.fns.values():
        if block_fn.fn is not None and block_fn.concurrency_id in MODEL_GROUPS:
            budget = config.corpus_time_budget_s if block_fn.concurrency_id == "corpus" else config.time_budget_s
            block_fn.fn = runs.wrap(block_fn.fn, budget_s=budget)
    return runs
