"""``attribution-explorer report``: draw a corpus run folder as one interactive HTML page (offline).

    attribution-explorer report runs/synth --out report.html [--push user/corpus-report]

Through the exporter registry (kind ``corpus``, :mod:`exporters.corpus_report`); ``--push`` commits
the page and the run folder (manifest, Parquet shards, result JSONs: what ``load_run`` reads) to the Hub
in one commit.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from space.cli.common import int_range, positive_int


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``report`` on the main CLI's sub-parsers."""
    report = subparsers.add_parser(
        "report",
        help="draw a corpus run folder as one interactive HTML report (offline)",
        description="AER and metric distributions per method, method agreement, a sortable table of the records "
        "(worst AER first) and each record's heatmap or route, in one self-contained page.",
    )
    report.add_argument("run_dir", type=Path, help="a folder written by `attribution-explorer corpus`")
    report.add_argument("--out", required=True, type=Path, help="where to write the HTML file")
    report.add_argument("--mode", choices=["standalone", "cdn"], default="standalone", help="BokehJS inlined or CDN")
    report.add_argument("--title", default=None, help="page title")
    report.add_argument(
        "--max-table-rows", type=positive_int, default=2000, help="records listed in the table (worst first)"
    )
    report.add_argument("--max-details", type=int_range(0), default=100, help="records whose heatmaps are embedded")
    report.add_argument(
        "--token-scores",
        metavar="PATH",
        type=Path,
        default=None,
        help="also write every token-level score as long-format Parquet (record, method, tokens, score)",
    )
    report.add_argument("--push", metavar="REPO", default=None, help="also commit the report and the Parquet shards")
    report.add_argument("--repo-type", choices=("dataset", "space"), default="dataset", help="Hub repo type")
    report.add_argument("--endpoint", default=None, help="Hub endpoint (default: HF_ENDPOINT or huggingface.co)")
    report.set_defaults(handler=run)
    return report


def run(args: argparse.Namespace) -> int:
    from attribution.corpus import load_run
    from exporters import export_result

    run = load_run(args.run_dir)
    options: dict[str, Any] = {"max_table_rows": args.max_table_rows, "max_details": args.max_details}
    if args.title:
        options["title"] = args.title
    export = export_result(run, mode=args.mode, **options)
    written = export.write(args.out)
    print(f"wrote {written}", file=sys.stderr)
    if args.token_scores:
        from attribution.corpus.token_scores import write_token_scores

        n_rows = write_token_scores(run, args.token_scores)
        print(f"wrote {n_rows} token scores to {args.token_scores}", file=sys.stderr)
    if args.push:
        from exporters.hub import push_export

        url = push_export(
            export, run, args.push, repo_type=args.repo_type, endpoint=args.endpoint, extra_files=run.folder_files()
        )
        print(f"pushed {url}", file=sys.stderr)
    return 0
