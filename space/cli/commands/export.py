"""``attribution-explorer export``: draw a saved result JSON as an HTML page, snippet or Hub commit."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``export`` sub-command on the main CLI's sub-parsers (its kinds: the figure registry's)."""
    from exporters.base import MODES
    from exporters.figures import file_export_kinds

    export = subparsers.add_parser("export", help="draw a result JSON as an HTML page / blog snippet (Bokeh)")
    export.add_argument(
        "result", type=Path, help="result JSON written by `attribute`, `graph`, `intervene`, `patch` or a comparison"
    )
    export.add_argument(
        "--kind", choices=file_export_kinds(), default=None, help="figure type (default: from the JSON's schema)"
    )
    export.add_argument(
        "--mode",
        choices=MODES,
        default="standalone",
        help="standalone: a page, BokehJS inlined, works offline; cdn: a page loading BokehJS from cdn.bokeh.org; "
        "snippet: paste into a post, BokehJS from the CDN once per page; snippet-inline: the same carrying BokehJS "
        "(offline); iframe: an <iframe srcdoc> of the standalone page that takes its content's height",
    )
    export.add_argument("--exporter", default="bokeh", help="exporter plugin name (default: bokeh)")
    export.add_argument("--title", default=None, help="page title (default: derived from the result)")
    export.add_argument("--out", type=Path, required=True, help="where to write the HTML file")
    export.add_argument(
        "--push",
        metavar="REPO",
        default=None,
        help="also commit index.html, result.json and README.md to this Hugging Face repo (user/name)",
    )
    export.add_argument("--repo-type", choices=("dataset", "space"), default="dataset", help="Hub repo type")
    export.add_argument("--endpoint", default=None, help="Hub endpoint (default: HF_ENDPOINT or huggingface.co)")
    export.set_defaults(handler=run)
    return export


def run(args: argparse.Namespace) -> int:
    from attribution.validation import check_unicode
    from exporters import export_result
    from exporters.base import load_any_result

    if args.push:  # before anything is written: a bad repo id must not leave a half-done export behind
        from exporters.hub import check_repo_id

        check_repo_id(args.push, args.repo_type)
    if args.title is not None:
        check_unicode(args.title, "--title")
    result = load_any_result(args.result)
    options = {"title": args.title} if args.title else {}
    export = export_result(result, kind=args.kind, mode=args.mode, exporter=args.exporter, **options)
    written = export.write(args.out)
    print(f"wrote {written}", file=sys.stderr)
    if export.iframe_html is not None:
        iframe_path = written.with_name(f"{written.stem}.iframe{written.suffix}")
        iframe_path.write_text(export.iframe_html, encoding="utf-8")
        print(f"wrote {iframe_path}", file=sys.stderr)
    if args.push:
        from exporters.base import PAGE_MODES
        from exporters.hub import push_export

        if export.mode not in PAGE_MODES:  # the Hub gets a page that works on its own
            export = export_result(result, kind=args.kind, mode="standalone", exporter=args.exporter, **options)
        url = push_export(export, result, args.push, repo_type=args.repo_type, endpoint=args.endpoint)
        print(f"pushed {url}", file=sys.stderr)
    return 0
