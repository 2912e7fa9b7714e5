"""Export benchmark: time and file size per figure and mode, and time until Chromium has drawn the page.

    python benchmarks/export.py [--repeats 3] [--no-browser]

Inputs are synthetic results shaped like the real ones (``tests/support/synthetic_results.py``), so no model is
needed: a 64 × 64 heatmap (seq2seq, 64 source tokens × 64 generated tokens, plus the 65 × 64
target→target panel) and a 128-token × 12-layer contribution graph (routes from the last token at
threshold 0.04, the CLI default; and from all 128 tokens). Draw time is measured in Debian's
Chromium with every network request blocked: from navigation start to the first moment all
Bokeh views are idle (rendered), median of ``--repeats`` loads. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from exporters import export_result
from tests.support.browser import CHROMIUM_ARGS  # the launch flags the browser tests use
from tests.support.synthetic_results import synthetic_attribution, synthetic_graph

MODES = ("standalone", "cdn", "snippet")


BASELINE = "baseline: one-point Bokeh figure"


def baseline_page() -> str:
    from bokeh.embed import file_html
    from bokeh.plotting import figure
    from bokeh.resources import INLINE

    plot = figure(width=300, height=300)
    plot.scatter([0], [0])
    return file_html(plot, INLINE, "baseline")


def cases() -> dict[str, object]:
    heatmap = synthetic_attribution("seq2seq", n_source=64, n_generated=64, seed=1)
    graph_last = synthetic_graph("causal", n_tokens=128, n_layers=12, n_heads=12, seed=1)
    graph_all = synthetic_graph("causal", n_tokens=128, n_layers=12, n_heads=12, seed=1, root_tokens=list(range(128)))
    return {
        "heatmap 64 × 64": heatmap,
        f"graph 128 × 12, 1 route ({len(graph_last.edges)} edges)": graph_last,
        f"graph 128 × 12, 128 routes ({len(graph_all.edges)} edges)": graph_all,
    }


def time_export(result: object, mode: str, repeats: int) -> tuple[float, int, str]:
    times, html = [], ""
    for _ in range(repeats):
        start = time.perf_counter()
        html = export_result(result, mode=mode).html
        times.append(time.perf_counter() - start)
    return statistics.median(times), len(html.encode("utf-8")), html


def draw_times(pages: dict[str, Path], repeats: int) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    results = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        for name, path in pages.items():
            samples = []
            for _ in range(repeats):
                context = browser.new_context(viewport={"width": 1600, "height": 1000})
                page = context.new_page()
                page.route(
                    "**/*", lambda route: route.continue_() if route.request.url.startswith("file:") else route.abort()
                )
                page.goto(path.as_uri())
                page.wait_for_function(
                    "() => window.Bokeh && Bokeh.documents.length > 0 && Bokeh.documents[0].is_idle",
                    polling="raf",
                    timeout=30_000,
                )
                samples.append(page.evaluate("() => performance.now()") / 1000)
                context.close()
            results[name] = statistics.median(samples)
        browser.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium draw-time measurement")
    args = parser.parse_args()

    rows, standalone_pages = [], {}
    folder = Path(tempfile.mkdtemp(prefix="export-bench-"))
    for name, result in cases().items():
        for mode in MODES:
            seconds, size, html = time_export(result, mode, args.repeats)
            rows.append((name, mode, seconds, size))
            if mode == "standalone":
                path = folder / f"{len(standalone_pages)}.html"
                path.write_text(html, encoding="utf-8")
                standalone_pages[name] = path
    # Floor for the draw time: BokehJS starting up and drawing a one-point figure, nothing of ours.
    standalone_pages[BASELINE] = folder / "baseline.html"
    standalone_pages[BASELINE].write_text(baseline_page(), encoding="utf-8")
    drawn = {} if args.no_browser else draw_times(standalone_pages, args.repeats)

    print("| figure | mode | export time | file size | drawn in Chromium |")
    print("|---|---|---:|---:|---:|")
    for name, mode, seconds, size in rows:
        draw = f"{drawn[name]:.2f} s" if mode == "standalone" and name in drawn else "—"
        print(f"| {name} | {mode} | {seconds:.2f} s | {size / 1e6:.2f} MB | {draw} |")
    if BASELINE in drawn:
        size = standalone_pages[BASELINE].stat().st_size
        print(f"| {BASELINE} | standalone | — | {size / 1e6:.2f} MB | {drawn[BASELINE]:.2f} s |")


if __name__ == "__main__":
    main()
