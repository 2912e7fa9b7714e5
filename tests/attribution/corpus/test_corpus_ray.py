"""The Ray engine: the same numbers as the local engine, and a killed worker loses no record.

One Ray instance for the whole module (2 CPUs, no dashboard), started and shut down by the
fixture; the runs join it as an existing cluster would be joined. Workers are killed by their own
PID (which each batch's outcomes report), never by name.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from attribution.corpus import FieldMap, ModelSpec, RayOptions, TaskConfig, load_run, read_records, run_corpus
from tests.support.corpus_data import BAD_ROWS, assert_same_runs, translation_rows, write_jsonl
from tests.support.paths import REPO

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow

MODEL = "tiny-synth-translate"
TASK = TaskConfig(methods=("saliency", "attention", "graph"))


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray instance for this module; its address is what ``--ray-address`` joins."""
    context = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield context.address_info["gcs_address"]
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    rows = [{"id": f"pair-{i}", **row} for i, row in enumerate(translation_rows(10))]
    rows[3:3] = BAD_ROWS[:2]
    return read_records(write_jsonl(tmp_path_factory.mktemp("data") / "pairs.jsonl", rows), FieldMap(id="id"))


@pytest.fixture(scope="module")
def local_run(records, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("local") / "run"
    run_corpus(records, run_dir, model=ModelSpec(MODEL, threads=1), task=TASK, batch_size=2)
    return run_dir


def test_ray_with_two_workers_gives_the_local_engines_numbers(ray_cluster, records, local_run, tmp_path) -> None:
    run_dir = tmp_path / "ray"
    workers: set[str] = set()
    summary = run_corpus(
        records,
        run_dir,
        model=ModelSpec(MODEL),
        task=TASK,
        engine="ray",
        batch_size=2,
        ray=RayOptions(workers=2),
        on_batch=lambda outcomes: workers.update(o[0].worker for o in outcomes),
    )
    assert summary.complete and summary.done == 12 and summary.failed == 2
    assert len(workers) == 2 and str(os.getpid()) not in {w.split(":")[1] for w in workers}  # run in the workers
    assert_same_runs(local_run, run_dir)


def test_a_killed_worker_loses_no_record_and_duplicates_none(ray_cluster, records, local_run, tmp_path) -> None:
    run_dir = tmp_path / "ray-kill"
    seen: list[int] = []
    killed: list[int] = []

    def kill_a_busy_worker(outcomes) -> None:
        seen.append(int(outcomes[0][0].worker.split(":")[1]))  # the process that ran this batch
        if not killed:  # it just finished a batch and holds the next one: kill it mid-run
            killed.append(seen[0])
            os.kill(seen[0], signal.SIGKILL)

    summary = run_corpus(
        records,
        run_dir,
        model=ModelSpec(MODEL),
        task=TASK,
        engine="ray",
        batch_size=2,
        ray=RayOptions(workers=2),
        on_batch=kill_a_busy_worker,
    )
    assert summary.complete and summary.done == 12
    with pytest.raises(ProcessLookupError):
        os.kill(killed[0], 0)
    assert seen.count(killed[0]) == 1, "the killed worker went on running batches"
    assert len(set(seen)) == 3, f"no restarted worker ran the killed worker's batches: {seen}"
    assert_same_runs(local_run, run_dir)  # every record once, with the local engine's numbers


def test_cli_joins_an_existing_cluster(ray_cluster, records, local_run, tmp_path) -> None:
    data = write_jsonl(tmp_path / "pairs.jsonl", translation_rows(4))
    run_dir = tmp_path / "cli"
    command = [
        sys.executable, "-m", "space.cli", "corpus", "--model", MODEL, "--methods", "saliency", "attention", "graph",
        "--data", str(data), "--out", str(run_dir), "--engine", "ray", "--ray-address", ray_cluster,
        "--workers", "1", "--batch-size", "2",
    ]  # fmt: skip
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert "4 records in" in done.stderr
    assert ray.is_initialized()  # the cluster the CLI joined is still up (it was not the CLI's to stop)
    rows = load_run(run_dir).rows
    assert len(rows) == 12 and all(row["status"] == "ok" for row in rows)
    reference = {(r["record_id"], r["method"]): r for r in load_run(local_run).rows}
    for row in rows:  # records 0-3 of the local run are the same pairs
        expected = reference[(f"pair-{row['record_id']}", row["method"])]
        assert row["aer"] == pytest.approx(expected["aer"], abs=1e-9)
