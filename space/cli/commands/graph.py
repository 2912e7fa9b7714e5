"""``attribution-explorer graph``: information-flow contribution graph → graph JSON."""

from __future__ import annotations

import argparse

from attribution.errors import InvalidInputError
from space.cli.common import (
    MAX_TOP_K,
    add_language_arguments,
    add_model_arguments,
    languages_from_args,
    load_model_from_args,
    progress_bar,
    top_k_int,
    write_result,
)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    graph = subparsers.add_parser(
        "graph",
        help="information-flow contribution graph → graph JSON",
        description="Information-flow routes (Ferrando & Voita 2024): which tokens and blocks a prediction used.",
    )
    add_model_arguments(graph)
    add_language_arguments(graph)
    graph.add_argument("--threshold", type=float, default=0.04, help="keep edges at least this strong (0.04)")
    graph.add_argument(
        "--token", default="-1", help="root token(s) of the routes: an index (-1 = last), a comma list, or 'all'"
    )
    graph.add_argument("--renormalize", action="store_true", help="renormalise kept edges after thresholding")
    graph.add_argument("--top-k", type=top_k_int, default=5, help=f"logit-lens tokens kept per node (0 to {MAX_TOP_K})")
    graph.set_defaults(handler=run)
    return graph


def run(args: argparse.Namespace) -> int:
    from attribution.contributions.roots import parse_root_tokens

    if not 0.0 <= args.threshold < 1.0:
        raise InvalidInputError(f"--threshold must be in [0, 1), not {args.threshold}")
    root_tokens = parse_root_tokens(args.token)
    loaded = load_model_from_args(args)
    from attribution.contributions import build_contribution_graph

    with progress_bar(f"contribution graph on {args.model}", percent=True) as set_progress:
        graph = build_contribution_graph(
            loaded,
            args.text,
            target=args.target,
            threshold=args.threshold,
            root_tokens=root_tokens,
            renormalize=args.renormalize,
            top_k=args.top_k,
            max_tokens=args.max_tokens,
            progress=set_progress,
            languages=languages_from_args(args),
        )
    write_result(graph, args.out)
    return 0
