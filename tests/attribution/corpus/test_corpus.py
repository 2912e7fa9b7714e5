"""Corpus runs on the local engine: reading data, the per-record task, the run folder, resume, CLI.

Ground truth: every number a run writes is what the single-sentence library functions give for
that record alone (attribute, build_contribution_graph, alignment_error_rate, rank_correlation),
and the bundled translation model's gold alignments.
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from attribution.compare import aer, alignment_error_rate, parse_alignment, rank_correlation
from attribution.contributions import build_contribution_graph
from attribution.contributions.alignment import graph_word_alignment
from attribution.corpus import FieldMap, ModelSpec, TaskConfig, load_run, read_records, run_corpus
from attribution.corpus.runfolder import RunFolder, result_path
from attribution.errors import InvalidInputError
from attribution.inseq_runner import attribute
from attribution.models import load_model
from attribution.results import AttributionResult, ContributionGraph, load_result_file
from tests.support.corpus_data import BAD_ROWS, translation_rows, write_jsonl
from tests.support.model_checks import assert_same_graph
from tests.support.paths import REPO

MODEL = "tiny-synth-translate"
METHODS = ("saliency", "attention", "graph")
TASK = TaskConfig(methods=METHODS)
TOO_LONG = {"id": "too-long", "source": "the dog " * 40, "target": "ka", "alignment": "0-0"}


@pytest.fixture(scope="module")
def loaded():
    return load_model(MODEL)


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    rows = [{"id": f"pair-{i}", **row} for i, row in enumerate(translation_rows(6))]
    rows[2:2] = [*BAD_ROWS, TOO_LONG]  # failures in the middle of the data, not at its end
    return write_jsonl(tmp_path_factory.mktemp("data") / "pairs.jsonl", rows)


@pytest.fixture(scope="module")
def finished_run(data_file: Path, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "complete"
    records = read_records(data_file, FieldMap(id="id"))
    summary = run_corpus(records, run_dir, model=ModelSpec(MODEL), task=TASK, batch_size=4)
    assert summary.complete and summary.done == 11 and summary.failed == 5 and summary.skipped == 0
    return run_dir


def _rows(run_dir: Path) -> dict[tuple[str, str], dict]:
    rows = load_run(run_dir).rows
    keyed = {(row["record_id"], row["method"]): row for row in rows}
    assert len(keyed) == len(rows), "a record and method appear twice"
    return keyed


# ----------------------------------------------------------------------------- reading data


def test_every_format_gives_the_same_records(tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict

    rows = [{"key": f"r{i}", **row} for i, row in enumerate(translation_rows(4))]
    jsonl = write_jsonl(tmp_path / "pairs.jsonl", rows)
    with (tmp_path / "pairs.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "pairs.parquet")
    Dataset.from_list(rows).save_to_disk(str(tmp_path / "dataset"))
    DatasetDict({"test": Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "dataset_dict"))
    fields = FieldMap(id="key")
    expected = read_records(jsonl, fields)
    assert [r.record_id for r in expected] == ["r0", "r1", "r2", "r3"]
    assert expected[1].text == rows[1]["source"] and expected[1].alignment == rows[1]["alignment"]
    for path in ("pairs.csv", "pairs.parquet", "dataset", "dataset_dict"):
        assert read_records(tmp_path / path, fields) == expected, path


def test_field_names_ids_and_alignment_pairs_are_configurable(tmp_path: Path) -> None:
    rows = [
        {"src": "the dog sees a cat", "tgt": "ka grano", "links": [[0, 0], [1, 1]], "alt": "ka avi"},
        {"src": "a cat sees the dog", "tgt": "mi vesa", "links": "0-0 1-1", "alt": None},
    ]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    fields = FieldMap(text="src", target="tgt", alignment="links", contrast="alt")
    records = read_records(path, fields)
    assert [r.record_id for r in records] == ["0", "1"]  # derived: the row number
    assert records[0].alignment == "0-0 1-1" and records[0].contrast == "ka avi" and records[1].contrast is None
    assert read_records(path, fields, limit=1) == records[:1]


@pytest.mark.parametrize(
    ("content", "fields", "message"),
    [
        ('{"source": "a"}\n{"source": \n', FieldMap(), "line 2: not valid JSON"),
        ('{"text": "a"}\n', FieldMap(), "has no text field 'source'; its rows have the fields 'text'"),
        ('{"source": "a", "t": "b"}\n', FieldMap(target="tgt", required=frozenset({"text", "target"})), "no target"),
        ('{"source": "a", "id": 1}\n{"source": "b", "id": 1}\n', FieldMap(id="id"), "record id '1' appears twice"),
        ("[1, 2]\n", FieldMap(), "row 1: expected an object"),
        ("", FieldMap(), "holds no records"),
    ],
)
def test_bad_data_files_are_one_clear_error(tmp_path: Path, content: str, fields: FieldMap, message: str) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InvalidInputError, match=message):
        read_records(path, fields)


def test_size_and_row_caps_refuse_instead_of_cutting(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "upload.jsonl", translation_rows(5))
    with pytest.raises(InvalidInputError, match="more than 4 rows") as error:
        read_records(path, max_rows=4, display_name="upload.jsonl")
    assert str(tmp_path) not in str(error.value)  # an upload's message never shows a server path
    with pytest.raises(InvalidInputError, match=r"at most 0\.0 MB"):
        read_records(path, max_bytes=10)
    assert len(read_records(path, max_rows=5)) == 5


# ----------------------------------------------------------------------------- the run's numbers


def test_each_record_gets_what_the_single_sentence_functions_give(finished_run: Path, loaded) -> None:
    rows = _rows(finished_run)
    run = load_run(finished_run)
    for pair_index, pair in enumerate(translation_rows(6)):
        record_id = f"pair-{pair_index}"
        gold = pair["alignment"]
        results = {}
        for method in ("saliency", "attention"):
            row = rows[(record_id, method)]
            assert row["status"] == "ok" and row["error"] is None
            stored = run.result(row)
            alone = attribute(loaded, pair["source"], method=method, target=pair["target"])
            assert isinstance(stored, AttributionResult)
            assert stored.source_tokens == alone.source_tokens and stored.target_tokens == alone.target_tokens
            np.testing.assert_allclose(stored.source_scores, alone.source_scores, rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(stored.step_scores["probability"], alone.step_scores["probability"], rtol=1e-5)
            assert row["aer"] == pytest.approx(alignment_error_rate(alone, gold))
            assert row["aer_threshold"] == pytest.approx(alignment_error_rate(alone, gold, mode="threshold"))
            assert row["mean_probability"] == pytest.approx(np.mean(alone.step_scores["probability"]), rel=1e-5)
            results[method] = alone
        assert rows[(record_id, "saliency")]["rho_attention"] == pytest.approx(
            rank_correlation(results["saliency"], results["attention"]), abs=1e-6
        )
        graph_row = rows[(record_id, "graph")]
        graph = run.result(graph_row)
        alone_graph = build_contribution_graph(
            loaded, pair["source"], target=pair["target"], root_tokens="all", top_k=0
        )
        assert isinstance(graph, ContributionGraph)
        assert_same_graph(graph, alone_graph)  # built in a padded batch, the same graph as alone
        links = graph_word_alignment(
            alone_graph,
            loaded.tokenizer(pair["source"]).word_ids(),
            loaded.tokenizer(text_target=pair["target"]).word_ids(),
        )
        assert graph_row["aer"] == pytest.approx(aer(links, parse_alignment(gold)))
        assert graph_row["n_edges"] == len(alone_graph.edges)
    # the gradient method recovers the synthetic alignment far better than attention (docs/benchmarks.md, AER)
    saliency = [rows[(f"pair-{i}", "saliency")]["aer"] for i in range(6)]
    attention = [rows[(f"pair-{i}", "attention")]["aer"] for i in range(6)]
    assert np.mean(saliency) < 0.15 < np.mean(attention)


def test_bad_records_are_written_with_their_error_and_the_run_goes_on(finished_run: Path) -> None:
    rows = _rows(finished_run)
    messages = {record_id: rows[(record_id, "saliency")]["error"] for record_id in (r["id"] for r in BAD_ROWS)}
    assert "The input text is empty" in messages["empty"]
    assert "bad gold alignment" in messages["bad-alignment"] and "one-two" in messages["bad-alignment"]
    assert "links source word 9" in messages["alignment-out-of-range"]
    assert "holds a value of type int, not text" in messages["not-text"]
    assert "81 tokens long" in rows[("too-long", "saliency")]["error"]
    for record_id in [*messages, "too-long"]:
        assert all(rows[(record_id, m)]["status"] == "error" for m in METHODS)
    assert sum(row["status"] == "ok" for row in rows.values()) == 6 * len(METHODS)
    manifest = json.loads((finished_run / "run.json").read_text())
    assert manifest["status"] == "complete" and manifest["counts"] == {"records": 11, "done": 11, "failed": 5}


def test_result_files_are_what_the_exporters_draw(finished_run: Path) -> None:
    from exporters import export_result

    row = _rows(finished_run)[("pair-0", "saliency")]
    assert row["result_file"] == result_path("pair-0", "saliency")
    assert "saliency attribution" in export_result(finished_run / row["result_file"], mode="cdn").html
    # the shards are plain Parquet: any Arrow reader gets the table
    table = pq.read_table(finished_run / "shards")
    assert table.num_rows == 11 * len(METHODS) and "aer" in table.column_names


# ----------------------------------------------------------------------------- resume and interruption


def test_an_interrupted_run_resumes_without_loss_or_duplicates(
    data_file: Path, finished_run: Path, tmp_path: Path
) -> None:
    records = read_records(data_file, FieldMap(id="id"))
    run_dir = tmp_path / "run"
    batches = []

    def interrupt_after_the_second_batch(outcomes) -> None:
        batches.append(outcomes)
        if len(batches) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_corpus(
            records, run_dir, model=ModelSpec(MODEL), task=TASK, batch_size=4, on_batch=interrupt_after_the_second_batch
        )
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["counts"]["done"] == 8
    assert not list(run_dir.rglob("*.tmp"))
    interrupted = load_run(run_dir)
    assert len(interrupted.rows) == 8 * len(METHODS)
    assert all(row["result_file"] is None or (run_dir / row["result_file"]).is_file() for row in interrupted.rows)

    summary = run_corpus(records, run_dir, model=ModelSpec(MODEL), task=TASK, batch_size=4)
    assert (summary.skipped, summary.done, summary.complete) == (8, 3, True)
    resumed, reference = _rows(run_dir), _rows(finished_run)
    assert resumed.keys() == reference.keys()
    for key, row in reference.items():
        for column in ("status", "error", "aer", "aer_threshold", "rho_attention", "n_edges"):
            assert resumed[key][column] == pytest.approx(row[column], abs=1e-6), (key, column)
    again = run_corpus(records, run_dir, model=ModelSpec(MODEL), task=TASK, batch_size=4)
    assert (again.skipped, again.done) == (11, 0)
    assert len(load_run(run_dir).rows) == 11 * len(METHODS)


def test_resume_refuses_other_settings_changed_data_and_a_second_writer(data_file: Path, tmp_path: Path) -> None:
    records = read_records(data_file, FieldMap(id="id"), limit=2)
    run_dir = tmp_path / "run"
    run_corpus(records, run_dir, model=ModelSpec(MODEL), task=TaskConfig(methods=("attention",)))
    with pytest.raises(InvalidInputError, match="other settings"):
        run_corpus(records, run_dir, model=ModelSpec(MODEL), task=TaskConfig(methods=("saliency",)))
    changed = [records[0].__class__(**{**records[0].__dict__, "target": "ka kano"}), records[1]]
    with pytest.raises(InvalidInputError, match="'pair-0' has other inputs"):
        run_corpus(changed, run_dir, model=ModelSpec(MODEL), task=TaskConfig(methods=("attention",)))
    holder = RunFolder.open(
        run_dir, model=ModelSpec(MODEL).defining(), task=TaskConfig(methods=("attention",)), data={}
    )
    try:
        with pytest.raises(InvalidInputError, match="Another run is writing"):
            run_corpus(records, run_dir, model=ModelSpec(MODEL), task=TaskConfig(methods=("attention",)))
    finally:
        holder.close(status="complete")
    with pytest.raises(InvalidInputError, match="not empty and holds no corpus run"):
        run_corpus(records, data_file.parent, model=ModelSpec(MODEL), task=TaskConfig(methods=("attention",)))


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "space.cli", *args]


@pytest.mark.slow
def test_ctrl_c_in_the_cli_leaves_a_folder_that_the_same_command_resumes(data_file: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "cli-run"
    command = _cli(
        "corpus", "--model", MODEL, "--methods", "saliency", "graph", "--data", str(data_file),
        "--id-field", "id", "--batch-size", "2", "--out", str(run_dir),
    )  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    deadline = time.monotonic() + 240
    while not list((run_dir / "results").rglob("*.json")) and time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)  # what Ctrl-C sends
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["counts"]["done"] < 11
    assert not list(run_dir.rglob("*.tmp"))

    finished = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert finished.returncode == 0, finished.stderr
    assert f"{manifest['counts']['done']} already done" in finished.stderr
    assert "record/s" in finished.stderr  # the tqdm bar's rate (and its ETA)
    rows = _rows(run_dir)
    assert {record_id for record_id, _ in rows} == {f"pair-{i}" for i in range(6)} | {r["id"] for r in BAD_ROWS} | {
        "too-long"
    }
    assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"


def test_cli_corpus_and_report_and_their_errors(tmp_path: Path) -> None:
    from space.cli import main

    data = write_jsonl(tmp_path / "pairs.jsonl", translation_rows(3))
    run_dir = tmp_path / "run"
    assert main(["corpus", "--model", MODEL, "--methods", "saliency", "--data", str(data), "--out", str(run_dir)]) == 0
    assert len(load_run(run_dir).rows) == 3
    assert main(["report", str(run_dir), "--out", str(tmp_path / "report.html")]) == 0
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "corpus report" in page and "tiny-synth-translate" in page
    assert main(["corpus", "--model", MODEL, "--methods", "saliency", "--data", str(data), "--out", str(run_dir),
                 "--methods", "attention"]) == 2  # fmt: skip
    assert (
        main(["corpus", "--model", MODEL, "--data", str(data), "--out", str(tmp_path / "x"), "--methods", "nope"]) == 2
    )
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "r.html")]) == 2


def test_loaded_results_round_trip(finished_run: Path) -> None:
    row = _rows(finished_run)[("pair-1", "graph")]
    graph = load_result_file(finished_run / row["result_file"])
    assert isinstance(graph, ContributionGraph) and graph.root_tokens == list(range(len(graph.target_tokens)))
    assert not math.isnan(row["aer"])


@pytest.mark.slow
def test_the_docs_corpus_commands_run_as_written(tmp_path: Path) -> None:
    """The corpus page's corpus and report commands, verbatim, from a folder where examples/ is the repository's."""
    page = (REPO / "docs" / "corpus.md").read_text(encoding="utf-8")
    block = page.split("<!-- corpus-commands -->")[1].split("<!-- /corpus-commands -->")[0]
    commands = block.replace("\\\n", " ").strip().strip("`").removeprefix("bash").strip().splitlines()
    assert [c.split()[:2] for c in commands] == [["attribution-explorer", "corpus"], ["attribution-explorer", "report"]]
    (tmp_path / "examples").symlink_to(REPO / "examples")
    script = Path(sys.executable).with_name("attribution-explorer")
    program = str(script) if script.is_file() else "attribution-explorer"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    for command in commands:
        done = subprocess.run(
            [program, *command.split()[1:]], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600
        )
        assert done.returncode == 0, done.stderr[-2000:]
    assert len(load_run(tmp_path / "runs" / "synth").rows) == 10 * 3
    assert "corpus report" in (tmp_path / "report.html").read_text(encoding="utf-8")
