"""Command line: ``attribution-explorer attribute | graph | export | serve``, beside the app it serves.

The CLI only wires arguments to library calls (like the Space does). A user mistake ends with one
clear line on stderr and exit status 2; results are written as JSON that ``export`` can draw later.

Start-up is part of the interface: ``--help`` and ``--version`` answer without importing torch,
Inseq, Gradio or Bokeh, and a command checks its arguments before it imports what it runs on. So this
module, and every module registering a command, imports only the standard library and light modules
(``attribution.errors``, ``attribution.capabilities``) at the top; heavy imports go inside the
functions that run the command.

Adding a command: a module ``space/commands/<name>.py`` with ``add_parser(subparsers)`` (see
:mod:`space.commands`) and one line in :func:`build_parser`. Shared pieces for commands that run a
model: :func:`add_model_arguments`, :func:`add_language_arguments`, :func:`load_model_from_args`,
:func:`progress_bar`, :func:`write_result`.
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
EXIT_INSTALL_ERROR = 3
#: Most logit-lens tokens / neurons kept per graph node (more makes the JSON huge and says nothing more).
MAX_TOP_K = 100


def positive_int(value: str) -> int:
    """argparse type: a whole number >= 1."""
    return _bounded_int(value, 1, None)


def top_k_int(value: str) -> int:
    """argparse type: 0 (no logit lens) to MAX_TOP_K."""
    return _bounded_int(value, 0, MAX_TOP_K)


def int_range(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """argparse type: a whole number from ``minimum`` to ``maximum`` (no upper bound when None)."""
    return lambda value: _bounded_int(value, minimum, maximum)


def _bounded_int(value: str, minimum: int, maximum: int | None) -> int:
    try:
        number = int(value)
    except ValueError:  # not a number, or more digits than Python converts (sys.get_int_max_str_digits())
        from attribution.validation import quoted

        raise argparse.ArgumentTypeError(f"expected a whole number, not {quoted(value)}") from None
    if number < minimum or (maximum is not None and number > maximum):
        bounds = f"at least {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise argparse.ArgumentTypeError(f"must be {bounds}, not {number}")
    return number


def build_parser() -> argparse.ArgumentParser:
    """The ``attribution-explorer`` parser: one ``add_parser``-style call per command, in help order.

    Command modules are imported here, not at the top, so that they may import this module's helpers.
    """
    from exporters.cli import add_export_parser
    from space.commands import corpus, intervene, patch, report

    parser = argparse.ArgumentParser(
        prog="attribution-explorer",
        description="Explain why a Hugging Face language model produced its output.",
        formatter_class=lambda prog: argparse.HelpFormatter(prog, max_help_position=32),
    )
    parser.add_argument("--version", action="store_true", help="print the version of attribution-explorer and exit")
    parser.add_argument(
        "--verbose", action="store_true", help="with --version: also Python, torch, transformers, inseq, gradio, bokeh"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_attribute_parser(subparsers)
    add_graph_parser(subparsers)
    intervene.add_parser(subparsers)
    patch.add_parser(subparsers)
    add_export_parser(subparsers)
    corpus.add_parser(subparsers)
    report.add_parser(subparsers)
    add_serve_parser(subparsers)
    return parser


# ----------------------------------------------------------------------------- shared by model commands


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Model, text and output options of every command that runs a model."""
    parser.add_argument(
        "--model", required=True, help="Hugging Face model id, local folder, or a bundled model name (tiny-ioi-gpt2)"
    )
    parser.add_argument("--revision", default=None, help="model revision (branch, tag or commit) on the Hub")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default: cpu)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--text", required=True, help="the prompt (causal LM) or the source sentence (seq2seq)")
    parser.add_argument("--target", default=None, help="target text to explain instead of generating one")
    parser.add_argument(
        "--max-tokens", type=positive_int, default=None, help="refuse inputs longer than this many tokens"
    )
    parser.add_argument("--out", required=True, type=Path, help="where to write the result JSON")


def _language_code(role: str) -> Callable[[str], str | None]:
    """argparse type: a language code (format only; the model's tokenizer decides which codes exist)."""
    from attribution.languages import check_code_text  # light: no torch

    def read(value: str) -> str | None:
        try:
            return check_code_text(value, role=role)
        except InvalidInputError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return read


