"""Publish an export on the Hugging Face Hub: ``index.html``, ``result.json`` and a README, one commit.

The target is a dataset repo or a static Space (``sdk: static``, which serves ``index.html``). The
token comes from the argument or ``huggingface_hub``'s usual places (``HF_TOKEN``, the login file);
it is never written to a file, a log or an error message. Every failure is a :class:`HubPushError`
with one clear line; files already written locally are never touched.
"""

from __future__ import annotations

import html
import json
import threading
from collections.abc import Mapping
from typing import Any

from huggingface_hub import CommitOperationAdd, HfApi, constants, get_token
from huggingface_hub.errors import HfHubHTTPError, HFValidationError, OfflineModeIsEnabled
from huggingface_hub.utils import validate_repo_id

from attribution.errors import AttributionExplorerError
from attribution.results import ResultType
from exporters.base import Export
from exporters.page import provenance_record

REPO_TYPES = ("dataset", "space")
DEFAULT_TIMEOUT_S = 120.0
KEPT = "the local files are kept"


class HubPushError(AttributionExplorerError):
    """Pushing an export to the Hub failed; the message says why and what to do."""


def readme_for(export: Export, result: ResultType, repo_type: str) -> str:
    """The repo card: front matter (``sdk: static`` for a Space) and a short, escaped description."""
    record = provenance_record(result)
    entries = record.get("compared") or [record]
    front = ["---", "tags:", "- attribution-explorer", "- interpretability"]
    if repo_type == "space":
        title = export.title if len(export.title) <= 60 else export.title[:57] + "..."
        front += [f"title: {json.dumps(title, ensure_ascii=False)}", "sdk: static", "app_file: index.html"]
        front += ["emoji: 🔎", "colorFrom: blue", "colorTo: purple", "pinned: false"]
    front.append("---")
    models = ", ".join(sorted({f"`{html.escape(str(entry['model_id']))}`" for entry in entries}))
    methods = ", ".join(sorted({html.escape(str(entry["method"])) for entry in entries}))
    body = [
        f"# {html.escape(export.title)}",
        "",
        f"An interactive {html.escape(export.kind)} made with Attribution Explorer: open `index.html` in a browser.",
        "",
        f"- model: {models}",
        f"- method: {methods}",
        f"- computed: {html.escape(str(entries[0].get('created_at', 'unknown')))}",
        "- data: `result.json` (readable with `attribution.results.load_result`)",
        "",
    ]
    return "\n".join([*front, "", *body])


def _page_url(endpoint: str, repo_id: str, repo_type: str) -> str:
    if repo_type == "space":
        return f"{endpoint}/spaces/{repo_id}"
    return f"{endpoint}/datasets/{repo_id}/blob/main/index.html"


def _scrub(text: str, token: str) -> str:
    return text.replace(token, "***") if token else text


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

    ``timeout`` bounds the whole push: the Hub client itself waits forever on a silent server.
    ``extra_files`` (repo path → bytes) join the same commit, e.g. a corpus run's Parquet shards.
    """
    if repo_type not in REPO_TYPES:
        raise HubPushError(f"repo type must be one of {', '.join(REPO_TYPES)}, not {repo_type!r}")
    if export.mode == "snippet":
        raise HubPushError("a blog snippet is not a page: push a 'standalone' or 'cdn' export")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise HubPushError(f"{repo_id!r} is not a Hub repo id (expected user/name): {error}") from None
    if "/" not in repo_id:
        raise HubPushError(f"{repo_id!r} is not a Hub repo id: expected user/name")
    endpoint = (endpoint or constants.ENDPOINT).rstrip("/")
    token = token or get_token()
    if not token:
        raise HubPushError(f"no Hugging Face token: run `hf auth login` or set HF_TOKEN; {KEPT}")
    if constants.is_offline_mode():
        raise HubPushError(f"HF_HUB_OFFLINE is set, so nothing was pushed to {endpoint}; {KEPT}")

    api = HfApi(endpoint=endpoint, token=token)
    operations = [
        CommitOperationAdd("index.html", export.html.encode("utf-8")),
        CommitOperationAdd("result.json", result.to_json().encode("utf-8")),
        CommitOperationAdd("README.md", readme_for(export, result, repo_type).encode("utf-8")),
        *(CommitOperationAdd(path, data) for path, data in (extra_files or {}).items()),
    ]
    message = commit_message or f"Add {export.kind} export ({export.title})"
    outcome: dict[str, Any] = {}

    def push() -> None:
        try:
            api.create_repo(
                repo_id, repo_type=repo_type, exist_ok=True, space_sdk="static" if repo_type == "space" else None
            )
            api.create_commit(repo_id, operations=operations, commit_message=message, repo_type=repo_type)
        except BaseException as error:  # reported to the caller's thread below
            outcome["error"] = error

    # A daemon thread, so a server that never answers cannot keep the process alive past `timeout`.
    worker = threading.Thread(target=push, name="hub-push", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise HubPushError(f"{endpoint} did not answer within {timeout:g} s; the push may still finish later; {KEPT}")
    if "error" in outcome:
        raise HubPushError(_explain(outcome["error"], repo_id, endpoint, token)) from None
    return _page_url(endpoint, repo_id, repo_type)
