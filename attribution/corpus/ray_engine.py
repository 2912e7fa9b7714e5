"""The Ray engine: batches of records spread over Ray actors, each loading the model once.

- ``address=None`` starts a Ray instance on this machine for the run and stops it afterwards;
  ``address="host:6379"`` (or ``"auto"``) joins an existing cluster and leaves it running. When
  this process is already connected to Ray (``ray.init`` was called), that connection is used.
- ``workers`` actors are started, each reserving ``cpus_per_worker`` CPUs (its torch threads)
  and ``gpus_per_worker`` GPUs; each loads the model once (:class:`ModelSpec`) and then runs
  :func:`attribution.corpus.tasks.run_records` on the batches it is sent, exactly what the local
  engine runs, so both give the same numbers.
- Only this process writes the run folder: workers return outcomes, never write files. A worker
  that dies (killed, out of memory, its node lost) is restarted by Ray, which reloads the model and
  runs the batches it held again (``max_restarts`` / ``max_task_retries``); no batch is lost and
  none is written twice. A batch whose worker died more often than that is written as failed
  records with the reason, and the run goes on.
- Each actor is kept busy with two batches (one running, one queued), so no worker waits for
  the driver between batches.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from attribution.corpus.local_engine import OnDone
from attribution.corpus.records import Record
from attribution.corpus.tasks import MethodOutcome, TaskConfig, failed_outcome, run_records
from attribution.errors import InvalidInputError, ModelLoadError
from attribution.models import ModelSpec, load_model

_QUEUE_DEPTH = 2


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide to run: see the module docstring."""

    address: str | None = None
    workers: int = 2
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    max_restarts: int = 3

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise InvalidInputError(f"--workers must be at least 1, not {self.workers}.")
        if not self.cpus_per_worker > 0 or not self.gpus_per_worker >= 0:  # NaN fails both
            raise InvalidInputError("--cpus-per-worker must be positive and --gpus-per-worker not negative.")


class CorpusWorker:
    """A Ray actor: loads the model once, then explains the batches it is sent."""

    def __init__(self, model: ModelSpec, config: TaskConfig, threads: int) -> None:
        import torch

        from attribution.corpus.tasks import check_task

        torch.set_num_threads(threads)
        self.config = config
        self.loaded = None
        self.error: str | None = None
        try:  # an error here is reported by ready(): an exception would only say "the actor died"
            self.loaded = load_model(model, cache=None)
            check_task(self.loaded, config)
        except Exception as error:
            self.error = f"{type(error).__name__}: {error}"

    def ready(self) -> dict[str, Any]:
        """The worker's process id and model facts, or the error that stopped it from loading the model."""
        if self.loaded is None or self.error:
            return {"pid": os.getpid(), "error": self.error}
        return {"pid": os.getpid(), "kind": self.loaded.kind, "model_type": self.loaded.model_type, "error": None}

    def run(self, records: list[Record], batch_size: int) -> list[list[MethodOutcome]]:
        assert self.loaded is not None  # the driver sends work only to workers whose ready() had no error
        return run_records(self.loaded, records, self.config, batch_size=batch_size)


class RayRun:
    """One run's Ray connection and actors; use as a context manager (actors and any local Ray are stopped)."""

    def __init__(self, model: ModelSpec, config: TaskConfig, options: RayOptions) -> None:
        self.model, self.config, self.options = model, config, options
        self.actors: list[Any] = []
        self.worker_pids: list[int] = []
        self.model_info: dict[str, Any] = {}
        self._started_ray = False

    def __enter__(self) -> RayRun:
        try:
            import ray
        except ImportError:
            raise InvalidInputError(
                "--engine ray needs Ray: pip install 'attribution-explorer[corpus]' (ray==2.60.0)."
            ) from None
        if not ray.is_initialized():
            options = self.options
            if options.address:
                try:
                    ray.init(address=options.address, log_to_driver=False)
                except ConnectionError as error:  # no cluster there: one line, not Ray's traceback
                    first = str(error).strip().splitlines()[0][:200] if str(error).strip() else "no answer"
                    raise InvalidInputError(
                        f"No Ray cluster at --ray-address {options.address!r} ({first}); start one with "
                        "`ray start --head`, or leave out --ray-address to run a local one."
                    ) from None
            else:
                cpus = max(os.cpu_count() or 1, int(options.workers * options.cpus_per_worker + 0.999))
                ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
                self._started_ray = True
        try:
            self._start_actors()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start_actors(self) -> None:
        import ray

        self.actors = [self._new_actor() for _ in range(self.options.workers)]
        ready = ray.get([actor.ready.remote() for actor in self.actors])
        errors = [info["error"] for info in ready if info["error"]]
        if errors:
            raise ModelLoadError(f"A Ray worker could not load {self.model.model_id}: {errors[0]}")
        self.worker_pids = [info["pid"] for info in ready]
        self.model_info = {"kind": ready[0]["kind"], "model_type": ready[0]["model_type"]}

    def _new_actor(self):
        import ray

        options = self.options
        actor_class = ray.remote(CorpusWorker).options(
            num_cpus=options.cpus_per_worker,
            num_gpus=options.gpus_per_worker,
            max_restarts=options.max_restarts,
            max_task_retries=options.max_restarts,
        )
        return actor_class.remote(self.model, self.config, max(1, int(options.cpus_per_worker)))

    def run(
        self,
        records: Sequence[Record],
        *,
        batch_size: int,
        on_done: OnDone,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> bool:
        """Explain ``records`` over the actors; ``on_done`` gets each batch's outcomes as it finishes."""
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        pending = deque(records[start : start + batch_size] for start in range(0, len(records), batch_size))
        in_flight: dict[Any, tuple[int, list[Record]]] = {}

        def submit(actor_index: int) -> None:
            if pending and not should_stop():
                batch = list(pending.popleft())
                in_flight[self.actors[actor_index].run.remote(batch, batch_size)] = (actor_index, batch)

        for _ in range(_QUEUE_DEPTH):
            for index in range(len(self.actors)):
                submit(index)
        while in_flight:
            (ref,), _ = ray.wait(list(in_flight), num_returns=1)
            actor_index, batch = in_flight.pop(ref)
            try:
                outcomes = ray.get(ref)
            except (RayActorError, RayTaskError) as error:
                reason = f"the Ray worker running this batch failed ({type(error).__name__}); Ray gave up retrying"
                outcomes = [
                    [failed_outcome(r, m, reason, "ray", 0.0, self.config) for m in self.config.methods] for r in batch
                ]
                if isinstance(error, RayActorError):  # out of restarts: a fresh worker takes its place
                    ray.kill(self.actors[actor_index], no_restart=True)
                    self.actors[actor_index] = self._new_actor()
            on_done(outcomes)
            submit(actor_index)
        return not pending

    def __exit__(self, *exc_info: object) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors = []
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False
