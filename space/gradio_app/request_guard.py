"""What the app accepts before Gradio reads a request: bounded bodies, and file inputs naming this session's uploads.

Gradio reads a request body whole before any limit applies (eight 100 MB ``/attribute`` bodies took
the server from 2 GB to 4.6 GB), and it moves any ``FileData`` a request names into its cache: a
file another session uploaded, a URL (the server fetches it), or the upload folder itself, whose
path in Gradio's list of temporary files ends its cache clean-up loop for good
(``IsADirectoryError``). So an ASGI middleware on the FastAPI app Gradio builds
(:class:`RequestGuard`) answers, before Gradio sees the request:

- ``413`` with one line for a body over the limit: by its ``Content-Length``, unread, or, for a
  chunked body, once the bytes counted pass the limit (uploads have their own, larger limit);
- ``400`` with one line for a JSON body naming any file but one :class:`Uploads` received in the
  same session.

:class:`Uploads` moves each file Gradio receives (into a folder named by the hash of its content,
shared by everyone who uploads the same bytes) into a fresh folder of its own in a store bounded in
age and size (:class:`~space.gradio_app.export_store.ExportStore`), answers the upload with that path, and
binds the upload to the first session that names it. A request without a ``session_hash`` is a
session of its own (a raw API client reusing an upload sends one).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse

from space.gradio_app.export_store import ExportStore

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Gradio's upload route (``gradio.route_utils.API_PREFIX`` + ``/upload``).
UPLOAD_ROUTE = "/gradio_api/upload"
#: Bytes of multipart framing (boundaries, part headers) an upload body may add to its file.
MULTIPART_SLACK_BYTES = 64 * 1024
#: The answer to a file input that names anything but an upload of the same session.
FOREIGN_FILE = "A file input must name a file uploaded in this session: upload it again."


def _megabytes(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:.1f} MB"


@dataclass(frozen=True)
class RequestLimits:
    """The body limits of one app and its uploads (from the operator config)."""

    max_request_bytes: int  # any request but an upload
    max_upload_bytes: int  # one uploaded file (Gradio's ``max_file_size``)
    uploads: Uploads

    def body_limit(self, path: str) -> int:
        """The most bytes a request to ``path`` may send."""
        if path.rstrip("/") == UPLOAD_ROUTE:
            return self.max_upload_bytes + MULTIPART_SLACK_BYTES
        return self.max_request_bytes


class Uploads:
    """The files users uploaded to this app process, each in a folder of its own, bound to one session."""

    def __init__(self, store: ExportStore, tracked: set[str]) -> None:
        """``store`` bounds the files in age and size; ``tracked`` is Gradio's set of uploads that its cache
        clean-up deletes by age (``Blocks.upload_file_set``), kept naming the files where they are now."""
        self.store = store
        self._tracked = tracked
        self._owners: dict[str, str | None] = {}  # path → the session that named it first (None: not yet)
        self._lock = threading.Lock()

    @property
    def folder(self) -> Path:
        return self.store.folder

    def adopt(self, received: list[str]) -> list[str]:
        """Move the files Gradio just received into the store; return their new paths, in order."""
        paths = []
        for old in received:
            new = str(self.store.adopt(Path(old)))
            with contextlib.suppress(OSError):  # Gradio's folder for that content, empty unless reused meanwhile
                Path(old).parent.rmdir()
            self._tracked.discard(old)
            self._tracked.add(new)
            paths.append(new)
        live = {str(path) for path, _, _ in self.store.files()}
        with self._lock:
            for gone in set(self._owners) - live:  # pruned by age or size, or deleted once refused
                del self._owners[gone]
            self._owners.update(dict.fromkeys(paths))
        return paths

    def admit(self, path: str, session: str) -> bool:
        """Whether a request of ``session`` may name ``path``: an upload still here, named by no other session."""
        with self._lock:
            if path not in self._owners:
                return False
            if not os.path.isfile(path) or os.path.islink(path):
                del self._owners[path]
                return False
            owner = self._owners[path]
            if owner is None:
                self._owners[path] = session
            return self._owners[path] == session

    def refusal(self, body: Any) -> str | None:
        """The one-line refusal of a request ``body`` (parsed JSON) naming a file it may not, or None."""
        session = body.get("session_hash") if isinstance(body, dict) else None
        if not isinstance(session, str) or not session:
            session = f"request-{uuid.uuid4().hex}"  # a session of its own
        for path in file_paths(body):
            if not self.admit(path, session):
                return FOREIGN_FILE
        return None


def file_paths(body: Any) -> Iterator[Any]:
    """The ``path`` of every object in ``body`` that Gradio would take for a file (``gradio_client.utils.is_file_obj``:
    any object with a ``path`` string, with or without its ``meta``), walked without recursion."""
    stack = [body]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            if isinstance(value.get("path"), str):
                yield value["path"]
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)


class RequestGuard:
    """The ASGI middleware (see the module docstring); install it with ``Middleware(RequestGuard, limits=...)``."""

    def __init__(self, app: ASGIApp, *, limits: RequestLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        limit = self.limits.body_limit(scope["path"])
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _answer(scope, receive, send, 413, _too_large(limit))
            return
        is_upload = scope["path"].rstrip("/") == UPLOAD_ROUTE
        reads_json = not is_upload and _is_json(headers)
        if declared is not None and not reads_json:  # h11 holds the body to its Content-Length
            await self.app(scope, receive, self._adopting(send) if is_upload else send)
            return
        try:
            body = await _read_body(receive, limit)
        except _TooLarge:
            await _answer(scope, receive, send, 413, _too_large(limit))
            return
        except _Disconnected:
            return
        if reads_json and body:
            refusal = self.limits.uploads.refusal(await anyio.to_thread.run_sync(_parsed, body))
            if refusal:
                await _answer(scope, receive, send, 400, refusal)
                return
        await self.app(scope, _replay(body, receive), self._adopting(send) if is_upload else send)

    def _adopting(self, send: Send) -> Send:
        """``send`` for Gradio's upload route: its answer (the list of received paths) is held until complete,
        the files are moved into the upload store, and the answer names them there."""
        start: Message = {}
        chunks: list[bytes] = []

        async def adopting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = b"".join(chunks)
            if start["status"] == 200:
                body = await anyio.to_thread.run_sync(self._adopted, body)
            headers = MutableHeaders(raw=list(start["headers"]))
            headers["content-length"] = str(len(body))
            await send({**start, "headers": headers.raw})
            await send({"type": "http.response.body", "body": body})

        return adopting_send

    def _adopted(self, answer: bytes) -> bytes:
        """Gradio's upload answer (the JSON list of paths) naming the files where :class:`Uploads` moved them."""
        return json.dumps(self.limits.uploads.adopt(json.loads(answer))).encode()


class _TooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


def _too_large(limit: int) -> str:
    return f"The request body is larger than the {_megabytes(limit)} this app accepts."


def _is_json(headers: Headers) -> bool:
    """Whether FastAPI reads this body as JSON: no content type, ``application/json`` or ``application/*+json``."""
    media = headers.get("content-type", "").split(";")[0].strip().lower()
    return not media or media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _parsed(body: bytes) -> Any:
    """``body`` parsed as JSON, or None where it is not JSON Python reads (Gradio then refuses it its own way)."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


async def _read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body, counted as it arrives: :class:`_TooLarge` once past ``limit`` bytes."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` once, then what the client sends next (its disconnect)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed


async def _answer(scope: Scope, receive: Receive, send: Send, status: int, line: str) -> None:
    """Answer ``status`` with ``{"detail": line}`` (what Gradio's client shows) and close the connection."""
    response = JSONResponse({"detail": line}, status_code=status, headers={"connection": "close"})
    await response(scope, receive, send)
