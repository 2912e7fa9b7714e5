"""The corpus report (exporter kind ``corpus``): numbers, bounds, escaping, Hub push, and Chromium."""

from __future__ import annotations

import html
import time
from pathlib import Path

import numpy as np
import pytest
from bokeh.models import CustomJS, DataTable

from attribution.corpus import FieldMap, ModelSpec, TaskConfig, load_run, read_records, run_corpus
from attribution.corpus.records import Record
from attribution.corpus.runfolder import RunFolder
from attribution.corpus.tasks import failed_outcome
from exporters import export_result
from exporters.bokeh_html import build_figure
from tests.support.corpus_data import translation_rows, write_jsonl

HOSTILE_ID = '<script>alert("id")</script>'
HOSTILE_TEXT = "the dog sees <img src=x onerror=alert(1)> a cat"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    rows = [{"id": f"pair-{i}", **row} for i, row in enumerate(translation_rows(5))]
    rows.append({"id": HOSTILE_ID, "source": HOSTILE_TEXT, "target": "ka grano", "alignment": "0-0 1-1"})
    rows.append({"id": "broken", "source": "the dog", "target": "ka grano", "alignment": "0-0 x"})
    data = write_jsonl(tmp_path_factory.mktemp("data") / "pairs.jsonl", rows)
    folder = tmp_path_factory.mktemp("runs") / "run"
    task = TaskConfig(methods=("saliency", "attention", "graph"))
    run_corpus(read_records(data, FieldMap(id="id")), folder, model=ModelSpec("tiny-synth-translate"), task=task)
    return folder


def _parts(layout):
    table = next(iter(layout.select({"type": DataTable})))
    callback = next(c for c in layout.select({"type": CustomJS}) if "details" in c.args)
    return table.source.data, callback.args["details"]


def test_table_is_worst_first_with_failures_last_and_details_bounded(run_dir: Path) -> None:
    run = load_run(run_dir)
    data, details = _parts(build_figure(run, max_table_rows=4, max_details=2))
    assert len(data["record"]) == 4 and len(details) == 2
    mean_aer = {  # over the methods, for the records where every method ran
        record_id: np.mean([r["aer"] for r in run.rows if r["record_id"] == record_id])
        for record_id in {r["record_id"] for r in run.rows if r["status"] == "ok"}
    }
    worst = sorted(mean_aer, key=lambda record_id: -mean_aer[record_id])
    assert list(data["record"]) == worst[:4]
    attention_aer = {r["record_id"]: r["aer"] for r in run.rows if r["method"] == "attention"}
    np.testing.assert_allclose(data["attention aer"], [attention_aer[r] for r in worst[:4]])
    assert list(details) == worst[:2]
    data, details = _parts(build_figure(run))
    assert data["record"][-1] == "broken" and "bad gold alignment" in data["status"][-1]
    assert set(details) == set(data["record"]) - {"broken"}
    heat = details["pair-0"]["saliency"]
    result = run.result(next(r for r in run.rows if (r["record_id"], r["method"]) == ("pair-0", "saliency")))
    assert heat["rows"] == result.source_tokens and heat["cols"] == result.generated_tokens
    assert len(heat["value"]) == np.isfinite(result.source_scores).sum()
    assert max(abs(v) for v in heat["colour"]) == pytest.approx(1.0)


def test_the_page_is_offline_escaped_and_pushable_with_its_parquet(run_dir: Path, monkeypatch) -> None:
    from huggingface_hub import constants

    from exporters.hub import push_export
    from tests.support.local_hub_server import local_hub

    export = export_result(run_dir)  # a run folder is drawn as a corpus report, through the registry
    assert export.kind == "corpus" and "corpus report — tiny-synth-translate" in export.title
    assert HOSTILE_ID not in export.html and "<img src=x" not in export.html
    assert html.escape("saliency, attention, graph") in export.html
    run = load_run(run_dir)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    shards = {f"data/{path.name}": path.read_bytes() for path in run.shard_files()}
    with local_hub() as hub:
        push_export(export, run, "alice/corpus", token="hf_test", endpoint=hub.url, extra_files=shards)
    files = hub.commits[0].files
    assert set(files) == {"index.html", "result.json", "README.md", *shards}
    assert all(files[name] == data for name, data in shards.items())
    assert b'"schema": "corpus-run"' in files["result.json"]


def test_a_large_run_stays_bounded(tmp_path: Path) -> None:
    """3 000 records (no model: failed outcomes carry no result) -> the page lists the cap, not all."""
    task = TaskConfig(methods=("saliency",))
    folder = RunFolder.open(tmp_path / "big", model={"model_id": "m"}, task=task, data={"n_records": 3000})
    records = [Record(record_id=f"r{i}", row=i, text=f"text {i}") for i in range(3000)]
    folder.write([[failed_outcome(r, "saliency", "too long", "w", 0.0)] for r in records])
    folder.close(status="complete")
    export = export_result(tmp_path / "big", max_table_rows=100)
    data, details = _parts(build_figure(load_run(tmp_path / "big"), max_table_rows=100))
    assert len(data["record"]) == 100 and not details
    assert "lists 100 of 3000 records" in export.html
    assert len(export.html) < 3_000_000


