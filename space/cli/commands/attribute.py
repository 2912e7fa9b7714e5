"""``attribution-explorer attribute``: feature attribution with Inseq → result JSON."""

from __future__ import annotations

import argparse

from space.cli.common import (
    add_language_arguments,
    add_model_arguments,
    languages_from_args,
    load_model_from_args,
    positive_int,
    progress_bar,
    write_result,
)


def _methods_help() -> str:
    """The methods that run here (on at least one architecture), and the step scores."""
    from attribution.capabilities import METHODS, STEP_SCORES, runnable_methods

    runnable = runnable_methods()
    width = max(map(len, runnable))
    methods = "\n".join(f"  {name:<{width}}  {METHODS[name].description}" for name in runnable)
    return (
        f"methods (--method; which run on which architecture: python -m attribution.capabilities):\n{methods}\n\n"
        f"step scores (--step-scores; contrast_* need --contrast-target):\n  {' '.join(STEP_SCORES)}"
    )


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    attribute = subparsers.add_parser(
        "attribute",
        help="feature attribution with Inseq → result JSON",
        description="Feature attribution with Inseq: which input tokens the model's output depends on.",
        epilog=_methods_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_arguments(attribute)
    add_language_arguments(attribute)
    attribute.add_argument("--method", default="saliency", help="Inseq attribution method (default: saliency)")
    attribute.add_argument(
        "--step-scores", nargs="*", default=["probability"], metavar="NAME", help="step scores (default: probability)"
    )
    attribute.add_argument("--contrast-target", default=None, help="contrastive alternative target text")
    attribute.add_argument(
        "--max-new-tokens", type=positive_int, default=20, help="tokens to generate when no --target"
    )
    attribute.set_defaults(handler=run)
    return attribute


def run(args: argparse.Namespace) -> int:
    from attribution.capabilities import check_method, check_request

    step_scores = check_request(args.method, args.step_scores, target=args.target, contrast_target=args.contrast_target)
    loaded = load_model_from_args(args)
    check_method(args.method, loaded.kind, loaded.model_type)  # before paying for the Inseq import
    from attribution.inseq_runner import attribute

    with progress_bar(f"{args.method} on {args.model}") as set_progress:
        result = attribute(
            loaded,
            args.text,
            method=args.method,
            target=args.target,
            step_scores=tuple(step_scores),
            contrast_target=args.contrast_target,
            max_new_tokens=args.max_new_tokens,
            max_tokens=args.max_tokens,
            progress=set_progress,
            languages=languages_from_args(args),
        )
    write_result(result, args.out)
    return 0
