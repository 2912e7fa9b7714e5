"""Command line: ``attribution-explorer attribute | graph | export | serve``, beside the app it serves.

The CLI only wires arguments to library calls (like the Space does). A user mistake ends with one
clear line on stderr and exit status 2; results are written as JSON that ``export`` can draw later.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from attribution.errors import AttributionExplorerError, InvalidInputError

EXIT_USER_ERROR = 2


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", required=True, help="Hugging Face model id, local folder, or a bundled model name (tiny-ioi-gpt2)"
    )
    parser.add_argument("--revision", default=None, help="model revision (branch, tag or commit) on the Hub")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default: cpu)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--text", required=True, help="the prompt (causal LM) or the source sentence (seq2seq)")
    parser.add_argument("--target", default=None, help="target text to explain instead of generating one")
    parser.add_argument("--max-tokens", type=int, default=None, help="refuse inputs longer than this many tokens")
    parser.add_argument("--out", required=True, type=Path, help="where to write the result JSON")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="attribution-explorer",
        description="Explain why a Hugging Face language model produced its output.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    attribute = subparsers.add_parser("attribute", help="feature attribution with Inseq → result JSON")
    _add_model_arguments(attribute)
    attribute.add_argument("--method", default="saliency", help="Inseq attribution method (default: saliency)")
    attribute.add_argument(
        "--step-scores", nargs="*", default=["probability"], metavar="NAME", help="step scores (default: probability)"
    )
    attribute.add_argument("--contrast-target", default=None, help="contrastive alternative target text")
    attribute.add_argument("--max-new-tokens", type=int, default=20, help="tokens to generate when no --target")
    attribute.set_defaults(handler=run_attribute)

    graph = subparsers.add_parser("graph", help="information-flow contribution graph → graph JSON")
    _add_model_arguments(graph)
    graph.add_argument("--threshold", type=float, default=0.04, help="keep edges at least this strong (0.04)")
    graph.add_argument(
        "--token", default="-1", help="root token(s) of the routes: an index (-1 = last), a comma list, or 'all'"
    )
    graph.add_argument("--renormalize", action="store_true", help="renormalise kept edges after thresholding")
    graph.add_argument("--top-k", type=int, default=5, help="logit-lens tokens kept per node")
    graph.set_defaults(handler=run_graph)

    from exporters.cli import add_export_parser

    add_export_parser(subparsers)
    from space.cli_corpus import add_parsers as add_corpus_parsers

    add_corpus_parsers(subparsers)

    serve = subparsers.add_parser("serve", help="start the Gradio app (http://127.0.0.1:7860)", add_help=False)
    serve.add_argument("app_args", nargs=argparse.REMAINDER, help="options of the app (--host, --port, --config)")
    serve.set_defaults(handler=run_serve)
    return parser


@contextmanager
def _progress_bar(description: str):
    """A tqdm bar on stderr; yields ``set_progress(done, total, message="")`` for library callbacks."""
    from tqdm.auto import tqdm

    bar = tqdm(total=1, desc=description, file=sys.stderr, dynamic_ncols=True)

    def set_progress(done: int, total: int, message: str = "") -> None:
        bar.total = total
        bar.n = done
        if message:
            bar.set_postfix_str(message, refresh=False)
        bar.refresh()

    try:
        yield set_progress
    finally:
        bar.close()


def _load(args: argparse.Namespace):
    from attribution.models import load_model

    return load_model(args.model, device=args.device, dtype=args.dtype, revision=args.revision)


def _write(result: Any, path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        result.to_json(path)
    except OSError as error:
        raise InvalidInputError(f"Cannot write {path}: {error.strerror or error}") from error
    print(f"wrote {path}", file=sys.stderr)


def run_attribute(args: argparse.Namespace) -> int:
    from attribution.inseq_runner import attribute

    loaded = _load(args)
    with _progress_bar(f"{args.method} on {args.model}") as set_progress:
        result = attribute(
            loaded,
            args.text,
            method=args.method,
            target=args.target,
            step_scores=tuple(args.step_scores),
            contrast_target=args.contrast_target,
            max_new_tokens=args.max_new_tokens,
            max_tokens=args.max_tokens,
            progress=set_progress,
        )
    _write(result, args.out)
    return 0


def parse_root_tokens(value: str) -> int | list[int] | str:
    """``-1`` → -1, ``0,3,-1`` → [0, 3, -1], ``all`` → "all"; anything else is a clear error."""
    value = value.strip()
    if value == "all":
        return "all"
    try:
        indices = [int(part) for part in value.split(",")]
    except ValueError as error:
        raise InvalidInputError(f"--token must be an index, a comma list of indices or 'all', not {value!r}") from error
    return indices[0] if len(indices) == 1 else indices


def run_graph(args: argparse.Namespace) -> int:
    from attribution.contributions import build_contribution_graph

    if not 0.0 <= args.threshold < 1.0:
        raise InvalidInputError(f"--threshold must be in [0, 1), not {args.threshold}")
    root_tokens = parse_root_tokens(args.token)
    loaded = _load(args)
    with _progress_bar(f"contribution graph on {args.model}") as set_progress:
        graph = build_contribution_graph(
            loaded,
            args.text,
            target=args.target,
            threshold=args.threshold,
            root_tokens=root_tokens,
            renormalize=args.renormalize,
            top_k=args.top_k,
            max_tokens=args.max_tokens,
            progress=lambda fraction, message: set_progress(round(100 * fraction), 100, message),
        )
    _write(graph, args.out)
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from space.app import main as serve_main

    serve_main(args.app_args)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except AttributionExplorerError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
