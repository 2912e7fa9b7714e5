"""Server memory under ordinary requests: what each request leaves behind in the server is bounded.

Every raw API request is a Gradio session of its own, and Gradio's session store (``max_sessions``
sessions, least recently used dropped) used to keep, per session, a deep-link copy of every
component's config and of the latest value each request sent or got back: ~3 MB per HTML export
(its preview page), ~0.3 MB per other request, so server memory grew with the request count up to
``max_sessions`` times that (``space/gradio_app/sessions.py``). The app runs in its own process
(``tests/support/app_server.py``) so its memory is measured alone. The long run with its memory curve is
``benchmarks/load.py long``; here the same class of leak is caught in a short run.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.support.app_server import AppProcess, call, serve_app

IOI = "When Mary and John went to the store, John gave a drink to"
PAGE = "HTML page (self-contained, works offline)"
NO_LANGUAGES = ("", "")
#: Rounds of (an HTML export, a node's details); memory is compared over the second half.
ROUNDS = 40
#: Server memory may grow this much over the second half's 20 rounds (it grew by ~65 MiB when each session kept
#: its deep-link copy: ~3 MiB per export; ~2 MiB now, from allocator noise).
SECOND_HALF_GROWTH_LIMIT_MIB = 20


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> AppProcess:
    config = {
        "models": ["tiny-ioi-gpt2"],
        "default_model": "tiny-ioi-gpt2",
        "max_new_tokens": 3,
        "cache_examples": "off",
    }  # max_sessions: the default (1000), far more sessions than this test opens
    with serve_app(config, tmp_path_factory.mktemp("memory")) as served:
        yield served


def _attribution_json(app: AppProcess) -> str:
    answer = call(app.url, "attribute", "tiny-ioi-gpt2", IOI, "", "saliency", ["probability"], "", *NO_LANGUAGES)
    assert answer.event == "complete", answer.data
    return answer.data[3]


def _graph_json(app: AppProcess) -> str:
    answer = call(app.url, "graph", "tiny-ioi-gpt2", IOI, "", 0.04, False, "-1", *NO_LANGUAGES)
    assert answer.event == "complete", answer.data
    return answer.data[1]


def _export(app: AppProcess, result_json: str, session: str | None = None) -> None:
    answer = call(app.url, "export", "Attribute", PAGE, result_json, "", "", "", session=session)
    assert answer.event == "complete" and "srcdoc" in answer.data[1], answer.data


def _node_details(app: AppProcess, graph_json: str, node: str) -> None:
    answer = call(app.url, "graph_node", graph_json, node)
    assert answer.event == "complete" and answer.data[0]["data"], answer.data


@pytest.mark.server
@pytest.mark.slow
def test_server_memory_stops_growing_with_the_number_of_requests(app: AppProcess) -> None:
    result_json, graph_json = _attribution_json(app), _graph_json(app)
    root = json.loads(graph_json)["nodes"][0]["id"]
    for _ in range(2):  # warm-up: every code path once
        _export(app, result_json)
        _node_details(app, graph_json, root)
    rss = {}
    for done in range(1, ROUNDS + 1):
        _export(app, result_json)
        _node_details(app, graph_json, root)
        if done in (ROUNDS // 2, ROUNDS):
            rss[done] = app.rss_mib()
    growth = rss[ROUNDS] - rss[ROUNDS // 2]
    print(f"server memory grew by {growth:.1f} MiB over the last {ROUNDS // 2} rounds")
    assert growth < SECOND_HALF_GROWTH_LIMIT_MIB, f"server memory grew by {growth:.0f} MiB"


@pytest.mark.server
def test_a_session_keeps_no_copy_of_what_its_requests_sent_or_got_back(app: AppProcess) -> None:
    # Gradio's deep-link route writes a session's kept copy to disk, so it shows what the session holds.
    result_json = _attribution_json(app)
    session = uuid.uuid4().hex
    _export(app, result_json, session=session)
    query = urllib.parse.urlencode({"session_hash": session})
    with urllib.request.urlopen(f"{app.url}/gradio_api/deep_link?{query}", timeout=60) as response:
        link = json.loads(response.read())
    assert link, "the session is not in Gradio's session store"
    (kept,) = Path(app.gradio_temp).rglob(f"deep_links/{link}/state.json")
    copy = json.loads(kept.read_text(encoding="utf-8"))
    assert copy == [], f"the session kept {kept.stat().st_size:,} bytes: {[c.get('type') for c in copy][:10]}"
