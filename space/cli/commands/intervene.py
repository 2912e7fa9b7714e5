"""``attribution-explorer intervene``: ablate or patch named components, or test a route's faithfulness.

Writes an ``intervention`` JSON (the prediction before and after) or, with ``--route``, a
``route-faithfulness`` JSON; ``attribution-explorer export`` draws either.
"""

from __future__ import annotations

import argparse

from attribution.contributions.roots import parse_root_tokens
from attribution.errors import InvalidInputError
from attribution.interventions.results import MODES
from space.cli.common import (
    add_language_arguments,
    add_model_arguments,
    languages_from_args,
    load_model_from_args,
    write_result,
)

_EPILOG = """component ids (the contribution graph's node ids, plus heads and neurons; '*' = every token):
  decoder:0:embedding:3        residual stream entering block 1 at token 3
  decoder:2:after_ffn:*        residual stream after block 2, every token
  decoder:2:attention:5        self-attention output of block 2 at token 5 (cross_attention for seq2seq)
  decoder:2:ffn:5              FFN output of block 2 at token 5
  decoder:2:head:1@4,5         head 1 of block 2 at query positions 4 and 5 (cross_head for seq2seq)
  decoder:2:neuron:113@5       FFN neuron 113 of block 2 at token 5
  decoder:2:sae:17@5           feature 17 of the SAE (--sae) read after block 2, at token 5
  decoder:1:after_ffn:2->decoder:2:after_attention:5#1   attention edge 2 -> 5 in block 2, head 1
  encoder:2:after_ffn:4->decoder:1:after_cross_attention:3   cross-attention edge (seq2seq)

examples:
  attribution-explorer intervene --model tiny-ioi-gpt2 \\
      --text "When Mary and John went to the store, John gave a drink to" \\
      --component decoder:4:head:1 --contrast-token John --out ablate.json
  attribution-explorer intervene --model tiny-ioi-gpt2 \\
      --text "When Mary and John went to the store, John gave a drink to" \\
      --mode patch --counterfactual "When Mary and John went to the store, Mary gave a drink to" \\
      --component decoder:0:embedding:9 --contrast-token John --out patch1.json
  attribution-explorer intervene --model tiny-ioi-gpt2 \\
      --text "When Mary and John went to the store, John gave a drink to" \\
      --route --contrast-token John --out route.json
  attribution-explorer intervene --model tiny-ioi-gpt2 --sae my-sae-folder \\
      --text "When Mary and John went to the store, John gave a drink to" \\
      --mode steer --strength 4 --component decoder:2:sae:17@1 --out steer.json"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "intervene",
        help="ablate / patch heads, edges, neurons… or test a route → intervention JSON",
        description="Change the model (zero or mean ablation, activation patching) and watch the prediction move.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_arguments(parser)
    add_language_arguments(parser)
    parser.add_argument("--component", action="append", default=[], metavar="ID", help="a component id (repeatable)")
    parser.add_argument(
        "--mode",
        choices=MODES,
        default="zero",
        help="zero / mean ablation, patching, or steering SAE features (default: zero)",
    )
    parser.add_argument(
        "--sae",
        action="append",
        default=[],
        metavar="FOLDER",
        help="an SAELens SAE folder (cfg.json + sae_weights.safetensors) for sae components (repeatable)",
    )
    parser.add_argument("--strength", type=float, default=None, help="--mode steer: how much of the direction to add")
    parser.add_argument("--counterfactual", default=None, help="patch from this input (same number of tokens)")
    parser.add_argument("--counterfactual-target", default=None, help="seq2seq: the counterfactual's target")
    parser.add_argument(
        "--reference", action="append", default=[], metavar="TEXT", help="mean ablation: a reference input (repeatable)"
    )
    parser.add_argument(
        "--mean-over",
        choices=("prompts", "positions"),
        default="prompts",
        help="mean over reference prompts per position, or over positions",
    )
    parser.add_argument("--token", default="-1", help="root position(s): an index (-1 = last), a comma list or 'all'")
    parser.add_argument(
        "--target-token", default=None, help="token whose probability is reported (default: the next / predicted one)"
    )
    parser.add_argument("--contrast-token", default=None, help="report logit(target) - logit(contrast)")
    parser.add_argument("--top-k", type=int, default=5, help="top tokens listed before and after (default: 5)")
    parser.add_argument("--route", action="store_true", help="test the contribution-graph route from --token instead")
    parser.add_argument("--threshold", type=float, default=0.04, help="--route: the graph threshold (0.04)")
    parser.add_argument("--seeds", type=int, default=5, help="--route: random edge sets to compare with (5)")
    parser.set_defaults(handler=run)
    return parser


def check_options(args: argparse.Namespace) -> None:
    """Every check of the options that needs no model, so that a mistake costs no model load."""
    from attribution.interventions.ablation import check_intervention
    from attribution.interventions.routes import check_seeds

    roots = parse_root_tokens(args.token)
    if args.route:
        if args.component:
            raise InvalidInputError("--route tests the graph's route; leave out --component.")
        if not isinstance(roots, int):
            raise InvalidInputError("--route tests one root token: give --token one index.")
        if not 0.0 <= args.threshold < 1.0:
            raise InvalidInputError(f"--threshold must be in [0, 1), not {args.threshold}")
        check_seeds(args.seeds)
    elif not args.component:
        raise InvalidInputError("Name what to change with --component (see --help), or test a route with --route.")
    else:
        check_intervention(
            args.component, mode=args.mode, mean_over=args.mean_over, top_k=args.top_k, strength=args.strength
        )
    if args.mode == "patch" and args.counterfactual is None and args.counterfactual_target is None:
        raise InvalidInputError("--mode patch needs --counterfactual (and/or --counterfactual-target).")


def run(args: argparse.Namespace) -> int:

    check_options(args)
    roots = parse_root_tokens(args.token)
    saes = []
    if args.sae:  # before the model: a wrong folder costs no model load
        from attribution.features.dictionary import load_sae_folder

        saes = [load_sae_folder(folder) for folder in args.sae]
    loaded = load_model_from_args(args)
    if args.route:
        from attribution.interventions.routes import route_faithfulness

        result = route_faithfulness(
            loaded,
            args.text,
            target=args.target,
            threshold=args.threshold,
            root_token=roots,
            target_token=args.target_token,
            contrast_token=args.contrast_token,
            seeds=args.seeds,
            max_tokens=args.max_tokens,
            languages=languages_from_args(args),
        )
    else:
        from attribution.interventions.ablation import intervene

        result = intervene(
            loaded,
            args.text,
            args.component,
            target=args.target,
            mode=args.mode,
            counterfactual=args.counterfactual,
            counterfactual_target=args.counterfactual_target,
            reference=args.reference or None,
            mean_over=args.mean_over,
            root_tokens=roots,
            target_token=args.target_token,
            contrast_token=args.contrast_token,
            top_k=args.top_k,
            max_tokens=args.max_tokens,
            languages=languages_from_args(args),
            saes=saes,
            strength=args.strength,
        )
    write_result(result, args.out)
    from space.cli.summaries import intervention_summary, route_summary

    print(route_summary(result) if args.route else intervention_summary(result))
    return 0
