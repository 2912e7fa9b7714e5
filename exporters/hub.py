"""Publish an export on the Hugging Face Hub: ``index.html``, ``result.json`` and a README, one commit.

The target is a dataset repo or a static Space (``sdk: static``, which serves ``index.html``). The
token comes from the argument or ``huggingface_hub``'s usual places (``HF_TOKEN``, the login file);
it is never written to a file, a log or an error message. Every failure is a :class:`HubPushError`
with one clear line; files already written locally are never touched.

A push either lands or is abandoned, and the user is told which:

- It runs in the caller's thread (no background thread outlives it) under a deadline: every HTTP
  request ``huggingface_hub`` makes for it gets the time left as its timeout, and none starts once
  the deadline has passed (a request hook on ``huggingface_hub``'s own HTTP client, installed once,
  acting only for the thread that is pushing).
- A repository this push created is deleted again when the push fails, so a failed commit leaves
  no empty repository behind; if that deletion fails too, the message says exactly what was left.
- If the commit request itself was sent but not answered in time, on an existing repository, the
  message says the commit may still appear (the Hub may have received it).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from huggingface_hub import CommitOperationAdd, HfApi, constants, get_token
from huggingface_hub.errors import HfHubHTTPError, HFValidationError, OfflineModeIsEnabled
from huggingface_hub.utils import _http as hf_http
from huggingface_hub.utils import set_client_factory, validate_repo_id

from attribution.errors import AttributionExplorerError
from attribution.results import ResultType
from exporters.base import PAGE_MODES, Export
from exporters.page import provenance_record, shown
from exporters.tokens import page_text

REPO_TYPES = ("dataset", "space")
DEFAULT_TIMEOUT_S = 120.0
#: Extra time given to delete a repository this push created, once the push itself has failed.
CLEANUP_TIMEOUT_S = 15.0
KEPT = "the local files are kept"


class HubPushError(AttributionExplorerError):
    """Pushing an export to the Hub failed; the message says why and what to do."""


def readme_for(export: Export, result: ResultType, repo_type: str) -> str:
    """The repo card: front matter (``sdk: static`` for a Space) and a short description, its texts shown as
    on the page (:func:`exporters.page.shown`: marked and escaped)."""
    record = provenance_record(result)
    entries = record.get("compared") or [record]
    front = ["---", "tags:", "- attribution-explorer", "- interpretability"]
    if repo_type == "space":
        title = page_text(export.title)
        title = title if len(title) <= 60 else title[:57] + "..."
        front += [f"title: {json.dumps(title, ensure_ascii=False)}", "sdk: static", "app_file: index.html"]
        front += ["emoji: 🔎", "colorFrom: blue", "colorTo: purple", "pinned: false"]
    front.append("---")
    models = ", ".join(sorted({f"`{shown(entry['model_id'])}`" for entry in entries}))
    methods = ", ".join(sorted({shown(entry["method"]) for entry in entries}))
    body = [
        f"# {shown(export.title)}",
        "",
        f"An interactive {shown(export.kind)} made with Attribution Explorer: open `index.html` in a browser.",
        "",
        f"- model: {models}",
        f"- method: {methods}",
        f"- computed: {shown(entries[0].get('created_at', 'unknown'))}",
        _data_line(export),
        "",
    ]
    return "\n".join([*front, "", *body])


def _data_line(export: Export) -> str:
    """What the card says the data is and how to read it: a result file, or a whole corpus run folder."""
    if export.kind == "corpus":
        return (
            "- data: the corpus run folder (`run.json`, the Parquet rows in `shards/`, every result in `results/`; "
            "`result.json` is the run's manifest again), readable with "
            '`attribution.corpus.load_run(huggingface_hub.snapshot_download(REPO, repo_type="dataset"))`'
        )
    return "- data: `result.json` (readable with `attribution.results.load_result_file`)"


def _page_url(endpoint: str, repo_id: str, repo_type: str) -> str:
    if repo_type == "space":
        return f"{endpoint}/spaces/{repo_id}"
    return f"{endpoint}/datasets/{repo_id}/blob/main/index.html"


#: Pieces of the token at least this long are scrubbed from every message, in any letter case. A Hub token is
#: ``hf_`` and 34 random letters and digits (about 6 bits each, 200 in all): a shorter piece gives away at most
#: 7 characters (the public ``hf_`` among them), leaving far more than can ever be guessed, while pieces that
#: short of random text would start matching ordinary words of the server's message; echoes that matter leave
#: more (a token cut after a dozen characters, shown by its last ten, or lower-cased whole).
MIN_TOKEN_PIECE = 8


def _scrub(text: str, token: str) -> str:
    """``text`` with the token, and every piece of it of :data:`MIN_TOKEN_PIECE` or more characters, as ``***``.

    Matched in any letter case, so a server that lower-cases or cuts the token it echoes leaks nothing either.
    """
    if not token:
        return text
    size = min(len(token), MIN_TOKEN_PIECE)
    pieces = sorted({re.escape(token[i : i + size]) for i in range(len(token) - size + 1)})
    spans: list[list[int]] = []  # merged [start, end) of overlapping matches
    for match in re.finditer(f"(?=(?:{'|'.join(pieces)}))", text, re.IGNORECASE):
        start = match.start()
        if spans and start <= spans[-1][1]:
            spans[-1][1] = start + size
        else:
            spans.append([start, start + size])
    kept, last = [], 0
    for start, end in spans:
        kept += [text[last:start], "***"]
        last = end
    return "".join([*kept, text[last:]])


def check_token(token: str) -> str:
    """``token`` if it can be sent as one: printable ASCII without spaces (no line break, no CR from a copied file).

    Checked before any request, so a malformed token is said to be one, not reported as a network failure
    (the HTTP client refuses such a header before it is sent). The message never shows the token.
    """
    if not (token.isascii() and token.isprintable()) or " " in token:
        raise HubPushError(
            "the Hugging Face token is malformed (it holds a line break, a space or another character no token "
            f"has): log in again or set HF_TOKEN; {KEPT}"
        )
    return token


def _is_a(error: BaseException, class_name: str) -> bool:
    """Network errors by class name: huggingface_hub 1.x raises httpx's, 2.x httpx2's (same names)."""
    return any(cls.__name__ == class_name for cls in type(error).__mro__)


def _explain(error: BaseException, repo_id: str, endpoint: str, token: str) -> str:
    """One line for the user, whatever went wrong."""
    if isinstance(error, OfflineModeIsEnabled):
        return f"HF_HUB_OFFLINE is set, so nothing was pushed to {endpoint}; {KEPT}"
    if isinstance(error, HfHubHTTPError) and error.response is not None:
        status = error.response.status_code
        lines = str(getattr(error, "server_message", "") or "").strip().splitlines()
        server = _scrub(lines[0], token) if lines else ""
        detail = f" ({server})" if server else ""
        if status == 401:
            return f"the Hub rejected the token (401 Unauthorized){detail}: log in again or set HF_TOKEN; {KEPT}"
        if status == 403:
            return f"the token may not write to {repo_id} (403 Forbidden){detail}; {KEPT}"
        if status == 404:
            return f"repository {repo_id} not found (404){detail}: check the name and the repo type; {KEPT}"
        if status >= 500:
            return f"the Hub had a server error ({status}){detail}; try again later; {KEPT}"
        return f"the Hub refused the push ({status}){detail}; {KEPT}"
    if _is_a(error, "TimeoutException"):
        return f"{endpoint} did not answer in time; {KEPT}"
    if _is_a(error, "TransportError"):
        return f"cannot reach {endpoint} ({type(error).__name__}): check the network; {KEPT}"
    return f"push to {repo_id} failed: {_scrub(str(error), token)}; {KEPT}"


def check_repo_id(repo_id: str | None, repo_type: str = "dataset") -> str:
    """``repo_id`` if it is a valid ``user/name`` Hub repo id and ``repo_type`` a push target; else HubPushError.

    Cheap and local: call it before writing any file or sending any request.
    """
    if repo_type not in REPO_TYPES:
        raise HubPushError(f"repo type must be one of {', '.join(REPO_TYPES)}, not {repo_type!r}")
    repo_id = (repo_id or "").strip()
    shown = repr(repo_id) if len(repo_id) <= 100 else f"{repo_id[:100]!r}…"
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise HubPushError(
            f"{shown} is not a Hub repo id: expected user/name (letters, digits, '-', '_', '.'; at most 96 characters)"
        ) from None
    if "/" not in repo_id:
        raise HubPushError(f"{shown} is not a Hub repo id: expected user/name")
    return repo_id


class _DeadlinePassed(Exception):
    """Raised by the request hook once a push's time is up (not a network error: never retried)."""