@pytest.mark.browser
def test_report_draws_offline_and_a_click_shows_the_record(run_dir: Path, new_page, tmp_path: Path) -> None:
    page_file = tmp_path / "report.html"
    export_result(run_dir).write(page_file)
    session = new_page(page_file.as_uri(), viewport=(1300, 1000))
    page = session.page
    page.locator(".slick-row").first.wait_for(timeout=30_000)  # Playwright's locators see into shadow roots
    page.wait_for_timeout(500)
    before = session.drawn_pixels()
    assert before["canvases"] >= 4 and before["drawn"] > 0
    page.locator(".slick-row").first.click()
    _wait_for_text(session, "source tokens × explained tokens")
    after = session.drawn_pixels()
    assert after["drawn"] > before["drawn"]  # the record's heatmap appeared
    hostile = page.locator(".slick-row", has_text="<script>")
    hostile.first.click()
    _wait_for_text(session, f"record {HOSTILE_ID}")  # shown as text...
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    session.assert_clean()  # ...never run: no dialog, no error, nothing fetched


def _wait_for_text(session, text: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in session.deep_text():
        assert time.monotonic() < deadline, f"{text!r} never appeared"
        session.page.wait_for_timeout(200)


def test_cli_report_push_commits_a_run_folder_that_load_run_reads_as_the_card_says(
    run_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    from huggingface_hub import constants

    from space.cli import main
    from tests.support.local_hub_server import local_hub

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    with local_hub() as hub:
        code = main(
            ["report", str(run_dir), "--out", str(tmp_path / "r.html"), "--push", "alice/c", "--endpoint", hub.url]
        )
    assert code == 0
    files = hub.commits[0].files
    assert files["index.html"] == (tmp_path / "r.html").read_bytes()
    card = files["README.md"].decode()
    assert "attribution.corpus.load_run(huggingface_hub.snapshot_download(" in card and "load_result_file" not in card
    pushed = tmp_path / "snapshot"  # the repo as snapshot_download lays it out: the committed paths
    for name, data in files.items():
        (pushed / name).parent.mkdir(parents=True, exist_ok=True)
        (pushed / name).write_bytes(data)
    original, copy = load_run(run_dir), load_run(pushed)
    assert copy.rows == original.rows and copy.manifest == original.manifest
    for row in copy.rows:  # every row's result file was pushed and loads
        if row["result_file"]:
            assert copy.result(row).to_json() == original.result(row).to_json()


# ----------------------------------------------------------------------------- 10,000 records without gold

N_LARGE = 10_000


@pytest.fixture(scope="module")
def large_run(tmp_path_factory) -> Path:
    """10,000 records explained by two methods, no gold alignment (no AER): mean probabilities, agreement,
    lengths; every 20th record's attention failed. Written through the run folder (no model needed)."""
    from attribution.corpus.tasks import MethodOutcome

    rng = np.random.default_rng(0)
    probability = rng.uniform(0.0, 1.0, size=(N_LARGE, 2))
    rho = rng.uniform(-1.0, 1.0, size=N_LARGE)
    task = TaskConfig(methods=("saliency", "attention"))
    folder = RunFolder.open(tmp_path_factory.mktemp("large") / "run", model={"model_id": "m"}, task=task, data={})
    outcomes = []
    for i in range(N_LARGE):
        record = Record(record_id=f"r{i}", row=i, text=f"sentence number {i}", target=f"satz {i}")
        pair = []
        for m, method in enumerate(task.methods):
            if method == "attention" and i % 20 == 0:
                pair.append(failed_outcome(record, method, "attention failed here", "w", 0.0, task))
                continue
            values = {"mean_probability": float(probability[i, m]), "n_source_tokens": 4, "n_target_tokens": 3}
            values[f"rho_{task.methods[1 - m]}"] = float(rho[i])
            pair.append(
                MethodOutcome(
                    record.record_id,
                    i,
                    record.content_hash,
                    method,
                    "ok",
                    None,
                    None,
                    record.text,
                    record.target,
                    values,
                    0.0,
                    "w",
                    "reference",
                )
            )
        outcomes.append(pair)
    folder.write(outcomes)
    folder.close(status="complete")
    return folder.run_dir


def _expected_order(run_dir: Path) -> list[str]:
    """Worst first without gold: lowest mean (over methods) of the mean probability; failed records last."""
    rows = load_run(run_dir).rows
    failed = {r["record_id"] for r in rows if r["status"] != "ok"}
    means: dict[str, list[float]] = {}
    for r in rows:
        if r["record_id"] not in failed:
            means.setdefault(r["record_id"], []).append(r["mean_probability"])
    ranked = sorted(means, key=lambda record_id: np.mean(means[record_id]))
    return ranked + sorted(failed, key=lambda record_id: int(record_id[1:]))


def test_a_run_without_gold_is_ranked_by_its_probabilities_and_every_record_is_embedded(large_run: Path) -> None:
    layout = build_figure(load_run(large_run))
    data, _ = _parts(layout)
    every = next(iter(layout.select({"name": "all records"}))).data
    expected = _expected_order(large_run)
    assert list(every["record"]) == expected and len(expected) == N_LARGE
    assert list(data["record"]) == expected[:2000]
    assert "saliency mean_probability" in data and "attention agreement" in data and "aer" not in str(list(data))
    rank = next(iter(layout.select({"name": "rank by"})))
    assert "attention mean_probability" in rank.options and "saliency n_source_tokens" in rank.options
    export = export_result(large_run)
    assert len(export.html) < 12_000_000


def _table_records(page) -> list[str]:
    return page.evaluate("() => Bokeh.documents[0].get_model_by_name('records').data.record")


def _set(page, placeholder: str, value: str) -> None:
    page.get_by_placeholder(placeholder).fill(value)
    page.wait_for_timeout(300)


@pytest.mark.browser
def test_search_filters_and_ranking_act_on_all_10000_records(large_run: Path, new_page, tmp_path: Path) -> None:
    rows = load_run(large_run).rows
    expected = _expected_order(large_run)
    beyond = expected[5000]  # not among the 2,000 rows the table starts with
    page_file = tmp_path / "large.html"
    export_result(large_run).write(page_file)
    session = new_page(page_file.as_uri(), viewport=(1300, 1000))
    page = session.page
    page.locator(".slick-row").first.wait_for(timeout=60_000)
    assert _table_records(page) == expected[:2000]

    _set(page, "search records", beyond)
    assert _table_records(page) == [beyond]
    _set(page, "search records", "")

    page.locator("select").filter(has_text="failed").select_option("failed")
    page.wait_for_timeout(300)
    failed = [f"r{i}" for i in range(0, N_LARGE, 20)]
    assert _table_records(page) == failed  # all 500, though every one ranks below the first 2,000
    assert f"{len(failed)} of {N_LARGE} records match" in session.deep_text()
    page.locator("select").filter(has_text="failed").select_option("all")

    page.locator("select").filter(has_text="worst first").select_option("attention mean_probability")
    _set(page, "from", "0.9")
    _set(page, "to", "0.95")
    attention = {
        r["record_id"]: r["mean_probability"] for r in rows if r["method"] == "attention" and r["status"] == "ok"
    }
    in_range = sorted((v, int(k[1:]), k) for k, v in attention.items() if 0.9 <= v <= 0.95)
    assert _table_records(page) == [k for _, _, k in in_range]  # lowest first: the worst probabilities
    session.assert_clean()


def test_token_scores_are_one_long_parquet_table_pandas_reads(run_dir: Path, tmp_path: Path) -> None:
    import pandas as pd

    from attribution.contributions.alignment import route_flow
    from attribution.results import node_id
    from space.cli import main

    scores_file = tmp_path / "scores.parquet"
    assert main(["report", str(run_dir), "--out", str(tmp_path / "r.html"), "--token-scores", str(scores_file)]) == 0
    frame = pd.read_parquet(scores_file)
    assert list(frame.columns) == [
        "record_id", "method", "side", "source_index", "source_token", "target_index", "target_token", "score"
    ]  # fmt: skip
    assert str(frame["source_index"].dtype) == "int32" and str(frame["score"].dtype) == "float64"
    run = load_run(run_dir)
    ok_rows = [r for r in run.rows if r["status"] == "ok"]
    assert set(zip(frame["record_id"], frame["method"], strict=True)) == {
        (r["record_id"], r["method"]) for r in ok_rows
    }
    for row in ok_rows:
        result = run.result(row)
        mine = frame[(frame["record_id"] == row["record_id"]) & (frame["method"] == row["method"])]
        if row["method"] == "graph":  # route flow from decoder position 0 into each source token's final state
            flow = route_flow(result, result.root_tokens[0])
            first = mine[mine["target_index"] == 0]
            for source_index, score in zip(first["source_index"], first["score"], strict=True):
                node = node_id("encoder", result.n_encoder_layers, "after_ffn", int(source_index))
                assert score == pytest.approx(flow[node])
            continue
        matrix = result.source_scores  # seq2seq: the source side; target-side scores are tagged "target"
        source = mine[mine["side"] == "source"]
        assert len(source) == np.isfinite(matrix).sum()
        np.testing.assert_allclose(
            source["score"], matrix[source["source_index"], source["target_index"]], rtol=0, atol=0
        )
        assert list(source["source_token"]) == [result.source_tokens[i] for i in source["source_index"]]
        assert list(source["target_token"]) == [result.generated_tokens[j] for j in source["target_index"]]
