"""What a command of ``attribution-explorer`` is and how it runs, for the command line and the app's entry file alike.

A command is a module with ``add_parser(subparsers) -> argparse.ArgumentParser``, which adds the command's
parser (help, description, options) and ``set_defaults(handler=run)``, where ``run(args) -> int`` does the
work and returns the exit status. :func:`run_guarded` runs it the same way wherever it was started from
(``attribution-explorer COMMAND`` or ``python space/app.py``): a user mistake ends with one clear line on
stderr and exit status 2, an import name of ours shadowed by another distribution with 3, Ctrl-C with 130.

Standard library and light modules only: ``--help`` must answer without torch, Inseq, Gradio or Bokeh.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from attribution.errors import AttributionExplorerError

EXIT_USER_ERROR = 2
EXIT_INSTALL_ERROR = 3
EXIT_INTERRUPTED = 130


def run_guarded(command: Callable[[], int]) -> int:
    """``command()``'s exit status; a user error, a broken install or Ctrl-C become one line and their status."""
    from space.distribution import import_problem

    try:
        return command()
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
        return EXIT_INTERRUPTED
