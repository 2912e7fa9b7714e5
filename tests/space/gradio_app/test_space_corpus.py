"""The Compare tab's corpus upload: the handler, then the served app through gradio_client and Chromium."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from attribution.compare import alignment_error_rate
from attribution.errors import InvalidInputError
from attribution.inseq_runner import attribute
from attribution.models import load_model
from exporters.embed import FRAME_START_PX
from space.gradio_app import context
from space.gradio_app.config import SpaceConfig
from space.gradio_app.tabs.corpus import run_uploaded_corpus
from tests.support.app_context import offline_context
from tests.support.app_server import free_port
from tests.support.browser import fitted_frame
from tests.support.corpus_data import translation_rows, write_jsonl

MODEL = "tiny-synth-translate"


def _config(**options) -> SpaceConfig:
    base = SpaceConfig(models=(MODEL,), default_model=MODEL, max_input_tokens=40, methods=("saliency", "attention"))
    return dataclasses.replace(base, **{"max_corpus_rows": 4, **options})


@pytest.fixture
def ctx(tmp_path) -> context.AppContext:
    config = _config()
    return offline_context(config, export_root=tmp_path / "exports")


@pytest.fixture
def uploads(tmp_path) -> Path:
    folder = tmp_path / "uploads" / "abc123"
    folder.mkdir(parents=True)
    return folder


def test_an_upload_gives_the_report_and_the_results(ctx, uploads) -> None:
    data = write_jsonl(uploads / "my pairs.jsonl", translation_rows(3))
    reports: list[tuple[float, str]] = []
    view = run_uploaded_corpus(
        ctx,
        str(data),
        [MODEL],
        ["saliency"],
        True,
        upload_root=uploads.parent,
        progress=lambda done, total, message="": reports.append((done / total, message)),
    )
    assert view.summary == f"3 of 3 records explained in {view.summary.split(' in ')[1].split(' s')[0]} s, 0 failed."
    assert ("loading" in reports[0][1]) and reports[-1] == (1.0, "3 of 3 records")
    page = view.report_path.read_text(encoding="utf-8")
    assert "corpus report — tiny-synth-translate, saliency, graph" in page and "my pairs.jsonl" in page
    assert "srcdoc=" in view.preview_html
    rows = pq.read_table(view.results_path).to_pylist()
    assert {(r["record_id"], r["method"]) for r in rows} == {
        (str(i), m) for i in range(3) for m in ("saliency", "graph")
    }
    loaded = load_model(MODEL)
    for i, pair in enumerate(translation_rows(3)):
        row = next(r for r in rows if (r["record_id"], r["method"]) == (str(i), "saliency"))
        alone = attribute(loaded, pair["source"], target=pair["target"], method="saliency")
        assert row["aer"] == pytest.approx(alignment_error_rate(alone, pair["alignment"]))


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("big.jsonl", "".join(json.dumps(r) + "\n" for r in translation_rows(5)), "more than 4 rows"),
        ("broken.jsonl", '{"source": "a"}\n{"source": \n', "broken.jsonl, line 2: not valid JSON"),
        ("pairs.txt", "hello", "not a .jsonl, .csv or .parquet file"),
        ("fields.csv", "text,target\nthe dog,ka grano\n", "has no text field 'source'"),
        ("junk.parquet", "not parquet", "junk.parquet: not a readable Parquet file"),
    ],
)
def test_bad_uploads_are_one_line_without_server_paths(ctx, uploads, name, content, message) -> None:
    path = uploads / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InvalidInputError, match=message) as error:
        run_uploaded_corpus(ctx, str(path), [MODEL], ["saliency"], False, upload_root=uploads.parent)
    assert str(uploads) not in str(error.value) and "\n" not in str(error.value)


def test_requests_outside_the_offer_are_refused(ctx, uploads, tmp_path) -> None:
    data = write_jsonl(uploads / "pairs.jsonl", translation_rows(2))
    calls = [
        (("/etc/passwd", [MODEL], ["saliency"], False), "not uploaded here"),
        ((str(data), [MODEL], ["lime"], False), "Unknown method 'lime'"),
        ((str(data), [MODEL], [], False), "Pick at least one method"),
        ((str(data), ["/tmp/model"], ["saliency"], False), r"(Unknown model|cannot load) '/tmp/model'"),
        ((None, [MODEL], ["saliency"], False), "Upload a .jsonl"),
    ]
    for arguments, message in calls:
        with pytest.raises(InvalidInputError, match=message):
            run_uploaded_corpus(ctx, *arguments, upload_root=uploads.parent)
    off = dataclasses.replace(ctx, config=_config(max_corpus_rows=0))
    with pytest.raises(InvalidInputError, match="turned off"):
        run_uploaded_corpus(off, str(data), [MODEL], ["saliency"], False, upload_root=uploads.parent)


def test_the_time_budget_stops_the_run_and_the_report_covers_what_finished(ctx, uploads) -> None:
    quick = dataclasses.replace(ctx, config=_config(corpus_time_budget_s=0.001))
    data = write_jsonl(uploads / "pairs.jsonl", translation_rows(4))
    view = run_uploaded_corpus(quick, str(data), [MODEL], ["attention"], False, upload_root=uploads.parent)
    assert "stopped at the 0.001 s time budget" in view.summary
    assert view.report_path.is_file()


# ----------------------------------------------------------------------------- the served app


@pytest.fixture(scope="module")
def served():
    from space.gradio_app import build_app, launch

    demo, _ = build_app(_config(cache_examples="off"), hub_reachable=False)
    port = free_port()
    launch(demo, port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@pytest.mark.server
def test_the_app_runs_an_uploaded_corpus_and_refuses_a_big_one(served, tmp_path) -> None:
    from gradio_client import Client, handle_file

    client = Client(served, verbose=False)
    data = write_jsonl(tmp_path / "pairs.jsonl", translation_rows(2))
    summary, files, preview = client.predict(
        handle_file(str(data)), [MODEL], ["saliency", "attention"], False, "source", "target", "alignment",
        api_name="/corpus",
    )  # fmt: skip
    assert summary.startswith("2 of 2 records explained")
    assert sorted(Path(f).name for f in files) == ["corpus-report.html", "corpus-results.parquet"]
    assert "corpus report" in Path(files[0]).read_text(encoding="utf-8") and "srcdoc" in preview
    big = write_jsonl(tmp_path / "big.jsonl", translation_rows(5))
    with pytest.raises(Exception, match=r"big\.jsonl has more than 4 rows") as error:
        client.predict(handle_file(str(big)), [MODEL], ["saliency"], False, "source", "", "", api_name="/corpus")
    assert str(tmp_path) not in str(error.value)


# Records the text of the preview's loading line if it is ever shown (it goes once the report has drawn).
_WATCH_LOADING_LINE_JS = """() => new MutationObserver(() => {
  const line = document.querySelector('.ae-frame-loading');
  if (line && line.getClientRects().length > 0) window.seenLoadingLine = line.textContent;
}).observe(document.body, {childList: true, subtree: true})"""


@pytest.mark.server
@pytest.mark.browser
def test_the_compare_tab_uploads_a_corpus_and_shows_its_report(served, new_page, tmp_path) -> None:
    data = write_jsonl(tmp_path / "pairs.jsonl", translation_rows(3))
    session = new_page(served, allowed_origin=served.rstrip("/"), viewport=(1300, 1400))
    page = session.page
    page.get_by_role("tab", name="Compare").click()
    page.get_by_text("Corpus: a data set of up to 4 records").click()
    page.locator("#corpus-file input[type=file]").set_input_files(str(data))
    page.locator("#corpus-file").get_by_text("pairs.jsonl").wait_for(timeout=30_000)
    page.evaluate(_WATCH_LOADING_LINE_JS)
    page.click("#corpus-run")
    page.locator("#corpus-summary").get_by_text("3 of 3 records explained").wait_for(timeout=120_000)
    frame = page.frame_locator("iframe[title^='corpus report']")
    frame.locator(".slick-row").first.wait_for(timeout=30_000)
    assert frame.locator(".slick-row").count() == 3
    # The report's frame is as tall as the report; a loading line showed above it until it had drawn.
    _, height, content = fitted_frame(page, "iframe[title^='corpus report']")
    assert abs(height - content) <= 1 and height != FRAME_START_PX, (height, content)
    assert page.evaluate("() => window.seenLoadingLine") == "Loading the report…"
    assert page.locator(".ae-frame-loading").is_hidden()
    page.screenshot(path=str(tmp_path / "space-corpus.png"), full_page=True)
    session.assert_clean()


def test_a_budget_running_out_inside_a_batch_stops_the_run_there(ctx, uploads, monkeypatch) -> None:
    """The deadline between batches cannot stop a long batch: the time budget stops it at its next module call,
    nothing is recorded as failed, the report is still written, and the model is left as it was."""
    from attribution import budget as budget_module
    from tests.support.fakes import TickingClock

    data = write_jsonl(uploads / "pairs.jsonl", translation_rows(3))
    loaded = ctx.load(MODEL)
    probe = loaded.tokenizer("the old cat sees a bird quickly", return_tensors="pt")
    labels = loaded.tokenizer(text_target="ka miru vesa mi avi rapide vidas", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        before = loaded.model(**probe, labels=labels).logits.clone()
    monkeypatch.setattr(budget_module, "_now", TickingClock())  # one second per reading: 300 s = 300 module calls
    view = run_uploaded_corpus(ctx, str(data), [MODEL], ["saliency"], True, upload_root=uploads.parent)
    monkeypatch.undo()
    assert view.summary.startswith("0 of 3 records explained in ") and view.summary.endswith(
        ", 0 failed; stopped at the 300 s time budget (the report covers the records finished)."
    )
    assert pq.read_table(view.results_path).num_rows == 0 and view.report_path.is_file()
    with torch.no_grad():
        assert torch.equal(loaded.model(**probe, labels=labels).logits, before)
