"""The pictures of the README's tour: the app on the bundled tiny models, and an exported figure.

    python docs/screenshots.py [--out docs/images]

Serves the app on 127.0.0.1 the way the tests do (``tests/support/app_server.py``: its own process, offline, the
bundled models), drives Debian's Chromium through Playwright as the browser tests do (``tests/support/browser.py``:
nothing but 127.0.0.1 and ``file://`` loads), clicks one example per tab and saves what the tab shows; then
exports the contribution graph of the same prompt as a standalone page and saves it opened from ``file://``.
Each picture is reduced to 256 colours, so it stays small in the repository. Rerun it when the app's look
changes, and look at every picture before committing it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.app_server import serve_app
from tests.support.browser import PageSession, launch_chromium, open_page

CONFIG = {
    "models": ["tiny-ioi-gpt2", "tiny-synth-translate"],
    "default_model": "tiny-ioi-gpt2",
    "cache_examples": "off",
}
VIEWPORT = (1280, 900)
#: (file name, tab, the example table to click, the figure to wait for, the last element in the picture).
TABS = (
    ("app-attribute.png", "Attribute", "#attribute-examples", "#attribute-plot", "#attribute-steps"),
    ("app-graph.png", "Contribution graph", "#graph-examples", "#graph-plot", "#graph-plot"),
    ("app-compare.png", "Compare", "#compare-examples", "#compare-plot", "#compare-faithfulness"),
)
#: The exported page's picture: its header and the figure, without the empty page below.
EXPORT_HEIGHT = 720
IOI_PROMPT = "When Mary and John went to the store, John gave a drink to"


def wait_until_drawn(session: PageSession, selector: str, timeout_s: float = 120) -> None:
    """Wait until the figure under ``selector`` has drawn pixels and they stop changing (Bokeh has settled)."""
    page = session.page
    page.locator(selector).scroll_into_view_if_needed()
    deadline, previous = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        drawn = session.drawn_pixels()["drawn"]
        if drawn > 500 and drawn == previous:
            return
        previous = drawn
        page.wait_for_timeout(700)
    raise RuntimeError(f"{selector} was not drawn in {timeout_s} s")


def save_small(page_png: bytes, path: Path) -> None:
    """Write the screenshot with a 256-colour palette (a fraction of the full-colour file's size)."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(page_png)).convert("RGB")
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def app_pictures(browser, url: str, out: Path) -> None:
    for name, tab, examples, figure, last in TABS:
        session = open_page(browser, url, allowed_origin=url, viewport=VIEWPORT)
        page = session.page
        page.wait_for_selector("#attribute-text textarea", timeout=120_000)
        page.get_by_role("tab", name=tab).click()
        page.locator(f"{examples} tbody tr").first.click()  # fills the inputs and runs
        wait_until_drawn(session, figure)
        if figure == "#compare-plot":  # the faithfulness columns come after the figure
            page.wait_for_function(
                "(s) => document.querySelectorAll(`${s} [role=row].virtual-row`).length >= 2", arg=last, timeout=120_000
            )
        page.evaluate("window.scrollTo(0, 0)")
        box = page.locator(last).bounding_box()
        clip = {"x": 0, "y": 0, "width": VIEWPORT[0], "height": box["y"] + box["height"] + 16}
        save_small(page.screenshot(full_page=True, clip=clip), out / name)
        session.assert_clean()
        page.context.close()


def exported_graph_picture(browser, folder: Path, out: Path) -> None:
    from attribution.contributions import build_contribution_graph
    from attribution.models import load_model
    from exporters import export_result

    graph = build_contribution_graph(load_model("tiny-ioi-gpt2"), IOI_PROMPT, threshold=0.04)
    page_path = folder / "graph.html"
    export_result(graph, mode="standalone").write(page_path)
    session = open_page(browser, page_path.as_uri(), viewport=VIEWPORT)
    wait_until_drawn(session, "body")
    clip = {"x": 0, "y": 0, "width": VIEWPORT[0], "height": EXPORT_HEIGHT}
    save_small(session.page.screenshot(clip=clip), out / "export-graph.png")
    session.assert_clean()
    session.page.context.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "images", help="folder of the PNGs")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as scratch, sync_playwright() as playwright:
        folder = Path(scratch)
        browser = launch_chromium(playwright)
        try:
            with serve_app(CONFIG, folder / "app", timeout_s=300) as app:
                app_pictures(browser, app.url, args.out)
            exported_graph_picture(browser, folder, args.out)
        finally:
            browser.close()
    for picture in sorted(args.out.glob("*.png")):
        print(f"{picture}: {picture.stat().st_size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
