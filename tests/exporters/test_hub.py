"""exporters.hub: the real huggingface_hub client over real HTTP against a local Hub on 127.0.0.1."""

from __future__ import annotations

import re
import socket
import threading
import time
from pathlib import Path

import pytest
from huggingface_hub import constants

from attribution.results import load_result
from exporters import export_result
from exporters.hub import MIN_TOKEN_PIECE, HubPushError, push_export
from space.cli import main
from tests.support.hostile_inputs import REPO_ID_CASES
from tests.support.local_hub_server import LocalHub, local_hub
from tests.support.synthetic_results import synthetic_attribution, synthetic_graph

#: Every test here pushes to the stand-in Hub server (tests/support/local_hub_server.py).
pytestmark = pytest.mark.server

TOKEN = "hf_testTOKEN0123456789secretvalue"


@pytest.fixture(autouse=True)
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    """conftest sets HF_HUB_OFFLINE=1 for the suite; these tests only talk to 127.0.0.1."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", "/nonexistent-hf-home-for-tests")  # no token file to fall back on
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", "/nonexistent-hf-home-for-tests/token")
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", "/nonexistent-hf-home-for-tests/stored_tokens")


def test_push_commits_page_result_and_readme_in_one_commit_to_a_dataset() -> None:
    result = synthetic_attribution("causal")
    export = export_result(result, mode="cdn")
    with local_hub() as hub:
        url = push_export(export, result, "alice/ig-demo", token=TOKEN, endpoint=hub.url)
    assert url == f"{hub.url}/datasets/alice/ig-demo/blob/main/index.html"
    assert [c["type"] for c in hub.created] == ["dataset"]
    assert len(hub.commits) == 1
    commit = hub.commits[0]
    assert (commit.repo_type, commit.repo_id, commit.revision) == ("datasets", "alice/ig-demo", "main")
    assert set(commit.files) == {"index.html", "result.json", "README.md"}
    assert commit.files["index.html"] == export.html.encode("utf-8")
    assert load_result(commit.files["result.json"].decode()).to_dict() == result.to_dict()
    readme = commit.files["README.md"].decode()
    assert readme.startswith("---\ntags:\n- attribution-explorer")
    assert "synthetic-causal" in readme and "saliency" in readme
    assert all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in hub.requests)


def test_push_to_a_static_space_is_a_valid_static_space() -> None:
    graph = synthetic_graph("seq2seq")
    export = export_result(graph)
    with local_hub() as hub:
        url = push_export(export, graph, "alice/routes", repo_type="space", token=TOKEN, endpoint=hub.url)
    assert url == f"{hub.url}/spaces/alice/routes"
    assert hub.created[0]["type"] == "space" and hub.created[0]["sdk"] == "static"
    readme = hub.commits[0].files["README.md"].decode()
    front_matter = readme.split("---\n")[1]
    assert "sdk: static\n" in front_matter and "app_file: index.html\n" in front_matter
    assert hub.commits[0].repo_type == "spaces"


def test_token_from_environment_is_used_and_never_written_or_printed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    result = synthetic_attribution("seq2seq")
    result_path = tmp_path / "result.json"
    result.to_json(result_path)
    out = tmp_path / "fig.html"
    with local_hub() as hub:
        code = main(
            [
                "export",
                str(result_path),
                "--out",
                str(out),
                "--mode",
                "snippet",
                "--push",
                "alice/demo",
                "--endpoint",
                hub.url,
            ]
        )
    captured = capfd.readouterr()
    assert code == 0, captured.err
    assert f"pushed {hub.url}/datasets/alice/demo/blob/main/index.html" in captured.err
    assert hub.requests and all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in hub.requests)
    assert hub.commits[0].files["index.html"].startswith(b"<!DOCTYPE html>")  # a page, not the snippet
    written = [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) == 3  # result, snippet, iframe snippet
    pushed = list(hub.commits[0].files.values())
    assert all(TOKEN.encode() not in blob for blob in written + pushed)
    assert TOKEN not in captured.out + captured.err


@pytest.mark.parametrize(
    ("status", "fail_path", "expected"),
    [
        (401, "", "rejected the token (401"),
        (404, "", "repository alice/demo not found (404"),
        (500, "/api/repos/create", "server error (500)"),
        (500, "/commit/", "server error (500)"),
    ],
)
def test_http_errors_give_one_clear_line(status: int, fail_path: str, expected: str) -> None:
    result = synthetic_attribution("causal")
    export = export_result(result, mode="cdn")
    with local_hub() as hub:
        hub.fail_with, hub.fail_path = status, fail_path
        with pytest.raises(HubPushError) as error:
            push_export(export, result, "alice/demo", token=TOKEN, endpoint=hub.url)
    message = str(error.value)
    assert expected in message and "local files are kept" in message
    assert "\n" not in message and TOKEN not in message
    assert hub.commits == []


def test_network_down_timeout_no_token_and_offline_are_clear() -> None:
    result = synthetic_attribution("causal")
    export = export_result(result, mode="cdn")
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with pytest.raises(HubPushError, match=r"cannot reach http://127\.0\.0\.1:\d+ \(ConnectError\)"):
        push_export(export, result, "alice/demo", token=TOKEN, endpoint=closed)

    with local_hub() as hub:
        hub.fail_with, hub.fail_path, hub.delay_s = 500, "/api/repos/create", 3.0
        with pytest.raises(HubPushError, match=r"did not answer within 0\.5 s"):
            push_export(export, result, "alice/demo", token=TOKEN, endpoint=hub.url, timeout=0.5)

    with pytest.raises(HubPushError, match=r"no Hugging Face token: run `hf auth login` or set HF_TOKEN"):
        push_export(export, result, "alice/demo", endpoint="http://127.0.0.1:9")


def test_offline_mode_and_bad_arguments_are_refused_before_any_request(monkeypatch: pytest.MonkeyPatch) -> None:
    result = synthetic_attribution("causal")
    export = export_result(result, mode="cdn")
    with local_hub() as hub:
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
        with pytest.raises(HubPushError, match="HF_HUB_OFFLINE is set"):
            push_export(export, result, "alice/demo", token=TOKEN, endpoint=hub.url)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        with pytest.raises(HubPushError, match="not a Hub repo id"):
            push_export(export, result, "no-namespace", token=TOKEN, endpoint=hub.url)
        with pytest.raises(HubPushError, match="repo type must be one of dataset, space"):
            push_export(export, result, "alice/demo", repo_type="model", token=TOKEN, endpoint=hub.url)
        for mode in ("snippet", "snippet-inline", "iframe"):
            embed = export_result(result, mode=mode)
            with pytest.raises(HubPushError, match=f"a '{mode}' export is an embed, not a page"):
                push_export(embed, result, "alice/demo", token=TOKEN, endpoint=hub.url)
    assert hub.requests == []


def test_cli_push_failure_keeps_the_local_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    result_path = tmp_path / "graph.json"
    synthetic_graph("causal").to_json(result_path)
    out = tmp_path / "graph.html"
    with local_hub() as hub:
        hub.fail_with = 401
        code = main(
            [
                "export",
                str(result_path),
                "--out",
                str(out),
                "--mode",
                "cdn",
                "--push",
                "alice/demo",
                "--endpoint",
                hub.url,
            ]
        )
    stderr = capfd.readouterr().err
    assert code == 2
    assert stderr.strip().splitlines()[-1].startswith("error: the Hub rejected the token (401")
    assert "Traceback" not in stderr and TOKEN not in stderr
    assert out.is_file() and "contribution graph" in out.read_text(encoding="utf-8")


# ------------------------------------------------------------- a push lands or is abandoned, never half


def _push_threads() -> list[threading.Thread]:
    """Threads of this process other than the local Hub's request handlers."""
    return [t for t in threading.enumerate() if "process_request_thread" not in t.name]


