"""The default engine: batches of records explained one after the other in this process."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from attribution.corpus.records import Record
from attribution.corpus.tasks import MethodOutcome, TaskConfig, run_records
from attribution.models import LoadedModel

OnDone = Callable[[list[list[MethodOutcome]]], None]


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
