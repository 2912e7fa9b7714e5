"""The Ray engine on a cluster of several nodes, started on this machine as Ray's own tests do.

``ray.cluster_utils.Cluster`` runs a head and a second node (one CPU each, so the two workers land on
different nodes); the driver runs in another working folder than the data and the model, which it names
by relative paths, so anything that relied on the driver's folder or environment would fail on the
workers. The run must give the local engine's numbers.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from attribution.corpus import FieldMap, ModelSpec, RayOptions, TaskConfig, read_records, run_corpus
from attribution.corpus.ray_engine import RayRun, _check_versions
from attribution.errors import InvalidInputError
from attribution.results import library_versions
from tests.support.corpus_data import assert_same_runs, translation_rows, write_jsonl
from tests.support.paths import REPO

TASK = TaskConfig(methods=("saliency", "attention", "graph"))


def test_a_worker_with_other_library_versions_is_refused() -> None:
    mine = library_versions()
    other = {**mine, "torch": "1.0.0"}
    _check_versions([{"pid": 1, "versions": mine}])
    with pytest.raises(InvalidInputError, match=r"pid 7\) has torch 1\.0\.0 but this process has"):
        _check_versions([{"pid": 1, "versions": mine}, {"pid": 7, "versions": other}])


@pytest.mark.slow
def test_two_nodes_with_the_driver_elsewhere_give_the_local_engines_numbers(tmp_path: Path, monkeypatch) -> None:
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    shutil.copytree(REPO / "examples" / "models" / "tiny-synth-translate", tmp_path / "models" / "tiny")
    (tmp_path / "data").mkdir()
    write_jsonl(tmp_path / "data" / "pairs.jsonl", translation_rows(6))
    driver = tmp_path / "driver"
    driver.mkdir()
    monkeypatch.chdir(tmp_path)  # the nodes start here, as on machines of their own
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        monkeypatch.chdir(driver)  # the data and the model are "../data", "../models": only the driver sees them so
        monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # must reach the workers (runtime_env)
        records = read_records(Path("../data/pairs.jsonl"), FieldMap())
        model = ModelSpec("../models/tiny", threads=1, device_map={"": "cpu"}, offload_folder="offload")
        run_corpus(records, tmp_path / "local", model=model, task=TASK, batch_size=2)
        ray.init(address=cluster.address, log_to_driver=False)
        options = RayOptions(workers=2, cpus_per_worker=1)
        with RayRun(model, TASK, options) as probe:  # what each worker reports about itself
            workers = probe.workers
        assert len({w["node"] for w in workers}) == 2  # one worker per node
        assert all(w["cwd"] != str(driver) for w in workers)
        assert all(w["hub_environment"]["HF_ENDPOINT"] == "http://127.0.0.1:9" for w in workers)
        offload = [Path(w["offload_folder"]) for w in workers]
        assert len(set(offload)) == 2 and all(p.is_absolute() and p.parent == driver / "offload" for p in offload)
        run_corpus(records, tmp_path / "ray", model=model, task=TASK, engine="ray", batch_size=2, ray=options)
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert_same_runs(tmp_path / "local", tmp_path / "ray")
    assert os.getcwd() == str(driver)


def test_workers_get_absolute_paths_their_own_offload_folder_and_the_drivers_hub_settings(
    tmp_path: Path, monkeypatch
) -> None:
    """What a worker is handed, checked in this process (the cluster test above checks it on Ray's nodes)."""
    pytest.importorskip("ray")
    from attribution.corpus.ray_engine import CorpusWorker, worker_environment, worker_model

    shutil.copytree(REPO / "examples" / "models" / "tiny-synth-translate", tmp_path / "models" / "tiny")
    (tmp_path / "driver").mkdir()
    monkeypatch.chdir(tmp_path / "driver")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    spec = worker_model(ModelSpec("../models/tiny", device_map={"": "cpu"}, offload_folder="offload"))
    assert spec.model_id == str(tmp_path / "models" / "tiny") and spec.offload_folder == str(
        tmp_path / "driver" / "offload"
    )
    assert worker_model(ModelSpec("tiny-synth-translate")).model_id == "tiny-synth-translate"  # a name stays a name
    assert worker_environment()["HF_ENDPOINT"] == "http://127.0.0.1:9" and "HF_TOKEN" not in worker_environment()
    monkeypatch.chdir(tmp_path)  # the worker runs elsewhere
    facts = CorpusWorker(spec, TaskConfig(methods=("saliency",)), 1).ready()
    assert facts["error"] is None and facts["kind"] == "seq2seq" and facts["versions"] == library_versions()
    assert facts["offload_folder"] == str(tmp_path / "driver" / "offload" / f"worker-{os.getpid()}")
