"""``attribution-explorer compare``: one input attributed by several methods and models → comparison JSON.

What the app's Compare tab makes (``attribution-explorer export`` draws it): every (model, method) pair explains
the same target (the typed one, else the first model's output, generated once before anything is attributed),
then their rank correlations and, with a gold word alignment, each one's alignment error rate.
"""

from __future__ import annotations

import argparse

from attribution.errors import InvalidInputError
from space.cli.common import (
    add_language_arguments,
    add_model_arguments,
    languages_from_args,
    load_model_from_args,
    positive_int,
    progress_bar,
    write_result,
)

_EPILOG = """example:
  attribution-explorer compare --model tiny-synth-translate \\
      --text "the tired friend greets this woman today" \\
      --method saliency --method attention --gold-alignment "0-0 1-2 2-1 3-6 4-3 5-4 6-5" --out compare.json"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "compare",
        help="several methods / models on one input, rank agreement and AER → comparison JSON",
        description="Attribute one input with several methods (and models of one kind) and compare them.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_arguments(parser, several=True)
    add_language_arguments(parser)
    parser.add_argument(
        "--method", action="append", required=True, metavar="NAME", help="an attribution method (repeat it)"
    )
    parser.add_argument("--gold-alignment", default=None, help="gold word alignment, Pharaoh format: 0-0 1-2 …")
    parser.add_argument("--max-new-tokens", type=positive_int, default=20, help="tokens to generate when no --target")
    parser.set_defaults(handler=run)
    return parser


def _check_options(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The (model, method) pairs, once the methods and the gold alignment's format are checked (no model yet)."""
    from attribution.capabilities import check_request
    from attribution.compare import parse_alignment

    models, methods = list(dict.fromkeys(args.model)), list(dict.fromkeys(args.method))
    for method in methods:
        check_request(method, (), target=args.target, contrast_target=None)
    if args.gold_alignment is not None:
        parse_alignment(args.gold_alignment)
    if len(models) * len(methods) < 2:
        raise InvalidInputError("compare needs at least two runs: give two --method, or two --model.")
    return [(model, method) for model in models for method in methods]


def run(args: argparse.Namespace) -> int:
    from attribution.capabilities import check_method
    from attribution.compare import check_alignment, check_same_kind, compare_runs
    from attribution.inseq_runner import generate_target

    runs = _check_options(args)
    loaded = {model: load_model_from_args(args, model) for model in dict.fromkeys(model for model, _ in runs)}
    check_same_kind({model: model_loaded.kind for model, model_loaded in loaded.items()})
    for model, method in runs:
        check_method(method, loaded[model].kind, loaded[model].model_type)
    languages = languages_from_args(args)
    first = loaded[runs[0][0]]
    target = args.target or generate_target(
        first, args.text, max_new_tokens=args.max_new_tokens, max_tokens=args.max_tokens, languages=languages
    )
    if args.gold_alignment is not None:
        check_alignment(args.gold_alignment, args.text, target, kind=first.kind)
    arguments = {"target": target, "step_scores": (), "max_new_tokens": args.max_new_tokens}
    labels = [f"{model} / {method}" if len(loaded) > 1 else method for model, method in runs]
    with progress_bar(f"comparing {len(runs)} runs", percent=True) as set_progress:
        comparison = compare_runs(
            [(loaded[model], {**arguments, "method": method}) for model, method in runs],
            args.text,
            labels,
            gold_alignment=args.gold_alignment,
            max_tokens=args.max_tokens,
            languages=languages,
            progress=set_progress,
        )
    write_result(comparison, args.out)
    from space.cli.summaries import comparison_summary

    print(comparison_summary(comparison))
    return 0