def add_language_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--src-lang`` / ``--tgt-lang``: the languages of a multilingual translation model (NLLB, mBART-50)."""
    parser.add_argument(
        "--src-lang",
        type=_language_code("source language"),
        default=None,
        metavar="CODE",
        help="source language code of a multilingual translation model (NLLB: eng_Latn, mBART-50: en_XX)",
    )
    parser.add_argument(
        "--tgt-lang",
        type=_language_code("target language"),
        default=None,
        metavar="CODE",
        help="target language code: the target starts with it and generation translates into it (NLLB: deu_Latn)",
    )


@contextmanager
def progress_bar(description: str):
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


#: Text options of the model commands, by the role the library's messages name them with: a lone surrogate
#: (what invalid UTF-8 on a command line becomes) reads the same whether found here or by the library.
TEXT_OPTION_ROLES = {
    "text": "input text",
    "target": "target",
    "contrast_target": "contrast target",
    "counterfactual": "counterfactual",
    "counterfactual_target": "counterfactual's target",
    "reference": "reference",
    "target_token": "target token",
    "contrast_token": "contrast token",
    "revision": "model revision",
}


def check_text_options(args: argparse.Namespace) -> None:
    """Refuse a text option that is not valid Unicode, before any model is loaded (texts need no model for that)."""
    from attribution.validation import check_unicode

    for name, role in TEXT_OPTION_ROLES.items():
        value = getattr(args, name, None)
        for text in value if isinstance(value, list) else [value]:
            if text is not None:
                check_unicode(text, role)


def load_model_from_args(args: argparse.Namespace):
    """The :class:`attribution.models.LoadedModel` the model options name (imports torch and transformers).

    Commands call it once every other option is checked; it checks the text options first, so that
    nothing a command line can get wrong is found only after the model has loaded.
    """
    from attribution.models import load_model

    check_text_options(args)
    return load_model(args.model, device=args.device, dtype=args.dtype, revision=args.revision)


def write_result(result: Any, path: Path) -> None:
    """Save a result dataclass as JSON; an unwritable path is a user error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        result.to_json(path)
    except OSError as error:
        raise InvalidInputError(f"Cannot write {path}: {error.strerror or error}") from error
    print(f"wrote {path}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------- attribute


def _methods_help() -> str:
    from attribution.capabilities import METHODS, STEP_SCORES

    width = max(map(len, METHODS))
    methods = "\n".join(f"  {name:<{width}}  {spec.description}" for name, spec in METHODS.items())
    return (
        f"methods (--method; which run on which architecture: python -m attribution.capabilities):\n{methods}\n\n"
        f"step scores (--step-scores; contrast_* need --contrast-target):\n  {' '.join(STEP_SCORES)}"
    )


def add_attribute_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
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
    attribute.set_defaults(handler=run_attribute)
    return attribute


def run_attribute(args: argparse.Namespace) -> int:
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
            src_lang=args.src_lang,
            tgt_lang=args.tgt_lang,
        )
    write_result(result, args.out)
    return 0


# -------------------------------------------------------------------------------------------------- graph


def add_graph_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
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
    graph.set_defaults(handler=run_graph)
    return graph


def run_graph(args: argparse.Namespace) -> int:
    from space.inputs import parse_root_tokens

    if not 0.0 <= args.threshold < 1.0:
        raise InvalidInputError(f"--threshold must be in [0, 1), not {args.threshold}")
    root_tokens = parse_root_tokens(args.token)
    loaded = load_model_from_args(args)
    from attribution.contributions import build_contribution_graph

    with progress_bar(f"contribution graph on {args.model}") as set_progress:
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
            src_lang=args.src_lang,
            tgt_lang=args.tgt_lang,
        )
    write_result(graph, args.out)
    return 0


# -------------------------------------------------------------------------------------------------- serve


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 1 to 65535, not {value!r}")
    return port


def add_serve_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    serve = subparsers.add_parser(
        "serve",
        help="start the Gradio app (http://127.0.0.1:7860)",
        description="Start the Gradio app (what `python space/app.py` runs on Hugging Face Spaces).",
    )
    serve.add_argument("--host", default=None, help="address to listen on (default: $GRADIO_SERVER_NAME or 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=None, help="port (default: $GRADIO_SERVER_PORT or 7860)")
    serve.add_argument(
        "--config",
        type=Path,
        default=None,
        help="operator config JSON (default: $ATTRIBUTION_EXPLORER_SPACE_CONFIG or space/config.json)",
    )
    serve.set_defaults(handler=run_serve)
    return serve


def serve_address(args: argparse.Namespace) -> tuple[str, int]:
    """Host and port: the options, else ``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT`` (Spaces), else :7860."""
    import os

    host = args.host or os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1"
    try:
        port = args.port or _port(os.environ.get("GRADIO_SERVER_PORT") or "7860")
    except argparse.ArgumentTypeError as error:
        raise InvalidInputError(f"GRADIO_SERVER_PORT {error}") from None
    return host, port


def run_serve(args: argparse.Namespace) -> int:
    """Build the app from the config and serve it until interrupted (Gradio is imported only here)."""
    import logging

    host, port = serve_address(args)
    from space.config import SpaceConfig

    config = SpaceConfig.load(args.config)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from space.app import build_app, launch

    demo, _ = build_app(config)
    launch(demo, host=host, port=port)
    return 0


# --------------------------------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    from space.distribution import import_problem, version_report

    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.version:
            print(version_report(verbose=args.verbose))
            return 0
        if args.command is None:
            parser.print_help(sys.stderr)
            return EXIT_USER_ERROR
        handler: Callable[[argparse.Namespace], int] = args.handler
        return handler(args)
    except AttributionExplorerError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except ImportError as error:
        problem = import_problem(error)
        if problem is None:
            raise
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_INSTALL_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
