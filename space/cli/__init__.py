"""Command line: ``attribution-explorer attribute | graph | intervene | patch | export | corpus | report | serve``.

The CLI only wires arguments to library calls (like the app does). A user mistake ends with one clear
line on stderr and exit status 2; results are written as JSON that ``export`` can draw later.

Start-up is part of the interface: ``--help`` and ``--version`` answer without importing torch, Inseq,
Gradio or Bokeh, and a command checks its arguments before it imports what it runs on. So this package,
and every module registering a command, imports only the standard library and light modules
(``attribution.errors``, ``attribution.capabilities``, :mod:`space.cli.common`) at the top; heavy imports
go inside the functions that run the command.

Commands are found through a registry: the CLI's own, one module each in :mod:`space.cli.commands`
(:data:`BUILT_IN`, in the order ``--help`` lists them), then those declared in the Python entry-point group
``attribution_explorer.commands``. The app declares ``serve`` there (``pyproject.toml``), so the command
line runs the app without importing it; a third party adds a command the same way, from its own package.
A command module follows :mod:`space.command`: ``add_parser(subparsers)`` and ``run(args) -> int``.

Adding a command of the CLI's own: a module ``space/cli/commands/<name>.py`` and its name in
:data:`BUILT_IN`; shared pieces (model options, progress bar, writing the result) are in
:mod:`space.cli.common`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from types import ModuleType

from space.command import EXIT_INSTALL_ERROR, EXIT_USER_ERROR, run_guarded

__all__ = ["BUILT_IN", "ENTRY_POINT_GROUP", "EXIT_INSTALL_ERROR", "EXIT_USER_ERROR", "build_parser", "main"]

ENTRY_POINT_GROUP = "attribution_explorer.commands"
#: The command line's own commands (modules of :mod:`space.cli.commands`), in help order.
BUILT_IN = ("attribute", "compare", "graph", "intervene", "patch", "export", "corpus", "report")
# Commands declared in the entry-point group by this distribution, used when its metadata is not installed
# (a plain source checkout); an installed package declares the same values in pyproject.toml.
_DECLARED_HERE = {"serve": "space.gradio_app.serve"}


def command_entry_points() -> dict[str, metadata.EntryPoint]:
    """Every command by name, in help order: the built-in ones, then the entry-point group's (by name).

    A declared command cannot replace a built-in one (the name stays the CLI's own).
    """

    def entry(name: str, value: str) -> metadata.EntryPoint:
        return metadata.EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)

    found = {name: entry(name, f"space.cli.commands.{name}") for name in BUILT_IN}
    found |= {name: entry(name, value) for name, value in _DECLARED_HERE.items()}
    declared = sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda point: point.name)
    found |= {point.name: point for point in declared if point.name not in BUILT_IN}  # installed: replaces the fallback
    return found


def _load_command(entry: metadata.EntryPoint) -> ModuleType | None:
    """The command's module (or object with ``add_parser``); a third party's that fails to load is skipped with
    one warning line, so that it cannot take the other commands down. Ours fail loudly (a broken install)."""
    if entry.name in BUILT_IN or entry.name in _DECLARED_HERE:
        return entry.load()
    try:
        command = entry.load()
        if not callable(getattr(command, "add_parser", None)):
            raise TypeError("it has no add_parser(subparsers)")
    except Exception as error:  # a third-party plugin can fail in any way: name it and go on
        print(f"warning: command {entry.name!r} ({entry.value}) could not be loaded: {error}", file=sys.stderr)
        return None
    return command


def build_parser() -> argparse.ArgumentParser:
    """The ``attribution-explorer`` parser: each registered command adds its own sub-parser, in help order."""
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
    for entry in command_entry_points().values():
        command = _load_command(entry)
        if command is not None:
            command.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    def command() -> int:
        from space.distribution import version_report

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

    return run_guarded(command)