@dataclass
class _PushState:
    """Where a push got to, for the message when it fails."""

    deadline: float
    step: str = "checking the repository"
    created: bool = False
    commit_sent: bool = False


_pushes = threading.local()
_hook_lock = threading.Lock()
_hook_installed = False


def _deadline_hook(request: Any) -> None:
    """httpx request hook: give this thread's push request the time left, or refuse to start it."""
    state: _PushState | None = getattr(_pushes, "state", None)
    if state is None:
        return
    remaining = state.deadline - time.monotonic()
    if remaining <= 0:
        raise _DeadlinePassed()
    request.extensions = {
        **request.extensions,
        "timeout": {"connect": remaining, "read": remaining, "write": remaining, "pool": remaining},
    }
    if "/commit/" in request.url.path:
        state.commit_sent = True


def install_deadline_hook() -> None:
    """Add the push deadline hook to every client ``huggingface_hub`` makes (its client has no timeout at all).

    Done once per process, at the first push or earlier (the Space calls it at start-up): it replaces
    ``huggingface_hub``'s client factory with one wrapping the current factory, which closes the
    shared client, so it is best done before other threads use the Hub.
    """
    global _hook_installed
    with _hook_lock:
        if _hook_installed:
            return
        previous = getattr(hf_http, "_GLOBAL_CLIENT_FACTORY", hf_http.default_client_factory)

        def client_with_deadlines() -> Any:
            client = previous()
            hooks = client.event_hooks
            client.event_hooks = {**hooks, "request": [*hooks.get("request", []), _deadline_hook]}
            return client

        set_client_factory(client_with_deadlines)  # closes the current client; the next request makes a new one
        _hook_installed = True


