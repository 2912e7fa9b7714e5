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
- Nothing relies on the driver's working folder or environment (workers may run on other machines):
  a model folder and an offload folder given as relative paths are made absolute (the folder must be
  reachable at that path on every node), each worker offloads into its own subfolder, the driver's
  ``HF_*`` settings (``HF_TOKEN``, ``HF_HUB_OFFLINE``, ``HF_ENDPOINT``, ``HF_HOME``) reach the workers
  through their ``runtime_env``, and a worker whose library versions differ from the driver's is
  refused before any record runs.
"""

from __future__ import annotations

import dataclasses
import os
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attribution.corpus.local_engine import OnDone
from attribution.corpus.records import Record
from attribution.corpus.tasks import MethodOutcome, TaskConfig, failed_outcome, run_records
from attribution.errors import InvalidInputError, ModelLoadError
from attribution.models import ModelSpec, load_model
from attribution.results import library_versions

_QUEUE_DEPTH = 2
#: The driver's environment variables that workers need to reach the same Hub (or none) as the driver.
HUB_ENVIRONMENT = ("HF_TOKEN", "HF_HUB_OFFLINE", "HF_ENDPOINT", "HF_HOME")


def worker_model(model: ModelSpec) -> ModelSpec:
    """``model`` as a worker elsewhere must see it: a model folder or offload folder that exists relative to the
    driver's working folder as an absolute path (a bundled name or Hub id is left as it is)."""
    changes: dict[str, Any] = {}
    if Path(model.model_id).exists():
        changes["model_id"] = str(Path(model.model_id).resolve())
    if model.offload_folder is not None:
        changes["offload_folder"] = str(Path(model.offload_folder).resolve())
    return dataclasses.replace(model, **changes)


def worker_environment() -> dict[str, str]:
    """The driver's Hub settings, for the workers' ``runtime_env``."""
    return {name: os.environ[name] for name in HUB_ENVIRONMENT if name in os.environ}


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
        if model.offload_folder is not None:  # one folder per worker: two never write the same offloaded weights
            model = dataclasses.replace(model, offload_folder=str(Path(model.offload_folder) / f"worker-{os.getpid()}"))
        self.model = model
        self.config = config
        self.loaded = None
        self.error: str | None = None
        try:  # an error here is reported by ready(): an exception would only say "the actor died"
            self.loaded = load_model(model, cache=None)
            check_task(self.loaded, config)
        except Exception as error:
            self.error = f"{type(error).__name__}: {error}"

    def ready(self) -> dict[str, Any]:
        """The worker's process id, library versions, working folder and model facts, or the error that stopped
        it from loading the model."""
        facts = {"pid": os.getpid(), "versions": library_versions(), "cwd": os.getcwd(), "error": self.error}
        facts["offload_folder"] = None if self.model.offload_folder is None else str(self.model.offload_folder)
        facts["hub_environment"] = worker_environment()
        facts["node"] = _node_id()
        if self.loaded is None or self.error:
            return facts
        return {**facts, "kind": self.loaded.kind, "model_type": self.loaded.model_type}

    def run(self, records: list[Record], batch_size: int) -> list[list[MethodOutcome]]:
        assert self.loaded is not None  # the driver sends work only to workers whose ready() had no error
        return run_records(self.loaded, records, self.config, batch_size=batch_size)


class RayRun:
    """One run's Ray connection and actors; use as a context manager (actors and any local Ray are stopped)."""

    def __init__(self, model: ModelSpec, config: TaskConfig, options: RayOptions) -> None:
        self.model, self.config, self.options = model, config, options
        self.actors: list[Any] = []
        self.worker_pids: list[int] = []
        self.workers: list[dict[str, Any]] = []  # what each worker's ready() said
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
        _check_versions(ready)
        self.workers = ready
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
            runtime_env={"env_vars": worker_environment()},
        )
        return actor_class.remote(worker_model(self.model), self.config, max(1, int(options.cpus_per_worker)))

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


def _node_id() -> str | None:
    """The Ray node this process runs on (None outside Ray)."""
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None


def _check_versions(ready: Sequence[dict[str, Any]]) -> None:
    """Refuse workers whose libraries differ from the driver's: their numbers would not be the local engine's."""
    driver = library_versions()
    for info in ready:
        differing = sorted(
            name for name in driver.keys() | info["versions"].keys() if driver.get(name) != info["versions"].get(name)
        )
        if differing:
            name = differing[0]
            raise InvalidInputError(
                f"A Ray worker (pid {info['pid']}) has {name} {info['versions'].get(name, 'missing')} but this "
                f"process has {driver.get(name, 'none')}: install the same versions on every node."
            )
