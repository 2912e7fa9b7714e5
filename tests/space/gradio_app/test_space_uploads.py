"""The live app against hostile uploads and bodies: what a request expands to is bounded before it is materialised.

Found by an attacker of the public Space: a 9.7 kB Parquet upload decompressing to 300 M characters
(server RSS 794 MiB → 3.7 GiB), request bodies held whole before any limit (eight 100 MB ``/attribute``
bodies: 2 GiB → 4.6 GiB), uploads left on disk, a ``FileData`` naming the upload folder that ended
Gradio's cache clean-up for good, and a lone surrogate in one record that lost the whole upload. Each
case asserts the one-line refusal, the server's memory growth (its own process, ``VmRSS``) and the next
good request served. The app runs in its own process (``tests/support/app_server.py``).
"""

from __future__ import annotations

import http.server
import json
import re
import threading
import time
import urllib.error
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ClassVar

import pyarrow.parquet as pq
import pytest

from space.gradio_app.request_guard import FOREIGN_FILE
from tests.support.app_context import offline_context
from tests.support.app_server import (
    Answer,
    AppProcess,
    call,
    file_payload,
    refused_call,
    send_body,
    serve_app,
    stop,
    upload,
)
from tests.support.corpus_data import translation_rows
from tests.support.hostile_inputs import bad_record_lines, parquet_bomb

MODEL = "tiny-synth-translate"
MAX_INPUT_TOKENS = 40
CELL_CAP = MAX_INPUT_TOKENS * 64  # what the corpus reader reads of one cell: 64 characters per allowed token
REQUEST_MB, UPLOAD_MB = 4, 1
REQUEST_LIMIT = "The request body is larger than the 4.0 MB this app accepts."
UPLOAD_LIMIT = "The request body is larger than the 1.1 MB this app accepts."  # 1 MB of file + 64 KiB of framing
#: Gradio's clean-up deletes cached files (uploads included) this old, this often (``delete_cache``). Long enough
#: for the clean-up test's upload to be used again after its hostile requests on a loaded machine (at 6 s, Gradio
#: sometimes deleted it first, and its reuse was refused).
CACHE_AGE_S = 15
CONFIG = {
    "models": [MODEL],
    "default_model": MODEL,
    "max_input_tokens": MAX_INPUT_TOKENS,
    "max_new_tokens": 3,
    "methods": ["saliency"],
    "cache_examples": "off",
    "concurrency_limit": 1,
    "max_corpus_rows": 20,
    "max_sessions": 50,
    "max_request_mb": REQUEST_MB,
    "max_upload_mb": UPLOAD_MB,
    "export_max_age_s": CACHE_AGE_S,
}
#: Server memory may grow this much over each test's hostile requests (the bomb alone used to add 2.9 GiB).
RSS_GROWTH_LIMIT_MIB = 100
GOOD_ROW = b'{"source": "the cat sees a bird", "target": "ka vesa mi avi vidas"}\n'


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> Iterator[AppProcess]:
    # Uploads live long enough here to be used on a loaded machine (Gradio deletes them CACHE_AGE_S after they
    # arrive in the clean-up test's own app, which starts with CONFIG).
    with serve_app({**CONFIG, "export_max_age_s": 600}, tmp_path_factory.mktemp("uploads")) as served:
        yield served


def _corpus_args(upload_value) -> tuple:
    return (upload_value, [MODEL], ["saliency"], False, "source", "target", "alignment")


def _run_corpus(app: AppProcess, upload_value, *, session: str | None = None) -> Answer:
    return call(app.url, "corpus", *_corpus_args(upload_value), session=session)


def _one_line(message: object, expect: str) -> str:
    assert isinstance(message, str) and message, message
    assert "\n" not in message and "Traceback" not in message and len(message) <= 600, message
    assert re.search(expect, message), message
    return message


def _refused(answer: Answer, expect: str) -> str:
    assert answer.event == "error", answer.data
    return _one_line((answer.data or {}).get("error"), expect)


def _good_run(app: AppProcess, name: str = "pairs.jsonl") -> Answer:
    done = _run_corpus(app, upload(app.url, name, GOOD_ROW))
    assert done.event == "complete" and done.data[0].startswith("1 of 1 records explained"), done.data
    return done


def _upload_files(app: AppProcess) -> set[Path]:
    """Every uploaded file on the server's disk (Gradio's folders and the app's upload store; not the exports).

    Left out: the empty ``tmp*`` file Gradio 6.31's ``gr.File(type="filepath")`` creates in the cache folder on
    every request it preprocesses, and never deletes (its own leak, not an upload's bytes).
    """
    exports = app.gradio_temp / "attribution-explorer"
    return {
        path
        for path in app.gradio_temp.rglob("*")
        if path.is_file() and exports not in path.parents and (path.parent != app.gradio_temp or path.stat().st_size)
    }


