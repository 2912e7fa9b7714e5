"""Debian's Chromium driven through Playwright's sync API, for browser tests.

Its fixtures ``browser`` and ``new_page`` are available to every test (``tests/conftest.py`` loads this module as a
plugin); one browser per module keeps the suite fast::

    @pytest.mark.browser
    def test_page(new_page):
        session = new_page("file:///tmp/fig.html")                       # nothing but file:// loads
        session = new_page("http://127.0.0.1:7860/", allowed_origin="http://127.0.0.1:7860")
        session.page.click(...)
        session.assert_clean()          # no console errors, no page errors, no blocked requests

Every request that is not ``file://`` (or the ``allowed_origin``) is aborted and recorded in
``blocked_requests``, which is how a test proves a page is self-contained. The ``browser`` fixture
skips only when Chromium or Playwright is missing (``tests/conftest.py`` turns that skip into a
failure when ``ATTRIBUTION_EXPLORER_REQUIRE_BROWSER=1``); a browser that fails to start is an error.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

#: Launch flags known to work for Debian's chromium in containers without a display or GPU.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

#: Scheme prefixes never routed through the network (inline documents and in-page objects).
_LOCAL_SCHEMES = ("data:", "blob:", "about:")

# Counts, over every <canvas> in the document and in open shadow roots (Bokeh 3 draws inside
# shadow DOM), the pixels that are neither transparent nor pure white.
COUNT_DRAWN_PIXELS_JS = """
() => {
  const canvases = [];
  const walk = (root) => {
    for (const el of root.querySelectorAll('*')) {
      if (el.tagName === 'CANVAS') canvases.push(el);
      if (el.shadowRoot) walk(el.shadowRoot);
    }
  };
  walk(document);
  let drawn = 0;
  for (const canvas of canvases) {
    if (!canvas.width || !canvas.height) continue;
    const ctx = canvas.getContext('2d');
    if (!ctx) continue;
    const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 0; i < data.length; i += 4) {
      const white = data[i] === 255 && data[i + 1] === 255 && data[i + 2] === 255;
      if (data[i + 3] !== 0 && !white) drawn += 1;
    }
  }
  return {canvases: canvases.length, drawn: drawn};
}
"""

# Text content of the document including open shadow roots (Bokeh widgets live in shadow DOM).
_DEEP_TEXT_JS = """
() => {
  const parts = [];
  const walk = (root) => {
    for (const node of root.childNodes) {
      if (node.nodeType === Node.TEXT_NODE) parts.push(node.textContent);
      else if (node.nodeType === Node.ELEMENT_NODE) {
        if (node.tagName === 'SCRIPT' || node.tagName === 'STYLE') continue;
        if (node.shadowRoot) walk(node.shadowRoot);
        walk(node);
      }
    }
  };
  walk(document.body || document);
  return parts.join(' ');
}
"""


def chromium_executable() -> str | None:
    """Path of Debian's ``chromium`` (Playwright cannot download its own browser here)."""
    return shutil.which("chromium")


def launch_chromium(playwright: Any) -> Any:
    """Start headless Chromium from a running ``sync_playwright()`` object."""
    return playwright.chromium.launch(executable_path=chromium_executable(), args=CHROMIUM_ARGS)


@dataclass
class PageSession:
    """A page plus what it reported: console errors, uncaught exceptions, and blocked requests."""

    page: Any
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    blocked_requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)  # alert/confirm/prompt messages (dismissed)

    def assert_clean(self) -> None:
        """Fail with everything collected: errors logged, requests outside the origin, dialogs opened."""
        problems = {
            "console errors": self.console_errors,
            "page errors": self.page_errors,
            "blocked requests": self.blocked_requests,
            "dialogs": self.dialogs,
        }
        found = {name: items for name, items in problems.items() if items}
        assert not found, f"page was not clean: {found}"

    def drawn_pixels(self) -> dict[str, int]:
        """``{"canvases": n, "drawn": pixels}`` over all canvases, shadow DOM included."""
        return self.page.evaluate(COUNT_DRAWN_PIXELS_JS)

    def deep_text(self) -> str:
        """Visible text of the page including widgets rendered inside shadow roots."""
        return self.page.evaluate(_DEEP_TEXT_JS)


