"""What a run folder says about its run when the writer is gone, reads of older folders, and Ray's address."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from attribution.corpus import TaskConfig, load_run
from attribution.corpus.records import Record
from attribution.corpus.runfolder import RunFolder
from attribution.corpus.tasks import failed_outcome


def _folder_with_one_record(run_dir: Path) -> RunFolder:
    task = TaskConfig(methods=("saliency",))
    folder = RunFolder.open(run_dir, model={"model_id": "m"}, task=task, data={"n_records": 2})
    folder.write([[failed_outcome(Record(record_id="a", row=0, text="x"), "saliency", "no", "w", 0.0, task)]])
    folder.flush()
    return folder


def test_a_run_whose_writer_died_reads_as_interrupted_and_a_live_one_as_running(tmp_path: Path) -> None:
    folder = _folder_with_one_record(tmp_path / "run")
    assert load_run(tmp_path / "run").manifest["status"] == "running"  # the writer holds the folder
    folder._lock_handle.close()  # what SIGKILL does: the lock goes, run.json still says "running"
    assert '"status": "running"' in (tmp_path / "run" / "run.json").read_text()
    assert load_run(tmp_path / "run").manifest["status"] == "interrupted"


def test_shards_written_before_the_explained_column_and_integer_counts_still_load(tmp_path: Path) -> None:
    folder = _folder_with_one_record(tmp_path / "run")
    folder.close(status="complete")
    shard = next((tmp_path / "run" / "shards").glob("*.parquet"))
    table = pq.read_table(shard)
    old = table.drop_columns(["explained", "aer_predicted_links", "aer_gold_links", "aer_matched_links"])
    index = old.schema.get_field_index("n_source_tokens")
    old = old.set_column(index, "n_source_tokens", old.column("n_source_tokens").cast("float64"))
    pq.write_table(old, shard)
    rows = load_run(tmp_path / "run").rows
    assert rows[0]["explained"] is None and rows[0]["record_id"] == "a" and rows[0]["n_source_tokens"] is None


@pytest.mark.slow
def test_ray_address_auto_without_a_cluster_is_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    from space.cli import main
    from tests.support.corpus_data import translation_rows, write_jsonl

    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path / "ray"))  # no cluster another test or user started is found
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    data = write_jsonl(tmp_path / "pairs.jsonl", translation_rows(1))
    code = main(["corpus", "--model", "tiny-synth-translate", "--data", str(data), "--out", str(tmp_path / "run"),
                 "--engine", "ray", "--ray-address", "auto"])  # fmt: skip
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert [line for line in error if "Traceback" in line] == []
    assert any(line.startswith("error: No Ray cluster at --ray-address 'auto'") for line in error), error
    assert load_run(tmp_path / "run").manifest["status"] == "interrupted"


def test_a_ray_worker_given_gpus_loads_the_model_on_its_gpu_unless_told_otherwise() -> None:
    from space.cli import build_parser
    from space.cli.commands.corpus import default_device

    base = ["corpus", "--model", "m", "--data", "d.jsonl", "--out", "o"]

    def device(*options: str) -> str:
        return default_device(build_parser().parse_args([*base, *options]))

    assert device("--engine", "ray", "--gpus-per-worker", "0.5") == "auto"
    assert device("--engine", "ray", "--gpus-per-worker", "0.5", "--device", "cpu") == "cpu"
    assert device("--engine", "ray") == "cpu" and device() == "cpu" and device("--device", "cuda:1") == "cuda:1"