@pytest.mark.server
def test_a_compressed_bomb_and_big_uploads_are_refused_unread_and_deleted(app: AppProcess) -> None:
    _good_run(app, "warm.jsonl")  # every code path once, so that imports are not counted as growth
    rss_before = app.rss_mib()
    on_disk = _upload_files(app)

    bomb = upload(app.url, "bomb.parquet", parquet_bomb())  # 10 kB on disk, 300 M characters in its one cell
    _refused(
        _run_corpus(app, bomb),
        r"^bomb\.parquet: column 'source' decompresses to 300\.0 MB, more than 1 cell\(s\) of at most 2,560 ",
    )
    assert not Path(bomb["path"]).exists()  # a refused upload is deleted at once
    # The same without compression: a JSON lines file that is just big, refused while it arrives.
    status, answer, sent = send_body(
        app.url, "/gradio_api/upload", 200_000_000, chunked=False, content_type="multipart/form-data; boundary=x"
    )
    assert (status, json.loads(answer)) == (413, {"detail": UPLOAD_LIMIT}) and sent < 50_000_000
    status, answer, sent = send_body(
        app.url, "/gradio_api/upload", 200_000_000, chunked=True, content_type="multipart/form-data; boundary=x"
    )
    assert (status, json.loads(answer)) == (413, {"detail": UPLOAD_LIMIT}) and sent < 50_000_000
    with pytest.raises(urllib.error.HTTPError) as over:  # under the body limit, one byte over the file limit
        upload(app.url, "big.jsonl", GOOD_ROW * (UPLOAD_MB * 1_000_000 // len(GOOD_ROW) + 1))
    assert over.value.code == 413
    _one_line(over.value.read().decode(), r"^File size exceeded maximum allowed size of 1000000 bytes\.$")
    assert not _upload_files(app) - on_disk  # nothing refused stays on disk

    _good_run(app)  # the next good request is served
    growth = app.rss_mib() - rss_before
    print(f"server memory grew by {growth:.0f} MiB over the bomb and the big uploads")
    assert growth < RSS_GROWTH_LIMIT_MIB, f"server memory grew by {growth:.0f} MiB"


@pytest.mark.server
def test_oversized_bodies_are_refused_before_they_are_read(app: AppProcess) -> None:
    attribute = ("the cat sees a bird", "ka vesa mi avi vidas", "saliency", ["probability"], "", "", "")
    assert call(app.url, "attribute", MODEL, *attribute).event == "complete"  # warm-up
    rss_before = app.rss_mib()

    def send(route: str, n_bytes: int, chunked: bool) -> tuple[int, dict, int]:
        status, answer, sent = send_body(app.url, route, n_bytes, chunked=chunked)
        return status, json.loads(answer), sent

    for chunked in (False, True):  # announced by Content-Length (refused unread), or counted as it arrives
        with ThreadPoolExecutor(8) as pool:
            routes = ["/gradio_api/call/attribute"] * 8
            answers = list(pool.map(send, routes, [100_000_000] * 8, [chunked] * 8))
        answers.append(send("/gradio_api/queue/join", 200_000_000, chunked))
        for status, answer, sent in answers:
            assert (status, answer) == (413, {"detail": REQUEST_LIMIT}), (chunked, status, answer)
            assert sent < 50_000_000, f"the server let {sent} bytes of body arrive before refusing"

    answer = call(app.url, "attribute", MODEL, *attribute)  # the next good request is served
    assert answer.event == "complete" and json.loads(answer.data[3])["source_text"] == attribute[0]
    growth = app.rss_mib() - rss_before
    print(f"server memory grew by {growth:.0f} MiB over 18 bodies of 100-200 MB")
    assert growth < RSS_GROWTH_LIMIT_MIB, f"server memory grew by {growth:.0f} MiB"


@pytest.mark.server
def test_a_bad_record_in_an_upload_fails_alone_and_the_good_ones_are_done(app: AppProcess) -> None:
    _good_run(app, "warm.jsonl")  # every code path once, so that imports are not counted as growth
    rss_before = app.rss_mib()
    good = [json.dumps(row).encode() for row in translation_rows(5)]
    bad = bad_record_lines(CELL_CAP)
    lines = [*good[:2], *(case.value for case in bad), *good[2:]]
    sent = upload(app.url, "mixed.jsonl", b"\n".join(lines) + b"\n")
    done = _run_corpus(app, sent)
    assert done.event == "complete", done.data
    total = len(lines)
    assert done.data[0].startswith(f"{total} of {total} records explained in ") and done.data[0].endswith(
        f" s, {len(bad)} failed."
    ), done.data[0]
    results = next(Path(f["path"]) for f in done.data[1] if f["path"].endswith(".parquet"))
    rows = {row["record_id"]: row for row in pq.read_table(results).to_pylist()}
    for index, case in enumerate(bad, start=2):
        row = rows[str(index)]
        assert row["status"] == "error", (case.name, row)
        _one_line(row["error"], case.expect)
    for index, pair in zip([0, 1, *range(2 + len(bad), total)], translation_rows(5), strict=True):
        row = rows[str(index)]
        assert (row["status"], row["source_text"], row["error"]) == ("ok", pair["source"], None)
    _good_run(app)  # the next good request is served
    growth = app.rss_mib() - rss_before
    print(f"server memory grew by {growth:.0f} MiB over an upload with {len(bad)} bad records")
    assert growth < RSS_GROWTH_LIMIT_MIB, f"server memory grew by {growth:.0f} MiB"


class _CountingHandler(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(GOOD_ROW)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.server
@pytest.mark.slow
def test_file_inputs_name_only_this_sessions_uploads_and_the_cache_clean_up_survives(tmp_path: Path) -> None:
    """Folders, URLs, server files, another session's upload: refused before Gradio acts on them. Gradio's cache
    clean-up then still deletes old uploads, and the app shuts down cleanly."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CountingHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/data.jsonl"
    try:
        with serve_app(CONFIG, tmp_path) as app:
            mine, theirs = uuid.uuid4().hex, uuid.uuid4().hex
            sent = upload(app.url, "pairs.jsonl", GOOD_ROW)
            done = _run_corpus(app, sent, session=mine)
            assert done.event == "complete", done.data
            rss_before = app.rss_mib()
            export = Path(done.data[1][0]["path"])  # a file the app wrote into Gradio's cache: not an upload
            hostile = [
                file_payload(str(app.gradio_temp)),  # the upload folder itself (ended Gradio's clean-up loop)
                file_payload(str(Path(sent["path"]).parent)),  # the upload's own folder
                file_payload(url),  # fetched by the server
                {"path": url, "url": url, "meta": {"_type": "gradio.FileData"}},
                file_payload("/etc/passwd"),
                file_payload(str(export)),
                {"path": str(app.gradio_temp)},  # without its meta: Gradio still takes it for a file
            ]
            for value in hostile:
                for session in (mine, None):
                    status, line = refused_call(app.url, "corpus", *_corpus_args(value), session=session)
                    assert (status, line) == (400, FOREIGN_FILE), value
            assert refused_call(app.url, "corpus", *_corpus_args(sent), session=theirs) == (400, FOREIGN_FILE)
            assert refused_call(app.url, "corpus", *_corpus_args(sent)) == (400, FOREIGN_FILE)  # a session of its own
            assert _run_corpus(app, sent, session=mine).event == "complete"  # its own session may use it again
            assert _CountingHandler.hits == []
            growth = app.rss_mib() - rss_before
            assert growth < RSS_GROWTH_LIMIT_MIB, f"server memory grew by {growth:.0f} MiB"

            time.sleep(CACHE_AGE_S + 1)  # a clean-up round runs after the hostile requests (it used to die in it)
            late = Path(upload(app.url, "late.jsonl", GOOD_ROW)["path"])
            assert late.is_file()
            deadline = time.monotonic() + 4 * CACHE_AGE_S
            while late.exists() and time.monotonic() < deadline:
                time.sleep(0.5)
            assert not late.exists(), "Gradio's cache clean-up no longer deletes old uploads"
            stop(app)
        log = app.log.read_text(errors="replace")
        assert app.process.returncode == 0, log[-2000:]
        assert "IsADirectoryError" not in log and "shutdown failed" not in log, log[-2000:]
    finally:
        server.shutdown()


def test_a_refused_upload_is_deleted_and_one_read_with_a_wrong_field_name_is_kept(tmp_path: Path) -> None:
    from attribution.errors import InvalidInputError
    from space.gradio_app.config import SpaceConfig
    from space.gradio_app.tabs.corpus import run_uploaded_corpus

    config = SpaceConfig(models=(MODEL,), default_model=MODEL, max_input_tokens=MAX_INPUT_TOKENS, max_corpus_rows=2)
    ctx = offline_context(config, export_root=tmp_path / "x")
    root = tmp_path / "uploads"
    (root / "a").mkdir(parents=True)
    files = {
        "many.jsonl": (GOOD_ROW * 3, "source", r"many\.jsonl has more than 2 rows"),
        "junk.parquet": (b"not parquet", "source", r"junk\.parquet: not a readable Parquet file"),
        "notes.txt": (b"hello", "source", r"'notes\.txt' is not a \.jsonl, \.csv or \.parquet file"),
        "fields.jsonl": (GOOD_ROW, "text", r"fields\.jsonl has no text field 'text'"),
    }
    for name, (content, text_field, expect) in files.items():
        path = root / "a" / name
        path.write_bytes(content)
        with pytest.raises(InvalidInputError, match=expect):
            run_uploaded_corpus(ctx, str(path), [MODEL], ["saliency"], False, text_field, upload_root=root)
        assert path.exists() == (name == "fields.jsonl"), name  # another field name can still read this one


@pytest.mark.parametrize("key", ["max_request_mb", "max_upload_mb", "uploads_max_mb"])
def test_the_limits_must_be_positive_numbers(key: str) -> None:
    from attribution.errors import InvalidInputError
    from space.gradio_app.config import SpaceConfig

    for value in (0, -1, "64", True):
        with pytest.raises(InvalidInputError, match=rf"^config: {key} must be a positive number, not "):
            SpaceConfig.from_dict({key: value})
