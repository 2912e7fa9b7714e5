"""``attribution-explorer serve`` (and ``python space/app.py``): serve the app on an address, with a config.

The app's one command, declared in the entry-point group ``attribution_explorer.commands``
(``pyproject.toml``): the command line finds it there and never imports the app itself. Light at import
(no Gradio): ``--help`` and a bad ``--port`` answer before Gradio is imported, which happens in :func:`run`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from attribution.errors import InvalidInputError
from space.command import run_guarded


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 1 to 65535, not {value!r}")
    return port


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
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
    serve.add_argument(
        "--profile",
        default=None,
        help="hardware profile of the config (cpu-basic, zero-gpu, gpu; default: $ATTRIBUTION_EXPLORER_PROFILE or "
        "the config's own)",
    )
    serve.set_defaults(handler=run)
    return serve


def serve_address(args: argparse.Namespace) -> tuple[str, int]:
    """Host and port: the options, else ``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT`` (Spaces), else :7860."""
    host = args.host or os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1"
    try:
        port = args.port or _port(os.environ.get("GRADIO_SERVER_PORT") or "7860")
    except argparse.ArgumentTypeError as error:
        raise InvalidInputError(f"GRADIO_SERVER_PORT {error}") from None
    return host, port


def run(args: argparse.Namespace) -> int:
    """Build the app from the config and serve it until interrupted (Gradio is imported only here)."""
    import logging

    host, port = serve_address(args)
    from space.gradio_app.config import SpaceConfig

    config = SpaceConfig.load(args.config, profile=args.profile)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from space.gradio_app.build import build_app, launch

    demo, _ = build_app(config)
    launch(demo, host=host, port=port)
    return 0


def main(argv: Sequence[str]) -> int:
    """``serve`` with ``argv`` as its options, parsed and answered as ``attribution-explorer serve`` would."""
    parser = argparse.ArgumentParser(prog="attribution-explorer")
    add_parser(parser.add_subparsers(dest="command"))

    def command() -> int:
        args = parser.parse_args(["serve", *argv])
        return args.handler(args)

    return run_guarded(command)
