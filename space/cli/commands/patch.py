"""``attribution-explorer patch``: activation-patching maps (exact and attribution patching) → patching JSON."""

from __future__ import annotations

import argparse

from attribution.errors import InvalidInputError
from attribution.interventions.results import MAP_NAMES
from space.cli.common import add_model_arguments, load_model_from_args, positive_int, progress_bar, write_result

_EPILOG = """maps: head = [layer x head]; position = [layer x token] of the residual stream entering each block;
seq2seq models also get cross_head, encoder_head and encoder_position. Each cell is the "logit difference
recovered": (LD(patched) - LD(base)) / (LD(source) - LD(base)), LD = logit(target) - logit(contrast).

example:
  attribution-explorer patch --model tiny-ioi-gpt2 \\
      --text "When Mary and John went to the store, John gave a drink to" \\
      --counterfactual "When Mary and John went to the store, Mary gave a drink to" --out patching.json"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "patch",
        help="activation-patching sweeps, exact and attribution patching → patching JSON",
        description="Patch every head / position from a counterfactual input and map what restores the prediction.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_arguments(parser)
    parser.add_argument("--counterfactual", default=None, help="the counterfactual input (same number of tokens)")
    parser.add_argument("--counterfactual-target", default=None, help="seq2seq: the counterfactual's target")
    parser.add_argument("--token", type=int, default=-1, help="the position whose prediction is measured (-1 = last)")
    parser.add_argument("--target-token", default=None, help="default: the input's next / predicted token")
    parser.add_argument("--contrast-token", default=None, help="default: the counterfactual's predicted token")
    parser.add_argument(
        "--maps", nargs="+", choices=MAP_NAMES, default=None, help="which maps (default: all for the model)"
    )
    parser.add_argument(
        "--direction",
        choices=("denoise", "noise"),
        default="denoise",
        help="denoise: patch clean activations into the counterfactual run (default); noise: the reverse",
    )
    parser.add_argument("--no-exact", action="store_true", help="attribution patching only (3 passes, no sweep)")
    parser.add_argument("--no-approximate", action="store_true", help="exact patching only")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="patched runs per forward pass (64)")
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    if args.counterfactual is None and args.counterfactual_target is None:
        raise InvalidInputError("patch needs --counterfactual (and/or --counterfactual-target).")
    if args.no_exact and args.no_approximate:
        raise InvalidInputError("--no-exact and --no-approximate leave nothing to compute.")
    loaded = load_model_from_args(args)
    from attribution.interventions.sweeps import patching_sweep

    with progress_bar(f"patching on {args.model}", percent=True) as set_progress:
        result = patching_sweep(
            loaded,
            args.text,
            args.counterfactual,
            target=args.target,
            counterfactual_target=args.counterfactual_target,
            root_token=args.token,
            target_token=args.target_token,
            contrast_token=args.contrast_token,
            maps=args.maps,
            direction=args.direction,
            exact=not args.no_exact,
            approximate=not args.no_approximate,
            batch_size=args.batch_size,
            max_tokens=args.max_tokens,
            progress=set_progress,
        )
    write_result(result, args.out)
    from space.cli.summaries import patching_summary

    print(patching_summary(result))
    return 0