def _wait_until_answered(hub: LocalHub, timeout_s: float = 30) -> None:
    """Wait until the local Hub has processed every request it received (delayed ones included)."""
    deadline = time.monotonic() + timeout_s
    while hub.handled < len(hub.requests):
        assert time.monotonic() < deadline, "the local hub did not finish its requests"
        time.sleep(0.05)


def test_a_timed_out_push_is_abandoned_for_real_and_leaves_no_thread() -> None:
    result = synthetic_attribution("causal")
    export = export_result(result, mode="cdn")
    with local_hub() as hub:
        threads_before = {t.ident for t in _push_threads()}
        hub.delay_s, hub.delay_path = 2.0, "/preupload/"  # the Hub goes silent once the repo exists
        for attempt in range(3):
            with pytest.raises(HubPushError) as error:
                push_export(export, result, f"alice/demo{attempt}", token=TOKEN, endpoint=hub.url, timeout=0.5)
            assert str(error.value) == (
                f"{hub.url} did not answer within 0.5 s (committing): the push was abandoned before anything was "
                f"committed; the local files are kept. The repository alice/demo{attempt} created for this push "
                "was deleted again."
            )
        assert {t.ident for t in _push_threads()} == threads_before  # nothing left running in the background
        _wait_until_answered(hub)  # the silent requests end...
        assert hub.commits == [] and hub.repos == set()  # ...and nothing landed afterwards
        assert not any("/commit/" in r.path for r in hub.requests)