@contextmanager
def _pushing(state: _PushState) -> Iterator[_PushState]:
    install_deadline_hook()
    _pushes.state = state
    try:
        yield state
    finally:
        _pushes.state = None


def _timed_out(error: BaseException) -> bool:
    return isinstance(error, _DeadlinePassed) or _is_a(error, "TimeoutException")


def _failure(error: BaseException, state: _PushState, repo_id: str, endpoint: str, token: str, timeout: float) -> str:
    if not _timed_out(error):
        return _explain(error, repo_id, endpoint, token)
    said = f"{endpoint} did not answer within {timeout:g} s ({state.step})"
    if state.commit_sent:
        if state.created:  # the repository goes, with whatever the commit may have put there
            return f"{said}: the commit was sent but not confirmed; {KEPT}"
        return f"{said}: the commit was sent but not confirmed, so it may still appear in {repo_id}; {KEPT}"
    if state.step == "creating the repository":
        return (
            f"{said}: the push was abandoned before anything was committed, but the Hub may still create the "
            f"empty repository {repo_id}; {KEPT}"
        )
    return f"{said}: the push was abandoned before anything was committed; {KEPT}"


def _remove_created_repo(api: HfApi, repo_id: str, repo_type: str, endpoint: str, timeout: float) -> str:
    """Delete the repository a failed push created; say what happened (appended to the error message)."""
    state = _PushState(deadline=time.monotonic() + min(timeout, CLEANUP_TIMEOUT_S), step="deleting the repository")
    try:
        with _pushing(state):
            api.delete_repo(repo_id, repo_type=repo_type, missing_ok=True)
    except Exception:
        settings = f"{endpoint}/{'spaces' if repo_type == 'space' else 'datasets'}/{repo_id}/settings"
        return f" An empty repository {repo_id} was created for this push and could not be deleted: see {settings}."
    return f" The repository {repo_id} created for this push was deleted again."


def push_export(
    export: Export,
    result: ResultType,
    repo_id: str,
    *,
    repo_type: str = "dataset",
    token: str | None = None,
    endpoint: str | None = None,
    commit_message: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    extra_files: Mapping[str, bytes] | None = None,
) -> str:
    """Commit the page, the result JSON and a README to ``repo_id`` (created if missing); return the page URL.

    ``timeout`` bounds the whole push (``huggingface_hub``'s client would wait forever on a silent
    server). On failure nothing this push created is left behind, or the message says what was.
    ``extra_files`` (repo path → bytes) join the same commit, e.g. a corpus run's Parquet shards.
    """
    repo_id = check_repo_id(repo_id, repo_type)
    if export.mode not in PAGE_MODES:
        raise HubPushError(f"a {export.mode!r} export is an embed, not a page: push a 'standalone' or 'cdn' export")
    endpoint = (endpoint or constants.ENDPOINT).rstrip("/")
    token = token or get_token()
    if not token:
        raise HubPushError(f"no Hugging Face token: run `hf auth login` or set HF_TOKEN; {KEPT}")
    check_token(token)
    if constants.is_offline_mode():
        raise HubPushError(f"HF_HUB_OFFLINE is set, so nothing was pushed to {endpoint}; {KEPT}")

    api = HfApi(endpoint=endpoint, token=token)
    operations = [
        CommitOperationAdd("index.html", export.html.encode("utf-8")),
        CommitOperationAdd("result.json", result.to_json().encode("utf-8")),
        CommitOperationAdd("README.md", readme_for(export, result, repo_type).encode("utf-8")),
        *(CommitOperationAdd(path, data) for path, data in (extra_files or {}).items()),
    ]
    message = commit_message or f"Add {export.kind} export ({page_text(export.title)})"
    state = _PushState(deadline=time.monotonic() + timeout)
    try:
        with _pushing(state):
            if not api.repo_exists(repo_id, repo_type=repo_type):
                state.step = "creating the repository"
                api.create_repo(
                    repo_id, repo_type=repo_type, exist_ok=True, space_sdk="static" if repo_type == "space" else None
                )
                state.created = True
            state.step = "committing"
            api.create_commit(repo_id, operations=operations, commit_message=message, repo_type=repo_type)
    except Exception as error:
        said = _failure(error, state, repo_id, endpoint, token, timeout)
        if state.created:
            said += "." + _remove_created_repo(api, repo_id, repo_type, endpoint, timeout)
        raise HubPushError(said) from None
    return _page_url(endpoint, repo_id, repo_type)
