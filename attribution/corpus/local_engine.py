"""The default engine: batches of records explained one after the other in this process.

Its torch thread count is chosen from the work per operation when the caller sets none
(:func:`auto_threads`): on a small model every extra intra-op thread costs more in synchronisation
than it computes (the bundled translation model ran 11× slower with torch's default of 2 threads than
with 1 on the shared 2-core machine, docs/benchmarks.md#corpus-speed), while a large model's matrix
products use every core.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence

from attribution.corpus.records import Record
from attribution.corpus.tasks import MethodOutcome, TaskConfig, run_records
from attribution.models import LoadedModel

OnDone = Callable[[list[list[MethodOutcome]]], None]
#: Parameters × records per batch that keep one more torch thread busy: a model of ~25 M parameters in
#: batches of 8 (a few hundred MFLOP per matrix product) is where a second thread starts to pay off on CPU.
WORK_PER_THREAD = 200_000_000


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask: a container's or ``taskset``'s share)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def auto_threads(n_parameters: int, batch_size: int, cores: int | None = None) -> int:
    """Torch threads for a CPU run: one per :data:`WORK_PER_THREAD` of parameters × batch size, at least one and
    at most the available cores (a small model: 1; GPT-2 small in batches of 8: 4 or the cores there are)."""
    cores = available_cores() if cores is None else cores
    return max(1, min(cores, n_parameters * batch_size // WORK_PER_THREAD))


@contextlib.contextmanager
def torch_threads(loaded: LoadedModel, batch_size: int, threads: int | None, *, automatic: bool) -> Iterator[int]:
    """Run with ``threads`` torch CPU threads (``None``: :func:`auto_threads` for this model on the CPU if
    ``automatic``, else as they are), the previous count restored afterwards; yields the count used."""
    import torch

    previous = torch.get_num_threads()
    if threads is None and not automatic:
        threads = previous
    if threads is None:
        on_cpu = all(p.device.type == "cpu" for p in loaded.model.parameters())
        n_parameters = sum(p.numel() for p in loaded.model.parameters())
        threads = auto_threads(n_parameters, batch_size) if on_cpu else previous
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(previous)


def run_local(
    loaded: LoadedModel,
    records: Sequence[Record],
    config: TaskConfig,
    *,
    batch_size: int,
    on_done: OnDone,
    should_stop: Callable[[], bool] = lambda: False,
) -> bool:
    """Explain ``records`` ``batch_size`` at a time, handing each batch's outcomes to ``on_done``.

    Returns False when ``should_stop`` ended the run early (checked between batches).
    """
    for start in range(0, len(records), batch_size):
        if should_stop():
            return False
        on_done(run_records(loaded, records[start : start + batch_size], config, batch_size=batch_size))
    return True