def test_a_commit_sent_but_unanswered_is_reported_as_possibly_landing() -> None:
    result = synthetic_attribution("causal")
    export = export_result(result, mode="cdn")
    with local_hub() as hub:
        hub.repos.add(("datasets", "alice/existing"))
        hub.delay_s, hub.delay_path = 2.0, "/commit/"
        with pytest.raises(HubPushError) as error:
            push_export(export, result, "alice/existing", token=TOKEN, endpoint=hub.url, timeout=0.5)
        assert "(committing): the commit was sent but not confirmed, so it may still appear in alice/existing" in str(
            error.value
        )
        _wait_until_answered(hub)
        assert len(hub.commits) == 1  # it did land: the message said it might
        assert hub.deleted == []  # an existing repository is never deleted

        # On a repository the push created, the repository goes, so the late commit cannot land.
        with pytest.raises(HubPushError) as error:
            push_export(export, result, "alice/fresh", token=TOKEN, endpoint=hub.url, timeout=0.5)
        assert str(error.value).endswith(
            "the commit was sent but not confirmed; the local files are kept. The repository alice/fresh created "
            "for this push was deleted again."
        )
        _wait_until_answered(hub)
        assert len(hub.commits) == 1 and ("datasets", "alice/fresh") not in hub.repos


def test_a_500_at_commit_leaves_no_orphan_repository() -> None:
    result = synthetic_attribution("causal")
    export = export_result(result, mode="cdn")
    with local_hub() as hub:
        hub.fail_with, hub.fail_path = 500, "/commit/"
        with pytest.raises(HubPushError) as error:
            push_export(export, result, "alice/new-repo", token=TOKEN, endpoint=hub.url)
        assert str(error.value) == (
            "the Hub had a server error (500) (Internal Error); try again later; the local files are kept. "
            "The repository alice/new-repo created for this push was deleted again."
        )
        assert [c["name"] for c in hub.created] == ["new-repo"] and [d["name"] for d in hub.deleted] == ["new-repo"]
        assert hub.repos == set() and hub.commits == []

        hub.repos.add(("datasets", "alice/kept"))
        with pytest.raises(HubPushError, match=r"server error \(500\).*local files are kept$"):
            push_export(export, result, "alice/kept", token=TOKEN, endpoint=hub.url)
        assert hub.repos == {("datasets", "alice/kept")} and len(hub.created) == 1  # untouched, not re-created


def test_when_the_cleanup_fails_too_the_message_says_what_was_left() -> None:
    result = synthetic_attribution("causal")
    export = export_result(result, mode="cdn")
    with local_hub() as hub:
        hub.fail_with, hub.fail_path = 500, ("/commit/", "/api/repos/delete")
        with pytest.raises(HubPushError) as error:
            push_export(export, result, "alice/orphan", token=TOKEN, endpoint=hub.url)
        assert str(error.value).endswith(
            "An empty repository alice/orphan was created for this push and could not be deleted: "
            f"see {hub.url}/datasets/alice/orphan/settings."
        )
        assert hub.repos == {("datasets", "alice/orphan")}


