"""``run_corpus``: records in, a run folder out, on the local engine or on Ray; resumable by record id."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attribution.corpus.local_engine import run_local, torch_threads
from attribution.corpus.ray_engine import RayOptions, RayRun
from attribution.corpus.records import Record
from attribution.corpus.runfolder import RunFolder
from attribution.corpus.tasks import MethodOutcome, TaskConfig, check_task
from attribution.errors import InvalidInputError
from attribution.models import LoadedModel, ModelSpec, load_model
from attribution.progress import Progress, no_progress

ENGINES = ("local", "ray")


@dataclass
class RunSummary:
    """What one call of :func:`run_corpus` did."""

    run_dir: Path
    total: int  # records in the data
    skipped: int  # already finished by an earlier run of the same folder
    done: int  # finished by this call (failed ones included)
    failed: int  # of ``done``, records with at least one failed method
    seconds: float  # explaining the records (after the set-up)
    setup_seconds: float  # loading the model (local), or starting Ray and its workers
    complete: bool  # every record of the data is now in the folder

    @property
    def records_per_second(self) -> float:
        """The engine's throughput once set up (what a longer run converges to)."""
        return self.done / self.seconds if self.seconds > 0 else 0.0


def run_corpus(
    records: Sequence[Record],
    run_dir: str | Path,
    *,
    model: ModelSpec,
    task: TaskConfig,
    engine: str = "local",
    batch_size: int = 8,
    ray: RayOptions | None = None,
    data: dict[str, Any] | None = None,
    progress: Progress | None = None,
    on_batch: Callable[[list[list[MethodOutcome]]], None] | None = None,
    deadline: float | None = None,
    loaded: LoadedModel | None = None,
) -> RunSummary:
    """Explain every record not yet in ``run_dir`` and write the outcomes there as they finish.

    A rerun with the same model and task skips the finished records (a record id whose inputs
    changed since is an error: start a new folder). ``deadline`` (a ``time.monotonic()`` value)
    stops the run cleanly between batches; Ctrl-C (KeyboardInterrupt) does too and is re-raised.
    Either way the folder is consistent and the same call resumes it. ``on_batch`` sees each
    batch's outcomes once they are written (which worker ran them, their numbers); ``progress`` counts the
    records of this run, finished and to do (``(3, 10, "3 of 10 records")``), as each batch is written. ``loaded``: a
    model already loaded (e.g. the app's cached one) that ``model`` describes, for the local engine.
    """
    if engine not in ENGINES:
        raise InvalidInputError(f"Unknown engine {engine!r}; choose one of {', '.join(ENGINES)}.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"The batch size must be a positive whole number, not {batch_size!r}.")
    data_info = {"n_records": len(records), **(data or {})}
    folder = RunFolder.open(run_dir, model=model.defining(), task=task, data=data_info)
    status = "interrupted"
    try:
        finished = folder.finished()
        todo = [record for record in records if record.record_id not in finished]
        _check_unchanged(records, finished, folder.run_dir)
        report = progress or no_progress
        _report_records(report, 0, len(todo))
        setup_started = time.perf_counter()
        started = setup_started

        def on_done(outcomes: list[list[MethodOutcome]]) -> None:
            folder.write(outcomes)
            _report_records(report, folder.written_records, len(todo))
            if on_batch is not None:
                on_batch(outcomes)

        def should_stop() -> bool:
            return deadline is not None and time.monotonic() >= deadline

        if not todo:
            complete = True
        elif engine == "local":
            # threads are chosen for a model loaded here; a caller's own (the app's cached one) keeps its setting
            automatic = loaded is None
            loaded = loaded or load_model(model, cache=None)
            check_task(loaded, task)
            folder.manifest["model_info"] = {"kind": loaded.kind, "model_type": loaded.model_type}
            started = time.perf_counter()
            with torch_threads(loaded, batch_size, model.threads, automatic=automatic) as threads:
                folder.manifest["threads"] = threads
                complete = run_local(
                    loaded, todo, task, batch_size=batch_size, on_done=on_done, should_stop=should_stop
                )
        else:
            with RayRun(model, task, ray or RayOptions()) as ray_run:
                folder.manifest["model_info"] = ray_run.model_info
                started = time.perf_counter()
                complete = ray_run.run(todo, batch_size=batch_size, on_done=on_done, should_stop=should_stop)
        status = "complete" if complete else "interrupted"
        return RunSummary(
            run_dir=folder.run_dir,
            total=len(records),
            skipped=len(records) - len(todo),
            done=folder.written_records,
            failed=folder.failed_records,
            seconds=time.perf_counter() - started,
            setup_seconds=started - setup_started,
            complete=complete,
        )
    finally:
        folder.close(status=status)


def _report_records(progress: Progress, done: int, total: int) -> None:
    """Records finished in this run out of those it has to do."""
    progress(done, total, f"{done} of {total} records")


def _check_unchanged(records: Sequence[Record], finished: dict[str, str], run_dir: Path) -> None:
    for record in records:
        previous = finished.get(record.record_id)
        if previous is not None and previous != record.content_hash:
            raise InvalidInputError(
                f"Record {record.record_id!r} has other inputs than when {run_dir} ran it: the data changed. "
                "Run it into a new folder (or give the records stable ids with --id-field)."
            )