def open_page(
    browser: Any,
    url: str | None = None,
    *,
    allowed_origin: str | None = None,
    viewport: tuple[int, int] = (1280, 900),
    wait_until: str = "load",
    color_scheme: str = "light",
) -> PageSession:
    """A fresh context and page whose only permitted requests are file:// and ``allowed_origin``.

    ``allowed_origin`` is e.g. ``"http://127.0.0.1:7860"``; leave it ``None`` for file:// pages.
    ``color_scheme`` (``"light"`` or ``"dark"``) is what ``prefers-color-scheme`` answers.
    The page navigates to ``url`` when given. Close it with ``session.page.context.close()`` (the
    ``new_page`` fixture does that for you).
    """
    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]}, color_scheme=color_scheme)
    page = context.new_page()
    session = PageSession(page=page)

    def allowed(request_url: str) -> bool:
        if request_url.startswith(("file://", *_LOCAL_SCHEMES)):
            return True
        return allowed_origin is not None and (
            request_url == allowed_origin or request_url.startswith(allowed_origin.rstrip("/") + "/")
        )

    def route(route: Any) -> None:
        if allowed(route.request.url):
            route.continue_()
        else:
            session.blocked_requests.append(route.request.url)
            route.abort()

    page.route("**/*", route)
    page.on("console", lambda message: message.type == "error" and session.console_errors.append(message.text))
    page.on("pageerror", lambda error: session.page_errors.append(str(error)))
    page.on("dialog", lambda dialog: (session.dialogs.append(dialog.message), dialog.dismiss()))
    if url is not None:
        page.goto(url, wait_until=wait_until)
    return session


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per test module; skips only if Chromium or Playwright is missing."""
    executable = chromium_executable()
    if executable is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright Python package is not installed (pip install playwright)")
    with sync_playwright() as playwright:
        launched = launch_chromium(playwright)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Callable[..., PageSession]]:
    """Factory ``new_page(url=None, *, allowed_origin=None, viewport=(w, h), color_scheme=…)`` → ``PageSession``."""
    sessions: list[PageSession] = []

    def factory(url: str | None = None, **options: Any) -> PageSession:
        session = open_page(browser, url, **options)
        sessions.append(session)
        return session

    yield factory
    for session in sessions:
        session.page.context.close()


# Drawn pixels and a checksum of every canvas under one element (Bokeh draws inside shadow roots).
CANVAS_SIGNATURE_JS = """
(root) => {
  const canvases = [];
  const walk = (node) => {
    for (const el of node.querySelectorAll('*')) {
      if (el.tagName === 'CANVAS') canvases.push(el);
      if (el.shadowRoot) walk(el.shadowRoot);
    }
  };
  walk(root);
  let drawn = 0, checksum = 0;
  for (const canvas of canvases) {
    if (!canvas.width || !canvas.height) continue;
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 0; i < data.length; i += 4) {
      if (data[i + 3] !== 0 && !(data[i] === 255 && data[i + 1] === 255 && data[i + 2] === 255)) drawn += 1;
      checksum = (checksum * 31 + data[i] + 7 * data[i + 1] + 13 * data[i + 2]) % 1000000007;
    }
  }
  return {drawn, checksum};
}
"""


def wait_for_drawing(page, selector: str, *, different_from: int | None = None, timeout_s: float = 60) -> dict:
    """Poll the canvases under ``selector`` until they are drawn (and differ from a previous checksum)."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        signature = page.locator(selector).evaluate(CANVAS_SIGNATURE_JS)
        if signature["drawn"] > 500 and signature["checksum"] != different_from:
            page.wait_for_timeout(500)  # let Bokeh finish the frame, then read it again
            settled = page.locator(selector).evaluate(CANVAS_SIGNATURE_JS)
            if settled == signature:
                return signature
        if time.monotonic() > deadline:
            raise AssertionError(f"{selector} was not (re)drawn in {timeout_s} s: {signature}")
        page.wait_for_timeout(250)


def fitted_frame(page: Any, selector: str, *, timeout_s: float = 60) -> tuple[Any, float, int]:
    """The iframe embed at ``selector`` once its host has sized it (``data-ae-ready``), and its page has drawn:
    ``(frame, the iframe's height, its page's height)``, polled until the two agree or ``timeout_s`` passes."""
    element = page.locator(selector)
    element.wait_for(timeout=timeout_s * 1000)
    page.wait_for_function(
        "(el) => el.hasAttribute('data-ae-ready')", arg=element.element_handle(), timeout=timeout_s * 1000
    )
    frame = element.element_handle().content_frame()
    frame.wait_for_function(
        "() => [...document.querySelectorAll('.ae-embed')].every((box) => box.dataset.aeState === 'drawn')",
        timeout=timeout_s * 1000,
    )
    deadline = time.monotonic() + timeout_s
    while True:
        content = frame.evaluate("() => Math.ceil(document.body.getBoundingClientRect().height)")
        height = element.evaluate("(el) => el.getBoundingClientRect().height")
        if abs(height - content) <= 1 or time.monotonic() > deadline:
            return frame, height, content
        page.wait_for_timeout(200)