def test_cli_validates_the_repo_id_before_writing_anything(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    result_path = tmp_path / "result.json"
    synthetic_attribution("causal").to_json(result_path)
    for case in REPO_ID_CASES:
        out = tmp_path / "page.html"
        with local_hub() as hub:
            code = main(["export", str(result_path), "--out", str(out), "--push", case.value, "--endpoint", hub.url])
        stderr = capfd.readouterr().err
        assert code == 2, case.name
        assert re.search(case.expect, stderr.strip()) and len(stderr.strip().splitlines()) == 1, stderr
        assert not out.exists() and hub.requests == []


# ----------------------------------------------------------------------- the token in what the user sees


def _token_pieces_in(message: str, token: str = TOKEN, size: int = MIN_TOKEN_PIECE) -> list[str]:
    """Every piece of ``token`` of ``size`` characters found in ``message``, in any letter case."""
    lowered = message.lower()
    return [token[i : i + size] for i in range(len(token) - size + 1) if token[i : i + size].lower() in lowered]


@pytest.mark.parametrize(
    "echo",
    [
        lambda token: token,
        str.lower,
        str.upper,
        lambda token: f"{token[:12]}...",
        lambda token: f"...{token[-10:]}",
        lambda token: f"{token[:17].lower()} / {token[17:]}",
    ],
    ids=["whole", "lower-cased", "upper-cased", "first 12 characters", "last 10 characters", "two halves"],
)
@pytest.mark.parametrize("status", [401, 500])
def test_a_server_echoing_the_token_in_any_case_or_in_pieces_leaks_none_of_it(
    echo, status: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    result = synthetic_attribution("causal")
    export = export_result(result, mode="cdn")
    with local_hub() as hub:
        hub.fail_with, hub.echo_token = status, echo
        with pytest.raises(HubPushError) as error:
            push_export(export, result, "alice/demo", token=TOKEN, endpoint=hub.url)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        result.to_json(tmp_path / "result.json")
        argv = ["export", str(tmp_path / "result.json"), "--out", str(tmp_path / "page.html"), "--mode", "cdn"]
        code = main([*argv, "--push", "alice/demo", "--endpoint", hub.url])
    assert _token_pieces_in(echo(TOKEN)), "the echo must hold pieces of the token long enough to matter"
    stderr = capfd.readouterr().err
    server_said = "Invalid credentials in Authorization header" if status == 401 else "Internal Error"
    for shown in (str(error.value), stderr):
        assert f"{server_said} for token " in shown and "***" in shown, shown  # the message, the token scrubbed
        assert _token_pieces_in(shown) == [], shown
    assert code == 2


def test_a_piece_of_the_token_shorter_than_the_minimum_is_left_in_the_message() -> None:
    """Scrubbing is by pieces of MIN_TOKEN_PIECE characters: one character fewer is ordinary text."""
    from exporters.hub import _scrub

    shorter, enough = TOKEN[3 : 3 + MIN_TOKEN_PIECE - 1], TOKEN[3 : 3 + MIN_TOKEN_PIECE]
    assert _scrub(f"saw {shorter}", TOKEN) == f"saw {shorter}"
    assert _scrub(f"saw {enough.swapcase()}!", TOKEN) == "saw ***!"
    assert _scrub("Invalid credentials in Authorization header", TOKEN) == "Invalid credentials in Authorization header"


@pytest.mark.parametrize(
    "token",
    [f"{TOKEN[:10]}\n{TOKEN[10:]}", f"{TOKEN}\r", f"{TOKEN[:10]} {TOKEN[10:]}", f"{TOKEN}\t", "hf_tökén0123456789"],
    ids=["inner newline", "trailing CR", "inner space", "trailing tab", "not ASCII"],
)
def test_a_malformed_token_is_named_before_any_request(token: str) -> None:
    result = synthetic_attribution("causal")
    export = export_result(result, mode="cdn")
    with local_hub() as hub, pytest.raises(HubPushError) as error:
        push_export(export, result, "alice/demo", token=token, endpoint=hub.url)
    message = str(error.value)
    assert message.startswith("the Hugging Face token is malformed (it holds a line break, a space or another"), message
    assert hub.requests == []  # nothing was sent
    assert _token_pieces_in(message, token) == []
